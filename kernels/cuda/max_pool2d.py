"""max_pool2d on the GPU, with switches (the rules, equation and twin are in kernels/max_pool2d.py).

One thread: one output (n, c, i, j), 128 threads a block over the flat (N, C, H', W') outputs.
It scans its window clipped to the real input in row-major order with the CPU's test
``v > best or v != v``: the first maximum wins a tie, the last NaN wins, and a window of -inf
keeps its first real input as switch. So y and the switches equal the CPU's bit for bit.
relu_input rectifies each value as it is read. No shared memory: a window is at most a few
dozen reads, and neighbouring threads read neighbouring inputs.
"""
import math

from numba import cuda, float32
import numpy as np

from .._checks import ZFNetError
from ..max_pool2d import SWITCH_DTYPE, pool_geometry
from ._device import THREADS_1D, blocks, on_device, shape_stand_in, to_caller


@cuda.jit
def _max_pool(x, y, switches, geo):
    """geo = (KH, KW, sh, sw, ph, pw, rectify, record)."""
    KH, KW, sh, sw, ph, pw, rectify, record = geo
    N, C, H, W = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    q = cuda.grid(1)
    if q >= N * C * Ho * Wo:
        return
    j, i, c, n = q % Wo, (q // Wo) % Ho, (q // (Wo * Ho)) % C, q // (Wo * Ho * C)
    h0, w0 = max(i * sh - ph, 0), max(j * sw - pw, 0)
    h1, w1 = min(i * sh - ph + KH, H), min(j * sw - pw + KW, W)
    best = float32(-math.inf)
    arg = h0 * W + w0
    for h in range(h0, h1):
        for w in range(w0, w1):
            v = x[n, c, h, w]
            if rectify and not (v > 0 or v != v):
                v = float32(0.0)
            if v > best or v != v:                      # first maximum wins; NaN propagates
                best = v
                arg = h * W + w
    y[n, c, i, j] = best
    if record:
        switches[n, c, i, j] = arg


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, relu_input=False,
               return_switches=True):
    """Max pooling with switches on the GPU. x (N, C, H, W) -> (y, switches), both (N, C, H', W').

    Same arguments, checks and result as kernels.max_pool2d (switches int64); host or device arrays.
    """
    x, host = on_device(x, "x", 4)
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = pool_geometry(
        shape_stand_in(x), kernel_size, stride, padding, ceil_mode)
    for flag, name in ((relu_input, "relu_input"), (return_switches, "return_switches")):
        if not isinstance(flag, (bool, np.bool_)):
            raise ZFNetError(f"max_pool2d: {name} must be True or False, got {flag!r}")
    N, C = x.shape[:2]
    y = cuda.device_array((N, C, ho, wo), np.float32)                            # (N, C, H', W')
    switches = cuda.device_array((N, C, ho, wo) if return_switches else (1, 1, 1, 1), SWITCH_DTYPE)
    geo = (kh, kw, sh, sw, ph, pw, int(bool(relu_input)), int(bool(return_switches)))
    _max_pool[blocks(N * C * ho * wo), THREADS_1D](x, y, switches, geo)
    if return_switches:
        return to_caller(y, host), to_caller(switches, host)
    return to_caller(y, host)
