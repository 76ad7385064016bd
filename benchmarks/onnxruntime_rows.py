"""zfnet against ONNX Runtime (and PyTorch) on the same ONNX files, and the forward pass on a busy machine.

    python benchmarks/onnxruntime_rows.py [--threads 2] [--repeat 10] [--rows forward,contention]

Issue 12's targets, shown beside each row:

- forward/<model>/b<N>: SqueezeNet v1.0 (../shared/data/weights/squeezenet1_0/squeezenet1_0.onnx,
  real weights) and ZFNet-512 (the onnx package's light_zfnet512.onnx: the model zoo's graph,
  its constant weights made random here), batch 1 and 16. zfnet runs the file as converted by
  zfnet.convert (to zfnet512), ONNX Runtime the same bytes, PyTorch the converted net
  (benchmarks/torch_ref.py), all on
  `threads` threads. Targets: zfnet <= 1.25x ONNX Runtime, <= 0.5x PyTorch. Minimum of `repeat`.
  zfnet is timed twice in the same blocks: as it runs now (layout="auto", BLAS on one thread) and
  as before the blocked layout (zfnet_before: layout="nchw", BLAS on its own threads).
- contention/<model>/b16: the batch-16 SqueezeNet forward with two busy processes
  (`python -c 'while 1: pass'`) beside it, over the same forward on the quiet machine: for zfnet
  now, zfnet before (as above) and ONNX Runtime. Target:
  <= 2.5x (a fair share of two cores among three processes is about 2x). Medians, not minima:
  under load the minimum is one lucky time slice. Each side runs for at most `seconds` seconds.

ONNX Runtime is imported here only: the library never imports it (setup.cfg's dev extra).
"""
import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SQUEEZENET_ONNX = REPO.parent / "shared" / "data" / "weights" / "squeezenet1_0" / "squeezenet1_0.onnx"
TARGETS = {"vs_onnxruntime": 1.25, "vs_torch": 0.5, "contention": 2.5}


def light_zfnet512_path():
    import onnx
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_zfnet512.onnx"


def _random_weights(model, seed=0):
    """Each ConstantOfShape tensor (light_zfnet512's weights, all 0.02) replaced by He-scaled random
    values (biases 0.01): with equal weights every class gets the same logit, of order 1e11, and
    float32 rounding alone decides the probabilities, so nothing could be checked."""
    from onnx import numpy_helper
    rng = np.random.default_rng(seed)
    shapes = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in [n for n in model.graph.node if n.op_type == "ConstantOfShape"]:
        shape = tuple(int(d) for d in shapes[node.input[0]])
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 0
        value = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in) if fan_in else np.full(shape, 0.01))
        model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        model.graph.node.remove(node)


def _batch_free(path):
    """The model's bytes with the batch dimension made free, so ORT runs any batch: 'N' for the
    input's and output's first dimension, and -1 for a Reshape's fixed batch of 1 (light_zfnet512
    flattens to (1, 18432)); constant weights made random (_random_weights)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    _random_weights(model)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "N"
    shapes = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    for tensor in model.graph.initializer:
        if tensor.name in shapes:
            shape = numpy_helper.to_array(tensor).copy()
            if shape[0] == 1:
                shape[0] = -1
                tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in shapes:
            shape = numpy_helper.to_array(node.attribute[0].t).copy()
            if shape[0] == 1:
                shape[0] = -1
                node.attribute[0].t.CopyFrom(numpy_helper.from_array(shape))
    return model.SerializeToString()


def onnxruntime_session(path, threads):
    """An ONNX Runtime CPU session of the file `path` on `threads` intra-op threads, all graph optimisations on."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


MODELS = {"squeezenet1_0": lambda: SQUEEZENET_ONNX, "zfnet512": light_zfnet512_path}


