"""conv2d_nchwc: convolution on the channel-blocked layout NCHW16c (see nchwc.py), without BLAS.

    y_b[n, fb, i, j, co] = b_b[fb*B + co]
                         + sum_{cb, u, v, ci} w_b[fb, cb, u, v, ci, co] * x_pad_b[n, cb, i*sh + u, j*sw + v, ci]

then max(., 0) if relu (fused, as MLAS fuses the activation). x_pad_b is x_b with (ph, pw) zeros
on each side of each plane. This is conv2d's equation with c = cb*B + ci and f = fb*B + co.

Shapes:  x_b (N, CB, H, W, B), w_b (FB, CB, KH, KW, B, B), b_b (FB*B,)  ->  y_b (N, FB, H', W', B)

    H' = floor((H + 2*ph - KH) / sh) + 1,        W' = floor((W + 2*pw - KW) / sw) + 1,    B = 16.

Groups are not supported here (ZFNet and SqueezeNet have none); conv2d keeps them.

Micro-kernels, named by their register tile of output pixels x output channels. On AVX2 (8-float
vectors, 16 registers) the tile is 6 pixels x 16 channels (96 accumulators = 12 registers; with
the 2 filter vectors and 1 broadcast, 15 of the 16):

- ``direct_6x16``: any kernel size, stride and padding. The input is first copied into a padded
  plane (so the tile loop has no bounds tests). The H'*W' output pixels of one image are cut into
  tiles of 6 consecutive pixels (a tile may wrap to the next row: each pixel keeps its own input
  offset), and for every input channel (cb, ci) and tap (u, v) the tile is updated as

      acc[r, :] += x_pad_b[n, cb, i_r*sh + u, j_r*sw + v, ci] * w_b[fb, cb, u, v, ci, :]    r < 6

  which is ONNX Runtime's MLAS NCHWc kernel: one broadcast per pixel, one 16-wide filter row
  per (ci, u, v), reused 6 times.
- ``direct_nchw_6x16`` (conv2d_nchwc_from_nchw): direct_6x16 reading a plain NCHW input, for a
  network's first convolution: x_pad[n, c, i*sh + u, j*sw + v] in place of x_pad_b[n, cb, ..., ci],
  so the image's 3 channels are never copied into 16-channel blocks (MLAS's NCHW-input kernel).
- ``pointwise_gemm_6x16``: 1x1, stride 1: a blocked GEMM over the flattened input pixels,
  y_b[n, fb, p, :] = b + sum_{cb, ci} x_b[n, cb, p, ci] * w_b[fb, cb, 0, 0, ci, :]; the 6 pixels
  of a tile are consecutive in memory, so no input offsets are kept. A padded 1x1 convolution
  (SqueezeNet v1.0's conv10) runs here too: each tile pixel is stored at its place inside the
  output's border, and the border, where the only tap is padding, is the bias (_fill_border).

Where Numba compiles 512-bit vectors (AVX-512 hosts, see _codegen.py: one register holds a block,
and there are 32 of them) the tiles span several filter blocks, so each broadcast feeds several
FMAs, as MLAS's AVX-512 kernels hold several filter blocks: ``direct_6x64`` (6 pixels x 4 blocks,
MLAS's own shape: 4 filter loads and 6 broadcasts per 24 FMAs), ``direct_12x32`` and
``pointwise_gemm_12x32`` (12 pixels x 2 blocks: 2 and 12), all with 24 accumulator registers, and
``direct_nchw_6x32`` (6 pixels: with 12, the first layer's 147 taps need more pixel offsets than
the general-purpose registers hold). Each sums in the same order as its 6x16 kernel (the same
bits, tested); the filter blocks left over from a kernel's groups run on the next narrower kernel
(direct_6x64 -> direct_12x32 -> direct_6x16).

`PATHS` names them; `choose_path` is the one rule for which runs on a blocked input. Each
parallel iteration owns a chunk of 48 consecutive output pixels (8 tiles of 6, or 4 of 12) of one
(n, fb) (or group of filter blocks) of the output; its tiles run in order, so the filters stay in
cache. The accumulators live on the stack and LLVM's SLP vectoriser packs them into registers (see
_registers.py); flat offsets are uint64 so Numba adds no negative-index checks.

A tile is stored whole, straight from its registers (_whole_store: constant indices only): a
plane's last tile is shifted back to end at its last pixel, so it writes again, with the same
bits, a few pixels the tile before it wrote (a plane of fewer than 6 pixels, which has no whole
tile, is stored from a copy, _store_tile). The kernels' fast-math flags (FAST) leave out
reassociation, so every sum runs in the order written and the kernels' bits agree.
"""
import functools

import numpy as np
from numba import njit, prange, uint64

from ._codegen import wide_vectors
from ._checks import ZFNetError, check_array, non_negative_pair, positive_pair
from ._registers import call_vectorized, stack_offsets, stack_tile
from ._scratch import aligned_empty
from ._threads import one_at_a_time
from .conv2d import work_buffer
from .nchwc import BLOCK, check_nchwc

TILE = 6                    # output pixels per register tile
ACC = TILE * BLOCK          # accumulators per tile
ACC2 = 2 * ACC              # accumulators per tile of 6 pixels x two filter blocks (direct_nchw_6x32)
CHUNK = 8                   # tiles per parallel iteration (its index arithmetic done once per chunk)
TILE_WIDE = 12              # output pixels per tile of the direct *_12x32 kernels (two filter blocks)
ACC_WIDE = 2 * TILE_WIDE * BLOCK
CHUNK_WIDE = 4              # their tiles per parallel iteration: the same 48 pixels as CHUNK tiles of 6
_B, _T, _ACC, _TW, _HALF = uint64(BLOCK), uint64(TILE), uint64(ACC), uint64(TILE_WIDE), uint64(TILE_WIDE * BLOCK)
ACC_QUAD = 4 * ACC             # accumulators per tile of 6 pixels x four filter blocks (direct_6x64)
_PAIRS, _ONE = uint64(BLOCK // 2), uint64(1)   # direct_6x64's trips of two channel steps per full block
NCHW_STEPS = 3                # direct_nchw_6x32's (channel, tap) pairs per trip
BIAS_MAX = 4 * BLOCK          # the most biases a whole-tile store reads: direct_6x64's four blocks
TILE_MAX = 4 * ACC            # the largest tile: direct_6x64's (also ACC_WIDE)

# LLVM's fast-math flags for the kernels, without reassociation ("reassoc"): every sum runs in the
# order written, so kernels that write the same sums give the same bits (tested); "contract" lets
# each multiply-add be one FMA. With "reassoc" too (fastmath=True), LLVM moved a tile's bias
# addition in among its last FMAs once the tile stayed in registers up to its stores (one pixel
# of six then differed from direct_6x16 by an ulp).
FAST = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}


