"""softmax: class probabilities from the last layer's scores (fc8 -> softmax in ZFNet).

    p[..., k, ...] = exp(x[..., k, ...] - m) / sum_k' exp(x[..., k', ...] - m),   m = max_k x[..., k, ...]

along one `axis`. Subtracting the maximum m changes nothing mathematically but keeps exp() from
overflowing: the largest term becomes exp(0) = 1, so the sum lies in [1, K].

Shapes:  x (any shape, e.g. (N, K) scores or (N, K, H, W) maps)  ->  p, same shape.

The CPU path moves `axis` last (a copy only if it is not already last) and runs one Numba
iteration per vector, in parallel; exp in float32, sums kept in float64.
"""
import numpy as np
from numba import njit, prange

from ._backend import resolve
from ._checks import ZFNetError, check_array


# ----------------------------------------------------------------------------------------------
# NumPy reference: one vector along `axis` at a time.
# ----------------------------------------------------------------------------------------------

def softmax_reference(x, axis=-1):
    """Plain NumPy twin of `softmax`. x (..., K, ...) -> p, same shape, each vector along `axis` summing to 1."""
    x_last = np.moveaxis(x, axis, -1).astype(np.float64)                          # (..., K)
    p = np.empty_like(x_last)
    for index in np.ndindex(x_last.shape[:-1]):
        v = x_last[index]
        e = np.exp(v - v.max())                     # stable: the largest term is exp(0) = 1
        p[index] = e / e.sum()
    return np.ascontiguousarray(np.moveaxis(p, -1, axis), dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# Numba CPU kernel.
# ----------------------------------------------------------------------------------------------

@njit(nogil=True, parallel=True, cache=True)
def _softmax_rows(x, p):
    """p[r, :] = softmax(x[r, :]); x, p (R, K). Parallel over rows r."""
    R, K = x.shape
    for r in prange(R):
        m = x[r, 0]
        for k in range(1, K):
            if x[r, k] > m:
                m = x[r, k]
        s = 0.0
        for k in range(K):
            e = np.exp(x[r, k] - m)                 # float32; x - m <= 0, so e lies in (0, 1]
            p[r, k] = e
            s += e
        inv = 1.0 / s
        for k in range(K):
            p[r, k] = p[r, k] * inv


def _softmax_cpu(x, axis):
    x_last = np.ascontiguousarray(np.moveaxis(x, axis, -1))                       # (..., K)
    K = x_last.shape[-1]
    p = np.empty_like(x_last)
    _softmax_rows(x_last.reshape(-1, K), p.reshape(-1, K))                        # (R, K)
    return np.ascontiguousarray(np.moveaxis(p, -1, axis))


def softmax(x, axis=-1, backend=None):
    """Numerically stable softmax along `axis`. x (any shape) -> p, same shape, float32.

    x is not modified. `backend`: 'reference' or 'cpu'.
    """
    check_array(x, "x", tuple(range(1, 33)))
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -x.ndim <= axis < x.ndim:
        raise ZFNetError(f"axis must be an int in [{-x.ndim}, {x.ndim - 1}] for x of shape {x.shape}, got {axis!r}")
    if x.size == 0:
        raise ZFNetError(f"x must be non-empty, got shape {x.shape}")
    if resolve(backend) == "reference":
        return softmax_reference(x, int(axis))
    return _softmax_cpu(x, int(axis))
