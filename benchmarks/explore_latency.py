"""zfnet explore's speed as a user sees it: a client issuing requests to a running server.

    python benchmarks/explore_latency.py [--requests 200] [--json benchmarks/results/explore_latency.json]

For each model a fresh `zfnet explore` process is started on 127.0.0.1 (with a warm Numba cache:
this script runs once what it measures before, in an earlier process, when the cache is cold):
- first page load: Chromium (headless, Playwright) opens / until the layer table and the conv1
  filters are shown, then the scanned layer's view until every thumbnail has loaded;
- live single-unit projection: an image is uploaded and its forward pass made once (the first
  projection, reported apart); then `--requests` GET /api/images/{id}/project requests, one after
  another on one keep-alive connection, each a different unit of a map that fires (picked from
  the map's activation heat map), timed from sending the request to the last byte of the PNG;
- the same while an occlusion job runs in the background (the issue's "does not block").

Models: the shared SqueezeNet v1.0 (fire9/concat units) and ZFNet as in the paper (conv5 units)
with random weights at the real shape (no ZFNet weights are available here), saved with save_net.
Every number is printed and, with --json, written. The machine's load average is recorded: it is
shared, and other work running at the same time moves these numbers.
"""
import argparse
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ZFNET_TEST_DATA", REPO.parent / "shared" / "data")).resolve()
PHOTOS = ("skimage_chelsea.png", "skimage_coffee.png", "darknet_dog.jpg")
CHROMIUM = "/usr/bin/chromium"


def zfnet(*args, **kw):
    return subprocess.run([sys.executable, "-c", "import sys; from zfnet.cli import main; sys.exit(main())", *args],
                          check=True, **kw)


class Server:
    """`zfnet explore ARGS` on a free port of 127.0.0.1, stopped on exit."""

    def __init__(self, *args):
        self.p = subprocess.Popen([sys.executable, "-c", "import sys; from zfnet.cli import main; sys.exit(main())",
                                   "explore", *args, "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if " at http://" not in line:
            raise RuntimeError(f"zfnet explore did not start: {line!r}")
        self.url = line.split(" at ")[1].split()[0].rstrip("/")
        host, port = self.url[len("http://"):].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=300)

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {data[:200]!r}")
        return r, data

    def json(self, method, path, **kw):
        return json.loads(self.request(method, path, **kw)[1])

    def upload(self, path):
        b = "benchBoundary"
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n\r\n").encode() \
            + path.read_bytes() + f"\r\n--{b}--\r\n".encode()
        return self.json("POST", "/api/images", body=body, headers={"Content-Type": f"multipart/form-data; boundary={b}"})["id"]

    def close(self):
        self.conn.close()
        self.p.terminate()
        self.p.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def random_zfnet(path):
    """ZFNet (the paper's layers) with random weights at the real shape, Caffe-style preprocessing."""
    from zfnet.net import Net, get_architecture
    from zfnet.weights import save_net
    meta = {"model": "zfnet-random", "architecture": "zfnet", "input_size": [224, 224], "resize": 256,
            "channel_order": "BGR", "scale": 255.0, "mean": [104.0, 117.0, 123.0], "std": [1.0, 1.0, 1.0]}
    net = Net.random(get_architecture("zfnet"), seed=0, meta=meta)
    params = dict(net.params)
    params["conv1.weight"] = params["conv1.weight"] * np.float32(1 / 64)   # 0-255 inputs: keep activations O(1)
    save_net(Net(net.arch, params, meta), path)
    return path


def firing_units(server, image_id, layer, n, seed=0):
    """n distinct (map, y, x) with a positive activation, from the strongest maps' heat maps."""
    from PIL import Image
    from urllib.parse import quote
    maps = server.json("GET", f"/api/images/{image_id}/maps?layer={quote(layer, safe='')}&k=64")["maps"]
    units = []
    for m in maps:
        _, png = server.request("GET", f"/api/images/{image_id}/activation.png?layer={quote(layer, safe='')}&map={m['map']}")
        alpha = np.asarray(Image.open(io.BytesIO(png)))[..., 3]
        units += [(m["map"], int(y), int(x)) for y, x in zip(*np.nonzero(alpha))]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(units), size=min(n, len(units)), replace=False)
    return [units[i] for i in pick]


