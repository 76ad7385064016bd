"""Pooling, LRN and ReLU on the channel-blocked layout NCHW16c (see nchwc.py), for a forward pass
that keeps the layout between convolutions.

Shapes: x_b (N, CB, H, W, B) -> y_b (N, CB, H', W', B) for pooling, (N, CB, H, W, B) for LRN/ReLU;
B = 16, channel c = cb*B + lane. Each op keeps the layout's rule: channels past C are zero in x_b
and stay zero in y_b.

max_pool2d_nchwc (the forward pass's pooling; switches on request, relu_input as max_pool2d's):

    y_b[n, cb, i, j, :] = max_{0<=u<KH, 0<=v<KW} x_b[n, cb, i*sh - ph + u, j*sw - pw + v, :]

over the window positions inside the image (padding never wins, as in max_pool2d; a NaN in the
window gives NaN). H', W' as max_pool2d's pool_output_size (floor or Caffe's ceil rule).
With return_switches, switches_b[n, cb, i, j, lane] = h*W + w of that maximum in the NCHW input plane,
max_pool2d's rules exactly (first maximum wins ties, the last NaN wins, the window's first real
input if none wins); switches_from_nchwc turns switches_b into max_pool2d's (N, C, H', W') int64.
relu_input=True pools relu(x) (max(v, 0), NaN kept): with switches as x is read, without
them as max(window's maximum, 0), the same bits (relu is monotone) for one test per output.

global_avg_pool_nchwc:  y_b[n, cb, 0, 0, :] = 1/(H*W) sum_{h, w} x_b[n, cb, h, w, :]

lrn_nchwc (across channels, as lrn; the window runs across block boundaries):

    y = x / (k + alpha/size * S)^beta,   S[n, c, h, w] = sum_{c' = c - size//2}^{c + (size-1)//2} x[n, c', h, w]^2

with channels outside [0, CB*B) counting zero. The padded channels are zero, so summing over
all CB*B channels equals lrn's sum over [0, C): a layer never needs to know C.

ReLU needs no kernel of its own: it is elementwise, so kernels.relu(x_b) is correct on the
blocked layout (max(0, 0) keeps the padding zero), and conv2d_nchwc fuses it (relu=True).

The Numba kernels vectorise over the 16 lanes of a pixel; each parallel iteration owns one
output row (pooling) or one image row (LRN).
"""
import math

import numpy as np
from numba import njit, prange, uint64

from ._checks import ZFNetError, non_negative_pair, positive_pair
from ._registers import call_vectorized, stack_sums, stack_tile
from ._scratch import aligned_empty
from ._threads import one_at_a_time
from .lrn import neg_power
from .max_pool2d import pool_output_size
from .nchwc import BLOCK, check_nchwc

POOL_GROUP = 4                  # _max_pool_rows: outputs taken at once where their windows lie inside
POOL_TILE = POOL_GROUP * BLOCK

_B = uint64(BLOCK)


# ---------------------------------------------------------------------------------------------
# NumPy twins
# ---------------------------------------------------------------------------------------------

def max_pool2d_nchwc_reference(x_b, kernel_size, stride, padding, out_hw):
    """The max over each window's positions inside the image. x_b (N, CB, H, W, B) -> (N, CB, H', W', B)."""
    (kh, kw), (sh, sw), (ph, pw), (Ho, Wo) = kernel_size, stride, padding, out_hw
    N, CB, H, W, B = x_b.shape
    y_b = np.empty((N, CB, Ho, Wo, B), np.float32)
    for i in range(Ho):
        for j in range(Wo):
            h0, w0 = i * sh - ph, j * sw - pw
            window = x_b[:, :, max(h0, 0):min(h0 + kh, H), max(w0, 0):min(w0 + kw, W), :]   # (N, CB, <=KH, <=KW, B)
            y_b[:, :, i, j, :] = window.max(axis=(2, 3))
    return y_b


def max_pool2d_switches_nchwc_reference(x_b, kernel_size, stride, padding, out_hw, relu_input=False):
    """(y_b, switches_b): the row-major window scan of max_pool2d's twin, on the 16 lanes of each pixel."""
    (kh, kw), (sh, sw), (ph, pw), (Ho, Wo) = kernel_size, stride, padding, out_hw
    N, CB, H, W, B = x_b.shape
    x_b = np.where(x_b > 0, x_b, np.where(np.isnan(x_b), x_b, 0)).astype(np.float32) if relu_input else x_b
    y_b = np.empty((N, CB, Ho, Wo, B), np.float32)
    switches_b = np.empty((N, CB, Ho, Wo, B), np.int64)
    for i in range(Ho):
        for j in range(Wo):
            h0, w0 = max(i * sh - ph, 0), max(j * sw - pw, 0)
            best = np.full((N, CB, B), -np.inf, np.float32)
            arg = np.full((N, CB, B), h0 * W + w0, np.int64)
            for hh in range(h0, min(i * sh - ph + kh, H)):
                for ww in range(w0, min(j * sw - pw + kw, W)):
                    v = x_b[:, :, hh, ww, :]
                    wins = (v > best) | np.isnan(v)
                    best, arg = np.where(wins, v, best), np.where(wins, hh * W + ww, arg)
            y_b[:, :, i, j, :], switches_b[:, :, i, j, :] = best, arg
    return y_b, switches_b


