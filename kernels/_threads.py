"""Which thread pool runs the parallel Numba kernels, and why it matters next to BLAS.

A convolution alternates two thread pools: Numba's (im2col, col2im, bias) and OpenBLAS's (the GEMM).
Numba's default pool on Linux is OpenMP (libgomp), whose idle workers busy-wait for a while after
every parallel loop. On a machine with few cores they then steal the cores the very next GEMM
needs (timings: benchmarks/RESULTS.md, "Why the thresholds"). Numba's `workqueue` pool puts its
workers to sleep at once, costs no speed here, and (unlike OMP_WAIT_POLICY=passive, which libgomp
reads only when it is loaded and which would also slow down PyTorch in the same process) can be
chosen at run time.

So, unless the user has chosen a threading layer (NUMBA_THREADING_LAYER, or
numba.config.THREADING_LAYER before importing zfnet), zfnet picks `workqueue`. This must happen
before the first parallel kernel runs; if one already ran, Numba's pool is fixed and we leave it.
workqueue does not support nested parallel kernels or parallel kernels launched from several
threads at once; zfnet's kernels never nest, and `one_at_a_time` (below) serialises the public ops.
"""
import contextlib
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


# A walk of many small ops (the deconvnet's receptive-field-cropped projection of one unit: a
# dozen GEMMs of a few hundred columns and small parallel loops) spends more time waking worker
# threads than working, and on a busy machine each wake-up can wait for a time slice (timings:
# benchmarks/RESULTS.md). `serial()` runs the kernels called from this thread on one core: Numba's
# parallel loops (a per-thread setting) and OpenBLAS (its thread-local setting, OpenBLAS >= 0.3.27,
# looked up in the library numpy loaded; where there is none, BLAS is left as it is). Both are
# restored on exit.

def _openblas_set_threads_local():
    """OpenBLAS's ``openblas_set_num_threads_local`` from the loaded library, or None."""
    import ctypes
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
        return fn
    return None


_blas_local = []


@contextlib.contextmanager
def serial():
    """``with serial(): ...``: kernels called from this thread run on one core (Numba and BLAS)."""
    import numpy  # noqa: F401  (numpy's BLAS must be loaded before it is looked up)
    if not _blas_local:
        _blas_local.append(_openblas_set_threads_local())
    blas = _blas_local[0]
    numba_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    blas_threads = blas(1) if blas else None
    try:
        yield
    finally:
        numba.set_num_threads(numba_threads)
        if blas:
            blas(blas_threads)
