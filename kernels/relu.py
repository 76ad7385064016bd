"""relu: the rectified linear unit, applied elementwise.

Shapes: x (any shape, e.g. (N, C, H, W) or (N, I)) -> y of the same shape.

    y = max(x, 0)

A new array is returned; x is never modified. NaN propagates (max(NaN, 0) = NaN), as in
``torch.relu``. The deconvnet's "rectify" step is this same function applied to the
reconstructed signal on the way down (Zeiler & Fergus, Section 2.1).
"""
import numpy as np
from numba import njit, prange

from ._backend import resolve
from ._checks import ZFNetError, check_array


def relu_reference(x):
    """NumPy twin: y = max(x, 0), elementwise (np.maximum propagates NaN)."""
    return np.maximum(x, np.float32(0))


@njit(nogil=True, cache=True, parallel=True)
def relu_cpu(x):
    """Numba kernel over the flat array; each element is written by one iteration."""
    flat = x.reshape(x.size)
    y = np.empty_like(flat)
    for i in prange(flat.size):
        v = flat[i]
        y[i] = v if (v > 0 or v != v) else np.float32(0)   # NaN passes through
    return y.reshape(x.shape)


def relu(x, backend=None):
    """y = max(x, 0). x: float32 array of any shape (C-contiguous) -> y: new array, same shape."""
    if not isinstance(x, np.ndarray) or x.ndim < 1:
        raise ZFNetError(f"relu: x must be a numpy array with at least 1 dimension, got {x!r:.80}")
    check_array(x, "x", x.ndim)
    if resolve(backend) == "reference":
        return relu_reference(x)
    return relu_cpu(x)
