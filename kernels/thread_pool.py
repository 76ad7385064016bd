"""One thread pool that zfnet controls: Numba's, with BLAS kept single-threaded inside it.

Why: a convolution through im2col + BLAS alternates two pools, Numba's and OpenBLAS's. OpenBLAS's
workers spin between calls; on a machine that is also running other work they steal the cores
the next call needs, and the forward pass collapses (issue 12: 5.3x its quiet time beside two
busy processes on two cores; with BLAS on one thread, 1.0x). So zfnet parallelises only through
Numba's pool (tbb, or workqueue where TBB is missing: idle workers sleep; see _threads.py) and calls
BLAS on one thread.

- Numba's pool has NUMBA_NUM_THREADS workers (read once, at its start; default: the core count).
  `set_threads(n)` (the CLI's --threads) uses n of them, n <= NUMBA_NUM_THREADS.
- `blas_single_threaded()` limits every BLAS library loaded in the process (OpenBLAS, MKL, BLIS)
  to one thread while the block runs, through threadpoolctl (the scikit-learn project's library
  for exactly this: it finds the loaded libraries and calls each one's own set-threads function).
  `limit_blas_process_wide()` does the same for the rest of the process.
- `configure(threads)` does both for the whole process (the CLI's --threads, else ZFNET_THREADS).
  Called before the first parallel kernel it also sizes Numba's pool itself, so that every Python
  thread (a Dask worker's task threads too: numba.set_num_threads is per thread) uses `threads`.
- For Dask (or any pool of worker processes): one worker per core, each calling `configure(1)` at
  its start (e.g. ``client.run(zfnet.kernels.thread_pool.configure, 1)``), so that no worker starts
  threads of its own.
"""
import contextlib
import functools
import os

import numba
import numba.np.ufunc.parallel as _numba_parallel

from ._checks import ZFNetError


@functools.lru_cache(maxsize=None)
def _controller():
    """threadpoolctl's view of the BLAS/OpenMP libraries loaded now (numpy's BLAS included)."""
    import numpy  # noqa: F401  (numpy's BLAS must be loaded before the libraries are listed)
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def set_threads(n):
    """Run zfnet's parallel kernels on `n` threads of Numba's pool (1 <= n <= NUMBA_NUM_THREADS)."""
    most = numba.config.NUMBA_NUM_THREADS
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= most:
        raise ZFNetError(f"threads must be an integer from 1 to {most} (NUMBA_NUM_THREADS), got {n!r}; "
                         f"for more, set the environment variable NUMBA_NUM_THREADS before starting")
    numba.set_num_threads(n)


def threads():
    """How many threads zfnet's parallel kernels use now (in this Python thread)."""
    return numba.get_num_threads()


@contextlib.contextmanager
def blas_limited(n):
    """``with blas_limited(n): ...``: every loaded BLAS runs on `n` threads; restored on exit."""
    with _controller().limit(limits=n, user_api="blas"):
        yield


def blas_single_threaded():
    """``with blas_single_threaded(): ...``: every loaded BLAS runs on one thread; restored on exit."""
    return blas_limited(1)


def limit_blas_process_wide():
    """Every loaded BLAS on one thread from now on; returns threadpoolctl's limiter, whose
    ``restore_original_limits()`` undoes it."""
    return _controller().limit(limits=1, user_api="blas")


def blas_threads():
    """{library file: its thread count} for each BLAS loaded in the process."""
    return {info["filepath"]: info["num_threads"] for info in _controller().info() if info["user_api"] == "blas"}


def threads_from_environment():
    """ZFNET_THREADS as an int, or None when it is not set."""
    text = os.environ.get("ZFNET_THREADS", "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ZFNetError(f"ZFNET_THREADS must be a whole number of threads, got {text!r}") from None


def configure(threads=None):
    """zfnet's thread settings for this process: Numba on `threads` (default: ZFNET_THREADS, else
    all of its pool) and BLAS on one thread. Call once at start; returns the BLAS limiter.

    Before Numba's pool has started, the pool itself is made `threads` wide, so the setting holds
    in every Python thread of the process (set_threads alone holds in the calling thread only).
    """
    threads = threads_from_environment() if threads is None else threads
    if threads is None:
        threads = numba.config.NUMBA_NUM_THREADS
    if not _numba_parallel._is_initialized and isinstance(threads, int) and 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        # the pool's size, read when it starts (set_threads starts it): Numba's own two copies of it
        numba.config.NUMBA_NUM_THREADS = _numba_parallel.NUM_THREADS = threads
    set_threads(threads)
    return limit_blas_process_wide()
