"""Argument checks shared by every kernel, and the project's one exception type.

The kernels know nothing about networks, files or images; they only check what they are given
and say what is wrong in words a user can act on.
"""
import numpy as np


class ZFNetError(ValueError):
    """Any error a user can cause: bad arguments, a corrupt file, an unknown layer, ...

    The message names the thing at fault (argument, file, layer) and, where there is one, the fix.
    Re-exported as ``zfnet.ZFNetError``.
    """


def pair(value, name):
    """An int or a pair of ints -> (a, b); anything else is a ZFNetError naming `name`."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        return int(value[0]), int(value[1])
    raise ZFNetError(f"{name} must be an int or a pair of ints, got {value!r}")


def positive_pair(value, name):
    a, b = pair(value, name)
    if a < 1 or b < 1:
        raise ZFNetError(f"{name} must be >= 1, got {value!r}")
    return a, b


def non_negative_pair(value, name):
    a, b = pair(value, name)
    if a < 0 or b < 0:
        raise ZFNetError(f"{name} must be >= 0, got {value!r}")
    return a, b


def check_array(a, name, ndim, dtype=np.float32):
    """`a` must be a C-contiguous numpy array of `ndim` dimensions and `dtype`.

    We never copy or cast silently: a float64 or strided input is a mistake the caller should see
    (convert with ``np.ascontiguousarray(a, dtype=np.float32)``).
    """
    if not isinstance(a, np.ndarray):
        raise ZFNetError(f"{name} must be a numpy array, got {type(a).__name__}")
    if isinstance(ndim, int):
        ndim = (ndim,)
    if a.ndim not in ndim:
        want = " or ".join(str(d) for d in ndim)
        raise ZFNetError(f"{name} must have {want} dimensions, got shape {a.shape}")
    if a.dtype != dtype:
        raise ZFNetError(
            f"{name} must be {np.dtype(dtype).name}, got {a.dtype}; "
            f"convert with np.ascontiguousarray({name}, dtype=np.{np.dtype(dtype).name})"
        )
    if not a.flags.c_contiguous:
        raise ZFNetError(
            f"{name} must be C-contiguous (got a strided view of shape {a.shape}); "
            f"pass np.ascontiguousarray({name})"
        )
    return a
