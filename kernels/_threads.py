"""Which thread pool runs the parallel Numba kernels, and why it matters next to BLAS.

A convolution alternates two thread pools: Numba's (im2col, col2im, bias) and OpenBLAS's (the GEMM).
Numba's default pool on Linux is OpenMP (libgomp), whose idle workers busy-wait for a while after
every parallel loop. On a machine with few cores they then steal the cores the very next GEMM
needs (timings: benchmarks/RESULTS.md, "Why the thresholds"), and GNU OpenMP kills a forked child
that runs a parallel loop. So zfnet chooses the pool, unless the user has (NUMBA_THREADING_LAYER,
or numba.config.THREADING_LAYER before importing zfnet):

1. `tbb` (Intel oneTBB, the `tbb` wheel, a dependency on x86-64): a parallel launch costs a
   small fraction of workqueue's, its idle workers sleep after a short spin, it is fork-safe and
   thread-safe. Numba looks for
   libtbb.so.12 on the system's library path only, where a pip install into a virtual environment
   does not put it (it lands in <prefix>/lib), so zfnet loads it first from there (`load_tbb`).
2. `workqueue` where TBB cannot be loaded: its workers sleep at once, but waking them makes every
   parallel launch cost far more, and a SqueezeNet batch-1 pass makes about 45 (RESULTS.md, "TBB").

This must happen before the first parallel kernel runs; if one already ran, Numba's pool is fixed
and we leave it. workqueue does not support nested parallel kernels or parallel kernels launched
from several threads at once; zfnet's kernels never nest, and under workqueue `one_at_a_time`
(below) serialises the public ops. TBB and OpenMP run kernels from several threads at once
(`concurrent_kernels`), which the forward pass's batch split uses (zfnet/net/blocked.py).
"""
import contextlib
import ctypes
import functools
import os
import site
import sys
import threading

import numba

DEFAULT_LAYER = "tbb"
FALLBACK_LAYER = "workqueue"
TBB_LIBRARY = "libtbb.so.12"       # the name Numba's TBB pool links against (oneTBB 2021+)
TBB_MIN_INTERFACE = 12060          # Numba's own minimum (oneTBB 2021.6)


def tbb_candidates():
    """Where a libtbb.so.12 may be: the system's library path, then the lib/ folders pip installs
    the tbb wheel's library into (this environment's, the user site's, the base interpreter's)."""
    folders = [sys.prefix, site.getuserbase(), sys.base_prefix]
    return [TBB_LIBRARY] + [os.path.join(f, "lib", TBB_LIBRARY) for f in dict.fromkeys(folders)]


def load_tbb(candidates=None):
    """Load the first libtbb.so.12 of `candidates` (default tbb_candidates()) into the process's
    global symbol scope, so that Numba's TBB pool finds it; True if the library Numba will then get
    (the one loaded under that name) is new enough. An older one counts as missing: Numba would
    refuse it, and a layer it cannot load fails at the first parallel kernel."""
    if not sys.platform.startswith("linux"):
        return False
    for path in tbb_candidates() if candidates is None else candidates:
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        return _tbb_version(TBB_LIBRARY) >= TBB_MIN_INTERFACE
    return False


def _tbb_version(name):
    """TBB_runtime_interface_version() of the library `name` resolves to, or 0."""
    try:
        version = ctypes.CDLL(name).TBB_runtime_interface_version
    except (OSError, AttributeError):
        return 0
    version.restype, version.argtypes = ctypes.c_int, []
    return version()


def _tbb_pool_usable():
    """True if Numba's TBB pool module imports (libtbb found, Numba built with TBB support)."""
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401
    except ImportError:
        return False
    return True


def choose_threading_layer():
    """Select tbb (or, without it, workqueue) unless the user picked a layer; returns the choice."""
    chosen = os.environ.get("NUMBA_THREADING_LAYER") or numba.config.THREADING_LAYER
    if chosen != "default":
        if chosen in ("tbb", "safe", "threadsafe", "forksafe"):
            load_tbb()              # so that the user's choice finds the library pip installed
        return numba.config.THREADING_LAYER
    layer = DEFAULT_LAYER if load_tbb() and _tbb_pool_usable() else FALLBACK_LAYER
    numba.config.THREADING_LAYER = layer
    return layer


choose_threading_layer()


# workqueue's one limit (where TBB is missing) matters anyway: every kernel releases the GIL
# (nogil=True), as does BLAS during a GEMM, so two Python threads calling kernels at the same time
# launch parallel loops concurrently, and workqueue then aborts the whole process. Under workqueue
# every public op therefore runs one at a time across threads (each op already uses every core).
# TBB and OpenMP run parallel loops from several threads at once (Numba's "threadsafe" layers):
# there the ops run concurrently, which the forward pass's batch split (zfnet/net/blocked.py) needs.
_one_op = threading.RLock()
THREADSAFE_LAYERS = ("tbb", "omp")


def concurrent_kernels():
    """True when kernels may run from several threads at once: Numba's threading layer is TBB or
    OpenMP (the one in use once a parallel kernel has run; before that, the one configured)."""
    try:
        return numba.threading_layer() in THREADSAFE_LAYERS
    except ValueError:          # no parallel kernel has run yet
        return numba.config.THREADING_LAYER in THREADSAFE_LAYERS + ("safe", "threadsafe")


def one_at_a_time(op):
    """`op` wrapped to hold the kernels' process-wide lock while it runs (re-entrant), unless the
    threading layer runs kernels concurrently (`concurrent_kernels`)."""
    @functools.wraps(op)
    def locked(*args, **kwargs):
        if concurrent_kernels():
            return op(*args, **kwargs)
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
