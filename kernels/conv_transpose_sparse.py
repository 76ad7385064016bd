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
one window row (v, c) is one contiguous run. Four kernels compute the sum (`PATHS`), serial:

    by_position     groups == 1: each position first sums its nonzero filters into one window
                    (in L1), four filters a pass, then adds the window to out once; always below
                    an unpool (few values at every position, e.g. ZFNet conv1: a window row of 7
                    taps x 3 colours), else up to DENSE of the values nonzero and a filter bank
                    of at most FILTER_BANK_BYTES
    filter_windows  groups == 1, not below an unpool, up to DENSE nonzero, a larger filter bank
                    (ZFNet's conv3-conv5, 3.5-5.3 MB): filter by filter into every position's
                    window, so the bank is read once instead of once per position; then the
                    windows are added to out as by_position's
    by_filter       groups > 1, up to DENSE nonzero: filter by filter (its taps read once), each
                    nonzero value added where it lands (out read and written once per value,
                    slower than by_position where both apply: RESULTS.md)
    columns         many nonzero values (> DENSE of them): every window as a GEMM, then a col2im

`choose_path` is the dispatch; benchmarks/RESULTS.md has the measurements behind it.
"""
import numpy as np
from numba import njit, uint64

from ._checks import ZFNetError
from ._prepared import prepared
from ._scratch import work_buffer

PATHS = ("by_position", "by_filter", "filter_windows", "columns")

# Above this fraction of nonzero values the GEMM and col2im (columns) beat the scatter (by_filter).
DENSE = 0.6
# Above this many bytes of taps (a core's L2 here) by_position streams the filter bank from memory
# once per position; filter_windows reads it once.
FILTER_BANK_BYTES = 2 * 1024 * 1024


def taps(w):
    """Filters w (F, C/G, KH, KW) as taps (F, KH*KW*C/G): row f holds w[f, c, u, v] at (u, v, c).

    Computed once per frozen filter array (kernels/_prepared.py).
    """
    F = w.shape[0]
    return prepared(w, "deconv_taps", lambda w: np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F, -1))


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

@njit(cache=True, fastmath={"contract"})
def _add_window_row(a, src_taps, src, out_flat, dst, v0, v1, C, Cg):
    """out_flat[dst + v*C + c] += a * src_taps[src + v*Cg + c] for v in [v0, v1), c < Cg."""
    if Cg == C:                         # one group: the row is one contiguous run of (v, c)
        for q in range(v0 * C, v1 * C):
            out_flat[uint64(dst + q)] += a * src_taps[uint64(src + q)]
    else:
        for v in range(v0, v1):
            for c in range(Cg):
                out_flat[uint64(dst + v * C + c)] += a * src_taps[uint64(src + v * Cg + c)]


@njit(cache=True, fastmath={"contract"})
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


@njit(cache=True, fastmath={"contract"})
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


@njit(cache=True, fastmath={"contract"})
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


@njit(cache=True, fastmath={"contract"})
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

def choose_path(g, rectify, groups, unpooled, filter_bytes=0):
    """Which kernel adds g's transposed convolution: one of PATHS (see the module docstring).
    filter_bytes: the size of the filters' taps."""
    if groups == 1 and unpooled:
        return "by_position"
    nonzero = np.count_nonzero(g > 0) if rectify else np.count_nonzero(g)
    if nonzero > DENSE * g.size:
        return "columns"
    if groups != 1:
        return "by_filter"
    return "filter_windows" if filter_bytes > FILTER_BANK_BYTES else "by_position"


def conv_transpose_sparse(g, w, stride, groups, offset, out, rectify=False, unpooled=False, path=None):
    """out (h, w, C) += the transposed convolution of g (h', w', F) with w (F, C/G, KH, KW).

    stride (sy, sx); offset (oy, ox) as in the module docstring; rectify: read max(g, 0);
    unpooled: g came from an unpool (one value per pooled unit, the rest zero). path: one of
    PATHS, or None to let choose_path pick. g, w, out float32, C-contiguous. Returns out.
    """
    KH, KW = w.shape[2:]
    (sy, sx), (oy, ox) = stride, offset
    w_taps = taps(w)
    path = choose_path(g, rectify, groups, unpooled, w_taps.nbytes) if path is None else path
    if path not in PATHS or (path in ("by_position", "filter_windows") and groups != 1):
        raise ZFNetError(f"conv_transpose_sparse: path {path!r} with groups={groups}; choose one of "
                         f"{', '.join(PATHS)} (by_position and filter_windows take groups=1 only)")
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
    else:
        columns(g, rectify, w_taps, groups, KH, KW, sy, sx, oy, ox, out)
    return out
