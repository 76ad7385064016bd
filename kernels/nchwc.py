"""nchwc: the channel-blocked layout NCHW16c, and conversions to and from it.

Feature maps are stored with their channels in blocks of B = 16 (two AVX2 or one AVX-512
register of float32), the block innermost, as ONNX Runtime's MLAS and oneDNN do:

    x_b[n, cb, h, w, c] = x[n, cb*B + c, h, w]     (zero where cb*B + c >= C)

    x (N, C, H, W)  <->  x_b (N, CB, H, W, B),   CB = ceil(C / B)

so the B channels of one pixel are one contiguous vector. Channels past C are zero padding; every
NCHWc kernel keeps them zero (zero filters and zero bias there), so a layer never needs to know C.

Filters are blocked on both channel axes, output channels innermost:

    w_b[fb, cb, u, v, ci, co] = w[fb*B + co, cb*B + ci, u, v]     (zero outside F and C)

    w (F, C, KH, KW)  ->  w_b (FB, CB, KH, KW, B, B)

so one input channel's weights for a block of 16 output channels are one contiguous vector: the
micro-kernels broadcast an input value and multiply it by that vector.

The Numba kernels copy one (n, cb) block of planes per parallel iteration; the twins are loops.
"""
import numpy as np
from numba import njit, prange

from ._checks import ZFNetError, check_array
from ._scratch import aligned_empty
from ._threads import one_at_a_time

BLOCK = 16


def blocks(channels):
    """CB = ceil(C / B): the number of channel blocks holding `channels` channels."""
    return -(-channels // BLOCK)


def to_nchwc_reference(x):
    """x (N, C, H, W) -> x_b (N, CB, H, W, B): x_b[n, cb, h, w, c] = x[n, cb*B + c, h, w], zero padded."""
    N, C, H, W = x.shape
    x_b = np.zeros((N, blocks(C), H, W, BLOCK), np.float32)
    for channel in range(C):
        x_b[:, channel // BLOCK, :, :, channel % BLOCK] = x[:, channel]
    return x_b


def from_nchwc_reference(x_b, channels):
    """x_b (N, CB, H, W, B) -> x (N, C, H, W) with C = `channels`: x[n, c, h, w] = x_b[n, c // B, h, w, c % B]."""
    N, CB, H, W, _ = x_b.shape
    x = np.empty((N, channels, H, W), np.float32)
    for channel in range(channels):
        x[:, channel] = x_b[:, channel // BLOCK, :, :, channel % BLOCK]
    return x


def filters_to_nchwc_reference(w):
    """w (F, C, KH, KW) -> w_b (FB, CB, KH, KW, B, B): w_b[fb, cb, u, v, ci, co] = w[fb*B + co, cb*B + ci, u, v]."""
    F, C, KH, KW = w.shape
    w_b = np.zeros((blocks(F), blocks(C), KH, KW, BLOCK, BLOCK), np.float32)
    for f in range(F):
        for c in range(C):
            w_b[f // BLOCK, c // BLOCK, :, :, c % BLOCK, f % BLOCK] = w[f, c]
    return w_b


@njit(nogil=True, parallel=True, cache=True)
def _to_nchwc(x, x_b):
    """x (N, C, H, W) -> x_b (N, CB, H, W, B); one parallel iteration per block of planes (n, cb)."""
    N, C, H, W = x.shape
    CB = x_b.shape[1]
    for job in prange(N * CB):
        n, cb = job // CB, job % CB
        for c in range(BLOCK):
            channel = cb * BLOCK + c
            for h in range(H):
                for w in range(W):
                    x_b[n, cb, h, w, c] = x[n, channel, h, w] if channel < C else 0.0


@njit(nogil=True, parallel=True, cache=True)
def _from_nchwc(x_b, x):
    """x_b (N, CB, H, W, B) -> x (N, C, H, W); one parallel iteration per output plane (n, c)."""
    N, C, H, W = x.shape
    for job in prange(N * C):
        n, channel = job // C, job % C
        cb, c = channel // BLOCK, channel % BLOCK
        for h in range(H):
            for w in range(W):
                x[n, channel, h, w] = x_b[n, cb, h, w, c]


@one_at_a_time
def to_nchwc(x):
    """x (N, C, H, W) float32 -> x_b (N, CB, H, W, 16), channels past C zero."""
    check_array(x, "x", 4)
    N, C, H, W = x.shape
    x_b = aligned_empty((N, blocks(C), H, W, BLOCK))
    _to_nchwc(x, x_b)
    return x_b


@one_at_a_time
def from_nchwc(x_b, channels):
    """x_b (N, CB, H, W, 16) -> x (N, C, H, W), keeping the first C = `channels` channels."""
    check_nchwc(x_b, "x_b")
    N, CB, H, W, _ = x_b.shape
    if not 0 < channels <= CB * BLOCK:
        raise ZFNetError(f"channels must be in 1..{CB * BLOCK} for x_b of shape {x_b.shape}, got {channels}")
    x = np.empty((N, channels, H, W), np.float32)
    _from_nchwc(x_b, x)
    return x


def filters_to_nchwc(w):
    """w (F, C, KH, KW) float32 -> w_b (FB, CB, KH, KW, 16, 16); done once per layer, so NumPy suffices."""
    check_array(w, "w", 4)
    F, C, KH, KW = w.shape
    padded = np.zeros((blocks(F) * BLOCK, blocks(C) * BLOCK, KH, KW), np.float32)
    padded[:F, :C] = w
    # (FB, co, CB, ci, KH, KW) -> (FB, CB, KH, KW, ci, co)
    blocked = padded.reshape(blocks(F), BLOCK, blocks(C), BLOCK, KH, KW).transpose(0, 2, 4, 5, 3, 1)
    w_b = aligned_empty(blocked.shape)          # each (ci, :) row of 16 filters on one cache line
    w_b[...] = blocked
    return w_b


def bias_to_nchwc(b, filters):
    """b (F,) or None -> (FB*16,) float32, zero past F (so padded output channels stay zero)."""
    padded = np.zeros(blocks(filters) * BLOCK, np.float32)
    if b is not None:
        check_array(b, "b", 1)
        if b.shape[0] != filters:
            raise ZFNetError(f"b must have {filters} elements (one per filter), got shape {b.shape}")
        padded[:filters] = b
    return padded


def check_nchwc(x_b, name):
    """x_b must be a C-contiguous float32 (N, CB, H, W, 16) array."""
    check_array(x_b, name, 5)
    if x_b.shape[4] != BLOCK:
        raise ZFNetError(f"{name} must be NCHW{BLOCK}c (last axis {BLOCK}), got shape {x_b.shape}; "
                         f"convert with nchwc.to_nchwc(x)")
