"""Time zfnet against PyTorch, case by case, on this machine and in this run; print a table.

    python benchmarks/report.py [--quick] [--json FILE] [--cases SUBSTRING] [--repeat N]
    python benchmarks/report.py --device cuda [--json FILE] ...     # on an NVIDIA GPU
    python benchmarks/report.py --device cuda --dry-run              # list the cases, run nothing

For every case of benchmarks/cases.py: the first zfnet call (JIT compile or Numba-cache load,
reported separately as `first_s`), then `repeat` timed calls of each side, in alternating blocks (3 per side), keeping
the minimum (these machines are shared and noisy: fast cases repeat
for at least 1 s (quick) or 2 s per side). ratio = zfnet time / PyTorch time (< 1: zfnet
is faster). GFLOP/s is given where a case counts its floating-point work, beside the float32 GEMM
rate (numpy's sgemm) measured in the same run. Both sides get the same number of threads.

Also: cold start (import + first forward, empty and warm Numba cache) and peak RSS of the batch-16
forward pass, each in a fresh process, for zfnet and PyTorch.

--device cuda: the same registry on the GPU (benchmarks/cases.py cases("cuda")): zfnet's CUDA
kernels on device arrays against PyTorch CUDA (cuDNN) in full float32 (TF32 off), the TF32 time
beside it; GFLOP/s against the card's float32 peak (SMs x FP32 lanes x 2 x clock) and PyTorch's
float32 GEMM rate. Without a usable GPU (numba-cuda, driver, device, PyTorch CUDA) it stops with one
line naming what is missing, exit status 2.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def sgemm_gflops(n=2048, repeat=5):
    """The machine's float32 GEMM rate through numpy's BLAS, GFLOP/s (best of `repeat`)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2.0 * n ** 3 / best / 1e9


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def gpu_problem():
    """None where zfnet's CUDA backend and PyTorch CUDA can both run here, else what is missing."""
    from zfnet.kernels._backend import cuda_problem
    problem = cuda_problem()
    if problem:
        return problem
    import torch
    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} sees no CUDA device (install a CUDA build of torch)"
    return None


# FP32 lanes per SM by compute capability major version (NVIDIA's CUDA programming guide tables)
_FP32_LANES = {6: 64, 7: 64, 8: 128, 9: 128, 10: 128, 12: 128}


def gpu_peak_gflops():
    """(the card's name, its float32 peak GFLOP/s: SMs x FP32 lanes x 2 (FMA) x boost clock)."""
    from numba import cuda
    d = cuda.get_current_device()
    major, minor = d.compute_capability
    lanes = 64 if (major, minor) == (8, 0) else _FP32_LANES.get(major, 128)     # A100: 64
    name = d.name.decode() if isinstance(d.name, bytes) else str(d.name)
    return name, d.MULTIPROCESSOR_COUNT * lanes * 2 * d.CLOCK_RATE * 1e3 / 1e9


def torch_cuda_sgemm_gflops(n=8192, repeat=5):
    """PyTorch's float32 GEMM rate on the GPU with TF32 off, GFLOP/s (best of `repeat`)."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")

    def mm():
        a @ b
        torch.cuda.synchronize()
    mm()
    return 2.0 * n ** 3 / min(_timed(mm) for _ in range(repeat)) / 1e9


def time_case(case, repeat, min_time):
    """Build, warm up and time one case; returns a result dict."""
    bench = case.build()
    first = _timed(bench.zfnet)              # JIT compile / cache load lands here
    bench.torch()
    bench.check(bench.zfnet(), bench.torch())   # never report a time for a wrong answer
    # Each side is timed in blocks, alternating, never call by call: OpenBLAS's and OpenMP's worker
    # threads keep spinning for a while after a call and would steal the other side's cores
    # (interleaving single calls made PyTorch look 4-6x slower than it is).
    zs, ts = [], []
    rounds = 3
    per_block = max(1, -(-repeat // rounds))
    for _ in range(rounds):
        for fn, times in ((bench.zfnet, zs), (bench.torch, ts)):
            time.sleep(0.3)                      # let the other side's threads go to sleep
            start = time.perf_counter()
            n = 0
            while n < per_block or (time.perf_counter() - start < min_time / rounds and n < 50 * per_block):
                times.append(_timed(fn))
                n += 1
    z, t = min(zs), min(ts)
    row = {"case": case.name, "group": case.group, "zfnet_s": z, "torch_s": t, "ratio": z / t,
           "first_s": first, "repeats": len(zs)}
    if bench.torch_tf32 is not None:         # the GPU: PyTorch with TF32 too, for reference
        bench.torch_tf32()
        row["torch_tf32_s"] = min(_timed(bench.torch_tf32) for _ in range(max(3, per_block)))
        row["ratio_tf32"] = z / row["torch_tf32_s"]
    if bench.flops:
        row["gflops_zfnet"] = bench.flops / z / 1e9
        row["gflops_torch"] = bench.flops / t / 1e9
    if bench.images:
        row["images_per_s_zfnet"] = bench.images / z
        row["images_per_s_torch"] = bench.images / t
    return row


_PROBE = r"""
import os, resource, sys, time
t0 = time.perf_counter()
side, arch_name, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
import numpy as np
if side == "zfnet":
    from zfnet.net import Net, forward, get_architecture
    arch = get_architecture(arch_name)
    net = Net.random(arch, seed=0)
    x = np.zeros((batch, *arch.input_shape), np.float32)
    t1 = time.perf_counter()
    forward(net, x, switches=False)
