"""The NCHW16c micro-kernels against today's conv2d (im2col + BLAS) at ZFNet's and SqueezeNet's real layer shapes.

    python benchmarks/nchwc_layers.py [--batch 1] [--repeat 10] [--threads 2] [--only NAME] [--no-blas-limit]

Per layer (benchmarks/conv_layers.py's list): the time of kernels.conv2d on NCHW, of
conv2d_nchwc on the blocked layout (input already blocked, filters prepared once, as in a
forward pass that keeps the layout; a first layer's image read in place by conv2d_nchwc_from_nchw,
as the forward pass does; both write into preallocated outputs, `out=`, the blocked one aligned as
the pass's), which micro-kernel ran, its GFLOP/s and that as a fraction
of the machine's FMA peak on the same threads (benchmarks/fma_peak.py, measured before and after,
best kept), and, for SqueezeNet's layers, ONNX Runtime's time for the same layer inside its
whole-model run (its own profiler, minimum of 20 runs; ReLU fused as here). Minimum over `repeat` interleaved runs. BLAS runs single-threaded inside zfnet's thread
pool unless --no-blas-limit (kernels/thread_pool.py).
"""
import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", default="", help="substring filter on layer names")
    ap.add_argument("--no-blas-limit", action="store_true", help="leave BLAS's own threads on for conv2d")
    args = ap.parse_args(argv)

    import numba
    from benchmarks.conv_layers import LAYERS
    from benchmarks.fma_peak import fma_peak_gflops
    from benchmarks.onnxruntime_rows import onnxruntime_layer_times
    from zfnet.kernels import conv2d, nchwc, thread_pool
    from zfnet.kernels._scratch import aligned_empty
    from zfnet.kernels.conv2d_nchwc import (WIDE, choose_path, conv2d_nchwc, conv2d_nchwc_from_nchw,
                                            conv2d_nchwc_output_size)

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    limit = contextlib.nullcontext if args.no_blas_limit else thread_pool.blas_single_threaded
    peak = fma_peak_gflops(args.threads)
    ort = onnxruntime_layer_times("squeezenet1_0", args.batch, args.threads)
    rng = np.random.default_rng(0)
    rows, N = [], args.batch
    for name, C, H, W, F, K, s, p, G in LAYERS:
        if args.only not in name:
            continue
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = rng.standard_normal((F, C, K, K), dtype=np.float32) * 0.05
        b = rng.standard_normal(F, dtype=np.float32)
        x_b, w_b, b_b = nchwc.to_nchwc(x), nchwc.filters_to_nchwc(w), nchwc.bias_to_nchwc(b, F)
        Ho, Wo = conv2d_nchwc_output_size((H, W), (K, K), (s, s), (p, p))
        y, y_b = np.empty((N, F, Ho, Wo), np.float32), aligned_empty((N, -(-F // 16), Ho, Wo, 16))
        today = lambda: conv2d(x, w, b, s, p, out=y)
        if C < nchwc.BLOCK:     # an image: the forward pass reads it in place (conv2d_nchwc_from_nchw)
            path = "direct_nchw_6x32" if WIDE else "direct_nchw_6x16"
            blocked = lambda: conv2d_nchwc_from_nchw(x, w_b, b_b, s, p, out=y_b)
        else:
            path = choose_path((K, K), (s, s), (p, p), (Ho, Wo))
            blocked = lambda: conv2d_nchwc(x_b, w_b, b_b, s, p, channels=C, out=y_b)
        with limit():
            today(), blocked()   # compile / warm up
            t_today, t_blocked = 1e9, 1e9
            for _ in range(args.repeat):   # interleaved, so both see the same machine load
                t_today = min(t_today, best_of(today, 2))
                t_blocked = min(t_blocked, best_of(blocked, 2))
        flops = 2 * N * F * Ho * Wo * C * K * K
        t_ort = ort.get(name[3:]) if name.startswith("sq.") else None
        rows.append((name, t_today, t_blocked, path, flops, t_ort))
    peak = max(peak, fma_peak_gflops(args.threads))
    print(f"FMA peak {peak:.1f} GFLOP/s on {args.threads} threads; batch {N}; load average "
          f"{os.getloadavg()[0]:.2f}; BLAS {'free' if args.no_blas_limit else 'single-threaded'}")
    print(f"{'layer':22s} {'conv2d ms':>10s} {'nchwc ms':>9s} {'ratio':>6s} {'path':20s} {'GFLOP/s':>8s} "
          f"{'%peak':>6s} {'ORT ms':>7s} {'nchwc/ORT':>9s}")
    for name, t_today, t_blocked, path, flops, t_ort in rows:
        g = flops / t_blocked / 1e9
        vs_ort = f"{t_ort * 1e3:7.3f} {t_blocked / t_ort:9.2f}" if t_ort else ""
        print(f"{name:22s} {t_today * 1e3:10.3f} {t_blocked * 1e3:9.3f} {t_blocked / t_today:6.2f} {path:20s} "
              f"{g:8.1f} {g / peak:6.0%} {vs_ort}")
    return rows


if __name__ == "__main__":
    main()
