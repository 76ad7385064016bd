"""Which thread pool runs the parallel Numba kernels, and why it matters next to BLAS.

A convolution alternates two thread pools: Numba's (im2col, col2im, bias) and OpenBLAS's (the GEMM).
Numba's default pool on Linux is OpenMP (libgomp), whose idle workers busy-wait for a while after
every parallel loop. On a machine with few cores they then steal the cores the very next GEMM
needs: on 2 cores we measured conv2d 2-4x slower (ZFNet conv1: 6.8 ms instead of 2.1 ms) than
with either pool alone. Numba's `workqueue` pool puts its workers to sleep at once, costs no
speed here, and (unlike OMP_WAIT_POLICY=passive, which libgomp reads only when it is loaded and
which would also slow down PyTorch in the same process) can be chosen at run time.

So, unless the user has chosen a threading layer (NUMBA_THREADING_LAYER, or
numba.config.THREADING_LAYER before importing zfnet), zfnet picks `workqueue`. This must happen
before the first parallel kernel runs; if one already ran, Numba's pool is fixed and we leave it.
workqueue does not support nested parallel kernels or parallel kernels launched from several
threads at once; zfnet's kernels never nest, and `one_at_a_time` (below) serialises the public ops.
"""
import functools
import os
import threading

import numba

DEFAULT_LAYER = "workqueue"


def choose_threading_layer():
    """Select Numba's `workqueue` threading layer unless the user picked one; returns the choice."""
    if os.environ.get("NUMBA_THREADING_LAYER") or numba.config.THREADING_LAYER != "default":
        return numba.config.THREADING_LAYER
    numba.config.THREADING_LAYER = DEFAULT_LAYER
    return DEFAULT_LAYER


choose_threading_layer()


# workqueue's one limit matters anyway: Numba releases the GIL while a parallel loop runs (and BLAS
# does during a GEMM), so two Python threads calling kernels at the same time WOULD launch parallel
# loops concurrently, and workqueue then aborts the whole process. Every public op is therefore
# run one at a time across threads. Each op already uses every core, so nothing is lost.
_one_op = threading.RLock()


def one_at_a_time(op):
    """`op` wrapped to hold the kernels' process-wide lock while it runs (re-entrant)."""
    @functools.wraps(op)
    def locked(*args, **kwargs):
        with _one_op:
            return op(*args, **kwargs)
    return locked
