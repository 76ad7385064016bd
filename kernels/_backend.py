"""Which implementation the kernel interface dispatches to.

- ``reference``: the plain NumPy twins, written to read like the equations (slow).
- ``cpu``: the Numba CPU kernels (the default).
- ``cuda``: the numba.cuda kernels of ``kernels/cuda/`` (one file per op, beside the CPU file).
  They need an NVIDIA GPU, its driver (libcuda) and Numba's CUDA target (``pip install
  'zfnet[cuda]'``); selecting ``cuda`` where one of these is missing is a ZFNetError naming it.
  Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` before numba.cuda is imported) runs the same
  kernels on the CPU, one Python thread per GPU thread: for the tests, far too slow for real work.

The public functions of ``zfnet.kernels`` route ``cuda`` calls to ``kernels/cuda/`` (see
``kernels/__init__.py``); the CPU op modules themselves know ``reference`` and ``cpu`` only.
"""
import contextlib
import functools
import importlib
import os

from ._checks import ZFNetError

BACKENDS = ("reference", "cpu", "cuda")
_current = os.environ.get("ZFNET_BACKEND", "cpu")


def get_backend():
    return _current


@functools.lru_cache(maxsize=1)
def cuda_problem():
    """None where numba.cuda can run kernels in this process, else what is missing, in words."""
    try:
        cuda = importlib.import_module("numba.cuda")
    except ImportError as e:
        return f"Numba's CUDA target is not installed ({e}); install it with pip install 'zfnet[cuda]'"
    if cuda.is_available():
        return None
    try:
        cuda.current_context()          # raises with the driver's own reason
        reason = "numba.cuda reports no usable GPU"
    except Exception as e:              # noqa: BLE001 (CudaSupportError and friends: any reason will do)
        reason = " ".join(str(e).split())
    if "driver" in reason.lower() and ("not be found" in reason or "cannot be found" in reason):
        return f"no CUDA driver found (libcuda.so: install NVIDIA's driver; numba says: {reason})"
    return f"no usable CUDA GPU found (numba says: {reason})"


def choose(backend):
    """The backend to use for one call: the explicit argument, else the process-wide choice.

    'cuda' is checked here: a ZFNetError naming what is missing when it cannot run.
    """
    name = _current if backend is None else backend
    if name not in BACKENDS:
        raise ZFNetError(f"unknown kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "cuda":
        problem = cuda_problem()
        if problem:
            raise ZFNetError(
                f"the 'cuda' kernel backend cannot run here: {problem}. "
                f"Use backend='cpu' (Numba), ZFNET_BACKEND=cpu or the command line's --device cpu"
            )
    return name


def resolve(backend):
    """choose(), for the CPU op modules: 'reference' or 'cpu' (a 'cuda' call must come through
    zfnet.kernels.<op>, which routes it to kernels/cuda/)."""
    name = choose(backend)
    if name == "cuda":
        raise ZFNetError(
            "this function of a kernels/<op>.py module runs on 'reference' or 'cpu' only; "
            "call zfnet.kernels.<op> (e.g. zfnet.kernels.conv2d) for backend='cuda'"
        )
    return name


def set_backend(name):
    """Set the process-wide backend (``reference``, ``cpu`` or ``cuda``)."""
    global _current
    choose(name)
    _current = name


@contextlib.contextmanager
def use_backend(name):
    """``with kernels.use_backend('reference'): ...`` runs the block on another backend."""
    global _current
    choose(name)
    old, _current = _current, name
    try:
        yield
    finally:
        _current = old
