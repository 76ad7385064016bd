"""max_unpool2d: the deconvnet's unpooling, the adjoint of max pooling.

Shapes: y (N, C, H', W') float32 and switches (N, C, H', W') int64 (or int32) -> x (N, C, H, W).

    x[n, c, h, w] = sum over (i, j) with switches[n, c, i, j] == h*W + w  of  y[n, c, i, j]

Every other position is zero. Each pooled value goes back to the input position its switch
recorded (Zeiler & Fergus, Section 2.1: "unpool"). Where pooling windows overlap (3x3 stride 2)
one input can have won several windows; its values are ADDED. That makes unpooling exactly the
transpose of the max-pool selection, i.e. the gradient of max_pool2d:

    max_unpool2d(g, switches) == d/dx sum(max_pool2d(x) * g)

Note that ``torch.nn.functional.max_unpool2d`` writes instead of adding (the last write wins), so
it agrees with this only where no input position was selected twice.

Output size: (H, W) is given (``output_size``), since several input sizes pool to the same H'.
The Numba kernel gives each (n, c) plane to one thread, so the sums have no race and are
computed in the same order (row-major over (i, j)) as the NumPy twin: both give identical bits.
"""
import numpy as np
from numba import njit, prange

from ._backend import resolve
from ._checks import ZFNetError, check_array, positive_pair

SWITCH_DTYPES = (np.int64, np.int32)


def max_unpool2d_reference(y, switches, out_hw):
    """NumPy twin: loop over pooled positions (i, j), vectorised over the (n, c) planes.

    y, switches (N, C, H', W'); out_hw = (H, W). Returns x (N, C, H, W).
    """
    n, c, ho, wo = y.shape
    h, w = out_hw
    x = np.zeros((n * c, h * w), dtype=np.float32)                  # (N*C, H*W) flat planes
    planes = np.arange(n * c)
    y_flat = y.reshape(n * c, ho, wo)
    s_flat = switches.reshape(n * c, ho, wo)
    for i in range(ho):
        for j in range(wo):
            # One value per plane, so no index repeats within this += (duplicates add across (i, j)).
            x[planes, s_flat[:, i, j]] += y_flat[:, i, j]
    return x.reshape(n, c, h, w)                                     # (N, C, H, W)


@njit(nogil=True, cache=True, parallel=True)
def max_unpool2d_cpu(y, switches, h, w):
    """Numba kernel: one (n, c) plane per parallel iteration, so each output has one writer."""
    n, c, ho, wo = y.shape
    x = np.empty((n, c, h * w), dtype=np.float32)                   # (N, C, H*W) flat planes
    for p in prange(n * c):
        b, ch = p // c, p % c
        # Zero the plane in the thread that fills it (parallel, and still in cache for the adds).
        plane = x[b, ch]
        plane[:] = 0.0
        for i in range(ho):
            for j in range(wo):
                plane[switches[b, ch, i, j]] += y[b, ch, i, j]
    return x.reshape((n, c, h, w))                                   # (N, C, H, W)


def max_unpool2d(y, switches, output_size, backend=None):
    """Unpool: (N, C, H', W') values placed (and summed) at their switches -> (N, C, H, W).

    y: float32 (N, C, H', W'); switches: int64 or int32 of y's shape, flat indices h*W + w in
    [0, H*W), as returned by ``max_pool2d``; output_size: (H, W) of the pooled input.
    """
    check_array(y, "y", 4)
    if min(y.shape) < 1:
        raise ZFNetError(f"max_unpool2d: y must have N, C, H', W' >= 1, got shape {y.shape}")
    if not isinstance(switches, np.ndarray) or switches.dtype not in SWITCH_DTYPES:
        got = switches.dtype if isinstance(switches, np.ndarray) else type(switches).__name__
        raise ZFNetError(
            f"max_unpool2d: switches must be an int64 (or int32) numpy array as returned by "
            f"max_pool2d, got {got}"
        )
    check_array(switches, "switches", 4, dtype=switches.dtype)
    if switches.shape != y.shape:
        raise ZFNetError(
            f"max_unpool2d: switches must have y's shape {y.shape}, got {switches.shape}; "
            f"pass the switches of the pooling that produced y"
        )
    h, w = positive_pair(output_size, "output_size")
    lo, hi = int(switches.min()), int(switches.max())
    if lo < 0 or hi >= h * w:
        raise ZFNetError(
            f"max_unpool2d: switches must lie in [0, {h * w}) for output_size {(h, w)}, "
            f"got values in [{lo}, {hi}]; is output_size the pooled input's (H, W)?"
        )
    if resolve(backend) == "reference":
        return max_unpool2d_reference(y, switches, (h, w))
    return max_unpool2d_cpu(y, switches, h, w)
