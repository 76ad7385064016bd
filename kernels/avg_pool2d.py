"""avg_pool2d: average pooling with PyTorch's exact semantics (also ONNX AveragePool, Caffe AVE).

Shapes: x (N, C, H, W) -> y (N, C, H', W'), H', W' as in max_pool2d (floor, or ceil_mode's
round-up rule; see ``pool_output_size``).

For output (i, j) the window starts at (h0, w0) = (i*sh - ph, j*sw - pw). Its end is clipped
to the right/bottom padding, then its sum is taken over the real inputs only:

    h1 = min(h0 + KH, H + ph),  w1 = min(w0 + KW, W + pw)           # window inside the padding
    y[n, c, i, j] = sum_{h in [max(h0,0), min(h1,H)), w in [max(w0,0), min(w1,W))} x[n, c, h, w] / D

    D = (h1 - h0) * (w1 - w0)                                       if count_include_pad
    D = (min(h1,H) - max(h0,0)) * (min(w1,W) - max(w0,0))           otherwise

So with count_include_pad the zero padding counts in the divisor, but a ceil_mode window that
runs past the padding does NOT count the part beyond it (PyTorch's rule, and Caffe's). With
PyTorch's constraint padding <= kernel // 2 every window holds at least one real input, so D > 0.

Sums are accumulated in float64 and the mean is rounded once to float32.
"""
import numpy as np
from numba import njit, prange

from ._backend import resolve
from .max_pool2d import pool_geometry


def avg_pool2d_reference(x, kernel_size, stride, padding, out_hw, count_include_pad):
    """NumPy twin: loop over output positions, the window sum vectorised over (N, C).

    x (N, C, H, W); kernel_size, stride, padding, out_hw: pairs. Returns y (N, C, H', W').
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = kernel_size, stride, padding, out_hw
    y = np.empty((n, c, ho, wo), dtype=np.float32)                  # (N, C, H', W')
    for i in range(ho):
        for j in range(wo):
            # The window clipped to the padding (for the divisor), then to the image (for the sum).
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            hs, ws, he, we = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            if count_include_pad:
                divisor = (h1 - h0) * (w1 - w0)
            else:
                divisor = (he - hs) * (we - ws)
            total = x[:, :, hs:he, ws:we].sum(axis=(2, 3), dtype=np.float64)   # (N, C)
            y[:, :, i, j] = total / divisor
    return y


@njit(nogil=True, cache=True, parallel=True)
def avg_pool2d_cpu(x, kh, kw, sh, sw, ph, pw, ho, wo, count_include_pad):
    """Numba kernel: one (n, c) plane per parallel iteration."""
    n, c, h, w = x.shape
    y = np.empty((n, c, ho, wo), dtype=np.float32)                  # (N, C, H', W')
    for p in prange(n * c):
        b, ch = p // c, p % c
        plane = x[b, ch]
        for i in range(ho):
            h0 = i * sh - ph
            h1 = min(h0 + kh, h + ph)
            hs, he = max(h0, 0), min(h1, h)
            for j in range(wo):
                w0 = j * sw - pw
                w1 = min(w0 + kw, w + pw)
                ws, we = max(w0, 0), min(w1, w)
                if count_include_pad:
                    divisor = (h1 - h0) * (w1 - w0)
                else:
                    divisor = (he - hs) * (we - ws)
                total = 0.0
                for hh in range(hs, he):
                    for ww in range(ws, we):
                        total += plane[hh, ww]
                y[b, ch, i, j] = total / divisor
    return y


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               backend=None):
    """Average pooling. x: (N, C, H, W) float32 -> y: (N, C, H', W') float32.

    kernel_size, stride, padding: int or (h, w) pair; stride None = kernel_size; ceil_mode is the
    round-up rule; count_include_pad: whether zero padding counts in the divisor (PyTorch's default
    True). Same results as ``torch.nn.functional.avg_pool2d`` (without divisor_override).
    """
    k, s, p, out_hw = pool_geometry(x, kernel_size, stride, padding, ceil_mode, op="avg_pool2d")
    count_include_pad = bool(count_include_pad)
    if resolve(backend) == "reference":
        return avg_pool2d_reference(x, k, s, p, out_hw, count_include_pad)
    return avg_pool2d_cpu(x, k[0], k[1], s[0], s[1], p[0], p[1], out_hw[0], out_hw[1],
                          count_include_pad)