else:
    sys.path.insert(0, os.environ["ZFNET_REPO"])
    import torch
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    from zfnet.net import Net, get_architecture
    from benchmarks.torch_ref import torch_forward
    arch = get_architecture(arch_name)
    net = Net.random(arch, seed=0)
    x = torch.zeros((batch, *arch.input_shape))
    t1 = time.perf_counter()
    with torch.no_grad():
        torch_forward(net, x)
t2 = time.perf_counter()
# peak RSS of this process: VmHWM (ru_maxrss would carry the parent's peak across exec)
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(f"{t2 - t0:.4f} {t2 - t1:.4f} {rss:.1f}")
"""


def probe(side, arch, batch, threads, numba_cache=None):
    """Run one fresh process: (start-to-first-result s, first forward s, peak RSS MiB)."""
    env = dict(os.environ, ZFNET_REPO=str(REPO), BENCH_THREADS=str(threads))
    if numba_cache:
        env["NUMBA_CACHE_DIR"] = numba_cache
    out = subprocess.run([sys.executable, "-c", _PROBE, side, arch, str(batch)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return tuple(float(v) for v in out)


def startup_rows(threads):
    import tempfile
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        cold = probe("zfnet", "squeezenet1_0", 1, threads, cache)
        warm = probe("zfnet", "squeezenet1_0", 1, threads, cache)
    torch_start = probe("torch", "squeezenet1_0", 1, threads)
    rows.append({"case": "start/squeezenet1_0/empty_numba_cache", "zfnet_s": cold[0], "torch_s": torch_start[0],
                 "ratio": cold[0] / torch_start[0]})
    rows.append({"case": "start/squeezenet1_0/warm_numba_cache", "zfnet_s": warm[0], "torch_s": torch_start[0],
                 "ratio": warm[0] / torch_start[0]})
    for arch in ("zfnet", "squeezenet1_0"):
        z = probe("zfnet", arch, 16, threads)
        t = probe("torch", arch, 16, threads)
        rows.append({"case": f"memory/{arch}/b16_peak_rss_mib", "zfnet_mib": z[2], "torch_mib": t[2],
                     "ratio": z[2] / t[2]})
    return rows


def cpu_model():
    """The CPU's model name (lscpu's "Model name"), from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt_table(rows, sgemm):
    lines = [f"{'case':52s} {'zfnet':>10s} {'PyTorch':>10s} {'ratio':>6s} {'GFLOP/s':>8s} {'%sgemm':>6s}"]
    for r in rows:
        if "zfnet_s" in r:
            g = r.get("gflops_zfnet")
            gs = f"{g:8.1f}" if g else " " * 8
            pct = f"{100 * g / sgemm:5.0f}%" if g else " " * 6
            lines.append(f"{r['case']:52s} {r['zfnet_s'] * 1e3:8.2f}ms {r['torch_s'] * 1e3:8.2f}ms "
                         f"{r['ratio']:6.2f} {gs} {pct}")
        else:
            lines.append(f"{r['case']:52s} {r['zfnet_mib']:8.0f}MB {r['torch_mib']:8.0f}MB {r['ratio']:6.2f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a representative subset, under 5 minutes")
    p.add_argument("--json", metavar="FILE", help="also save the rows as JSON")
    p.add_argument("--cases", metavar="SUBSTRING", help="only cases whose name contains this")
    p.add_argument("--repeat", type=int, default=None, help="timed calls per side (default 10, quick 5)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides")
    p.add_argument("--no-startup", action="store_true", help="skip the cold-start and memory probes")
    p.add_argument("--no-onnxruntime", action="store_true",
                   help="skip the ONNX Runtime and contention rows (benchmarks/onnxruntime_rows.py)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu (Numba vs PyTorch CPU, default) or cuda (zfnet's CUDA kernels vs PyTorch CUDA)")
    p.add_argument("--dry-run", action="store_true", help="list the cases that would run, run nothing")
    args = p.parse_args(argv)

    from benchmarks.cases import cases as registry
    cases = [c for c in registry(args.device)
             if (c.quick or not args.quick) and (not args.cases or args.cases in c.name)]
    if args.dry_run:
        for c in cases:
            print(f"{c.group:8s} {c.name}")
        print(f"{len(cases)} cases on {args.device}")
        return 0
    if args.device == "cuda":
        problem = gpu_problem()
        if problem:
            print(f"report.py: error: --device cuda cannot run here: {problem}", file=sys.stderr)
            return 2
        return run_gpu(args, cases)

    import numba
    import torch
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    repeat = args.repeat or (5 if args.quick else 10)

    load_before = os.getloadavg()
    sgemm = sgemm_gflops()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load_before[0]:.2f}; threads {args.threads}; "
          f"numpy {np.__version__}, numba {numba.__version__}, torch {torch.__version__}")
    print(f"numpy sgemm (2048^3): {sgemm:.1f} GFLOP/s\n")
    rows = []
    for case in cases:
        row = time_case(case, repeat, min_time=1.0 if args.quick else 2.0)
        rows.append(row)
        print(fmt_table([row], sgemm).splitlines()[1], flush=True)
    if not args.no_startup:
        srows = startup_rows(args.threads)
        rows += srows
        print(fmt_table(srows, sgemm).split("\n", 1)[1])
    print("\n" + fmt_table(rows, sgemm))
    ort_rows = [] if args.no_onnxruntime else onnxruntime_and_contention_rows(args, repeat)
    if args.json:
        from zfnet.atomic import write_json
        write_json(args.json, {"sgemm_gflops": sgemm, "threads": args.threads, "machine": cpu_model(),
                               "cpu_count": os.cpu_count(), "load_average_before": load_before[0],
                               "load_average_after": os.getloadavg()[0], "quick": args.quick,
                               "versions": {"numpy": np.__version__, "numba": numba.__version__,
                                            "torch": torch.__version__, "python": platform.python_version()},
                               "rows": rows, "onnxruntime_rows": ort_rows})
    return 0


