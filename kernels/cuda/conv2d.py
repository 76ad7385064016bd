"""conv2d on the GPU: implicit GEMM, y[g] (F/G, N*H'*W') = w[g] (F/G, C/G*KH*KW) @ cols[g], on gemm.py.

The equation, shapes and NumPy twin are in kernels/conv2d.py. The unrolled input
cols[(c, u, v), (n, i, j)] = x_pad[n, g*C/G + c, i*sh + u, j*sw + v] is never stored: the tiled
GEMM's B loader reads each element straight from x (0 in the padding) as it fills a panel.

One block: a 64x64 tile of y[g] (64 filters x 64 output positions (n, i, j)), blockIdx.z = group g.
One thread: a 4x4 sub-tile (4 filters x 4 positions). Shared memory: the 8x64 panel of filters
and the 8x64 panel of unrolled input for one k-slice (see gemm.py). The epilogue adds the bias
and, with relu=True, rectifies (NaN kept, as kernels.relu) as it writes y.
"""
import numpy as np
from numba import cuda, float32
from numba.cuda.cudadrv import devicearray

from .._checks import ZFNetError, non_negative_pair, positive_pair
from ..conv2d import check_groups, check_out, conv2d_output_size
from . import gemm
from ._device import is_device_array, on_device, overlaps, to_caller

# geo = (Cg, KH, KW, sh, sw, ph, pw, H, W, Ho, Wo, Fg, has_bias, relu)


@cuda.jit(device=True)
def _load_w(w2, geo, g, m, k, M, K):
    """A[m, k] = w[g*F/G + m] flattened over (c, u, v); w2 is w viewed as (F, C/G*KH*KW)."""
    if m < M and k < K:
        return w2[g * geo[11] + m, k]
    return float32(0.0)


@cuda.jit(device=True)
def _locate(geo, col, Ncols):
    """Column col = (n, i, j) of the unrolled input -> (n, i*sh - ph, j*sw - pw): image, window corner."""
    if col >= Ncols:
        return -1, 0, 0
    sh, sw, ph, pw, Ho, Wo = geo[3], geo[4], geo[5], geo[6], geo[9], geo[10]
    n, p = col // (Ho * Wo), col % (Ho * Wo)
    return n, (p // Wo) * sh - ph, (p % Wo) * sw - pw


@cuda.jit(device=True)
def _load_x(x, geo, g, k, where, K):
    """B[k, col] = x_pad[n, g*C/G + c, top + u, left + v], k = (c, u, v), where = (n, top, left)."""
    n, top, left = where
    if k >= K or n < 0:
        return float32(0.0)
    Cg, KH, KW, H, W = geo[0], geo[1], geo[2], geo[7], geo[8]
    c, u, v = k // (KH * KW), (k // KW) % KH, k % KW
    h, w = top + u, left + v
    if h < 0 or h >= H or w < 0 or w >= W:
        return float32(0.0)                                 # zero padding
    return x[n, g * Cg + c, h, w]


@cuda.jit(device=True)
def _store_y(y, b, geo, g, m, col, acc):
    """y[n, g*F/G + m, i, j] = acc + b[f], rectified if relu."""
    Ho, Wo, f = geo[9], geo[10], g * geo[11] + m
    v = acc + b[f] if geo[12] else acc
    if geo[13] and not (v > 0 or v != v):
        v = float32(0.0)
    n, p = col // (Ho * Wo), col % (Ho * Wo)
    y[n, f, p // Wo, p % Wo] = v


_conv_gemm = gemm.tiled_gemm(_load_w, _locate, _load_x, _store_y)


def conv2d(x, w, b=None, stride=1, padding=0, groups=1, relu=False, out=None):
    """conv2d on the GPU. x (N, C, H, W), w (F, C/G, KH, KW), b (F,) or None -> y (N, F, H', W').

    Same arguments, checks and result as kernels.conv2d; arrays on the host or the device (device
    in, device out). out: a device array (N, F, H', W') whose images out[n] are each one
    C-contiguous block (a channel slice of a bigger array works), or a NumPy array if x is one.
    """
    x_given = x
    x, host = on_device(x, "x", 4)
    w, _ = on_device(w, "w", 4)
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    if min(x.shape) < 1:
        raise ZFNetError(f"x must be non-empty (N, C, H, W), got shape {tuple(x.shape)}")
    if min(w.shape) < 1:
        raise ZFNetError(f"w must be non-empty (F, C/G, KH, KW), got shape {tuple(w.shape)}")
    if b is not None:
        b, _ = on_device(b, "b", 1)
        if tuple(b.shape) != (F,):
            raise ZFNetError(f"b must have shape (F,) = ({F},) to match w, got {tuple(b.shape)}")
    (sh, sw), (ph, pw) = positive_pair(stride, "stride"), non_negative_pair(padding, "padding")
    G = check_groups(groups, C, F, Cg, "x")
    Ho, Wo = conv2d_output_size((H, W), (KH, KW), (sh, sw), (ph, pw))
    y = _output(out, (N, F, Ho, Wo), x, x_given)                                    # (N, F, H', W')
    geo = (Cg, KH, KW, sh, sw, ph, pw, H, W, Ho, Wo, F // G, int(b is not None), int(bool(relu)))
    M, K, Ncols = F // G, Cg * KH * KW, N * Ho * Wo
    grid, block = gemm.launch_shape(M, Ncols, G)
    w2 = w.reshape(F, K)                                                          # (F, C/G*KH*KW)
    _conv_gemm[grid, block](w2, x, y, w.reshape(F * K) if b is None else b, geo, M, Ncols, K)
    if out is not None and host:
        out[...] = y.copy_to_host()
        return out
    return y if out is not None else to_caller(y, host)


def _output(out, shape, x, x_given):
    """The device array y is written to: a new one, or `out` checked as kernels.conv2d checks it."""
    if out is None:
        return cuda.device_array(shape, np.float32)
    if isinstance(x_given, np.ndarray):
        check_out(out, shape, x_given)            # a NumPy x wants a NumPy out: the CPU's checks
        return cuda.device_array(shape, np.float32)
    if not is_device_array(out):
        raise ZFNetError(f"out must be a CUDA device array like x, got {type(out).__name__}")
    if not devicearray.is_cuda_ndarray(out):
        out = cuda.as_cuda_array(out)
    if out.dtype != np.float32:
        raise ZFNetError(f"out must be float32, got {out.dtype}")
    if tuple(out.shape) != shape:
        raise ZFNetError(f"out must have the output's shape (N, F, H', W') = {shape}, got {tuple(out.shape)}")
    image_bytes = int(np.prod(shape[1:])) * 4
    if not out[0].is_c_contiguous() or (shape[0] > 1 and out.strides[0] < image_bytes):
        raise ZFNetError(
            f"each out[n] must be one C-contiguous block (a channel slice big[:, f0:f0 + F] of a "
            f"C-contiguous (N, F_total, H', W') array works), got strides {tuple(out.strides)}"
        )
    if overlaps(out, x):
        raise ZFNetError("out must not overlap the input x")
    return out
