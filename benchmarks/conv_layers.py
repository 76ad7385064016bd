"""Speed of zfnet's conv2d / conv_transpose2d against PyTorch at ZFNet's and SqueezeNet's real layer shapes.

    python benchmarks/conv_layers.py [--batch 1] [--repeat 20] [--threads 2] [--transpose]

Prints, per layer: our time and torch's (minimum over `repeat` interleaved runs, ms), the ratio
ours/torch (< 1 is faster), the time of the bare numpy sgemm(s) our CPU path calls for that layer
(the rest of our time is im2col/col2im and the bias), GFLOP/s (2*N*F*H'*W'*C/G*KH*KW / time) and
that as a fraction of the machine's numpy sgemm GFLOP/s measured on a 2048^3 product just before.
"""
import argparse
import os
import time

import numpy as np

LAYERS = [
    # name, C, H, W, F, K, stride, pad, groups
    ("zf.conv1", 3, 224, 224, 96, 7, 2, 1, 1),
    ("zf.conv2", 96, 55, 55, 256, 5, 2, 0, 1),
    ("zf.conv3", 256, 13, 13, 384, 3, 1, 1, 1),
    ("zf.conv4", 384, 13, 13, 384, 3, 1, 1, 1),
    ("zf.conv5", 384, 13, 13, 256, 3, 1, 1, 1),
    ("sq.conv1", 3, 227, 227, 96, 7, 2, 0, 1),
    ("sq.fire2.squeeze1x1", 96, 55, 55, 16, 1, 1, 0, 1),
    ("sq.fire2.expand1x1", 16, 55, 55, 64, 1, 1, 0, 1),
    ("sq.fire2.expand3x3", 16, 55, 55, 64, 3, 1, 1, 1),
    ("sq.fire5.squeeze1x1", 256, 27, 27, 32, 1, 1, 0, 1),
    ("sq.fire5.expand3x3", 32, 27, 27, 128, 3, 1, 1, 1),
    ("sq.fire9.squeeze1x1", 512, 13, 13, 64, 1, 1, 0, 1),
    ("sq.fire9.expand1x1", 64, 13, 13, 256, 1, 1, 0, 1),
    ("sq.fire9.expand3x3", 64, 13, 13, 256, 3, 1, 1, 1),
    ("sq.conv10", 512, 13, 13, 1000, 1, 1, 0, 1),
]


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--transpose", action="store_true", help="time conv_transpose2d (the deconvnet step) instead")
    ap.add_argument("--only", default="", help="substring filter on layer names")
    args = ap.parse_args()

    import torch
    from zfnet.kernels import conv2d, conv_transpose2d
    from zfnet.kernels.conv2d import conv2d_output_size

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    c = np.empty_like(a)
    sgemm_time = lambda: best_of(lambda: np.matmul(a, a, out=c), 20)
    t_sgemm = sgemm_time()
    rows = []
    for name, C, H, W, F, K, s, p, G in LAYERS:
        if args.only not in name:
            continue
        N = args.batch
        Ho, Wo = conv2d_output_size((H, W), K, s, p)
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = (rng.standard_normal((F, C // G, K, K), dtype=np.float32) * 0.05)
        b = rng.standard_normal(F, dtype=np.float32)
        y = rng.standard_normal((N, F, Ho, Wo), dtype=np.float32)
        tx, tw, tb, ty = (torch.from_numpy(t) for t in (x, w, b, y))
        if args.transpose:
            ours = lambda: conv_transpose2d(y, w, s, p, G, output_size=(H, W))
            op = (H - ((Ho - 1) * s - 2 * p + K), W - ((Wo - 1) * s - 2 * p + K))
            theirs = lambda: torch.nn.functional.conv_transpose2d(ty, tw, None, s, p, op, G)
        else:
            ours = lambda: conv2d(x, w, b, s, p, G)
            theirs = lambda: torch.nn.functional.conv2d(tx, tw, tb, s, p, 1, G)
        # the bare GEMM(s) of our CPU path: per group (F/G, C/G*KH*KW) @ (C/G*KH*KW, N*H'*W'),
        # or for the transpose (C/G*KH*KW, F/G) @ (F/G, N*H'*W')
        Kg, Fg, P = C // G * K * K, F // G, N * Ho * Wo
        a_g = rng.standard_normal((G, Kg, Fg) if args.transpose else (G, Fg, Kg), dtype=np.float32)
        b_g = rng.standard_normal((G, Fg if args.transpose else Kg, P), dtype=np.float32)
        c_g = np.empty((G, a_g.shape[1], P), np.float32)
        gemm = lambda: [np.matmul(a_g[g], b_g[g], out=c_g[g]) for g in range(G)]
        ours(), theirs()  # compile / warm up
        t_ours, t_torch, t_gemm = 1e9, 1e9, 1e9
        with torch.no_grad():
            for _ in range(args.repeat):  # interleaved, so all see the same machine load
                t_ours = min(t_ours, best_of(ours, 2))
                t_torch = min(t_torch, best_of(theirs, 2))
                t_gemm = min(t_gemm, best_of(gemm, 2))
        rows.append((name, t_ours, t_torch, t_gemm, 2 * N * F * Ho * Wo * (C // G) * K * K))
    # the machine's sgemm rate: the best of a measurement before and one after (other load varies)
    sgemm = 2 * 2048**3 / min(t_sgemm, sgemm_time()) / 1e9
    print(f"numpy sgemm 2048^3: {sgemm:.1f} GFLOP/s; torch threads {torch.get_num_threads()}, "
          f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}, batch {args.batch}, "
          f"{'conv_transpose2d' if args.transpose else 'conv2d'}")
    print(f"{'layer':22s} {'ours ms':>9s} {'torch ms':>9s} {'ratio':>6s} {'gemm ms':>8s} {'GFLOP/s':>8s} {'%sgemm':>7s}")
    for name, t_ours, t_torch, t_gemm, flops in rows:
        gf = flops / t_ours / 1e9
        print(f"{name:22s} {t_ours * 1e3:9.3f} {t_torch * 1e3:9.3f} {t_ours / t_torch:6.2f} {t_gemm * 1e3:8.3f} "
              f"{gf:8.1f} {gf / sgemm:7.0%}")


if __name__ == "__main__":
    main()
