"""What the analysis commands (invariance, occlusion, correspondence, evolution) share: the
``--model``, ``--out DIR`` and ``--json`` options, loading the classifier and its ``--class``,
``--layers`` parsing, the facts every report starts with, and printing the result (JSON, or a
summary and the files written).

Not a command: modules of zfnet/cli whose name starts with "_" are skipped by the ``zfnet`` parser.
"""
import contextlib
import json
import sys
import time


# The bounds of the numeric options, one table for every command, so that an option means the
# same thing and takes the same values wherever it appears (None: no upper bound).
BATCH = (1, 1024)                  # images per forward pass
LIMITS = {
    "--k": (1, 1000),              # units (images) kept per map
    "--batch": BATCH,
    "--batch-size": BATCH,
    "--cell": (8, 512),            # pixels per cell side in the figures
    "--percentile": (50.0, 100.0),  # contrast of a rendered projection
    "--count": (1, 1000),          # maps shown
    "--max-images": (1, None),
    "--random": (0, 1000),         # random-box trials
}


def check_limits(args, *options):
    """A ZFNetError naming the option and its bounds (LIMITS) for the first value out of them;
    options not given (None) pass."""
    from zfnet.errors import ZFNetError
    for option in options:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        lo, hi = LIMITS[option]
        if value is None:
            continue
        if not (lo <= value and (hi is None or value <= hi)):      # NaN fails too
            bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise ZFNetError(f"{option} must be {bounds}, got {value}")


def add_model_argument(p):
    """--model NAME|FILE, defaulting to the project's default model."""
    from zfnet.weights import DEFAULT_MODEL
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model name or weights file (default {DEFAULT_MODEL}; see 'zfnet weights list')")


def add_output_arguments(p, command):
    """--out DIR (default ./zfnet-<command>) and --json."""
    p.add_argument("--out", default=f"zfnet-{command}", metavar="DIR", help=f"output folder (default ./zfnet-{command})")
    p.add_argument("--json", action="store_true", help="also print the numbers as JSON on stdout")


def check_out_dir(out, option="--out"):
    """--out must be a folder (created if missing) where files can be written: checked before any
    work, so a run never fails at its end for a bad --out. Leftover ``.part`` files of a killed
    earlier run are removed. Returns the folder as a Path."""
    from zfnet.atomic import check_writable_dir, remove_stale_parts
    out = check_writable_dir(out, what=option)
    remove_stale_parts(out)
    return out


def check_out_file(path, option):
    """A file option (--npz, -o): its folder must be writable, and the path must not be a folder."""
    from pathlib import Path

    from zfnet.atomic import check_writable_dir
    from zfnet.errors import ZFNetError
    path = Path(path)
    if path.is_dir():
        raise ZFNetError(f"{option} {path} is a folder; give a file name")
    for above in path.parents:
        if above.exists():
            if not above.is_dir():
                raise ZFNetError(f"{option} {path}: {above} is a file, not a folder (a part of the path is a file)")
            break
    check_writable_dir(path.parent, what=f"the folder of {option} {path.name},")
    return path


def read_each(paths, read, need=1, what="image"):
    """[(index, path, read(path))] for the paths that read without a ZFNetError, in order; each one
    that fails is reported on stderr (one line naming it) and skipped, so one bad file does not stop
    a run over many. Fewer than `need` readable is a ZFNetError."""
    from zfnet.errors import ZFNetError
    if len(paths) < need:
        raise ZFNetError(f"this needs at least {need} {what}s, got {len(paths)}")
    kept = []
    for i, path in enumerate(paths):
        try:
            kept.append((i, path, read(path)))
        except ZFNetError as e:
            print(f"zfnet: warning: skipped {e}", file=sys.stderr)
    if len(kept) < need:
        raise ZFNetError(f"only {len(kept)} of the {len(paths)} {what}(s) could be read; "
                         f"this needs at least {need} {what}s")
    if len(kept) < len(paths):
        print(f"zfnet: warning: {len(paths) - len(kept)} of {len(paths)} {what}(s) skipped", file=sys.stderr)
    return kept


def load_classifier(model, cls):
    """--model and --class -> (net, its K class labels, the class index C or None for each image's top-1)."""
    from zfnet.viz.classes import class_labels, resolve_class
    from zfnet.weights import load_model
    net = load_model(model)
    labels = class_labels(net)
    return net, labels, (resolve_class(net, cls, labels) if cls is not None else None)


def layer_names(text):
    """--layers "a, b" -> ["a", "b"]; None when the option is not given; an empty list is an error."""
    from zfnet.errors import ZFNetError
    if text is None:
        return None
    layers = [s.strip() for s in text.split(",") if s.strip()]
    if not layers:
        raise ZFNetError("--layers is empty; give layer names separated by commas")
    return layers


def run_facts(net, model, t0, **facts):
    """{"model": ..., **facts, "compute_seconds": ...}: the head of every report (and its JSON)."""
    return {"model": net.meta.get("model", model), **facts,
            "compute_seconds": round(time.perf_counter() - t0, 2)}


def print_result(as_json, numbers, summary, paths):
    """--json: `numbers` as one JSON document on stdout; else the `summary` lines, then the paths."""
    if as_json:
        json.dump(numbers, sys.stdout)
        print()
    else:
        for line in summary:
            print(line)
        for path in paths:
            print(path)


def add_device_argument(p):
    """--device cpu|cuda: where the kernels run (default: $ZFNET_BACKEND, else cpu)."""
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="run the kernels on the CPU (Numba) or an NVIDIA GPU (numba.cuda; needs "
                        "pip install 'zfnet[cuda]', a GPU and its driver); default $ZFNET_BACKEND, else cpu")


def use_device(args):
    """Select --device for the whole command: a ZFNetError (exit 2) naming what is missing when
    'cuda' cannot run here (no numba-cuda, no driver, no GPU)."""
    from zfnet import kernels
    device = getattr(args, "device", None)
    if device is not None:
        kernels.set_backend(device)
    elif kernels.get_backend() == "cuda":
        kernels.set_backend("cuda")             # ZFNET_BACKEND=cuda: checked before any work


def add_threads_argument(p):
    """--threads N on parser `p` and on each of its subcommands' parsers, down to the last level
    (zfnet/cli/__init__.py calls it on each command's parser). Unset, it leaves no attribute."""
    import argparse
    p.add_argument("--threads", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="compute on N threads, BLAS kept on one (default: ZFNET_THREADS, else all cores)")
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_threads_argument(child)


@contextlib.contextmanager
def threads_applied(args):
    """--threads (or ZFNET_THREADS) for the command's run: zfnet.kernels.thread_pool.configure
    before any work, undone on exit, so that main() called from Python (a test, a notebook)
    leaves the process's BLAS and Numba threads as it found them (Numba's at most the pool's
    size, which configure may have set before the pool started)."""
    import numba

    from zfnet.kernels import thread_pool
    before = thread_pool.threads()
    limiter = thread_pool.configure(getattr(args, "threads", None))
    try:
        yield
    finally:
        limiter.restore_original_limits()
        thread_pool.set_threads(min(before, numba.config.NUMBA_NUM_THREADS))
