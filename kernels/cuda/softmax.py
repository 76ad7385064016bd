"""softmax on the GPU along any axis (equation and twin in kernels/softmax.py).

x is viewed as (outer, K, inner) around the axis (no copy, no transpose). One thread: one vector
(o, :, i) of K values, 128 threads a block over the outer*inner vectors. It finds the maximum,
writes e = exp(x - max) (float32, as the CPU) while summing in float64, then scales by 1/sum.
Neighbouring threads take neighbouring i, so for inner > 1 their reads coalesce. No shared memory.
"""
import math

from numba import cuda
import numpy as np

from .._checks import ZFNetError
from ._device import THREADS_1D, blocks, on_device, to_caller


@cuda.jit
def _softmax(x, p, K, inner):
    """x, p flat (outer*K*inner,); vector r = (o, i) holds x[(o*K + k)*inner + i], k < K."""
    r = cuda.grid(1)
    if r >= x.size // K:
        return
    base = (r // inner) * K * inner + r % inner
    m = x[base]
    for k in range(1, K):
        if x[base + k * inner] > m:                    # the CPU's test (a NaN first stays)
            m = x[base + k * inner]
    s = 0.0
    for k in range(K):
        e = math.exp(x[base + k * inner] - m)          # x - m <= 0, so e lies in (0, 1]
        p[base + k * inner] = e
        s += e
    inv = 1.0 / s
    for k in range(K):
        p[base + k * inner] = p[base + k * inner] * inv


def softmax(x, axis=-1):
    """Numerically stable softmax along `axis` on the GPU. x (any shape) -> p, same shape.

    Same arguments, checks and result as kernels.softmax; host or device arrays.
    """
    x, host = on_device(x, "x", tuple(range(1, 33)))
    ndim = len(x.shape)
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -ndim <= axis < ndim:
        raise ZFNetError(
            f"axis must be an int in [{-ndim}, {ndim - 1}] for x of shape {tuple(x.shape)}, got {axis!r}")
    if x.size == 0:
        raise ZFNetError(f"x must be non-empty, got shape {tuple(x.shape)}")
    axis = int(axis) % ndim
    K, inner = x.shape[axis], int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    p = cuda.device_array(x.shape, np.float32)
    _softmax[blocks(x.size // K), THREADS_1D](x.reshape(x.size), p.reshape(x.size), K, inner)
    return to_caller(p, host)