def global_avg_pool_nchwc_reference(x_b):
    """The mean of each plane. x_b (N, CB, H, W, B) -> (N, CB, 1, 1, B)."""
    return x_b.astype(np.float64).mean(axis=(2, 3), keepdims=True).astype(np.float32)


def lrn_nchwc_reference(x_b, size, alpha, beta, k):
    """y = x / (k + alpha/size * S)^beta on the unblocked view of all CB*B channels, in float64."""
    N, CB, H, W, B = x_b.shape
    x = x_b.transpose(0, 1, 4, 2, 3).reshape(N, CB * B, H, W).astype(np.float64)   # (N, C_padded, H, W)
    squares = x ** 2
    S = np.zeros_like(x)
    for c in range(CB * B):
        S[:, c] = squares[:, max(c - size // 2, 0):c + (size - 1) // 2 + 1].sum(axis=1)
    y = x * (k + alpha / size * S) ** -beta
    return y.reshape(N, CB, B, H, W).transpose(0, 1, 3, 4, 2).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Numba kernels
# ---------------------------------------------------------------------------------------------

@njit(nogil=True, cache=True, inline="always")
def _window_max(x, n, cb, h_lo, h_hi, w_lo, w_hi, best):
    """best[lane] = max over x[n, cb, h_lo:h_hi, w_lo:w_hi, lane], NaN kept, in the order h, then w
    (the order of every pooling here: the same value, -0.0 and NaN payloads included)."""
    for lane in range(_B):
        best[lane] = -np.inf
    for h in range(h_lo, h_hi):
        for w in range(w_lo, w_hi):
            for lane in range(_B):
                v = x[n, cb, h, w, lane]
                best[lane] = v if (v > best[lane] or v != v) else best[lane]


@njit(nogil=True, parallel=True, cache=True)
def _max_pool_rows(x, y, kh, kw, sh, sw, ph, pw, rectify):
    """y[n, cb, i, j, :] = max over the window's positions inside the image; one iteration per row (n, cb, i).

    rectify: max(relu(x)) as max(max(x), 0), NaN kept: the same value as rectifying each input
    (relu is monotone), one comparison per output instead of one per input.

    Where whole windows lie inside the row, POOL_GROUP outputs are taken at once, each window
    element of the four compared in turn: four running maxima that do not wait on each other
    (one output at a time, each comparison waited for the one before; RESULTS.md, "Max pools,
    four windows at a time"). Each output still sees its
    elements in the order h, then w: the same bits.
    """
    N, CB, H, W, _ = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    x_flat = x.ravel()
    j_in = (pw + sw - 1) // sw                          # the first output whose window starts inside
    j_end = max(j_in, min(Wo, (W - kw + pw) // sw + 1))  # past the last whose window ends inside
    for job in prange(N * CB * Ho):
        n, cb, i = job // (CB * Ho), (job // Ho) % CB, job % Ho
        h_lo, h_hi = max(i * sh - ph, 0), min(i * sh - ph + kh, H)
        plane = uint64((n * CB + cb) * H * W * BLOCK)
        best = stack_tile(POOL_TILE)
        j = 0
        while j < Wo:
            if j_in <= j and j + POOL_GROUP <= j_end:      # four whole windows
                for k in range(uint64(POOL_TILE)):
                    best[k] = -np.inf
                for h in range(h_lo, h_hi):
                    for u in range(kw):
                        for g in range(uint64(POOL_GROUP)):
                            src = plane + uint64((h * W + (j + g) * sw - pw + u) * BLOCK)
                            for lane in range(_B):
                                v, b = x_flat[src + lane], best[g * _B + lane]
                                best[g * _B + lane] = v if (v > b or v != v) else b
                count = POOL_GROUP
            else:
                _window_max(x, n, cb, h_lo, h_hi, max(j * sw - pw, 0), min(j * sw - pw + kw, W), best)
                count = 1
            for g in range(count):
                for lane in range(_B):
                    v = best[uint64(g) * _B + lane]
                    if rectify and h_hi > h_lo:
                        v = v if (v > 0 or v != v) else np.float32(0.0)
                    y[n, cb, i, j + g, lane] = v
            j += count


@njit(nogil=True, parallel=True, cache=True)
def _max_pool_rows_switches(x, y, switches, kh, kw, sh, sw, ph, pw, rectify):
    """_max_pool_rows with the switches (h*W + w) kept per lane, and relu(x) read if rectify."""
    N, CB, H, W, _ = x.shape
    Ho, Wo = y.shape[2], y.shape[3]
    for job in prange(N * CB * Ho):
        n, cb, i = job // (CB * Ho), (job // Ho) % CB, job % Ho
        h_lo, h_hi = max(i * sh - ph, 0), min(i * sh - ph + kh, H)
        best = stack_tile(BLOCK)
        for j in range(Wo):
            w_lo, w_hi = max(j * sw - pw, 0), min(j * sw - pw + kw, W)
            for lane in range(BLOCK):
                best[lane] = -np.inf
                switches[n, cb, i, j, lane] = h_lo * W + w_lo
            for h in range(h_lo, h_hi):
                for w in range(w_lo, w_hi):
                    for lane in range(BLOCK):
                        v = x[n, cb, h, w, lane]
                        if rectify and not (v > 0 or v != v):
                            v = np.float32(0.0)
                        if v > best[lane] or v != v:
                            best[lane] = v
                            switches[n, cb, i, j, lane] = h * W + w
            for lane in range(BLOCK):
                y[n, cb, i, j, lane] = best[lane]


@njit(nogil=True, parallel=True, cache=True)
def _global_avg_pool_planes(x, y):
    """y[n, cb, 0, 0, :] = mean over the plane (float64 sums); one iteration per plane block (n, cb).

    The 16 sums live on the stack (stack_sums), so they stay in registers: a heap array (np.zeros)
    made every addition a load and a store, and an allocation per block. Called through
    call_vectorized: without LLVM's SLP vectoriser the 16 lanes were 16 scalar conversions and
    additions per pixel (RESULTS.md, "A layer-by-layer profile"). Each lane's sum
    runs in the same order either way: the same bits."""
    N, CB, H, W, _ = x.shape
    for job in prange(N * CB):
        n, cb = job // CB, job % CB
        total = stack_sums(BLOCK)
        for lane in range(BLOCK):
            total[lane] = 0.0
        for h in range(H):
            for w in range(W):
                for lane in range(BLOCK):
                    total[lane] += x[n, cb, h, w, lane]
        for lane in range(BLOCK):
            y[n, cb, 0, 0, lane] = total[lane] / (H * W)


@njit(nogil=True, parallel=True, cache=True)
def _lrn_rows(x, y, size, alpha, beta, k):
    """LRN across the CB*B channels of each pixel; one iteration per image row (n, h).

    For one pixel, its C' = CB*B squares are laid out in channel order in `sq`, with size//2 zeros
    before and (size-1)//2 after, so channel c's window is sq[c .. c + size - 1]: a direct sum of
    `size` terms per channel, added term by term (o outer) in loops over all channels with no
    dependence from one channel to the next (the compiler vectorises them; with the `size` terms
    innermost it did not), then d^-beta as lrn's kernels take it (neg_power).

    In float32, as Caffe and PyTorch compute LRN: the window holds `size` non-negative terms (no
    cancellation), so the result is within a few float32 ulps of the float64 twin; float64's
    square roots and division took half of this kernel's time (RESULTS.md). Flat arrays and
    unsigned offsets (no index wrap-around tests on the pixel's loads and stores).
    """
    N, CB, H, W, _ = x.shape
    channels = CB * BLOCK
    before = size // 2
    scale, k32, one = np.float32(alpha / size), np.float32(k), np.float32(1.0)
    sqrt_path = beta == 0.75
    xf, yf = x.ravel(), y.ravel()
    plane = uint64(H * W * BLOCK)                   # from block cb to cb + 1 of the same pixel
    for job in prange(N * H):
        n, h = job // H, job % H
        sq = np.zeros(channels + size, np.float32)
        d = np.empty(channels, np.float32)
        row = uint64(n * CB) * plane + uint64(h * W * BLOCK)
        for w in range(W):
            pixel = row + uint64(w * BLOCK)
            for cb in range(CB):
                src = pixel + uint64(cb) * plane
                for lane in range(_B):
                    v = xf[src + lane]
                    sq[uint64(before + cb * BLOCK) + lane] = v * v
            for c in range(channels):
                d[c] = sq[c]
            for o in range(1, size):        # o outside, so each pass is one vectorised loop over c
                for c in range(channels):
                    d[c] += sq[c + o]
            if sqrt_path:                   # neg_power's common case, its test hoisted out of the loop
                for c in range(channels):
                    e = k32 + scale * d[c]
                    d[c] = one / math.sqrt(e * math.sqrt(e))
            else:
                for c in range(channels):
                    d[c] = np.float32(neg_power(np.float64(k32 + scale * d[c]), beta))
            for cb in range(CB):
                src = pixel + uint64(cb) * plane
                for lane in range(_B):
                    yf[src + lane] = xf[src + lane] * d[uint64(cb * BLOCK) + lane]


# ---------------------------------------------------------------------------------------------
# Public ops
# ---------------------------------------------------------------------------------------------

def _output(out, shape, x_b, op):
    """The array an op writes its blocked output into: a new aligned one, or `out`, checked."""
    if out is None:
        return aligned_empty(shape)
    check_nchwc(out, "out")
    if out.shape != tuple(shape):
        raise ZFNetError(f"{op}: out must have shape {tuple(shape)}, got {out.shape}")
    if np.may_share_memory(out, x_b):
        raise ZFNetError(f"{op}: out must not overlap the input x_b (the op reads what it would overwrite)")
    return out


@one_at_a_time
def max_pool2d_nchwc(x_b, kernel_size, stride, padding=(0, 0), ceil_mode=False, relu_input=False,
                     return_switches=False, out=None):
    """x_b (N, CB, H, W, 16) -> y_b (N, CB, H', W', 16): max pooling, max_pool2d's sizes and rules.

    return_switches: return (y_b, switches_b), switches_b (N, CB, H', W', 16) int64 flat h*W + w indices into
    the NCHW input plane (switches_from_nchwc -> max_pool2d's switches). relu_input: pool relu(x).
    out: a float32 C-contiguous (N, CB, H', W', 16) array, not overlapping x_b, to write y_b into
    (a forward pass's arena buffer: no fresh pages to fault in); returned as y_b.
    """
    check_nchwc(x_b, "x_b")
    N, CB, H, W, _ = x_b.shape
    Ho, Wo = pool_output_size((H, W), kernel_size, stride, padding, ceil_mode)
    (kh, kw), (sh, sw) = positive_pair(kernel_size, "kernel_size"), positive_pair(stride, "stride")
    ph, pw = non_negative_pair(padding, "padding")
    if ph > kh // 2 or pw > kw // 2:
        raise ZFNetError(f"max_pool2d_nchwc: padding {(ph, pw)} must be at most half the kernel {(kh, kw)}")
    y_b = _output(out, (N, CB, Ho, Wo, BLOCK), x_b, "max_pool2d_nchwc")
    if return_switches:
        switches_b = np.empty((N, CB, Ho, Wo, BLOCK), np.int64)
        call_vectorized(_max_pool_rows_switches, x_b, y_b, switches_b, kh, kw, sh, sw, ph, pw, bool(relu_input))
        return y_b, switches_b
    call_vectorized(_max_pool_rows, x_b, y_b, kh, kw, sh, sw, ph, pw, bool(relu_input))
    return y_b


def switches_from_nchwc(switches_b, channels):
    """switches_b (N, CB, H', W', 16) int64 -> (N, C, H', W') int64, C = `channels`: max_pool2d's switches."""
    N, CB, Ho, Wo, B = switches_b.shape
    return np.ascontiguousarray(switches_b.transpose(0, 1, 4, 2, 3).reshape(N, CB * B, Ho, Wo)[:, :channels])


@one_at_a_time
def global_avg_pool_nchwc(x_b, out=None):
    """x_b (N, CB, H, W, 16) -> y_b (N, CB, 1, 1, 16): the mean of each feature map. out: as
    max_pool2d_nchwc's."""
    check_nchwc(x_b, "x_b")
    y_b = _output(out, x_b.shape[:2] + (1, 1, BLOCK), x_b, "global_avg_pool_nchwc")
    call_vectorized(_global_avg_pool_planes, x_b, y_b)   # the 16 lanes' sums as vectors (SLP), not scalars
    return y_b


@one_at_a_time
def lrn_nchwc(x_b, size, alpha=1e-4, beta=0.75, k=1.0, out=None):
    """x_b (N, CB, H, W, 16) -> y_b, same shape: LRN across channels, lrn's window and rules (k > 0, alpha >= 0).
    out: as max_pool2d_nchwc's, x_b's shape."""
    check_nchwc(x_b, "x_b")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ZFNetError(f"lrn_nchwc: size must be an int >= 1, got {size!r}")
    if not (alpha >= 0 and k > 0):
        raise ZFNetError(f"lrn_nchwc: need alpha >= 0 and k > 0 (so the power is defined), got alpha={alpha}, k={k}")
    y_b = _output(out, x_b.shape, x_b, "lrn_nchwc")
    _lrn_rows(x_b, y_b, int(size), float(alpha), float(beta), float(k))
    return y_b
