"""avg_pool2d on the GPU (PyTorch's rules; equation and twin in kernels/avg_pool2d.py).

One thread: one output (n, c, i, j), 128 threads a block over the flat outputs. It sums its
window clipped to the image in float64, in the CPU kernel's order, and divides once, so the
result equals the CPU's. No shared memory.
"""
from numba import cuda
import numpy as np

from ..max_pool2d import pool_geometry
from ._device import THREADS_1D, blocks, on_device, shape_stand_in, to_caller


@cuda.jit
def _avg_pool(x, y, geo):
    """geo = (KH, KW, sh, sw, ph, pw, count_include_pad)."""
    KH, KW, sh, sw, ph, pw, count_include_pad = geo
    N, C, H, W = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    q = cuda.grid(1)
    if q >= N * C * Ho * Wo:
        return
    j, i, c, n = q % Wo, (q // Wo) % Ho, (q // (Wo * Ho)) % C, q // (Wo * Ho * C)
    # the window clipped to the padding (for the divisor), then to the image (for the sum)
    h0, w0 = i * sh - ph, j * sw - pw
    h1, w1 = min(h0 + KH, H + ph), min(w0 + KW, W + pw)
    hs, ws, he, we = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
    divisor = (h1 - h0) * (w1 - w0) if count_include_pad else (he - hs) * (we - ws)
    total = 0.0
    for h in range(hs, he):
        for w in range(ws, we):
            total += x[n, c, h, w]
    y[n, c, i, j] = total / divisor


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling on the GPU. x (N, C, H, W) -> y (N, C, H', W').

    Same arguments, checks and result as kernels.avg_pool2d; host or device arrays.
    """
    x, host = on_device(x, "x", 4)
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = pool_geometry(
        shape_stand_in(x), kernel_size, stride, padding, ceil_mode, op="avg_pool2d")
    N, C = x.shape[:2]
    y = cuda.device_array((N, C, ho, wo), np.float32)                            # (N, C, H', W')
    geo = (kh, kw, sh, sw, ph, pw, int(bool(count_include_pad)))
    _avg_pool[blocks(N * C * ho * wo), THREADS_1D](x, y, geo)
    return to_caller(y, host)
