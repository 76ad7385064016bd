"""The sparse walk: one unit's cropped projection, skipping the zeros (project()'s fast path).

Shape legend: C/F = channels below/above a layer, (h, w) a tensor's box (crop.py), (h', w') the
box of the layer's output. Signals here are channels-last, (h, w, C), one unit at a time.

The deconvnet signal of a single unit is mostly zeros on the way down: every unpooled map holds
one value per pooled unit (at its switch) and zeros elsewhere, and each rectification zeroes
about half of what is left (ZFNet conv5, measured: 8% of the signal below pool1 and pool2 is
nonzero, 50% below relu3 and relu4). The dense rules (backward.py) multiply all those zeros; this
walk does work in proportion to the nonzero values only:

    filter      x[y*sh + u - ph, x*sw + v - pw, c] += g[y, x, f] * w[f, c, u, v]
                for the nonzero g[y, x, f] only, the filters stored as taps w[f, u, v, :] so that
                a window row (v, c) is one contiguous run; below an unpool (few values at every
                position, ZFNet conv1 and conv2) position by position, the nonzero filters of a
                position summed into one window first (_filter_by_position); else filter by
                filter, each read once for all the positions it is nonzero at (_filter_sparse);
                a signal with few zeros takes a GEMM and a col2im (_add_columns).
    unpool      x[switch] += g: each pooled value at its switch; values that share a switch
                (overlapping windows) add up before anything reads them.
    rectify     (deconvnet) not a pass of its own: the next filter or unpool reads max(g, 0),
                so zeros made by the rectification are skipped like the others.
    mask        (guided) g = max(g, 0) * [forward input > 0].
    lrn, dropout   the identity: nothing to do.

Everything else is what the dense walk does, on the same boxes, with the same float32 products,
summed in another order: the tests compare the two walks and PyTorch autograd.

The walk covers the deconvnet and guided modes on chains (every tensor below the unit read by
one layer) of convolutions, ReLUs, max-pools, dropout and LRN layers passed through
(lrn="identity"): ZFNet, AlexNet/CaffeNet, VGG. ``supports`` says when; project() walks the
others (branches, average pools, the LRN gradient, the gradient mode) by the rules of backward.py.
"""
import numpy as np
from numba import njit, uint64

from zfnet.kernels import prepared
from zfnet.net.graph import INPUT
from zfnet.deconv.crop import ancestors

OPS = ("conv", "relu", "maxpool", "dropout", "lrn")


def supports(arch, start, mode, lrn):
    """True when the walk from tensor `start` is a chain of OPS, LRNs passed through, and the mode
    rectifies (deconvnet, guided).

    The gradient mode is left to backward.py: its signal keeps both signs, and where large terms
    cancel, this walk's summation order moves the result by ~1e-6 of its largest value, more
    than the 1e-6 the tests allow between the cropped and the dense walk.
    """
    if mode not in ("deconvnet", "guided"):
        return False
    below = start
    for layer in ancestors(arch, start):
        if layer.name != below or layer.op not in OPS or len(layer.inputs) != 1:
            return False                # a branch point, or an op with no sparse rule
        if layer.op == "lrn" and lrn != "identity":
            return False
        below = layer.inputs[0]
    return below == INPUT


def taps(w):
    """Filters w (F, C/G, KH, KW) as taps (F, KH*KW*C/G): row f holds w[f, c, u, v] at (u, v, c).

    Computed once per frozen filter array (kernels/_prepared.py).
    """
    F = w.shape[0]
    return prepared(w, "deconv_taps", lambda w: np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(F, -1))


# ----------------------------------------------------------------------------------------------
# Numba kernels, serial (one unit's boxes are small). Flat arrays and unsigned indices: Numba then
# knows no index wraps around, and vectorises the runs of (v, c) along a row of x.
# ----------------------------------------------------------------------------------------------

@njit(cache=True, fastmath={"contract"})
def _add_window(a, r, src, x, dst, v0, v1, C, Cg):
    """x[dst + v*C + c] += a * r[src + v*Cg + c] for v in [v0, v1), c < Cg: one row of a window."""
    if Cg == C:                         # one group: the row is one contiguous run of (v, c)
        for q in range(v0 * C, v1 * C):
            x[uint64(dst + q)] += a * r[uint64(src + q)]
    else:
        for v in range(v0, v1):
            for c in range(Cg):
                x[uint64(dst + v * C + c)] += a * r[uint64(src + v * Cg + c)]


