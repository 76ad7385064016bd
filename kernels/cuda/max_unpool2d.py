"""max_unpool2d on the GPU: each pooled value added back at its switch (equation, twin and why it
SUMS in kernels/max_unpool2d.py).

Where 3x3 stride-2 windows overlap, several pooled values land on one input position, so one
thread per pooled value would race on the adds (and float atomics would sum in a varying order).
The switches do not say which windows could reach a position (unpooling is not given the pool's
geometry), so the race-free split is the CPU's: one thread per (n, c) plane, adding its values
in row-major order over (i, j), which gives the CPU's bits exactly. Kernels, all 128 threads a block:

    _zero:          one thread per element of x (N, C, H, W): x = 0 (coalesced writes)
    _unpool_planes: one thread per plane (n, c): x[n, c].flat[switches[n, c, i, j]] += y[n, c, i, j]
    _switch_range:  one thread per switch, atomic min/max: the range check of device switches

No shared memory.
"""
from numba import cuda
import numpy as np

from .._checks import ZFNetError, positive_pair
from ..max_unpool2d import SWITCH_DTYPES
from ._device import THREADS_1D, blocks, is_device_array, on_device, to_caller


@cuda.jit
def _zero(x_flat):
    q = cuda.grid(1)
    if q < x_flat.size:
        x_flat[q] = 0.0


@cuda.jit
def _unpool_planes(y, switches, x):
    """x (N*C, H*W) += y, switches (N*C, H'*W') placed row by row: one thread per plane p."""
    p = cuda.grid(1)
    if p < y.shape[0]:
        for q in range(y.shape[1]):
            x[p, switches[p, q]] += y[p, q]


@cuda.jit
def _switch_range(switches_flat, low_high):
    q = cuda.grid(1)
    if q < switches_flat.size:
        cuda.atomic.min(low_high, 0, switches_flat[q])
        cuda.atomic.max(low_high, 1, switches_flat[q])


def _bounds(switches):
    """(min, max) of the switches: on the host for a NumPy array, else by _switch_range."""
    if isinstance(switches, np.ndarray):
        return int(switches.min()), int(switches.max())
    flat = switches.reshape(switches.size)
    if flat.dtype != np.int64:
        wide = cuda.device_array(flat.size, np.int64)          # atomic min/max on one type
        _widen[blocks(flat.size), THREADS_1D](flat, wide)
        flat = wide
    low_high = cuda.to_device(np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64))
    _switch_range[blocks(flat.size), THREADS_1D](flat, low_high)
    low, high = low_high.copy_to_host()
    return int(low), int(high)


@cuda.jit
def _widen(src, dst):
    q = cuda.grid(1)
    if q < src.size:
        dst[q] = src[q]


def max_unpool2d(y, switches, output_size):
    """Unpool on the GPU: (N, C, H', W') values summed at their switches -> (N, C, H, W).

    Same arguments, checks and result as kernels.max_unpool2d; host or device arrays.
    """
    y, host = on_device(y, "y", 4)
    if min(y.shape) < 1:
        raise ZFNetError(f"max_unpool2d: y must have N, C, H', W' >= 1, got shape {tuple(y.shape)}")
    dtype = getattr(switches, "dtype", None)
    if not (isinstance(switches, np.ndarray) or is_device_array(switches)) or dtype not in SWITCH_DTYPES:
        got = dtype if dtype is not None else type(switches).__name__
        raise ZFNetError(
            f"max_unpool2d: switches must be an int64 (or int32) numpy array as returned by "
            f"max_pool2d, got {got}"
        )
    switches_given = switches
    switches, _ = on_device(switches, "switches", 4, dtype=switches.dtype)
    if tuple(switches.shape) != tuple(y.shape):
        raise ZFNetError(
            f"max_unpool2d: switches must have y's shape {tuple(y.shape)}, got {tuple(switches.shape)}; "
            f"pass the switches of the pooling that produced y"
        )
    h, w = positive_pair(output_size, "output_size")
    lo, hi = _bounds(switches_given if isinstance(switches_given, np.ndarray) else switches)
    if lo < 0 or hi >= h * w:
        raise ZFNetError(
            f"max_unpool2d: switches must lie in [0, {h * w}) for output_size {(h, w)}, "
            f"got values in [{lo}, {hi}]; is output_size the pooled input's (H, W)?"
        )
    N, C, Ho, Wo = y.shape
    x = cuda.device_array((N, C, h, w), np.float32)                              # (N, C, H, W)
    _zero[blocks(x.size), THREADS_1D](x.reshape(x.size))
    planes = N * C
    _unpool_planes[blocks(planes), THREADS_1D](
        y.reshape(planes, Ho * Wo), switches.reshape(planes, Ho * Wo), x.reshape(planes, h * w))
    return to_caller(x, host)