def time_projections(server, image_id, layer, units, mode="deconvnet"):
    from urllib.parse import quote
    times = []
    for m, y, x in units:
        t0 = time.perf_counter()
        server.request("GET", f"/api/images/{image_id}/project?layer={quote(layer, safe='')}&map={m}&y={y}&x={x}&mode={mode}")
        times.append(time.perf_counter() - t0)
    return times


def summary(times):
    ms = np.asarray(times) * 1000.0
    return {"n": len(ms), "min_ms": round(float(ms.min()), 1), "p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "max_ms": round(float(ms.max()), 1), "mean_ms": round(float(ms.mean()), 1)}


def page_load(url, layer):
    """Seconds until the model view is shown (filters loaded), then the layer view (thumbnails loaded)."""
    from playwright.sync_api import sync_playwright
    from urllib.parse import quote
    done = ("() => { const im = [...document.querySelectorAll(SEL)];"
            " return im.length > 0 && im.every(e => e.complete && e.naturalWidth > 0); }")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = b.new_page()
        t0 = time.perf_counter()
        page.goto(url + "/")
        page.wait_for_selector("#layers tr >> nth=3")
        page.wait_for_function(done.replace("SEL", "'img.filters'"))
        model = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.goto(url + f"/#/layer/{quote(layer, safe='')}")
        page.wait_for_function(done.replace("SEL", "'#maps img'"))
        maps = time.perf_counter() - t0
        b.close()
    return {"model_view_s": round(model, 3), "layer_view_s": round(maps, 3)}


def run_case(name, model, layer, photo, n, scan=None):
    args = ["--model", model] + (["--scan", str(scan)] if scan else [])
    out = {"case": name, "layer": layer}
    with Server(*args) as s:
        if scan:
            out["first_page_load"] = page_load(s.url, layer)
        image_id = s.upload(photo)
        t0 = time.perf_counter()
        s.json("GET", f"/api/images/{image_id}/maps?layer={layer}&k=1")   # the forward pass, once per image
        out["forward_pass_s"] = round(time.perf_counter() - t0, 3)
        units = firing_units(s, image_id, layer, n + 20)
        time_projections(s, image_id, layer, units[n:n + 5])               # warm-up: rendering paths
        out["projection"] = summary(time_projections(s, image_id, layer, units[:n]))
        job = s.json("POST", f"/api/images/{image_id}/occlusion?size=32&stride=8")["job"]
        busy = time_projections(s, image_id, layer, units[:50], mode="guided")
        status = s.json("GET", f"/api/jobs/{job}")
        s.request("DELETE", f"/api/jobs/{job}")
        out["projection_during_occlusion"] = {**summary(busy), "job_state": status["state"],
                                              "job_done": f"{status['done']}/{status['total']}"}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    os.environ.setdefault("ZFNET_WEIGHTS", str(DATA / "weights"))
    tmp = Path(tempfile.mkdtemp(prefix="zfnet-explore-bench-"))
    try:
        photos = tmp / "photos"
        photos.mkdir()
        for p in PHOTOS:
            shutil.copy(DATA / "images" / p, photos / p)
        scan = tmp / "scan"
        zfnet("topk", "--images", str(photos), "--layer", "fire9/concat", "--maps", "48", "--k", "4",
              "--out", str(scan), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        zf = random_zfnet(tmp / "zfnet_random.safetensors")
        load0 = os.getloadavg()
        results = [run_case("squeezenet1_0 fire9/concat", "squeezenet1_0", "fire9/concat", photos / PHOTOS[0],
                            args.requests, scan),
                   run_case("zfnet (random weights) conv5", str(zf), "conv5", photos / PHOTOS[0], args.requests)]
        report = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
                  "load_average_before": [round(v, 2) for v in load0],
                  "load_average_after": [round(v, 2) for v in os.getloadavg()], "results": results}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