@njit(cache=True, fastmath={"contract"})
def _filter_sparse(g, rectify, w_taps, groups, KH, KW, sh, sw, oy, ox, x):
    """x (h, w, C) += the transposed convolution of g (h', w', F), for the nonzero g only.

    For each filter f (its taps read once), every position (i, j) where g[i, j, f] != 0 adds
    g[i, j, f] * w[f, c, u, v] at x[oy + i*sh + u, ox + j*sw + v, c]; taps outside x's box lie in
    the padding and are left out. w_taps (F, KH*KW*C/G) from `taps`; rectify: read max(g, 0).
    """
    hp, wp, F = g.shape
    h, w, C = x.shape
    Fg, Cg = F // groups, C // groups
    xf = x.ravel()
    for f in range(F):
        r = w_taps[f]
        c0 = (f // Fg) * Cg
        for i in range(hp):
            for j in range(wp):
                a = g[i, j, f]
                if a == 0 or (rectify and a < 0):
                    continue
                xj = ox + j * sw
                v0, v1 = max(0, -xj), min(KW, w - xj)
                for u in range(KH):
                    y = oy + i * sh + u
                    if 0 <= y < h and v0 < v1:
                        _add_window(a, r, u * KW * Cg, xf, (y * w + xj) * C + c0, v0, v1, C, Cg)


@njit(cache=True, fastmath={"contract"})
def _filter_by_position(g, rectify, w_taps, KH, KW, sh, sw, oy, ox, x, cols, nz_f, nz_v):
    """The same sum as _filter_sparse (one group), position by position: for short rows.

    Where a window row is short (ZFNet conv1: 7 taps x 3 colours), adding it for every nonzero
    value costs more in loop overhead than in arithmetic. Here each position (i, j) first sums
    its nonzero filters into one window, cols (KH*KW*C,), four filters per pass, then adds the
    window onto x once. nz_f (F,) int64, nz_v (F,) float32: work buffers.
    """
    hp, wp, F = g.shape
    h, w, C = x.shape
    L = KH * KW * C
    xf = x.ravel()
    for i in range(hp):
        for j in range(wp):
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
                cols[q] = 0
            k = 0
            while k + 4 <= n:
                a0, a1, a2, a3 = nz_v[k], nz_v[k + 1], nz_v[k + 2], nz_v[k + 3]
                r0, r1, r2, r3 = w_taps[nz_f[k]], w_taps[nz_f[k + 1]], w_taps[nz_f[k + 2]], w_taps[nz_f[k + 3]]
                for q in range(L):
                    cols[q] += a0 * r0[q] + a1 * r1[q] + a2 * r2[q] + a3 * r3[q]
                k += 4
            while k < n:
                a0, r0 = nz_v[k], w_taps[nz_f[k]]
                for q in range(L):
                    cols[q] += a0 * r0[q]
                k += 1
            xj = ox + j * sw
            v0, v1 = max(0, -xj), min(KW, w - xj)
            for u in range(KH):
                y = oy + i * sh + u
                if 0 <= y < h and v0 < v1:
                    _add_window(np.float32(1), cols, u * KW * C, xf, (y * w + xj) * C, v0, v1, C, C)


@njit(cache=True, fastmath={"contract"})
def _add_columns(cols, groups, KH, KW, sh, sw, oy, ox, wp, x):
    """x (h, w, C) += every window of cols (G, h'*w', KH*KW*C/G) at its place (col2im, channels last)."""
    G, P, _ = cols.shape
    h, w, C = x.shape
    Cg = C // G
    xf = x.ravel()
    for gr in range(G):
        for p in range(P):
            i, j = p // wp, p % wp
            xj = ox + j * sw
            v0, v1 = max(0, -xj), min(KW, w - xj)
            r = cols[gr, p]
            for u in range(KH):
                y = oy + i * sh + u
                if 0 <= y < h and v0 < v1:
                    _add_window(np.float32(1), r, u * KW * Cg, xf, (y * w + xj) * C + gr * Cg, v0, v1, C, Cg)


@njit(cache=True)
def _unpool(g, rectify, switches, a, c, y0, x0, W, x):
    """x (h, w, C) += every value of g (h', w', C) at its switch, values sharing a switch added.

    switches (C, H', W'): the image's forward switches, flat indices into the full (H, W) input
    plane; g's box starts at pooled (a, c), x's box at input (y0, x0). rectify: read max(g, 0).
    """
    hp, wp, C = g.shape
    w = x.shape[1]
    xf = x.ravel()
    for i in range(hp):
        for j in range(wp):
            for ch in range(C):
                v = g[i, j, ch]
                if v == 0 or (rectify and v < 0):
                    continue
                s = uint64(switches[ch, a + i, c + j])
                xf[uint64(((s // uint64(W) - y0) * w + s % uint64(W) - x0) * C + ch)] += v


@njit(cache=True)
def _mask(g, rectify, act, y0, x0):
    """g (h, w, C) *= [act > 0] in place (rectified first if `rectify`); act (C, H, W), box at (y0, x0)."""
    h, w, C = g.shape
    for y in range(h):
        for x in range(w):
            for ch in range(C):
                if (rectify and g[y, x, ch] < 0) or not act[ch, y0 + y, x0 + x] > 0:
                    g[y, x, ch] = 0


# Above this fraction of nonzero values a filter step is a GEMM over every value and a col2im
# (_add_columns); below it the nonzero values are scattered (_filter_sparse). Measured on ZFNet's
# conv5 walk (half the values nonzero below relu3, relu4) the scatter is still the faster.
DENSE = 0.6


def _filter(g, rectify, unpooled, w_taps, groups, KH, KW, sh, sw, oy, ox, x):
    """x (h, w, C) += conv_transpose(g (h', w', F)), by whichever kernel costs least (measured).

    unpooled: g came from an unpool (one value per pooled unit, the rest zero).
    """
    hp, wp, F = g.shape
    if groups == 1 and unpooled:
        # few nonzero values, spread over every position: summed position by position
        _filter_by_position(g, rectify, w_taps, KH, KW, sh, sw, oy, ox, x,
                            np.empty(w_taps.shape[1], np.float32), np.empty(F, np.int64), np.empty(F, np.float32))
        return
    nonzero = np.count_nonzero(g > 0) if rectify else np.count_nonzero(g)
    if nonzero <= DENSE * g.size:
        _filter_sparse(g, rectify, w_taps, groups, KH, KW, sh, sw, oy, ox, x)
        return
    G, P = groups, hp * wp
    if rectify:
        g = np.maximum(g, np.float32(0))
    # cols[gr, p] = g[p, group gr] @ taps of group gr: every position's window, one GEMM per group
    cols = np.matmul(g.reshape(P, G, F // G).transpose(1, 0, 2), w_taps.reshape(G, F // G, -1))  # (G, P, KH*KW*C/G)
    _add_columns(cols, G, KH, KW, sh, sw, oy, ox, wp, x)


# ----------------------------------------------------------------------------------------------
# The walk
# ----------------------------------------------------------------------------------------------

def walk_unit(net, arch, plan, start, outputs, switches, unit, mode):
    """The projection of one unit, on the input's box: (3, h, w) float32, or None (no signal).

    plan: crop.unit_plan(arch, start, unit.y, unit.x); outputs, switches: the forward result's;
    arch must pass ``supports``. The seed is the unit's activation, every other one zero.
    """
    image = unit.image
    value = outputs[start][image, unit.channel, unit.y, unit.x]
    if value == 0 or INPUT not in plan:
        return None                     # a zero seed stays zero; a padding-only unit sees nothing
    g = np.zeros((1, 1, arch.shapes[start][0]), np.float32)                         # (1, 1, C)
    g[0, 0, unit.channel] = value
    rectify = False                     # a deconvnet ReLU above, not yet applied to g
    unpooled = False                    # g came from an unpool
    for layer in ancestors(arch, start):
        (name,) = layer.inputs
        y0, y1, x0, x1 = plan[name]
        if layer.op == "conv":
            w = net.weight(layer.name)
            F, _, KH, KW = w.shape
            C = arch.shapes[name][0]
            (sh, sw), (ph, pw) = layer.stride, layer.padding
            a, _, c, _ = plan[layer.name]
            x = np.zeros((y1 - y0, x1 - x0, C), np.float32)                           # (h, w, C)
            _filter(g, rectify, unpooled, taps(w), layer.groups, KH, KW, sh, sw, a * sh - ph - y0, c * sw - pw - x0, x)
            g, rectify, unpooled = x, False, False
        elif layer.op == "maxpool":
            a, _, c, _ = plan[layer.name]
            x = np.zeros((y1 - y0, x1 - x0, g.shape[2]), np.float32)                  # (h, w, C)
            _unpool(g, rectify, switches[layer.name][image], a, c, y0, x0, arch.shapes[name][2], x)
            g, rectify, unpooled = x, False, True
        elif layer.op == "relu":
            if mode == "deconvnet":
                rectify = True
            else:
                _mask(g, True, outputs[name][image], y0, x0)                     # guided
                rectify = False
        # lrn (passed through) and dropout: the identity
    if rectify:
        g = np.maximum(g, np.float32(0))    # a ReLU right on the input (no network has one)
    return g.transpose(2, 0, 1)                                                        # (3, h, w)
