"""lrn and lrn_backward on the GPU, both kinds (equations and twins in kernels/lrn.py).

One thread: one element (n, c, h, w), 128 threads a block over the flat (N, C, H, W) array. It
sums the squares of its own window in float64 (across: `size` channels; within: the zero-padded
size x size square), forms d = k + alpha/m * S and writes x * d^-beta. lrn_backward runs two such
kernels: the first stores p = d^-beta and t = dy * x * d^(-beta-1) (float64, per element), the
second gathers t over the transposed window (every output whose window holds this input) and
writes dx = dy * p - 2*alpha*beta/m * x * sum t. Every element has one writer; no shared memory
(a window is at most a few dozen reads).
"""
import math

from numba import cuda
import numpy as np

from .._checks import ZFNetError
from ..lrn import _check_lrn_args
from ._device import THREADS_1D, blocks, on_device, shape_stand_in, to_caller


@cuda.jit(device=True)
def _window_sum(a, n, c, h, w, before, after, r, within, square):
    """sum of a (squared if `square`) over channels c-before .. c+after (within=False) or over the
    square |u|, |v| <= r around (h, w) (within=True), in float64; outside the array counts 0."""
    C, H, W = a.shape[1], a.shape[2], a.shape[3]
    s = 0.0
    if within:
        for hh in range(max(h - r, 0), min(h + r, H - 1) + 1):
            for ww in range(max(w - r, 0), min(w + r, W - 1) + 1):
                v = float(a[n, c, hh, ww])
                s += v * v if square else v
    else:
        for cc in range(max(c - before, 0), min(c + after, C - 1) + 1):
            v = float(a[n, cc, h, w])
            s += v * v if square else v
    return s


@cuda.jit(device=True)
def _neg_power(d, beta):
    """d^-beta; beta = 0.75 as 1 / sqrt(d * sqrt(d)), as the CPU kernel computes it."""
    if beta == 0.75:
        return 1.0 / math.sqrt(d * math.sqrt(d))
    return math.exp(-beta * math.log(d))


@cuda.jit(device=True)
def _index(q, shape):
    C, H, W = shape[1], shape[2], shape[3]
    return q // (C * H * W), (q // (H * W)) % C, (q // W) % H, q % W


@cuda.jit
def _lrn(x, y, size, alpha, beta, k, within):
    q = cuda.grid(1)
    if q < x.size:
        n, c, h, w = _index(q, x.shape)
        m = size * size if within else size
        s = _window_sum(x, n, c, h, w, size // 2, (size - 1) // 2, (size - 1) // 2, within, True)
        y[n, c, h, w] = x[n, c, h, w] * _neg_power(k + alpha / m * s, beta)


@cuda.jit
def _lrn_backward_pass1(x, dy, p, t, size, alpha, beta, k, within):
    """p = d^-beta, t = dy * x * d^(-beta-1), per element (float64)."""
    q = cuda.grid(1)
    if q < x.size:
        n, c, h, w = _index(q, x.shape)
        m = size * size if within else size
        s = _window_sum(x, n, c, h, w, size // 2, (size - 1) // 2, (size - 1) // 2, within, True)
        d = k + alpha / m * s
        p[n, c, h, w] = _neg_power(d, beta)
        t[n, c, h, w] = float(dy[n, c, h, w]) * x[n, c, h, w] * p[n, c, h, w] / d


@cuda.jit
def _lrn_backward_pass2(x, dy, p, t, dx, size, alpha, beta, within):
    """dx = dy * p - 2*alpha*beta/m * x * (t summed over the transposed window)."""
    q = cuda.grid(1)
    if q < x.size:
        n, c, h, w = _index(q, x.shape)
        m = size * size if within else size
        g = _window_sum(t, n, c, h, w, (size - 1) // 2, size // 2, (size - 1) // 2, within, False)
        dx[n, c, h, w] = dy[n, c, h, w] * p[n, c, h, w] - 2.0 * alpha * beta / m * x[n, c, h, w] * g


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0, within_channel=False):
    """Local response normalisation on the GPU. x (N, C, H, W) -> y (N, C, H, W).

    Same arguments, checks and result as kernels.lrn; host or device arrays.
    """
    x, host = on_device(x, "x", 4)
    size, alpha, beta, k, within = _check_lrn_args(shape_stand_in(x), size, alpha, beta, k, within_channel)
    y = cuda.device_array(x.shape, np.float32)                                   # (N, C, H, W)
    _lrn[blocks(x.size), THREADS_1D](x, y, size, alpha, beta, k, within)
    return to_caller(y, host)


def lrn_backward(x, dy, size, alpha=1e-4, beta=0.75, k=1.0, within_channel=False):
    """The gradient of lrn on the GPU. x, dy (N, C, H, W) -> dx (N, C, H, W).

    Same arguments, checks and result as kernels.lrn_backward; host or device arrays.
    """
    x, host = on_device(x, "x", 4)
    size, alpha, beta, k, within = _check_lrn_args(shape_stand_in(x), size, alpha, beta, k, within_channel)
    dy, _ = on_device(dy, "dy", 4)
    if tuple(dy.shape) != tuple(x.shape):
        raise ZFNetError(f"lrn_backward: dy must have x's shape {tuple(x.shape)}, got {tuple(dy.shape)}")
    p = cuda.device_array(x.shape, np.float64)
    t = cuda.device_array(x.shape, np.float64)
    dx = cuda.device_array(x.shape, np.float32)                                  # (N, C, H, W)
    grid = blocks(x.size)
    _lrn_backward_pass1[grid, THREADS_1D](x, dy, p, t, size, alpha, beta, k, within)
    _lrn_backward_pass2[grid, THREADS_1D](x, dy, p, t, dx, size, alpha, beta, within)
    return to_caller(dx, host)
