"""The machine's peak float32 FLOP/s, measured with an FMA loop (not sgemm, which is itself a kernel).

    python benchmarks/fma_peak.py [--threads N]

Each thread updates 12 registers' worth of independent accumulators (enough chains in flight to
cover the FMA latency on two FMA units) with acc = acc * m + c, n times: 2 FLOPs per element per
step, no memory traffic. The loop is compiled as zfnet's kernels are (zfnet.kernels is imported
first, see kernels/_codegen.py): 12 registers of 16 floats where zfnet compiles for 512-bit vectors
(AVX-512 hosts), of 8 floats (AVX2) elsewhere, so the peak is the one its kernels can reach. The
rate is the best of several runs, per thread and for all threads together; on a shared machine
the all-threads figure falls with other load.
"""
import argparse
import sys
import time
from pathlib import Path

# the repository root on the path: Numba's on-disk cache of these kernels, written when
# report.py imports this file as benchmarks.fma_peak, names that module when it is loaded again
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zfnet.kernels._codegen import wide_vectors  # noqa: E402  (zfnet first: before any Numba code compiles)

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

VECTOR_FLOATS = 16 if wide_vectors() else 8
LANES = 12 * VECTOR_FLOATS      # accumulators per thread: 12 vector registers


@njit(fastmath=True, cache=True)
def _fma_chains(steps, seed):
    """acc[k] <- acc[k] * m + c, `steps` times for LANES k; returns sum(acc) so nothing is dropped.

    c depends on `seed` so that calls from different threads are different work (LLVM would
    otherwise compute one loop-invariant call once for all threads)."""
    acc = np.zeros(LANES, np.float32)
    m, c = np.float32(0.999999), np.float32(1e-7 * (seed + 1))
    for _ in range(steps):
        for k in range(LANES):
            acc[k] = acc[k] * m + c
    return acc.sum()


@njit(parallel=True, cache=True)
def _fma_chains_parallel(steps, threads):
    out = np.empty(threads, np.float32)
    for t in prange(threads):
        out[t] = _fma_chains(steps, t)
    return out.sum()


def fma_peak_gflops(threads=1, steps=2_000_000, repeat=5):
    """Best-of-`repeat` float32 GFLOP/s of `threads` threads each running the FMA loop."""
    _fma_chains_parallel(10, threads)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        _fma_chains_parallel(steps, threads)
        best = min(best, time.perf_counter() - t)
    return 2.0 * LANES * steps * threads / best / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    args = ap.parse_args(argv)
    one = fma_peak_gflops(1)
    every = fma_peak_gflops(args.threads)
    print(f"FMA peak ({VECTOR_FLOATS * 32}-bit vectors): {one:.1f} GFLOP/s on 1 thread, "
          f"{every:.1f} GFLOP/s on {args.threads} threads")


if __name__ == "__main__":
    main()
