"""The top-k scan in process against local Dask clusters, and its scaling in the number of images.

    python benchmarks/scan_dask.py throughput [--layer fire9/concat] [--repeat 2]
        the shared photographs scanned in process, on 1 and on 2 local worker processes
        (one thread each): images/s and the ratio to in process; per-image time of one worker
        and what a 50,000-image scan takes per worker at that rate
    python benchmarks/scan_dask.py scaling --n 250 500 1000 [--workers 2] [--layer relu_conv1]
        synthetic JPEGs (made once in /tmp/zfnet_scan_synth) scanned on a local cluster: wall
        time per N (linear?) and the client's peak RSS (flat?)

Each cluster is started once and warmed by a scan of a few images (Numba cache load, the network
sent to the workers) before anything is timed; every timed scan starts from an empty state.
Results are printed as markdown rows and written to benchmarks/results/scan_dask_<what>.json.
"""
import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT.parent / "shared" / "data" / "images"
SYNTH = Path("/tmp/zfnet_scan_synth")
RESULTS = ROOT / "benchmarks" / "results"


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakRSS:
    """The client's peak resident memory while a block runs (sampled every 50 ms)."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def timed_scan(net, paths, layer, maps, k, client, shard_size, batch):
    from zfnet.viz.scan import scan
    t0 = time.perf_counter()
    with PeakRSS() as mem:
        res = scan(net, paths, layer, maps, k=k, batch_size=batch, client=client, shard_size=shard_size)
    return time.perf_counter() - t0, res.scanned, mem.peak


def throughput(args):
    from distributed import Client

    from zfnet.viz.collect import collect_images
    from zfnet.viz.scan_dask import local_cluster
    from zfnet.weights import load_model
    net = load_model("squeezenet1_0", progress=False)
    paths = collect_images(PHOTOS)
    maps = list(range(args.maps))
    rows = []

    def measure(name, client, shard_size):
        timed_scan(net, paths[:4], args.layer, maps, args.k, client, shard_size, args.batch)      # warm-up
        runs = [timed_scan(net, paths, args.layer, maps, args.k, client, shard_size, args.batch)
                for _ in range(args.repeat)]
        best = min(runs)
        rows.append({"setup": name, "seconds": best[0], "images": best[1], "images_per_s": best[1] / best[0],
                     "all_seconds": [r[0] for r in runs], "client_peak_rss_mb": best[2]})
        print(f"  {name}: {best[1]} images in {best[0]:.1f} s ({best[1] / best[0]:.2f} images/s)", flush=True)

    measure("in process", None, 256)
    for n in (1, 2):
        cluster = local_cluster(n)
        client = Client(cluster)
        try:
            # shards small enough that 2 workers share the 37 photographs evenly
            measure(f"Dask, {n} worker(s)", client, max(1, len(paths) // (4 * n)))
        finally:
            client.close()
            cluster.close()
    base = rows[0]["images_per_s"]
    for r in rows:
        r["ratio_to_in_process"] = r["images_per_s"] / base
    one = rows[1]
    per_image = one["seconds"] / one["images"]
    summary = {"layer": args.layer, "maps": args.maps, "k": args.k, "batch": args.batch, "rows": rows,
               "seconds_per_image_one_worker": per_image,
               "hours_for_50000_per_worker": 50000 * per_image / 3600, "load_before": os.getloadavg()}
    print("| setup | images | best time | images/s | ratio to in process |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['setup']} | {r['images']} | {r['seconds']:.1f} s | {r['images_per_s']:.2f} | "
              f"{r['ratio_to_in_process']:.2f} |")
    print(f"one worker: {per_image:.3f} s/image -> 50,000 images: {summary['hours_for_50000_per_worker']:.1f} h per worker")
    return summary


def synthetic(n):
    """n small JPEGs in SYNTH/<n> (made once): smooth random colours, 96x128."""
    from PIL import Image
    folder = SYNTH / str(n)
    if len(list(folder.glob("*.jpg"))) == n:
        return sorted(str(p) for p in folder.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        small = rng.integers(0, 256, size=(6, 8, 3)).astype(np.uint8)
        Image.fromarray(small).resize((128, 96), Image.BILINEAR).save(folder / f"s{i:06d}.jpg", quality=85)
    return sorted(str(p) for p in folder.glob("*.jpg"))


def scaling(args):
    from distributed import Client

    from zfnet.viz.scan_dask import local_cluster
    from zfnet.weights import load_model
    net = load_model("squeezenet1_0", progress=False)
    maps = list(range(args.maps))
    cluster = local_cluster(args.workers)
    client = Client(cluster)
    rows = []
    try:
        timed_scan(net, synthetic(max(args.n))[:8], args.layer, maps, args.k, client, 4, args.batch)   # warm-up
        for n in args.n:
            paths = synthetic(n)
            seconds, scanned, peak = timed_scan(net, paths, args.layer, maps, args.k, client, args.shard_size,
                                                args.batch)
            rows.append({"images": n, "scanned": scanned, "seconds": seconds, "images_per_s": scanned / seconds,
                         "client_peak_rss_mb": peak})
            print(f"  {n} images: {seconds:.1f} s ({scanned / seconds:.2f} images/s), client peak RSS "
                  f"{peak:.0f} MB", flush=True)
    finally:
        client.close()
        cluster.close()
    print("| images | time | images/s | s per 1000 images | client peak RSS |\n|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['images']} | {r['seconds']:.1f} s | {r['images_per_s']:.2f} | "
              f"{1000 * r['seconds'] / r['images']:.1f} | {r['client_peak_rss_mb']:.0f} MB |")
    return {"layer": args.layer, "workers": args.workers, "shard_size": args.shard_size, "batch": args.batch,
            "rows": rows, "load_before": os.getloadavg()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["throughput", "scaling"])
    p.add_argument("--layer", default=None, help="default: fire9/concat (throughput), relu_conv1 (scaling)")
    p.add_argument("--maps", type=int, default=16)
    p.add_argument("--k", type=int, default=9)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--n", type=int, nargs="+", default=[250, 500, 1000])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--shard-size", type=int, default=64)
    args = p.parse_args(argv)
    args.layer = args.layer or ("fire9/concat" if args.what == "throughput" else "relu_conv1")
    os.environ.setdefault("ZFNET_WEIGHTS", str(ROOT.parent / "shared" / "data" / "weights"))
    out = (throughput if args.what == "throughput" else scaling)(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"scan_dask_{args.what}.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
