"""What the analysis commands (invariance, occlusion, correspondence, evolution) share: the
``--model``, ``--out DIR`` and ``--json`` options, loading the classifier and its ``--class``,
``--layers`` parsing, the facts every report starts with, and printing the result (JSON, or a
summary and the files written).

Not a command: modules of zfnet/cli whose name starts with "_" are skipped by the ``zfnet`` parser.
"""
import json
import sys
import time


def add_model_argument(p):
    """--model NAME|FILE, defaulting to the project's default model."""
    from zfnet.weights import DEFAULT_MODEL
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model name or weights file (default {DEFAULT_MODEL}; see 'zfnet weights list')")


def add_output_arguments(p, command):
    """--out DIR (default ./zfnet-<command>) and --json."""
    p.add_argument("--out", default=f"zfnet-{command}", metavar="DIR", help=f"output folder (default ./zfnet-{command})")
    p.add_argument("--json", action="store_true", help="also print the numbers as JSON on stdout")


def check_out_dir(out):
    """--out must be a folder, or not exist yet (checked before any work)."""
    from pathlib import Path

    from zfnet.errors import ZFNetError
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZFNetError(f"--out {out} exists and is not a folder; give a folder (it is created if missing)")
    return out


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


def apply_threads(args):
    """--threads (or ZFNET_THREADS): zfnet.kernels.thread_pool.configure, once, before any work."""
    from zfnet.kernels import thread_pool
    thread_pool.configure(getattr(args, "threads", None))