def conv2d_nchwc_output_size(hw, kernel_size, stride, padding):
    """(H', W') = (floor((H + 2*ph - KH) / sh) + 1, floor((W + 2*pw - KW) / sw) + 1)."""
    (h, w), (kh, kw) = hw, kernel_size
    (sh, sw), (ph, pw) = stride, padding
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ZFNetError(f"kernel {kh}x{kw} (w_b) is larger than the padded input {h + 2 * ph}x{w + 2 * pw}; "
                         f"use a smaller kernel or more padding")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def conv2d_nchwc_reference(x_b, w_b, b_b, stride=(1, 1), padding=(0, 0), relu=False):
    """The equation above, one output pixel at a time. x_b (N, CB, H, W, B) -> y_b (N, FB, H', W', B)."""
    (sh, sw), (ph, pw) = stride, padding
    N, CB, H, W, B = x_b.shape
    FB, _, KH, KW, _, _ = w_b.shape
    Ho, Wo = conv2d_nchwc_output_size((H, W), (KH, KW), stride, padding)
    x_pad = np.pad(x_b, ((0, 0), (0, 0), (ph, ph), (pw, pw), (0, 0)))        # (N, CB, H+2ph, W+2pw, B)
    y_b = np.empty((N, FB, Ho, Wo, B), np.float32)
    for i in range(Ho):
        for j in range(Wo):
            window = x_pad[:, :, i * sh:i * sh + KH, j * sw:j * sw + KW, :]   # (N, CB, KH, KW, B)
            y = np.einsum("ncuvi,fcuvio->nfo", window, w_b, dtype=np.float64)
            y_b[:, :, i, j, :] = (y + b_b.reshape(FB, B)).astype(np.float32)
    return np.maximum(y_b, 0) if relu else y_b


@njit(nogil=True, parallel=True, cache=True)
def _pad_planes(x_b, ph, pw, x_pad):
    """x_pad[n, cb, ph + h, pw + w, :] = x_b[n, cb, h, w, :], zeros around; x_pad (N, CB, H+2ph, W+2pw, B).

    One padded row per iteration, each float written once: a border row is zeroed, an inner row is
    pw zero pixels, the input row, pw zero pixels (zeroing whole planes first wrote the padded
    array twice)."""
    N, CB, H, W, B = x_b.shape
    Hp, Wp = H + 2 * ph, W + 2 * pw
    x, xp = x_b.ravel(), x_pad.ravel()
    side, inner = uint64(pw * B), uint64(W * B)
    for job in prange(N * CB * Hp):
        plane, row = job // Hp, job % Hp
        dst = uint64((plane * Hp + row) * Wp * B)
        if row < ph or row >= ph + H:
            for k in range(uint64(Wp * B)):
                xp[dst + k] = 0.0
        else:
            src = uint64((plane * H + row - ph) * W * B)
            for k in range(side):
                xp[dst + k] = 0.0
                xp[dst + side + inner + k] = 0.0
            for k in range(inner):
                xp[dst + side + k] = x[src + k]


@njit(nogil=True, cache=True, inline="always")
def _store_tile(acc, first, y, y0, count, b, b0, relu):
    """y[y0 + r*B + co] = acc[(first + r)*B + co] + b[b0 + co] (rectified if relu) for r < count.

    The 16 biases are read into a stack array first: read from b between the stores to y (which
    LLVM cannot prove apart from b), they kept every store of the tile scalar."""
    bias = stack_tile(BLOCK)
    for co in range(_B):
        bias[co] = b[uint64(b0) + co]
    for r in range(uint64(count)):
        for co in range(_B):
            v = acc[(uint64(first) + r) * _B + co] + bias[co]
            y[uint64(y0) + r * _B + co] = max(v, 0.0) if relu else v


def _whole_store(tile, blocks, rows=False):
    """The store of a whole register tile of `tile` pixels x `blocks` filter blocks (fb ..):

        y[y0 + q*step + at(r) + co] = acc[(q*tile + r)*B + co] + b[b0 + q*B + co]   (rectified if relu)

    for q < blocks, r < tile, co < B (r < pixels where a plane has fewer than `tile` pixels), with
    at(r) = r*B (consecutive pixels), or at(r) = rows_at[r] with rows=True (each pixel at its own
    offset: a padded 1x1 convolution; otherwise rows_at, any uint64 array, is not read). Every
    index into acc is a constant and the biases are read before the stores (see _store_tile), so
    LLVM stores the tile straight from its registers; a store of a variable pixel count
    (_store_tile) made it copy the whole tile to the stack and back first (RESULTS.md, "Stores
    straight from the registers")."""
    count, size, nb = uint64(tile), uint64(tile * BLOCK), uint64(blocks)

    @njit(nogil=True, inline="always")
    def store(acc, y, y0, step, b, b0, relu, rows_at, pixels):
        if pixels < count:              # a plane of fewer pixels than a tile: from a copy
            part = stack_tile(TILE_MAX)
            for k in range(nb * size):
                part[k] = acc[k]
            for q in range(nb):
                _store_tile(part, q * count, y, uint64(y0) + q * uint64(step), pixels, b, uint64(b0) + q * _B, relu)
            return
        bias = stack_tile(BIAS_MAX)
        for k in range(nb * _B):
            bias[k] = b[uint64(b0) + k]
        for q in range(nb):
            for r in range(count):
                at = rows_at[r] if rows else r * _B
                for co in range(_B):
                    v = acc[q * size + r * _B + co] + bias[q * _B + co]
                    y[uint64(y0) + q * uint64(step) + at + co] = max(v, 0.0) if relu else v
    return store


_store_whole_12x32, _store_whole_rows_12x32 = _whole_store(TILE_WIDE, 2), _whole_store(TILE_WIDE, 2, rows=True)
_store_whole_6x16, _store_whole_rows_6x16 = _whole_store(TILE, 1), _whole_store(TILE, 1, rows=True)
_store_whole_6x32, _store_whole_6x64 = _whole_store(TILE, 2), _whole_store(TILE, 4)


