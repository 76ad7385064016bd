"""Where a forward pass's time goes, layer by layer: zfnet, PyTorch and ONNX Runtime side by side.

    python benchmarks/forward_profile.py --model zfnet --batch 1
    python benchmarks/forward_profile.py --model squeezenet1_0 --batch 16

Each side's own per-layer time, the minimum over `--runs` whole passes (after warm-up):

- zfnet: each step of the forward pass as forward() walks it (blocked.run_step_blocked timed from
  outside; a ReLU that its convolution applies shows as ~0). The batch is not split
  (ZFNET_BATCH_SPLIT=never), so every layer runs on all threads, as in a quiet pass.
- PyTorch: each layer of benchmarks/torch_ref.py's torch_forward (the same one-layer-at-a-time
  functional calls the speed report times), BLAS and OpenMP on `--threads` threads.
- ONNX Runtime: its own profiler inside its whole-model run (onnxruntime_rows.onnxruntime_layer_times),
  for the models it runs (squeezenet1_0, zfnet512); its fused conv+ReLU nodes under the conv's name,
  its layout reorders as rows of their own.

The rows are the layers zfnet runs, then ONNX Runtime's nodes with no zfnet layer. `sum` is the
sum of the rows; `pass` a whole pass timed alone (min over runs): their difference is what runs
between the layers (Python, allocation). Every side's sum is of minima taken per layer, so it
can be below its pass time. Timings are for a quiet machine; say what else ran beside them.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed_layers(run, patch_module, attr, name_of, runs):
    """({layer: min seconds}, min whole-pass seconds): run() `runs` times with patch_module.attr timed per call."""
    original = getattr(patch_module, attr)
    per_pass, best = {}, {}

    def timing(*args, **kwargs):
        t = time.perf_counter()
        out = original(*args, **kwargs)
        name = name_of(*args)
        per_pass[name] = per_pass.get(name, 0.0) + time.perf_counter() - t
        return out

    whole = 1e9
    setattr(patch_module, attr, timing)
    try:
        run()
        for _ in range(runs):
            per_pass.clear()
            run()
            for k, v in per_pass.items():
                best[k] = min(best.get(k, 1e9), v)
    finally:
        setattr(patch_module, attr, original)
    for _ in range(runs):
        t = time.perf_counter()
        run()
        whole = min(whole, time.perf_counter() - t)
    return best, whole


def build_net(model):
    """The Net both sides run: the ONNX file ONNX Runtime runs (converted) where there is one, else random weights."""
    from benchmarks.onnxruntime_rows import MODELS, _batch_free
    from zfnet.convert import convert
    from zfnet.net import Net, get_architecture
    if model in MODELS:
        import tempfile
        path = MODELS[model]()
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / path.name
            prepared.write_bytes(_batch_free(path))
            return convert(str(prepared))
    return Net.random(get_architecture(model), seed=0)


def profile(model, batch, threads, runs):
    """[(layer, op, zfnet s, torch s or None, ort s or None)], plus the three sides' pass times."""
    import numba
    import torch
    import benchmarks.torch_ref as torch_ref
    from benchmarks.onnxruntime_rows import MODELS, onnxruntime_layer_times
    from zfnet.kernels import thread_pool
    from zfnet.net import blocked, forward

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    net = build_net(model)
    x = np.random.default_rng(0).uniform(-100, 100, (batch, *net.arch.input_shape)).astype(np.float32)
    xt, params = torch.from_numpy(x), torch_ref.torch_params(net)

    def run_zfnet():
        with thread_pool.blas_single_threaded():
            forward(net, x, switches=False)

    def run_torch():
        with torch.no_grad():
            torch_ref.torch_forward(net, xt, params)

    split = os.environ.get("ZFNET_BATCH_SPLIT")
    os.environ["ZFNET_BATCH_SPLIT"] = "never"     # every layer on all threads (see the module docstring)
    try:
        ours, ours_pass = timed_layers(run_zfnet, blocked, "run_step_blocked", lambda step, *a: step.name, runs)
    finally:
        if split is None:
            del os.environ["ZFNET_BATCH_SPLIT"]
        else:
            os.environ["ZFNET_BATCH_SPLIT"] = split
    theirs, torch_pass = timed_layers(run_torch, torch_ref, "apply_layer", lambda layer, *a: layer.name, runs)
    ort = onnxruntime_layer_times(model, batch, threads, runs) if model in MODELS else {}
    ort_names = {k.replace(".", "/"): v for k, v in ort.items()}
    rows = [(layer.name, layer.op, ours.get(layer.name, 0.0), theirs.get(layer.name), ort_names.pop(layer.name, None))
            for layer in net.arch.layers]
    rows += [(name, "(ONNX Runtime only)", None, None, t) for name, t in ort_names.items()]
    return rows, ours_pass, torch_pass


def fmt(rows, ours_pass, torch_pass):
    def ms(t):
        return f"{t * 1e3:9.3f}" if t is not None else f"{'':9s}"

    def ratio(a, b):
        return f"{a / b:7.2f}" if a is not None and b else f"{'':7s}"

    lines = [f"{'layer':24s} {'op':10s} {'zfnet ms':>9s} {'torch ms':>9s} {'ORT ms':>9s} {'/torch':>7s} {'/ORT':>7s}"]
    for name, op, z, t, o in rows:
        if op in ("relu", "dropout") and (z or 0) < 2e-5 and o is None and (t or 0) < 5e-4:
            continue    # applied by the layer before it (zfnet) or a view (both): nothing to show
        lines.append(f"{name:24s} {op[:10]:10s} {ms(z)} {ms(t)} {ms(o)} {ratio(z, t)} {ratio(z, o)}")
    sums = [sum(r[i] or 0.0 for r in rows) for i in (2, 3, 4)]
    lines.append(f"{'sum':24s} {'':10s} {ms(sums[0])} {ms(sums[1])} {ms(sums[2] or None)} {ratio(sums[0], sums[1])} "
                 f"{ratio(sums[0], sums[2])}")
    lines.append(f"{'pass':24s} {'':10s} {ms(ours_pass)} {ms(torch_pass)}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zfnet")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args(argv)
    rows, ours_pass, torch_pass = profile(args.model, args.batch, args.threads, args.runs)
    print(f"{args.model}, batch {args.batch}, {args.threads} threads, min of {args.runs} passes; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(fmt(rows, ours_pass, torch_pass))
    return rows


if __name__ == "__main__":
    main()
