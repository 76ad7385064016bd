"""Which implementation the kernel interface dispatches to.

- ``reference``: the plain NumPy twins, written to read like the equations (slow).
- ``cpu``: the Numba CPU kernels (the default).
- ``cuda``: reserved for numba.cuda kernels; selecting it without a GPU is a ZFNetError.
"""
import contextlib
import os

from ._checks import ZFNetError

BACKENDS = ("reference", "cpu", "cuda")
_current = os.environ.get("ZFNET_BACKEND", "cpu")


def get_backend():
    return _current


def resolve(backend):
    """The backend to use for one call: the explicit argument, else the process-wide choice."""
    name = _current if backend is None else backend
    if name not in BACKENDS:
        raise ZFNetError(f"unknown kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "cuda":
        raise ZFNetError(
            "the 'cuda' kernel backend is not implemented yet; use backend='cpu' (Numba) "
            "or backend='reference' (NumPy)"
        )
    return name


def set_backend(name):
    """Set the process-wide backend (``reference`` or ``cpu``)."""
    global _current
    resolve(name)
    _current = name


@contextlib.contextmanager
def use_backend(name):
    """``with kernels.use_backend('reference'): ...`` runs the block on another backend."""
    global _current
    resolve(name)
    old, _current = _current, name
    try:
        yield
    finally:
        _current = old