@njit(nogil=True, cache=True, inline="always")
def _tile_start(t, tile, P, Wo, i, j):
    """(p0, i, j): tile t's first pixel p0 = (i, j) of a plane of P pixels, Wo wide. The last tile
    is shifted back to end at the plane's last pixel (p0 = P - tile, so that it is whole: it
    computes again a few pixels of the tile before it, with the same bits), unless P < tile."""
    p0 = t * tile
    if p0 + tile > P and P >= tile:
        p0 = P - tile
        i, j = divmod(p0, Wo)
    return p0, i, j


@njit(nogil=True, cache=True, inline="always")
def _interior_rows(rows, p0, tile, W, Wo, ph, pw):
    """rows[r] = the output offset (in floats, within a plane) of input pixel p0 + r of a 1x1
    convolution padded by (ph, pw): input pixel (i, j) is output pixel (i + ph, j + pw) of a plane
    Wo wide; rows[r] = (p0 + r) * B when unpadded. One division per tile, then a step per pixel."""
    i, j = divmod(p0, W)
    for r in range(tile):
        rows[r] = uint64(((i + ph) * Wo + j + pw) * BLOCK)
        j += 1
        if j == W:
            i, j = i + 1, 0


@njit(nogil=True, cache=True, inline="always")
def _step_6x16(acc, x, w, offsets, x0, w0, ci):
    """One input channel's step of direct_6x16's tile: acc[r, :] += x[offsets[r] + x0 + ci] * w[w0 + ci*B + :].

    The direct kernels call it in a loop of exactly 16 for a full input block (a trip count LLVM
    knows: it keeps a loop with a constant bound, faster than the run-time count, RESULTS.md) and of
    the real channel count for a last, partial block (a 3-channel image): the same steps in the
    same order either way."""
    for r in range(_T):
        xv = x[offsets[r] + x0 + ci]
        for co in range(_B):
            acc[r * _B + co] += xv * w[w0 + ci * _B + co]


@njit(nogil=True, cache=True, inline="always")
def _step_12x32(acc, x, w, offsets, x0, w0, next_fb, ci):
    """_step_6x16 for direct_12x32's tile of 12 pixels x filter blocks fb (w0) and fb + 1 (w0 + next_fb)."""
    for r in range(_TW):
        xv = x[offsets[r] + x0 + ci]
        for co in range(_B):
            acc[r * _B + co] += xv * w[w0 + ci * _B + co]
            acc[_HALF + r * _B + co] += xv * w[w0 + next_fb + ci * _B + co]


@njit(nogil=True, cache=True, inline="always")
def _step_6x64(acc, x, w, offsets, x0, w0, next_fb, next_fb2, next_fb3, ci):
    """_step_6x16 for direct_6x64's tile of 6 pixels x filter blocks fb .. fb + 3 (w0, w0 + next_fb,
    w0 + next_fb2, w0 + next_fb3: unsigned offsets, so the four filter rows load as vectors)."""
    for r in range(_T):
        xv = x[offsets[r] + x0 + ci]
        for co in range(_B):
            acc[r * _B + co] += xv * w[w0 + ci * _B + co]
            acc[_ACC + r * _B + co] += xv * w[w0 + next_fb + ci * _B + co]
            acc[2 * _ACC + r * _B + co] += xv * w[w0 + next_fb2 + ci * _B + co]
            acc[3 * _ACC + r * _B + co] += xv * w[w0 + next_fb3 + ci * _B + co]


@njit(nogil=True, cache=True, inline="always")
def _tile_offsets(offsets, p0, i, j, P, Wo, row0, Wp, sh, sw, unit, tile=TILE):
    """offsets[r] = ((row0 + i_r*sh) * Wp + j_r*sw) * unit for the `tile` output pixels (i_r, j_r)
    from pixel p0 = (i, j) on; returns the pixel after the tile. A tile that runs past the plane's
    last pixel repeats it (computed, not stored); a tile may wrap to the next output row."""
    for r in range(tile):
        offsets[r] = uint64(((row0 + i * sh) * Wp + j * sw) * unit)
        if p0 + r < P - 1:
            j += 1
            if j == Wo:
                i, j = i + 1, 0
    return i, j


@njit(nogil=True, cache=True, inline="always")
def _job_tiles(job, FB, chunks, T, chunk_tiles=CHUNK):
    """Parallel iteration `job` -> (n, fb, first tile, end tile): a chunk of `chunk_tiles` tiles of one (n, fb)."""
    n, fb, chunk = job // (FB * chunks), (job // chunks) % FB, job % chunks
    return n, fb, chunk * chunk_tiles, min(chunk * chunk_tiles + chunk_tiles, T)


@njit(nogil=True, parallel=True, cache=True, fastmath=FAST)
def _direct_6x16(x, w, b, y, N, C, CB, Hp, Wp, FB, KH, KW, Ho, Wo, sh, sw, relu, FBo, fbo):
    """direct_6x16: y_b = conv(x_pad_b, w_b) + b_b on flat arrays; any KH, KW, stride (padding done).

    y is (N, FBo, H', W', B), of which blocks fbo .. fbo + FB - 1 are written (see conv2d_nchwc's out_block).

    Only the C real input channels are read (the last block's zero channels add nothing): a
    3-channel image costs 3/16 of a full block, as in MLAS's kernel for NCHW inputs.
    """
    P = Ho * Wo
    T = (P + TILE - 1) // TILE
    chunks = (T + CHUNK - 1) // CHUNK
    for job in prange(N * FB * chunks):
        n, fb, t_first, t_end = _job_tiles(job, FB, chunks, T)
        offsets = stack_offsets(TILE)       # x_pad_b[n, 0, i_r*sh, j_r*sw, 0] for the tile's 6 pixels
        acc = stack_tile(ACC)
        i, j = divmod(t_first * TILE, Wo)   # the output pixel (i, j) that starts the chunk
        for t in range(t_first, t_end):
            p0, i, j = _tile_start(t, TILE, P, Wo, i, j)
            i, j = _tile_offsets(offsets, p0, i, j, P, Wo, n * CB * Hp, Wp, sh, sw, BLOCK)
            for k in range(uint64(ACC)):
                acc[k] = 0.0
            for cb in range(CB):
                real = min(BLOCK, C - cb * BLOCK)        # the block's real input channels
                for u in range(KH):
                    for v in range(KW):
                        x0 = uint64(((cb * Hp + u) * Wp + v) * BLOCK)
                        w0 = uint64((((fb * CB + cb) * KH + u) * KW + v) * BLOCK * BLOCK)
                        if real == BLOCK:                # a full block: a loop of exactly 16 steps
                            for ci in range(_B):
                                _step_6x16(acc, x, w, offsets, x0, w0, ci)
                        else:
                            for ci in range(uint64(real)):
                                _step_6x16(acc, x, w, offsets, x0, w0, ci)
            y0 = ((n * FBo + fbo + fb) * P + p0) * BLOCK
            _store_whole_6x16(acc, y, y0, 0, b, fb * BLOCK, relu, offsets, P)


