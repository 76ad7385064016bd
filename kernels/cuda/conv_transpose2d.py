"""conv_transpose2d on the GPU: a gather, x[g] (C/G, N*H*W) = w[g]^T (C/G, F/G*KH*KW) @ taps[g], on gemm.py.

The equation, shapes and NumPy twin are in kernels/conv_transpose2d.py. Written as a gather for
one input unit, x[n, g*C/G + c, h, w'] sums w[f, c, u, v] * y[n, f, i, j] over the filters f of
group g and the taps (u, v) with i*sh = h + ph - u and j*sw = w' + pw - v. That is a GEMM whose
B matrix is

    taps[(f, u, v), (n, h, w')] = y[n, g*F/G + f, (h + ph - u) / sh, (w' + pw - v) / sw]

where both divisions are exact and land inside y, else 0 (read from y as the panels fill, never
stored). Each output element is summed by one thread, so nothing is written twice (no race, no
atomics). With stride s, only 1 tap in s*s is non-zero: the price of keeping the one GEMM kernel.

One block: a 64x64 tile of x[g] (64 channels x 64 positions (n, h, w')), blockIdx.z = group g.
One thread: a 4x4 sub-tile. Shared memory: the 8x64 panels of w^T and of taps (see gemm.py).
"""
from numba import cuda, float32
import numpy as np

from .._checks import ZFNetError, non_negative_pair, positive_pair
from ..conv2d import check_groups
from ..conv_transpose2d import transposed_output_size
from . import gemm
from ._device import on_device, to_caller

# geo = (Cg, Fg, KH, KW, sh, sw, ph, pw, Ho, Wo, H, W)


@cuda.jit(device=True)
def _load_wT(w, geo, g, m, k, M, K):
    """A[c, (f, u, v)] = w[g*F/G + f, c, u, v]."""
    if m >= M or k >= K:
        return float32(0.0)
    Fg, KH, KW = geo[1], geo[2], geo[3]
    return w[g * Fg + k // (KH * KW), m, (k // KW) % KH, k % KW]


@cuda.jit(device=True)
def _locate(geo, col, Ncols):
    """Column col = (n, h, w') of taps -> (n, h + ph, w' + pw)."""
    if col >= Ncols:
        return -1, 0, 0
    ph, pw, H, W = geo[6], geo[7], geo[10], geo[11]
    n, p = col // (H * W), col % (H * W)
    return n, p // W + ph, p % W + pw


@cuda.jit(device=True)
def _load_taps(y, geo, g, k, where, K):
    """B[(f, u, v), col] = y[n, g*F/G + f, i, j] where i*sh = h + ph - u, j*sw = w' + pw - v."""
    n, hp, wp = where
    if k >= K or n < 0:
        return float32(0.0)
    Fg, KH, KW, sh, sw, Ho, Wo = geo[1], geo[2], geo[3], geo[4], geo[5], geo[8], geo[9]
    f, u, v = k // (KH * KW), (k // KW) % KH, k % KW
    di, dj = hp - u, wp - v                           # i*sh and j*sw, if this tap reaches (h, w')
    if di < 0 or dj < 0 or di % sh != 0 or dj % sw != 0 or di // sh >= Ho or dj // sw >= Wo:
        return float32(0.0)
    return y[n, g * Fg + f, di // sh, dj // sw]


@cuda.jit(device=True)
def _store_x(x, unused, geo, g, m, col, acc):
    """x[n, g*C/G + c, h, w'] = acc."""
    H, W = geo[10], geo[11]
    n, p = col // (H * W), col % (H * W)
    x[n, g * geo[0] + m, p // W, p % W] = acc


_transpose_gemm = gemm.tiled_gemm(_load_wT, _locate, _load_taps, _store_x)


def conv_transpose2d(y, w, stride=1, padding=0, groups=1, output_size=None):
    """The adjoint of conv2d on the GPU. y (N, F, H', W'), w (F, C/G, KH, KW) -> x (N, C, H, W).

    Same arguments, checks and result as kernels.conv_transpose2d; host or device arrays.
    """
    y, host = on_device(y, "y", 4)
    w, _ = on_device(w, "w", 4)
    N, F, Ho, Wo = y.shape
    Fw, Cg, KH, KW = w.shape
    if min(y.shape) < 1:
        raise ZFNetError(f"y must be non-empty (N, F, H', W'), got shape {tuple(y.shape)}")
    if min(w.shape) < 1:
        raise ZFNetError(f"w must be non-empty (F, C/G, KH, KW), got shape {tuple(w.shape)}")
    if Fw != F:
        raise ZFNetError(
            f"channel mismatch: y has F={F} feature maps but w has {Fw} filters; "
            f"w must be the (F, C/G, KH, KW) filters of the conv2d that produced y"
        )
    (sh, sw), (ph, pw) = positive_pair(stride, "stride"), non_negative_pair(padding, "padding")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ZFNetError(f"groups must be an int >= 1, got {groups!r}")
    G = check_groups(groups, Cg * int(groups), F, Cg, "w")
    H, W = transposed_output_size((Ho, Wo), (KH, KW), (sh, sw), (ph, pw), output_size)
    x = cuda.device_array((N, Cg * G, H, W), np.float32)                          # (N, C, H, W)
    geo = (Cg, F // G, KH, KW, sh, sw, ph, pw, Ho, Wo, H, W)
    M, K, Ncols = Cg, (F // G) * KH * KW, N * H * W
    grid, block = gemm.launch_shape(M, Ncols, G)
    _transpose_gemm[grid, block](w, y, x, x, geo, M, Ncols, K)
    return to_caller(x, host)