def build(model, batch, threads, before=False):
    """(zfnet, onnxruntime, torch, check): functions of no arguments computing the same probabilities.

    zfnet as a user runs it now (layout="auto": the blocked forward where blocked.LAYOUTS says so,
    BLAS on one thread as thread_pool.configure sets it); before=True: the forward before the
    blocked layout (layout="nchw", BLAS on its own threads)."""
    import torch
    from benchmarks.torch_ref import torch_forward, torch_params
    from zfnet.convert import convert
    from zfnet.kernels import thread_pool
    from zfnet.net import forward
    path = MODELS[model]()
    with tempfile.TemporaryDirectory() as tmp:     # zfnet reads the very bytes ORT runs
        prepared = Path(tmp) / path.name
        prepared.write_bytes(_batch_free(path))
        net = convert(str(prepared))
        session = onnxruntime_session(prepared, threads)
    x = np.random.default_rng(0).uniform(-100, 100, (batch, *net.arch.input_shape)).astype(np.float32)
    feed = {session.get_inputs()[0].name: x}
    xt, params = torch.from_numpy(x), torch_params(net)

    def run_torch():
        with torch.no_grad():
            return torch_forward(net, xt, params).numpy()

    def check(a, b):
        assert a.shape == b.shape, (a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    def run_zfnet():
        if before:
            return forward(net, x, switches=False, layout="nchw").output
        with thread_pool.blas_single_threaded():
            return forward(net, x, switches=False).output
    return (run_zfnet, lambda: session.run(None, feed)[0], run_torch, check)


def _times(fn, repeat, seconds):
    """Up to `repeat` timings of fn(), stopping early once `seconds` have passed (at least 2)."""
    fn()
    out, start = [], time.perf_counter()
    while len(out) < repeat and (len(out) < 2 or time.perf_counter() - start < seconds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def forward_rows(threads, repeat, seconds=20.0):
    """One row per model and batch: zfnet, ONNX Runtime and PyTorch times (minima) and the ratios."""
    import torch
    torch.set_num_threads(threads)
    rows = []
    for model in MODELS:
        for batch in (1, 16):
            zf, ort_run, torch_run, check = build(model, batch, threads)
            zf_before = build(model, batch, threads, before=True)[0]
            check(zf(), ort_run())
            best = {"zfnet": 1e9, "zfnet_before": 1e9, "onnxruntime": 1e9, "torch": 1e9}
            for _ in range(3):      # blocks interleaved, so all four see the same machine load
                for side, fn in (("zfnet", zf), ("zfnet_before", zf_before), ("onnxruntime", ort_run),
                                 ("torch", torch_run)):
                    best[side] = min(best[side], min(_times(fn, max(1, repeat // 3), seconds / 3)))
            rows.append({"case": f"forward/{model}/b{batch}", **{f"{k}_s": v for k, v in best.items()},
                         "vs_onnxruntime": best["zfnet"] / best["onnxruntime"],
                         "vs_torch": best["zfnet"] / best["torch"]})
            print(fmt_rows(rows[-1:]), flush=True)
    return rows


def onnxruntime_layer_times(model, batch, threads, runs=20):
    """{layer: seconds}: ONNX Runtime's own profile of the whole model, each node's minimum over
    `runs` runs. Node names lose ORT's decorations: 'fire2/relu_squeeze1x1_nchwc' -> 'fire2.squeeze1x1'."""
    import json
    import onnxruntime as ort
    path = MODELS[model]()
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "profile")
        options.log_severity_level = 3
        session = ort.InferenceSession(_batch_free(path), options, providers=["CPUExecutionProvider"])
        shape = [batch] + [d for d in session.get_inputs()[0].shape[1:]]
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    times = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][:-len("_kernel_time")].removesuffix("_nchwc").replace("/", ".")
            name = ".".join(part.removeprefix("relu_") for part in name.split("."))
            times[name] = min(times.get(name, 1e9), e["dur"] * 1e-6)
    return times


@contextlib.contextmanager
def busy_processes(count=2, limit_s=600):
    """`count` processes spinning on a CPU each (`while 1: pass`) while the block runs; killed after,
    and each ends by itself after `limit_s` seconds should this process die first."""
    code = f"import time\nend = time.time() + {limit_s}\nwhile time.time() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        time.sleep(0.5)
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def contention_rows(threads, repeat, seconds=20.0, model="squeezenet1_0"):
    """The batch-16 forward's median time beside two busy processes over its quiet median."""
    zf, ort_run, _, _ = build(model, 16, threads)
    sides = {"zfnet": zf, "zfnet before (NCHW, BLAS's threads)": build(model, 16, threads, before=True)[0],
             "onnxruntime": ort_run}
    quiet = {k: statistics.median(_times(fn, repeat, seconds)) for k, fn in sides.items()}
    with busy_processes(2):
        busy = {k: statistics.median(_times(fn, repeat, seconds)) for k, fn in sides.items()}
    rows = [{"case": f"contention/{model}/b16 ({side})", "quiet_s": quiet[side], "busy_s": busy[side],
             "contention": busy[side] / quiet[side]} for side in sides]
    print(fmt_rows(rows), flush=True)
    return rows


def fmt_rows(rows):
    lines = []
    for r in rows:
        if "vs_onnxruntime" in r:
            before = f"(before {r['zfnet_before_s'] * 1e3:8.1f} ms)  " if "zfnet_before_s" in r else ""
            lines.append(f"{r['case']:42s} zfnet {r['zfnet_s'] * 1e3:8.1f} ms  {before}ORT {r['onnxruntime_s'] * 1e3:8.1f} ms  "
                         f"torch {r['torch_s'] * 1e3:8.1f} ms  zfnet/ORT {r['vs_onnxruntime']:5.2f} "
                         f"(target <= {TARGETS['vs_onnxruntime']})  zfnet/torch {r['vs_torch']:5.2f} "
                         f"(target <= {TARGETS['vs_torch']})")
        else:
            lines.append(f"{r['case']:42s} quiet {r['quiet_s'] * 1e3:8.1f} ms  busy {r['busy_s'] * 1e3:8.1f} ms  "
                         f"busy/quiet {r['contention']:5.2f} (target <= {TARGETS['contention']})")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20.0, help="at most this long per side and row")
    ap.add_argument("--rows", default="forward,contention")
    args = ap.parse_args(argv)
    import numba
    import zfnet.kernels  # noqa: F401  (zfnet chooses Numba's threading layer: before the pool starts)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    rows = []
    if "forward" in args.rows:
        rows += forward_rows(args.threads, args.repeat, args.seconds)
    if "contention" in args.rows:
        rows += contention_rows(args.threads, args.repeat, args.seconds)
    print(f"threads {args.threads}, load average {os.getloadavg()[0]:.2f}")
    return rows


if __name__ == "__main__":
    main()