@functools.lru_cache(maxsize=64)
def nchw_taps(C, Hp, Wp, KH, KW):
    """The (channel, tap) pairs of direct_nchw_6x16 in its summation order (cb, u, v, ci), as
    (x_taps, w_rows): x_taps[q] = (c*Hp + u)*Wp + v, the flat offset into one padded image, and
    w_rows[q] = ((cb*KH + u)*KW + v)*B + ci, the row of w_b[fb] (viewed as (CB*KH*KW*B, B)) that
    pair reads. Read-only, computed once per layer shape."""
    CB = (C + BLOCK - 1) // BLOCK
    x_taps, w_rows = [], []
    for cb in range(CB):
        for u in range(KH):
            for v in range(KW):
                for ci in range(min(BLOCK, C - cb * BLOCK)):
                    x_taps.append(((cb * BLOCK + ci) * Hp + u) * Wp + v)
                    w_rows.append(((cb * KH + u) * KW + v) * BLOCK + ci)
    x_taps, w_rows = np.array(x_taps, np.uint64), np.array(w_rows, np.int64)
    x_taps.flags.writeable = w_rows.flags.writeable = False
    return x_taps, w_rows


@njit(nogil=True, parallel=True, cache=True, fastmath=FAST)
def _direct_nchw_6x16(x, w_rows, b, y, x_taps, N, C, Hp, Wp, FB, Ho, Wo, sh, sw, relu, FBo, fbo):
    """direct_nchw_6x16: direct_6x16 on a plain NCHW input x_pad (N, C, Hp, Wp), channel c = cb*B + ci
    read where it lies (x_pad[n, c, i*sh + u, j*sw + v]): an image's 3 channels are never copied
    into a 16-channel block (MLAS's kernel for NCHW inputs). The same sums in the same order, over
    one flat list of the C*KH*KW (channel, tap) pairs (nchw_taps): with 3 channels the loops over
    u, v and ci would each be too short to keep the registers busy. w_rows (FB, C*KH*KW, B) holds
    just the filter rows those pairs read, in that order: in w_b they lie 1 KB apart (a 16x16 block
    per tap), and 147 such lines share a handful of L1 cache sets."""
    P = Ho * Wo
    T = (P + TILE - 1) // TILE
    chunks = (T + CHUNK - 1) // CHUNK
    Q = x_taps.shape[0]
    for job in prange(N * FB * chunks):
        n, fb, t_first, t_end = _job_tiles(job, FB, chunks, T)
        offsets = stack_offsets(TILE)       # x_pad[n, 0, i_r*sh, j_r*sw] for the tile's 6 pixels
        acc = stack_tile(ACC)
        i, j = divmod(t_first * TILE, Wo)
        w_fb = uint64(fb * Q * BLOCK)
        for t in range(t_first, t_end):
            p0, i, j = _tile_start(t, TILE, P, Wo, i, j)
            i, j = _tile_offsets(offsets, p0, i, j, P, Wo, n * C * Hp, Wp, sh, sw, 1)
            for k in range(uint64(ACC)):
                acc[k] = 0.0
            for q in range(Q):
                x0, w0 = x_taps[q], w_fb + uint64(q) * _B
                for r in range(_T):
                    xv = x[offsets[r] + x0]
                    for co in range(_B):
                        acc[r * _B + co] += xv * w_rows[w0 + co]
            y0 = ((n * FBo + fbo + fb) * P + p0) * BLOCK
            _store_whole_6x16(acc, y, y0, 0, b, fb * BLOCK, relu, offsets, P)


@njit(nogil=True, cache=True, inline="always")
def _step_nchw_6x32(acc, x, w_rows, offsets, x_taps, w_fb, next_fb, q):
    """(channel, tap) pair q of direct_nchw_6x32's tile: acc[r, :] += x[offsets[r] + x_taps[q]] * w_rows[fb, q, :]
    for filter blocks fb (w_fb) and fb + 1 (w_fb + next_fb)."""
    x0, w0 = x_taps[q], w_fb + uint64(q) * _B
    for r in range(_T):
        xv = x[offsets[r] + x0]
        for co in range(_B):
            acc[r * _B + co] += xv * w_rows[w0 + co]
            acc[_ACC + r * _B + co] += xv * w_rows[w0 + next_fb + co]


