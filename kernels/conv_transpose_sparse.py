"""conv_transpose_sparse: the deconvnet's filter step on one unit's signal, for its nonzero values only.

Shapes (one unit, channels last, no batch): g (h', w', F) the signal on a conv's output box;
w (F, C/G, KH, KW) the conv's filters; out (h, w, C) the signal on its input's box, ADDED to.

    out[oy + i*sy + u, ox + j*sx + v, c0(f) + c] += g'[i, j, f] * w[f, c, u, v]

for every (i, j, f) with g'[i, j, f] != 0, every tap u < KH, v < KW, c < C/G whose target lies
in out's box, where

    g' = max(g, 0) if rectify else g        (a deconvnet ReLU just above, applied as g is read)
    c0(f) = (f // (F/G)) * (C/G)            (the input channels of filter f's group)

(oy, ox): where the window of g's first position starts in out's box, a*sy - py - y0 for g's
box starting at row a and out's at row y0 (negative: in the padding or above the box). Targets
outside out's box lie in the padding, or outside the receptive field, and are left out. This is
kernels.conv_transpose2d on boxes: the same float32 products, summed in another order.

The filters are read as taps (F, KH*KW*C/G): row f holds w[f, c, u, v] at (u, v, c), so that
one window row (v, c) is one contiguous run (and, for the register-tiled paths, in the blocks
those read: tile_taps, window_taps). Six kernels compute the sum (`PATHS`):

    by_position     groups == 1: each position first sums its nonzero filters into one window
                    (in L1), four filters a pass, then adds the window to out once
    window_tiles    groups == 1, always below an unpool (few values at every position: ZFNet
                    conv1's 8%): each position's nonzero values packed by a compress
                    (pack_nonzero), then its window in tiles of 14 vectors held in registers over
                    those values, added to out row by row; bands of position rows in parallel
    filter_windows  groups == 1, not below an unpool, up to DENSE nonzero, a filter bank larger
                    than FILTER_BANK_BYTES: filter by filter into every position's window, so the
                    bank is read once instead of once per position; then the windows are added to
                    out as by_position's
    position_tiles  groups == 1, C in blocks of 64, at least TILES_DENSITY of the values nonzero (ZFNet's
                    conv3-conv5 steps, about half): a register tile of 6 positions x 64 taps summed
                    over every filter with a value in the tile, zeros included (a GEMM's
                    micro-kernel); blocks of 64 channels in parallel
    by_filter       groups > 1, up to DENSE nonzero: filter by filter (its taps read once), each
                    nonzero value added where it lands (out read and written once per value,
                    slower than by_position where both apply: RESULTS.md)
    columns         many nonzero values (> DENSE of them) and no register-tiled path: every window
                    as a GEMM, then a col2im

`choose_path` is the dispatch; benchmarks/RESULTS.md has the measurements behind it.
"""
import numpy as np
from numba import njit, prange, uint64

from ._checks import ZFNetError
from ._prepared import prepared
from ._registers import call_vectorized, compress_nonzero16, compress_positive16, stack_tile
from ._scratch import work_buffer
from ._threads import one_at_a_time

PATHS = ("by_position", "window_tiles", "by_filter", "filter_windows", "position_tiles", "columns")

# Above this fraction of nonzero values the GEMM and col2im (columns) beat the scatter (by_filter).
DENSE = 0.6
# Above this many bytes of taps (a core's L2 here) by_position streams the filter bank from memory
# once per position; filter_windows reads it once.
FILTER_BANK_BYTES = 2 * 1024 * 1024
# position_tiles' register tile: TILE_POSITIONS positions x TILE_TAPS taps (4 vectors of 16 floats)
TILE_POSITIONS = 6
TILE_TAPS = 64
# position_tiles from this fraction of nonzero values up (it multiplies a tile's zeros too)
TILES_DENSITY = 0.3
# window_tiles' register tile: WINDOW_VECTORS vectors of 16 floats of one position's window
WINDOW_VECTORS = 14
_TP, _TQ, _ACC = TILE_POSITIONS, TILE_TAPS, TILE_POSITIONS * TILE_TAPS
_WV, _WT, _WH = WINDOW_VECTORS, WINDOW_VECTORS * 16, WINDOW_VECTORS * 8
_V = 16                         # floats in a vector (AVX-512)
_TPV = TILE_POSITIONS * _V      # acc[k*_TPV + r*_V + q]: vector k of the tile's position r


