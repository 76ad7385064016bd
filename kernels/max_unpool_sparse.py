"""max_unpool_sparse: the deconvnet's unpool step on one unit's signal, for its nonzero values only.

Shapes (one unit, channels last, no batch): g (h', w', C) the signal on a max-pool's output box,
starting at pooled position (a, c); switches (C, H', W') the image's forward switches, flat
indices into the full (H, W) input plane (kernels/max_pool2d.py); out (h, w, C) the signal on
the pool's input box, starting at input position (y0, x0), ADDED to.

    out[s // W - y0, s % W - x0, ch] += g'[i, j, ch]      s = switches[ch, a + i, c + j]

for every g'[i, j, ch] != 0, with g' = max(g, 0) if rectify else g. Values whose switches are
the same input position (overlapping windows that chose one maximum) add up, as in
kernels/max_unpool2d.py, whose restriction to boxes this is. Every switch of g's box must lie
in out's box (crop.py's boxes are built so). Serial; the sums run in the twin's order, so both
give the same bits.
"""
import numpy as np
from numba import njit, uint64


def max_unpool_sparse_reference(g, switches, origin, box_origin, W, out, rectify=False):
    """NumPy twin: the equation, one nonzero value at a time. Adds into out; returns it.

    origin (a, c): g's first pooled position; box_origin (y0, x0): out's first input position;
    W: the width of the full input plane.
    """
    a, c = origin
    y0, x0 = box_origin
    g = np.maximum(g, np.float32(0)) if rectify else g
    for i, j, ch in zip(*np.nonzero(g)):
        s = int(switches[ch, a + i, c + j])
        out[s // W - y0, s % W - x0, ch] += g[i, j, ch]
    return out


@njit(nogil=True, cache=True)
def max_unpool_sparse_cpu(g, switches, a, c, y0, x0, W, out, rectify):
    """Numba kernel: the twin's loop over (i, j, ch), on the flat output."""
    gh, gw, C = g.shape
    ow = out.shape[1]
    out_flat = out.ravel()
    for i in range(gh):
        for j in range(gw):
            for ch in range(C):
                v = g[i, j, ch]
                if v == 0 or (rectify and v < 0):
                    continue
                s = uint64(switches[ch, a + i, c + j])
                out_flat[uint64(((s // uint64(W) - y0) * ow + s % uint64(W) - x0) * C + ch)] += v


def max_unpool_sparse(g, switches, origin, box_origin, W, out, rectify=False):
    """out (h, w, C) += every nonzero value of g (h', w', C) at its switch; returns out.

    switches (C, H', W') int64: one image's switches; origin (a, c), box_origin (y0, x0) and W as
    in max_unpool_sparse_reference; rectify: read max(g, 0). float32, C-contiguous.
    """
    (a, c), (y0, x0) = origin, box_origin
    max_unpool_sparse_cpu(g, switches, a, c, y0, x0, W, out, rectify)
    return out