@njit(nogil=True, parallel=True, cache=True, fastmath=FAST)
def _direct_nchw_6x32(x, w_rows, b, y, x_taps, N, C, Hp, Wp, FB, Ho, Wo, sh, sw, relu, FBo, fbo):
    """direct_nchw_6x32: direct_nchw_6x16 on tiles of 6 pixels x 2 filter blocks, FB even (see
    direct_12x32; tiles of 12 pixels were slower here, RESULTS.md: each of the 147 taps then needs
    12 pixel offsets, more than the general-purpose registers hold); the same sums in the same
    order, so the same bits. Three pairs per trip of the loop (NCHW_STEPS; the first layer's 147
    are 49 trips): as direct_6x64's two steps per trip, the next pair's loads go among this pair's
    FMAs (RESULTS.md, "Two steps per trip")."""
    P = Ho * Wo
    T = (P + TILE - 1) // TILE
    chunks = (T + CHUNK - 1) // CHUNK
    Q = x_taps.shape[0]
    FP = FB // 2
    next_fb = uint64(Q * BLOCK)                               # from w_rows[fb] to w_rows[fb + 1]
    for job in prange(N * FP * chunks):
        n, fp, t_first, t_end = _job_tiles(job, FP, chunks, T)
        fb = 2 * fp
        offsets = stack_offsets(TILE)
        acc = stack_tile(ACC2)
        i, j = divmod(t_first * TILE, Wo)
        w_fb = uint64(fb * Q * BLOCK)
        for t in range(t_first, t_end):
            p0, i, j = _tile_start(t, TILE, P, Wo, i, j)
            i, j = _tile_offsets(offsets, p0, i, j, P, Wo, n * C * Hp, Wp, sh, sw, 1)
            for k in range(uint64(ACC2)):
                acc[k] = 0.0
            for q3 in range(Q // NCHW_STEPS):        # three pairs per trip, then the 0-2 left over
                _step_nchw_6x32(acc, x, w_rows, offsets, x_taps, w_fb, next_fb, NCHW_STEPS * q3)
                _step_nchw_6x32(acc, x, w_rows, offsets, x_taps, w_fb, next_fb, NCHW_STEPS * q3 + 1)
                _step_nchw_6x32(acc, x, w_rows, offsets, x_taps, w_fb, next_fb, NCHW_STEPS * q3 + 2)
            for q in range(Q - Q % NCHW_STEPS, Q):
                _step_nchw_6x32(acc, x, w_rows, offsets, x_taps, w_fb, next_fb, q)
            y0 = ((n * FBo + fbo + fb) * P + p0) * BLOCK
            _store_whole_6x32(acc, y, y0, P * BLOCK, b, fb * BLOCK, relu, offsets, P)


@njit(nogil=True, parallel=True, cache=True, fastmath=FAST)
def _pointwise_gemm_6x16(x, w, b, y, N, CB, W, P, FB, relu, FBo, fbo, Wo, Po, ph, pw):
    """pointwise_gemm_6x16: y_b[n, fb, p, :] = b + sum_{cb, ci} x_b[n, cb, p, ci] w_b[fb, cb, ci, :]; needs P >= 6.

    x's planes are P = H*W pixels, W wide. y is (N, FBo, Po, B), of which blocks fbo .. fbo + FB - 1
    are written: input pixel (i, j) to output pixel (i + ph, j + pw) of a plane Wo wide (Po = Wo*H'
    pixels); with padding the plane's border is _fill_border's, not this kernel's."""
    T = (P + TILE - 1) // TILE
    chunks = (T + CHUNK - 1) // CHUNK
    for job in prange(N * FB * chunks):
        n, fb, t_first, t_end = _job_tiles(job, FB, chunks, T)
        acc = stack_tile(ACC)
        rows = stack_offsets(TILE)
        for t in range(t_first, t_end):
            p0 = min(t * TILE, P - TILE)        # the last tile is shifted back to stay inside
            for k in range(uint64(ACC)):
                acc[k] = 0.0
            for cb in range(CB):
                x0 = uint64(((n * CB + cb) * P + p0) * BLOCK)
                w0 = uint64((fb * CB + cb) * BLOCK * BLOCK)
                for ci in range(_B):
                    for r in range(_T):
                        xv = x[x0 + r * _B + ci]
                        for co in range(_B):
                            acc[r * _B + co] += xv * w[w0 + ci * _B + co]
            plane = (n * FBo + fbo + fb) * Po * BLOCK
            if ph == 0 and pw == 0:             # whole tiles, as pointwise_gemm_12x32 stores them
                _store_whole_6x16(acc, y, plane + p0 * BLOCK, 0, b, fb * BLOCK, relu, rows, TILE)
            else:
                _interior_rows(rows, p0, TILE, W, Wo, ph, pw)
                _store_whole_rows_6x16(acc, y, plane, 0, b, fb * BLOCK, relu, rows, TILE)


@njit(nogil=True, parallel=True, cache=True, fastmath=FAST)
def _direct_12x32(x, w, b, y, N, C, CB, Hp, Wp, FB, KH, KW, Ho, Wo, sh, sw, relu, FBo, fbo):
    """direct_12x32: direct_6x16 on tiles of 12 pixels x 2 filter blocks (fb, fb + 1), FB even.

    Each broadcast input value feeds 2 FMAs and each filter row 12: 24 accumulator registers of 16
    floats (AVX-512 has 32), as MLAS's AVX-512 kernels hold several filter blocks; per FMA, a
    quarter of direct_6x16's filter traffic from L2. The same sums in the same order as
    direct_6x16, so the same bits."""
    P = Ho * Wo
    T = (P + TILE_WIDE - 1) // TILE_WIDE
    chunks = (T + CHUNK_WIDE - 1) // CHUNK_WIDE
    FP = FB // 2
    next_fb = uint64(CB * KH * KW * BLOCK * BLOCK)           # from w_b[fb] to w_b[fb + 1]
    for job in prange(N * FP * chunks):
        n, fp, t_first, t_end = _job_tiles(job, FP, chunks, T, CHUNK_WIDE)
        fb = 2 * fp
        offsets = stack_offsets(TILE_WIDE)
        acc = stack_tile(ACC_WIDE)          # acc[:ACC_WIDE/2]: block fb, the rest: block fb + 1
        i, j = divmod(t_first * TILE_WIDE, Wo)
        for t in range(t_first, t_end):
            p0, i, j = _tile_start(t, TILE_WIDE, P, Wo, i, j)
            i, j = _tile_offsets(offsets, p0, i, j, P, Wo, n * CB * Hp, Wp, sh, sw, BLOCK, TILE_WIDE)
            for k in range(uint64(ACC_WIDE)):
                acc[k] = 0.0
            for cb in range(CB):
                real = min(BLOCK, C - cb * BLOCK)
                for u in range(KH):
                    for v in range(KW):
                        x0 = uint64(((cb * Hp + u) * Wp + v) * BLOCK)
                        w0 = uint64((((fb * CB + cb) * KH + u) * KW + v) * BLOCK * BLOCK)
                        if real == BLOCK:
                            for ci in range(_B):
                                _step_12x32(acc, x, w, offsets, x0, w0, next_fb, ci)
                        else:
                            for ci in range(uint64(real)):
                                _step_12x32(acc, x, w, offsets, x0, w0, next_fb, ci)
            y0 = ((n * FBo + fbo + fb) * P + p0) * BLOCK
            _store_whole_12x32(acc, y, y0, P * BLOCK, b, fb * BLOCK, relu, offsets, P)


@njit(nogil=True, parallel=True, cache=True, fastmath=FAST)
def _direct_6x64(x, w, b, y, N, C, CB, Hp, Wp, FB, KH, KW, Ho, Wo, sh, sw, relu, FBo, fbo):
    """direct_6x64: direct_6x16 on tiles of 6 pixels x 4 filter blocks (fb .. fb + 3), FB a multiple
    of 4: MLAS's AVX-512 tile. Each broadcast input value feeds 4 FMAs and each filter row 6: 24
    accumulator registers, 10 loads per 24 FMAs (direct_12x32: 14). The same sums in the same order
    as direct_6x16, so the same bits.

    A full input block runs as 8 trips of two channel steps: LLVM then issues the next step's four
    filter loads among the current step's FMAs, where a trip of one step began with them (faster on
    every 3x3 and 5x5 layer measured: RESULTS.md, "Two steps per trip"); four or more steps per
    trip no longer fit the registers."""
    P = Ho * Wo
    T = (P + TILE - 1) // TILE
    chunks = (T + CHUNK - 1) // CHUNK
    FQ = FB // 4
    next_fb = uint64(CB * KH * KW * BLOCK * BLOCK)          # from w_b[fb] to w_b[fb + 1]
    next_fb2, next_fb3 = next_fb + next_fb, next_fb + next_fb + next_fb
    for job in prange(N * FQ * chunks):
        n, fq, t_first, t_end = _job_tiles(job, FQ, chunks, T)
        fb = 4 * fq
        offsets = stack_offsets(TILE)
        acc = stack_tile(ACC_QUAD)          # acc[q*ACC:(q+1)*ACC]: block fb + q
        i, j = divmod(t_first * TILE, Wo)
        for t in range(t_first, t_end):
            p0, i, j = _tile_start(t, TILE, P, Wo, i, j)
            i, j = _tile_offsets(offsets, p0, i, j, P, Wo, n * CB * Hp, Wp, sh, sw, BLOCK)
            for k in range(uint64(ACC_QUAD)):
                acc[k] = 0.0
            for cb in range(CB):
                real = min(BLOCK, C - cb * BLOCK)
                for u in range(KH):
                    for v in range(KW):
                        x0 = uint64(((cb * Hp + u) * Wp + v) * BLOCK)
                        w0 = uint64((((fb * CB + cb) * KH + u) * KW + v) * BLOCK * BLOCK)
                        if real == BLOCK:                # two steps per trip (_PAIRS, see the docstring)
                            for c2 in range(_PAIRS):
                                _step_6x64(acc, x, w, offsets, x0, w0, next_fb, next_fb2, next_fb3, c2 + c2)
                                _step_6x64(acc, x, w, offsets, x0, w0, next_fb, next_fb2, next_fb3, c2 + c2 + _ONE)
                        else:
                            for ci in range(uint64(real)):
                                _step_6x64(acc, x, w, offsets, x0, w0, next_fb, next_fb2, next_fb3, ci)
            y0 = ((n * FBo + fbo + fb) * P + p0) * BLOCK
            _store_whole_6x64(acc, y, y0, P * BLOCK, b, fb * BLOCK, relu, offsets, P)


@njit(nogil=True, parallel=True, cache=True, fastmath=FAST)
def _pointwise_gemm_12x32(x, w, b, y, N, CB, W, P, FB, relu, FBo, fbo, Wo, Po, ph, pw):
    """pointwise_gemm_12x32: pointwise_gemm_6x16 on tiles of 12 pixels x 2 filter blocks, FB even,
    P >= 12 (see direct_12x32). The same sums in the same order as pointwise_gemm_6x16.

    Every tile stores all its 12 pixels (_whole_store): the last tile, shifted back, writes again
    the pixels the tile before it wrote, with the same bits (the same sums); with 16-64 input
    channels, copying the tile through the stack to store a variable pixel range cost much of the
    time (RESULTS.md, "Stores straight from the registers")."""
    T = (P + TILE_WIDE - 1) // TILE_WIDE
    chunks = (T + CHUNK_WIDE - 1) // CHUNK_WIDE
    FP = FB // 2
    next_fb = uint64(CB * BLOCK * BLOCK)
    for job in prange(N * FP * chunks):
        n, fp, t_first, t_end = _job_tiles(job, FP, chunks, T, CHUNK_WIDE)
        fb = 2 * fp
        acc = stack_tile(ACC_WIDE)
        rows = stack_offsets(TILE_WIDE)
        for t in range(t_first, t_end):
            p0 = min(t * TILE_WIDE, P - TILE_WIDE)      # the last tile is shifted back to stay inside
            for k in range(uint64(ACC_WIDE)):
                acc[k] = 0.0
            for cb in range(CB):
                x0 = uint64(((n * CB + cb) * P + p0) * BLOCK)
                w0 = uint64((fb * CB + cb) * BLOCK * BLOCK)
                for ci in range(_B):
                    for r in range(_TW):
                        xv = x[x0 + r * _B + ci]
                        for co in range(_B):
                            acc[r * _B + co] += xv * w[w0 + ci * _B + co]
                            acc[_HALF + r * _B + co] += xv * w[w0 + next_fb + ci * _B + co]
            plane = (n * FBo + fbo + fb) * Po * BLOCK
            if ph == 0 and pw == 0:             # input pixel p is output pixel p
                _store_whole_12x32(acc, y, plane + p0 * BLOCK, Po * BLOCK, b, fb * BLOCK, relu, rows, TILE_WIDE)
            else:
                _interior_rows(rows, p0, TILE_WIDE, W, Wo, ph, pw)
                _store_whole_rows_12x32(acc, y, plane, Po * BLOCK, b, fb * BLOCK, relu, rows, TILE_WIDE)


@njit(nogil=True, parallel=True, cache=True)
def _fill_border(y, b, relu, FBo, fbo, FB, Ho, Wo, ph, pw):
    """y_b[n, fb, i, j, :] = b (rectified if relu) for the output pixels of a padded 1x1 convolution
    whose only tap is padding (i < ph or i >= H' - ph, j likewise): its sum over no products is 0,
    so the pixel is 0 + b, as direct_6x16 computes it. Blocks fbo .. fbo + FB - 1 of y (N, FBo, H', W', B)."""
    N = y.shape[0]
    for job in prange(N * FB):
        n, fb = job // FB, job % FB
        for i in range(Ho):
            inside_row = ph <= i < Ho - ph
            for j in range(Wo):
                if inside_row and pw <= j < Wo - pw:
                    continue
                for co in range(BLOCK):
                    v = np.float32(0.0) + b[fb * BLOCK + co]
                    y[n, fbo + fb, i, j, co] = max(v, np.float32(0.0)) if relu else v


PATHS = {
    "pointwise_gemm_6x16": "1x1, stride 1, at least 6 input pixels: a blocked GEMM (a padded one's "
                           "output border filled with the bias)",
    "direct_6x16": "any kernel size, stride and padding: direct convolution on padded planes",
    "pointwise_gemm_12x32": "pointwise_gemm_6x16 on tiles of 12 pixels x two filter blocks (at least "
                            "12 pixels), where vectors are 512-bit",
    "direct_12x32": "direct_6x16 on tiles of 12 pixels x two filter blocks, where vectors are 512-bit",
    "direct_6x64": "direct_6x16 on tiles of 6 pixels x four filter blocks (MLAS's AVX-512 tile), where "
                   "vectors are 512-bit",
    "direct_nchw_6x16": "direct_6x16 on a plain NCHW input (conv2d_nchwc_from_nchw): an image, not "
                        "copied into blocks",
    "direct_nchw_6x32": "direct_nchw_6x16 on tiles of 6 pixels x two filter blocks, where vectors are 512-bit",
}
_BLOCKED_PATHS = ("pointwise_gemm_6x16", "direct_6x16", "pointwise_gemm_12x32", "direct_12x32",
                  "direct_6x64")                                        # conv2d_nchwc's
# a wide path's kernel runs on groups of filter blocks; the blocks left over (FB % group) go to
# the next narrower kernel
_GROUP = {"direct_6x64": 4, "pointwise_gemm_12x32": 2, "direct_12x32": 2, "direct_nchw_6x32": 2}
_REST = {"direct_6x64": "direct_12x32", "pointwise_gemm_12x32": "pointwise_gemm_6x16", "direct_12x32": "direct_6x16",
         "direct_nchw_6x32": "direct_nchw_6x16"}
_NCHW_PATHS = ("direct_nchw_6x16", "direct_nchw_6x32")                    # conv2d_nchwc_from_nchw's
WIDE = wide_vectors()       # Numba compiles 512-bit vectors in this process (AVX-512 hosts, _codegen.py)


def choose_path(kernel_size, stride, padding, out_hw, wide=None):
    """The name in PATHS of the micro-kernel for this layer on a blocked input (the one rule, no
    hidden thresholds; a plain NCHW input runs direct_nchw_6x16, conv2d_nchwc_from_nchw).

    wide (default WIDE): 512-bit vectors, so a tile of 12 pixels x two filter blocks, or of 6
    pixels x four, fits in 24 of the 32 registers (with 8-float vectors it would need 48 of AVX2's
    16, and spill): pointwise_gemm_12x32 (with 12 pixels or more), direct_6x64 (10 loads per 24
    FMAs against direct_12x32's 14: RESULTS.md, "direct_6x64"; with fewer than 4 filter blocks it
    runs direct_12x32).

    A padded 1x1 convolution (SqueezeNet v1.0's conv10 has padding 1) is a pointwise GEMM over
    its input pixels, written inside the output's border, and a border of biases (_fill_border):
    the pixels counted are the input's, (H' - 2ph) x (W' - 2pw)."""
    wide = WIDE if wide is None else wide
    pixels = (out_hw[0] - 2 * padding[0]) * (out_hw[1] - 2 * padding[1])
    if kernel_size == (1, 1) and stride == (1, 1) and pixels >= TILE:
        return "pointwise_gemm_12x32" if wide and pixels >= TILE_WIDE else "pointwise_gemm_6x16"
    return "direct_6x64" if wide else "direct_6x16"


def _launches(path, FB, first=0):
    """[(kernel path, first filter block, block count)] for FB filter blocks from block `first`: a
    wide path runs its kernel on groups of blocks (_GROUP), the rest on the next narrower one."""
    size = _GROUP.get(path, 1)
    whole = FB - FB % size
    return ([(path, first, whole)] if whole else []) + (_launches(_REST[path], FB % size, first + whole)
                                                         if FB % size else [])


def _filter_blocks(w, b_b, fb, count):
    """Filter blocks fb .. fb + count - 1 of one launch: their filters (w_b or w_rows, flattened) and biases."""
    return w[fb:fb + count].ravel(), b_b[fb * BLOCK:(fb + count) * BLOCK]


@one_at_a_time
def conv2d_nchwc(x_b, w_b, b_b, stride=1, padding=0, relu=False, path=None, channels=None, out=None, out_block=0):
    """x_b (N, CB, H, W, 16), w_b (FB, CB, KH, KW, 16, 16), b_b (FB*16,) -> y_b (N, FB, H', W', 16).

    `channels`: C, how many of x_b's CB*16 channels are real (default all); direct_6x16 skips the
    rest, which are zero by the layout's rule.
    Prepare w_b and b_b once per layer with nchwc.filters_to_nchwc / nchwc.bias_to_nchwc.
    `path` forces one of PATHS (for tests and benchmarks); by default choose_path decides.
    `out`: a C-contiguous float32 (N, FBo, H', W', 16) array to write y_b into, at its blocks
    out_block .. out_block + FB - 1 (FBo = FB and out_block = 0: a forward pass's preallocated
    buffer; a larger FBo: a concat's output, which this convolution's channels fill in place).
    Returns y_b: `out` itself if it is exactly y_b's shape, else the view of its written blocks.
    """
    check_nchwc(x_b, "x_b")
    check_array(w_b, "w_b", 6)
    check_array(b_b, "b_b", 1)
    N, CB, H, W, _ = x_b.shape
    FB, CBw, KH, KW, _, _ = w_b.shape
    if CBw != CB or w_b.shape[4:] != (BLOCK, BLOCK) or b_b.shape[0] != FB * BLOCK:
        raise ZFNetError(f"w_b {w_b.shape} and b_b {b_b.shape} do not fit x_b {x_b.shape}: expected "
                         f"w_b (FB, {CB}, KH, KW, {BLOCK}, {BLOCK}) and b_b (FB*{BLOCK},); "
                         f"prepare them with nchwc.filters_to_nchwc / nchwc.bias_to_nchwc")
    stride, padding = positive_pair(stride, "stride"), non_negative_pair(padding, "padding")
    Ho, Wo = conv2d_nchwc_output_size((H, W), (KH, KW), stride, padding)
    channels = CB * BLOCK if channels is None else channels
    if not (CB - 1) * BLOCK < channels <= CB * BLOCK:
        raise ZFNetError(f"channels must be in {(CB - 1) * BLOCK + 1}..{CB * BLOCK} for x_b {x_b.shape}, got {channels}")
    path = path or choose_path((KH, KW), stride, padding, (Ho, Wo))
    if path not in _BLOCKED_PATHS:
        raise ZFNetError(f"unknown conv2d_nchwc path {path!r}; choose one of {', '.join(_BLOCKED_PATHS)} "
                         f"(direct_nchw_* are conv2d_nchwc_from_nchw's)")
    y, FBo, y_b = _output(out, out_block, (N, FB, Ho, Wo))
    if path.startswith("pointwise"):
        tile = TILE_WIDE if path == "pointwise_gemm_12x32" else TILE
        if (KH, KW, *stride) != (1, 1, 1, 1) or H * W < tile:
            raise ZFNetError(f"path {path!r} needs a 1x1, stride-1 convolution "
                             f"with at least {tile} input pixels; use path='direct_6x16'")
        ph, pw = padding
        for kernel, fb, count in _launches(path, FB):
            call_vectorized(_KERNELS[kernel], x_b.ravel(), *_filter_blocks(w_b, b_b, fb, count),
                            y.ravel(), N, CB, W, H * W, count, relu, FBo, out_block + fb, Wo, Ho * Wo, ph, pw)
        if ph or pw:
            _fill_border(y, b_b, relu, FBo, out_block, FB, Ho, Wo, ph, pw)
        return y_b
    (ph, pw), (sh, sw) = padding, stride
    x_pad = x_b
    if ph or pw:
        x_pad = work_buffer("nchwc_pad", N * CB * (H + 2 * ph) * (W + 2 * pw) * BLOCK).reshape(
            N, CB, H + 2 * ph, W + 2 * pw, BLOCK)                                  # (N, CB, H+2ph, W+2pw, B)
        _pad_planes(x_b, ph, pw, x_pad)
    for kernel, fb, count in _launches(path, FB):
        call_vectorized(_KERNELS[kernel], x_pad.ravel(), *_filter_blocks(w_b, b_b, fb, count),
                        y.ravel(), N, channels, CB, H + 2 * ph, W + 2 * pw, count, KH, KW, Ho, Wo, sh, sw, relu,
                        FBo, out_block + fb)
    return y_b


@one_at_a_time
def conv2d_nchwc_from_nchw(x, w_b, b_b, stride=1, padding=0, relu=False, out=None, out_block=0, path=None):
    """x (N, C, H, W) plain NCHW, w_b (FB, CB, KH, KW, 16, 16) with CB = ceil(C/16), b_b (FB*16,)
    -> y_b (N, FB, H', W', 16): conv2d_nchwc(nchwc.to_nchwc(x), w_b, b_b, ...) without converting x
    (path direct_nchw_6x16, or direct_nchw_6x32 where vectors are 512-bit; `path` forces one). For a
    network's first convolution: its image has 3 channels, which the blocked layout would pad to
    16. `out`, `out_block` as conv2d_nchwc's.
    """
    check_array(x, "x", 4)
    check_array(w_b, "w_b", 6)
    check_array(b_b, "b_b", 1)
    N, C, H, W = x.shape
    FB, CB, KH, KW, _, _ = w_b.shape
    if CB != (C + BLOCK - 1) // BLOCK or w_b.shape[4:] != (BLOCK, BLOCK) or b_b.shape[0] != FB * BLOCK:
        raise ZFNetError(f"w_b {w_b.shape} and b_b {b_b.shape} do not fit x {x.shape}: expected w_b "
                         f"(FB, {(C + BLOCK - 1) // BLOCK}, KH, KW, {BLOCK}, {BLOCK}) and b_b (FB*{BLOCK},); "
                         f"prepare them with nchwc.filters_to_nchwc / nchwc.bias_to_nchwc")
    stride, padding = positive_pair(stride, "stride"), non_negative_pair(padding, "padding")
    Ho, Wo = conv2d_nchwc_output_size((H, W), (KH, KW), stride, padding)
    path = path or ("direct_nchw_6x32" if WIDE else "direct_nchw_6x16")
    if path not in _NCHW_PATHS:
        raise ZFNetError(f"unknown conv2d_nchwc_from_nchw path {path!r}; choose one of {', '.join(_NCHW_PATHS)}")
    y, FBo, y_b = _output(out, out_block, (N, FB, Ho, Wo))
    (ph, pw), (sh, sw) = padding, stride
    x_pad = x
    if ph or pw:
        x_pad = work_buffer("nchwc_pad", N * C * (H + 2 * ph) * (W + 2 * pw)).reshape(
            N, C, H + 2 * ph, W + 2 * pw, 1)                                       # (N, C, H+2ph, W+2pw, 1)
        _pad_planes(x.reshape(N, C, H, W, 1), ph, pw, x_pad)
    x_taps, rows = nchw_taps(C, H + 2 * ph, W + 2 * pw, KH, KW)
    w_rows = aligned_empty((FB, len(rows), BLOCK))                                # (FB, C*KH*KW, B)
    np.take(w_b.reshape(FB, -1, BLOCK), rows, axis=1, out=w_rows)
    for kernel, fb, count in _launches(path, FB):
        call_vectorized(_KERNELS[kernel], x_pad.ravel(), *_filter_blocks(w_rows, b_b, fb, count), y.ravel(),
                        x_taps, N, C, H + 2 * ph, W + 2 * pw, count, Ho, Wo, sh, sw, relu, FBo, out_block + fb)
    return y_b


_KERNELS = {"pointwise_gemm_6x16": _pointwise_gemm_6x16, "direct_6x16": _direct_6x16,
            "pointwise_gemm_12x32": _pointwise_gemm_12x32, "direct_12x32": _direct_12x32, "direct_6x64": _direct_6x64,
            "direct_nchw_6x16": _direct_nchw_6x16, "direct_nchw_6x32": _direct_nchw_6x32}


def _output(out, out_block, shape):
    """(y, FBo, y_b): the whole array the kernel writes, its block count, and y_b, the view of the
    blocks out_block .. out_block + FB - 1 it fills (y itself when FBo = FB). y is a new
    (N, FB, H', W', B) array, or `out` checked to be such an (N, FBo, H', W', B) array."""
    N, FB, Ho, Wo = shape
    if out is None:
        if out_block != 0:
            raise ZFNetError(f"out_block={out_block} needs out= (the array whose blocks it names)")
        y = aligned_empty((N, FB, Ho, Wo, BLOCK))
        return y, FB, y
    check_nchwc(out, "out")
    FBo = out.shape[1]
    if (out.shape[0], *out.shape[2:]) != (N, Ho, Wo, BLOCK) or FBo < FB:
        raise ZFNetError(f"out must have shape {(N, FB, Ho, Wo, BLOCK)} (or more blocks on axis 1, with "
                         f"out_block), got {out.shape}")
    if isinstance(out_block, bool) or not isinstance(out_block, (int, np.integer)) or not 0 <= out_block <= FBo - FB:
        raise ZFNetError(f"out_block must be an integer from 0 to {FBo - FB} for out {out.shape} and {FB} "
                         f"filter blocks, got {out_block!r}")
    return out, FBo, (out[:, out_block:out_block + FB] if FBo != FB else out)
