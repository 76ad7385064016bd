"""What the scanning commands (topk, filters) share: the ``--maps`` syntax, the scan options,
a progress bar, and the scan's summary lines on stderr.

Not a command: modules of zfnet/cli whose name starts with "_" are skipped by the ``zfnet`` parser.
"""
import sys

MAPS_HELP = """\
  --maps all     every feature map of the layer
  --maps 16      the first 16 maps (0..15)
  --maps 3,17,40 those maps (ranges too: 0-7,42; one map: 5,)
"""


def parse_maps(spec, n_maps):
    """--maps text -> sorted list of map indices for a layer of n_maps maps.

    "all" -> every map 0..C-1; "N" (one integer) -> the first N maps 0..N-1; "i,j,..." -> those
    maps (ranges "a-b" allowed inside the list, e.g. "0-7,42"; one single map is written "i,").
    """
    from zfnet.errors import ZFNetError
    s = str(spec).strip().lower()
    if s == "all":
        return list(range(n_maps))
    if s.isdigit():
        n = int(s)
        if not 1 <= n <= n_maps:
            raise ZFNetError(f"--maps {s}: the first N maps needs 1 <= N <= {n_maps} (the layer has {n_maps} maps)")
        return list(range(n))
    maps = []
    for part in (p.strip() for p in s.split(",")):
        if not part:
            continue
        a, dash, b = part.partition("-")
        if not a.isdigit() or (dash and not b.isdigit()):
            raise ZFNetError(f"--maps {spec!r}: expected 'all', a count N, or map indices like '3,17,40' or '0-7,42'")
        maps.extend(range(int(a), int(b) + 1) if dash else [int(a)])
    if not maps:
        raise ZFNetError(f"--maps {spec!r}: no maps given")
    bad = [m for m in maps if not 0 <= m < n_maps]
    if bad:
        raise ZFNetError(f"--maps {spec!r}: maps {bad} do not exist: the layer has {n_maps} maps (0..{n_maps - 1})")
    return sorted(set(maps))


IMAGES_HELP = ("folders of images (searched recursively), images, text files listing image paths, or "
               "glob patterns (quote them: 'photos/*/cat*.jpg', '**' for any depth); several may be given")


def add_scan_arguments(p, images_required, restart_help):
    """--images, --batch, --restart and the cluster options (--workers, --scheduler, --shard-size)."""
    p.add_argument("--images", required=images_required, default=None, nargs="+", metavar="PATH", help=IMAGES_HELP)
    p.add_argument("--batch", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--restart", action="store_true", help=restart_help)
    g = p.add_argument_group("scanning on a Dask cluster (pip install 'zfnet[dask]'; workers read the images by path)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="start a local cluster of N worker processes (one thread each) and scan on it")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="scan on the running Dask cluster whose scheduler is at this address")
    g.add_argument("--shard-size", type=int, default=256, metavar="N",
                   help="images per task on the cluster (default 256); each finished shard is saved")


def cluster_client(args):
    """A context manager: the Dask client that --workers/--scheduler ask for (its cluster's
    description and dashboard printed on stderr), or None to scan in process."""
    import contextlib

    from zfnet.errors import ZFNetError

    @contextlib.contextmanager
    def client():
        if args.shard_size < 1:
            raise ZFNetError(f"--shard-size must be at least 1, got {args.shard_size}")
        if args.workers is None and args.scheduler is None:
            yield None
            return
        from zfnet.viz.scan_dask import connect, describe
        with connect(args.scheduler, args.workers) as c:
            print(describe(c), file=sys.stderr)
            yield c
    return client()


def collect_args(values):
    """--images PATH... -> the ordered image paths (absolute, duplicates dropped). Each value is a
    folder, an image, a list file (zfnet.viz.collect.collect_images) or, when no such path
    exists, a glob pattern: its matching folders are searched and its matching files named like
    images taken (other matching files are ignored)."""
    import glob
    import os

    from zfnet.errors import ZFNetError
    from zfnet.viz.collect import collect_images, is_image_name
    paths = []
    for value in [values] if isinstance(values, str) else values:
        pattern = os.path.expanduser(value)
        if os.path.exists(pattern) or not glob.has_magic(pattern):
            paths += collect_images(pattern)
            continue
        matches = sorted(glob.glob(pattern, recursive=True))
        found = [p for m in matches for p in (collect_images(m) if os.path.isdir(m) else
                                              [os.path.abspath(m)] if is_image_name(m) else [])]
        if not found:
            raise ZFNetError(f"--images {value!r}: no image or folder matches this pattern")
        paths += found
    return list(dict.fromkeys(paths))


def note_k(k, n_images):
    """Say so when fewer images were scanned than the k asked for (each map then shows fewer)."""
    if 0 < n_images < k:
        print(f"note: --k {k} but only {n_images} image(s) were scanned, and each map keeps one unit per image: "
              f"it shows at most {n_images}", file=sys.stderr)


def progress_bar(desc, unit):
    """(update(n, total=None), close()): a tqdm bar on stderr (its rate: images per second),
    made on the first report (when the total is known). update.shards(done, total) shows the
    shards done beside it."""
    from tqdm import tqdm
    state = {}

    def update(n, total=None):
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
        state["bar"].update(n)

    def shards(done, total):
        if "bar" in state:
            state["bar"].set_postfix_str(f"shards {done}/{total}")

    def close():
        if "bar" in state:
            state["bar"].close()
    update.shards = shards
    return update, close


def print_scan(res):
    """The scan's summary (and every image it skipped) on stderr."""
    state = res.state
    note = f" (resumed; {res.not_in_collection} earlier images not in this collection)" if res.not_in_collection \
        else (" (resumed)" if res.resumed else "")
    shards = f", {res.shards} shard(s)" if res.shards else ""
    print(f"scanned {res.scanned} new image(s) in {res.seconds:.1f} s ({res.images_per_s:.2f} images/s{shards}){note}; "
          f"{len(state.images)} scanned in all, {len(state.skipped)} skipped", file=sys.stderr)
    for s in res.skipped:
        print(f"  skipped {s['path']}: {s['reason']}", file=sys.stderr)