def taps(w):
    """Filters w (F, C/G, KH, KW) as taps (F, KH*KW*C/G): row f holds w[f, c, u, v] at (u, v, c).

    Computed once per frozen filter array (kernels/_prepared.py).
    """
    F = w.shape[0]
    return prepared(w, "deconv_taps", lambda w: np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F, -1))


def tile_taps(w):
    """position_tiles' filters: taps(w) as (KH*KW*C/TILE_TAPS, F, TILE_TAPS), block b holding every
    filter's taps b*TILE_TAPS ... + TILE_TAPS (one tap (u, v), 64 channels): what one register
    tile reads is one contiguous run (the hardware prefetchers follow it; rows of taps(w) lie
    KH*KW*C floats apart). C % TILE_TAPS == 0. Computed once per frozen filter array."""
    F = w.shape[0]
    return prepared(w, "deconv_tile_taps",
                    lambda w: np.ascontiguousarray(taps(w).reshape(F, -1, TILE_TAPS).transpose(1, 0, 2)))


def window_taps(w):
    """window_tiles' filters (groups 1): (NT, F, WINDOW_VECTORS*16). Filter f's window, taps(w)[f]
    (KH rows of KW*C floats, one after another), padded with zeros to NT tiles of WINDOW_VECTORS
    vectors; tile t holds every filter's floats t*WINDOW_VECTORS*16 ... Computed once per frozen
    filter array."""
    F, C, KH, KW = w.shape

    def build(w):
        L = KH * KW * C
        NT = -(-L // _WT)
        tiles = np.zeros((F, NT * _WT), np.float32)
        tiles[:, :L] = taps(w)
        return np.ascontiguousarray(tiles.reshape(F, NT, _WT).transpose(1, 0, 2))
    return prepared(w, "deconv_window_taps", build)


def conv_transpose_sparse_reference(g, w, stride, groups, offset, out, rectify=False):
    """NumPy twin: the equation, one nonzero value of g' at a time. Adds into out; returns it."""
    gh, gw, F = g.shape
    oh, ow, C = out.shape
    _, Cg, KH, KW = w.shape
    sy, sx = stride
    oy, ox = offset
    g = np.maximum(g, np.float32(0)) if rectify else g
    for i, j, f in zip(*np.nonzero(g)):
        c0 = (f // (F // groups)) * Cg
        for u in range(KH):
            for v in range(KW):
                row, col = oy + i * sy + u, ox + j * sx + v
                if 0 <= row < oh and 0 <= col < ow:
                    out[row, col, c0:c0 + Cg] += g[i, j, f] * w[f, :, u, v]          # (C/G,)
    return out


# ----------------------------------------------------------------------------------------------
# Numba kernels. Flat arrays and unsigned indices: Numba then knows no index wraps around, and
# vectorises the runs of (v, c) along a row of out.
# ----------------------------------------------------------------------------------------------

@njit(nogil=True, cache=True, fastmath={"contract"})
def _add_window_row(a, src_taps, src, out_flat, dst, v0, v1, C, Cg):
    """out_flat[dst + v*C + c] += a * src_taps[src + v*Cg + c] for v in [v0, v1), c < Cg."""
    if Cg == C:                         # one group: the row is one contiguous run of (v, c)
        for q in range(v0 * C, v1 * C):
            out_flat[uint64(dst + q)] += a * src_taps[uint64(src + q)]
    else:
        for v in range(v0, v1):
            for c in range(Cg):
                out_flat[uint64(dst + v * C + c)] += a * src_taps[uint64(src + v * Cg + c)]


@njit(nogil=True, cache=True, fastmath={"contract"})
def by_filter(g, rectify, w_taps, groups, KH, KW, sy, sx, oy, ox, out):
    """Filter by filter (its taps read once): each nonzero g[i, j, f] added where it lands."""
    gh, gw, F = g.shape
    oh, ow, C = out.shape
    Fg, Cg = F // groups, C // groups
    out_flat = out.ravel()
    for f in range(F):
        filt = w_taps[f]
        c0 = (f // Fg) * Cg
        for i in range(gh):
            for j in range(gw):
                a = g[i, j, f]
                if a == 0 or (rectify and a < 0):
                    continue
                left = ox + j * sx
                v0, v1 = max(0, -left), min(KW, ow - left)
                for u in range(KH):
                    row = oy + i * sy + u
                    if 0 <= row < oh and v0 < v1:
                        _add_window_row(a, filt, u * KW * Cg, out_flat, (row * ow + left) * C + c0, v0, v1, C, Cg)


@njit(nogil=True, cache=True, fastmath={"contract"})
def by_position(g, rectify, w_taps, KH, KW, sy, sx, oy, ox, out, window, nz_f, nz_v):
    """Position by position (one group): a position's nonzero filters summed into one window first.

    window (KH*KW*C,) float32, nz_f (F,) int64, nz_v (F,) float32: work buffers.
    """
    gh, gw, F = g.shape
    oh, ow, C = out.shape
    L = KH * KW * C
    out_flat = out.ravel()
    for i in range(gh):
        for j in range(gw):
            # the nonzero channels at (i, j), listed without a branch (most are zero)
            n = 0
            for f in range(F):
                a = g[i, j, f]
                nz_f[n] = f
                nz_v[n] = a
                n += (a > 0) if rectify else (a != 0)
            if n == 0:
                continue
            for q in range(L):
                window[q] = 0
            k = 0
            while k + 4 <= n:
                a0, a1, a2, a3 = nz_v[k], nz_v[k + 1], nz_v[k + 2], nz_v[k + 3]
                r0, r1, r2, r3 = w_taps[nz_f[k]], w_taps[nz_f[k + 1]], w_taps[nz_f[k + 2]], w_taps[nz_f[k + 3]]
                for q in range(L):
                    window[q] += a0 * r0[q] + a1 * r1[q] + a2 * r2[q] + a3 * r3[q]
                k += 4
            while k < n:
                a0, r0 = nz_v[k], w_taps[nz_f[k]]
                for q in range(L):
                    window[q] += a0 * r0[q]
                k += 1
            left = ox + j * sx
            v0, v1 = max(0, -left), min(KW, ow - left)
            for u in range(KH):
                row = oy + i * sy + u
                if 0 <= row < oh and v0 < v1:
                    _add_window_row(np.float32(1), window, u * KW * C, out_flat, (row * ow + left) * C, v0, v1, C, C)


@njit(nogil=True, cache=True, fastmath={"contract"})
def by_filter_windows(g, rectify, w_taps, KH, KW, sy, sx, oy, ox, out, windows, start, pos, val, used):
    """Filter by filter into every position's window (one group): each filter's taps read once.

    windows[p, :] += g'[p, f] * taps[f, :] for the nonzero g'[p, f], f ascending, then every
    window added to out at its place (as by_position's). by_position reads a position's nonzero
    filters for every position: for a large filter bank (ZFNet's conv3/conv4, 3.5-5.3 MB) that
    streams it from memory once per position; here it is read once, and the windows (P x KH*KW*C)
    stay in the cache. windows (P*L,), start (F+1,) int64, pos (nonzero,) int64, val (nonzero,)
    float32, used (P,) bool: work buffers (pos and val at least P*F long).
    """
    gh, gw, F = g.shape
    oh, ow, C = out.shape
    P, L = gh * gw, KH * KW * C
    g_flat, out_flat = g.ravel(), out.ravel()
    # the nonzero values listed by filter (p ascending within each), and the positions that have any
    for f in range(F + 1):
        start[f] = 0
    for p in range(P):
        used[p] = False
        for f in range(F):
            a = g_flat[uint64(p * F + f)]
            if (a > 0) if rectify else (a != 0):
                start[f + 1] += 1
                used[p] = True
    for f in range(F):
        start[f + 1] += start[f]
    for p in range(P):
        for f in range(F):
            a = g_flat[uint64(p * F + f)]
            if (a > 0) if rectify else (a != 0):
                k = start[f]                    # start[f] is filter f's cursor until the shift below
                pos[k], val[k] = p, a
                start[f] = k + 1
    for f in range(F, 0, -1):
        start[f] = start[f - 1]
    start[0] = 0
    for p in range(P):
        if used[p]:
            for q in range(L):
                windows[uint64(p * L + q)] = 0
    for f in range(F):
        row = w_taps[f]
        for k in range(start[f], start[f + 1]):
            a, w0 = val[k], uint64(pos[k] * L)
            for q in range(L):
                windows[w0 + uint64(q)] += a * row[q]
    for p in range(P):
        if not used[p]:
            continue
        i, j = p // gw, p % gw
        left = ox + j * sx
        v0, v1 = max(0, -left), min(KW, ow - left)
        for u in range(KH):
            row = oy + i * sy + u
            if 0 <= row < oh and v0 < v1:
                _add_window_row(np.float32(1), windows, p * L + u * KW * C, out_flat, (row * ow + left) * C, v0, v1, C, C)


@njit(nogil=True, cache=True, fastmath={"contract"})
def add_columns(windows, groups, KH, KW, sy, sx, oy, ox, gw, out):
    """col2im, channels last: out (h, w, C) += every window of windows (G, h'*w', KH*KW*C/G) at its place."""
    G, P, _ = windows.shape
    oh, ow, C = out.shape
    Cg = C // G
    out_flat = out.ravel()
    for gr in range(G):
        for p in range(P):
            i, j = p // gw, p % gw
            left = ox + j * sx
            v0, v1 = max(0, -left), min(KW, ow - left)
            src_taps = windows[gr, p]
            for u in range(KH):
                row = oy + i * sy + u
                if 0 <= row < oh and v0 < v1:
                    _add_window_row(np.float32(1), src_taps, u * KW * Cg, out_flat, (row * ow + left) * C + gr * Cg,
                                    v0, v1, C, Cg)


@njit(nogil=True, cache=True)
def tile_filters(g, rectify, vals, active, counts):
    """position_tiles' operands: positions in tiles of TILE_POSITIONS (p = i*w' + j), and for tile
    t the filters with a nonzero value at any of its positions ("active"), in ascending order.

    counts[t]: tile t's number of active filters; active[t*F + n]: its n-th; vals[(t*F + n)*TP + r]:
    g'[p, f] at the tile's r-th position (rectified if asked; zero past the last position).
    vals (T*F*TP,) float32, active (T*F,) int64, counts (T,) int64; T = ceil(h'*w' / TP).
    """
    gh, gw, F = g.shape
    P = gh * gw
    g_flat = g.ravel()
    for t in range(counts.shape[0]):
        n = 0
        for f in range(F):
            nonzero = False
            for r in range(_TP):
                p = t * _TP + r
                a = g_flat[uint64(p * F + f)] if p < P else np.float32(0)
                if rectify and a < 0:
                    a = np.float32(0)
                vals[uint64((t * F + n) * _TP + r)] = a
                nonzero |= a != 0
            active[t * F + n] = f           # kept only if the tile has a value of f (n moves on)
            n += nonzero
        counts[t] = n


@njit(nogil=True, parallel=True, cache=True, fastmath=True)
def position_tiles(vals, active, counts, blocks, KH, KW, sy, sx, oy, ox, gw, P, out):
    """A register tile of TILE_POSITIONS positions x TILE_TAPS taps (one tap (u, v), 64 of its
    channels): summed over the tile's active filters (tile_filters), zeros included, then added to
    out where each position's window puts it. 24 accumulator registers of 16 floats: per filter,
    4 loads of taps and 6 broadcasts feed 24 FMAs (direct_12x32's shape turned on its side).

    Each job (a block of TILE_TAPS channels) writes only its own channels of out: the jobs run in
    parallel without a race. C % TILE_TAPS == 0, one group.
    """
    oh, ow, C = out.shape
    F = blocks.shape[1]
    T = counts.shape[0]
    out_flat, taps_flat = out.ravel(), blocks.ravel()
    for cc in prange(C // _TQ):
        acc = stack_tile(_ACC)
        for u in range(KH):
            for v in range(KW):
                b0 = uint64(((u * KW + v) * (C // _TQ) + cc) * F * _TQ)       # blocks[b]
                for t in range(T):
                    for k in range(uint64(_ACC)):
                        acc[k] = 0.0
                    for n in range(counts[t]):
                        w0 = b0 + uint64(active[t * F + n] * _TQ)
                        v0 = uint64((t * F + n) * _TP)
                        for r in range(_TP):
                            a = vals[v0 + r]
                            for q in range(uint64(_V)):     # a statement a vector: the tile unrolls
                                acc[r * _V + q] += a * taps_flat[w0 + q]
                                acc[_TPV + r * _V + q] += a * taps_flat[w0 + uint64(_V) + q]
                                acc[2 * _TPV + r * _V + q] += a * taps_flat[w0 + uint64(2 * _V) + q]
                                acc[3 * _TPV + r * _V + q] += a * taps_flat[w0 + uint64(3 * _V) + q]
                    for r in range(_TP):
                        p = t * _TP + r
                        row, col = oy + (p // gw) * sy + u, ox + (p % gw) * sx + v
                        if p < P and 0 <= row < oh and 0 <= col < ow:
                            o = uint64((row * ow + col) * C + cc * _TQ)
                            for k in range(_TQ // _V):
                                for q in range(_V):
                                    out_flat[o + k * _V + q] += acc[k * _TPV + r * _V + q]


@njit(nogil=True, cache=True)
def pack_nonzero(g, rectify, start, values, filters):
    """Every position's nonzero values of g' (h', w', F), packed: position p = i*w' + j has
    values[start[p] : start[p+1]] of filters filters[...] (ascending). 16 filters at a time by one
    compress (AVX-512 vcompressps: _registers.compress_positive16), the last F % 16 one by one.
    start (h'*w' + 1,) int64; values float32 and filters int32, h'*w'*F + 16 long."""
    gh, gw, F = g.shape
    g_flat = g.ravel()
    n = 0
    for p in range(gh * gw):
        start[p] = n
        for f0 in range(0, F - F % 16, 16):
            if rectify:
                n += compress_positive16(g_flat, p * F + f0, values, filters, n, f0)
            else:
                n += compress_nonzero16(g_flat, p * F + f0, values, filters, n, f0)
        for f in range(F - F % 16, F):
            a = g_flat[p * F + f]
            values[n], filters[n] = a, f
            n += (a > 0) if rectify else (a != 0)
    start[gh * gw] = n


@njit(nogil=True, cache=True, fastmath=True, inline="always")
def _window_tile(i, j, p, t, start, values, filters, taps_flat, F, KH, KW, sy, sx, oy, ox, out_flat, oh, ow, C):
    """window_tiles' step: tile t of position p = (i, j)'s window, summed in registers, added to out
    row by row (window row u is the run of KW*C floats u*KW*C ... of the window, and of out's row)."""
    e0, e1 = start[p], start[p + 1]
    if e0 == e1:
        return
    acc = stack_tile(_WT)
    for k in range(uint64(_WT)):
        acc[k] = 0.0
    b0 = uint64(t * F * _WT)
    for e in range(uint64(e0), uint64(e1)):
        a, w0 = values[e], b0 + uint64(filters[e] * _WT)
        for r in range(_WV // 2):       # two statements a step: LLVM unrolls the tile
            for q in range(uint64(_V)):
                acc[r * _V + q] += a * taps_flat[w0 + uint64(r * _V) + q]
                acc[_WH + r * _V + q] += a * taps_flat[w0 + uint64(_WH + r * _V) + q]
    left = ox + j * sx
    lo, hi = max(0, -left) * C, min(KW, ow - left) * C          # the row's run inside out
    run, first = KW * C, t * _WT                                # a window row; the tile's first float
    for u in range(first // run, min(KH, (first + _WT + run - 1) // run)):
        row = oy + i * sy + u
        qa, qb = max(lo, first - u * run), min(hi, first + _WT - u * run)
        if 0 <= row < oh and qa < qb:
            base = (row * ow + left) * C + first - u * run          # out's float for acc[0]
            for q in range(qa + u * run - first, qb + u * run - first):
                out_flat[uint64(base + q)] += acc[uint64(q)]


@njit(nogil=True, cache=True, fastmath=True, parallel=True)
def window_tiles(g, start, values, filters, tiles, KH, KW, sy, sx, oy, ox, out):
    """Position by position (one group), a tile of WINDOW_VECTORS vectors of its window in registers:
    summed over the position's packed nonzero values (pack_nonzero) times the tile's taps
    (window_taps), then added to out a window row's run at a time (cut where out's box cuts the
    window). Per band of position rows, tiles outer, positions inner: a tile's taps (F x 224 floats,
    86 KB for ZFNet's conv1) come from L2 for every position, not the bank from memory.

    Bands of ceil(KH/sy) position rows write out rows that only the next band's windows reach too:
    the even bands run in parallel, then the odd ones. (Also on one thread this must be a parallel
    function: LLVM packs the tile into 14 registers in Numba's parallel pipeline, and leaves it as
    scalars in memory in the plain one, seen in the assembly.)"""
    gh, gw, F = g.shape
    oh, ow, C = out.shape
    NT = tiles.shape[0]
    band = (KH + sy - 1) // sy
    bands = (gh + band - 1) // band
    out_flat, taps_flat = out.ravel(), tiles.ravel()
    for phase in range(2):
        for b2 in prange((bands - phase + 1) // 2):
            b = 2 * b2 + phase
            for t in range(NT):
                for i in range(b * band, min(gh, (b + 1) * band)):
                    for j in range(gw):
                        _window_tile(i, j, i * gw + j, t, start, values, filters, taps_flat, F, KH, KW, sy, sx,
                                     oy, ox, out_flat, oh, ow, C)


def columns(g, rectify, w_taps, groups, KH, KW, sy, sx, oy, ox, out):
    """Every position's window as a GEMM (one per group), added by add_columns."""
    gh, gw, F = g.shape
    G, P = groups, gh * gw
    if rectify:
        g = np.maximum(g, np.float32(0))
    # windows[gr, p] = g[p, group gr] @ taps of group gr
    windows = np.matmul(g.reshape(P, G, F // G).transpose(1, 0, 2), w_taps.reshape(G, F // G, -1))  # (G, P, KH*KW*C/G)
    add_columns(windows, G, KH, KW, sy, sx, oy, ox, gw, out)


# ----------------------------------------------------------------------------------------------
# The dispatch
# ----------------------------------------------------------------------------------------------

def choose_path(g, rectify, groups, unpooled, filter_bytes=0, out_channels=0):
    """Which kernel adds g's transposed convolution: one of PATHS (see the module docstring).
    filter_bytes: the size of the filters' taps; out_channels: C, the channels of out."""
    if groups == 1 and unpooled:
        return "window_tiles"
    nonzero = np.count_nonzero(g > 0) if rectify else np.count_nonzero(g)
    if groups == 1 and out_channels and out_channels % TILE_TAPS == 0 and nonzero >= TILES_DENSITY * g.size:
        return "position_tiles"
    if nonzero > DENSE * g.size:
        return "columns"
    if groups != 1:
        return "by_filter"
    return "filter_windows" if filter_bytes > FILTER_BANK_BYTES else "by_position"


@one_at_a_time
def conv_transpose_sparse(g, w, stride, groups, offset, out, rectify=False, unpooled=False, path=None):
    """out (h, w, C) += the transposed convolution of g (h', w', F) with w (F, C/G, KH, KW).

    stride (sy, sx); offset (oy, ox) as in the module docstring; rectify: read max(g, 0);
    unpooled: g came from an unpool (one value per pooled unit, the rest zero). path: one of
    PATHS, or None to let choose_path pick. g, w, out float32, C-contiguous. Returns out.
    """
    KH, KW = w.shape[2:]
    (sy, sx), (oy, ox) = stride, offset
    if path is None:                    # taps(w) holds w's floats in another order: w.nbytes bytes
        path = choose_path(g, rectify, groups, unpooled, w.nbytes, out.shape[2])
    if path not in PATHS or (path in ("by_position", "window_tiles", "filter_windows", "position_tiles") and groups != 1):
        raise ZFNetError(f"conv_transpose_sparse: path {path!r} with groups={groups}; choose one of "
                         f"{', '.join(PATHS)} (by_position, window_tiles, filter_windows and position_tiles "
                         f"take groups=1 only)")
    if path == "position_tiles" and out.shape[2] % TILE_TAPS:
        raise ZFNetError(f"conv_transpose_sparse: path 'position_tiles' needs the input channels (out's last axis, "
                         f"{out.shape[2]}) in blocks of {TILE_TAPS}; choose another of {', '.join(PATHS)}")
    w_taps = taps(w) if path in ("by_position", "by_filter", "filter_windows", "columns") else None
    if path == "by_position":
        F = g.shape[2]
        by_position(g, rectify, w_taps, KH, KW, sy, sx, oy, ox, out,
                    np.empty(w_taps.shape[1], np.float32), np.empty(F, np.int64), np.empty(F, np.float32))
    elif path == "by_filter":
        by_filter(g, rectify, w_taps, groups, KH, KW, sy, sx, oy, ox, out)
    elif path == "filter_windows":
        gh, gw, F = g.shape
        P, L = gh * gw, w_taps.shape[1]
        by_filter_windows(g, rectify, w_taps, KH, KW, sy, sx, oy, ox, out, work_buffer("deconv_windows", P * L),
                          np.empty(F + 1, np.int64), np.empty(P * F, np.int64), np.empty(P * F, np.float32),
                          np.empty(P, np.bool_))
    elif path == "window_tiles":
        gh, gw, F = g.shape
        P = gh * gw
        start = np.empty(P + 1, np.int64)
        values, filters = work_buffer("deconv_values", P * F + 16), work_buffer("deconv_filters", P * F + 16).view(np.int32)
        pack_nonzero(g, rectify, start, values, filters)
        call_vectorized(window_tiles, g, start, values, filters, window_taps(w), KH, KW, sy, sx, oy, ox, out)
    elif path == "position_tiles":
        gh, gw, F = g.shape
        T = (gh * gw + TILE_POSITIONS - 1) // TILE_POSITIONS
        vals, active, counts = work_buffer("deconv_tiles", T * F * TILE_POSITIONS), np.empty(T * F, np.int64), np.empty(T, np.int64)
        tile_filters(g, rectify, vals, active, counts)
        call_vectorized(position_tiles, vals, active, counts, tile_taps(w), KH, KW, sy, sx, oy, ox, gw, gh * gw, out)
    else:
        columns(g, rectify, w_taps, groups, KH, KW, sy, sx, oy, ox, out)
    return out