def onnxruntime_and_contention_rows(args, repeat):
    """Issue 12's rows, printed as they come: the forward pass against ONNX Runtime, and under two
    busy processes (not in --quick)."""
    from benchmarks import onnxruntime_rows
    from benchmarks.fma_peak import fma_peak_gflops
    print(f"\nFMA peak (benchmarks/fma_peak.py): {fma_peak_gflops(args.threads):.1f} GFLOP/s on {args.threads} threads")
    rows = onnxruntime_rows.forward_rows(args.threads, repeat)
    if not args.quick:
        rows += onnxruntime_rows.contention_rows(args.threads, repeat)
    return rows


def run_gpu(args, cases):
    """The GPU report: every case timed as on the CPU, GFLOP/s against the card's peak."""
    import numba
    import torch
    name, peak = gpu_peak_gflops()
    sgemm = torch_cuda_sgemm_gflops()
    print(f"GPU: {name}, float32 peak {peak:.0f} GFLOP/s, PyTorch sgemm (TF32 off) {sgemm:.0f} GFLOP/s; "
          f"numba {numba.__version__}, torch {torch.__version__} (CUDA {torch.version.cuda})\n")
    rows = []
    for case in cases:
        row = time_case(case, args.repeat or (5 if args.quick else 10), min_time=1.0 if args.quick else 2.0)
        rows.append(row)
        print(fmt_table([row], peak).splitlines()[1] + f"  tf32 {row['torch_tf32_s'] * 1e3:8.2f}ms", flush=True)
    print("\n(the %sgemm column: % of the card's float32 peak)\n" + fmt_table(rows, peak))
    if args.json:
        from zfnet.atomic import write_json
        write_json(args.json, {"device": "cuda", "gpu": name, "peak_gflops": peak, "torch_sgemm_gflops": sgemm,
                               "quick": args.quick, "versions": {"numba": numba.__version__, "torch": torch.__version__,
                                                                 "cuda": torch.version.cuda}, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
