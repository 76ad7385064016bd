"""relu_mask: a ReLU's backward rule with the forward mask, on one unit's signal, in place.

Shapes (one unit, channels last, no batch): g (h, w, C) the signal on a ReLU's output box,
starting at position (y0, x0); x (C, H, W) the ReLU's forward input for the unit's image.

    g[i, j, ch] = g'[i, j, ch] * [x[ch, y0 + i, x0 + j] > 0],   g' = max(g, 0) if rectify else g

rectify=True is guided back-propagation's rule, rectify=False the gradient's (the deconvnet
itself ignores the mask: zfnet/deconv/modes.py). A NaN in x masks its position out.
"""
import numpy as np
from numba import njit


def relu_mask_reference(g, x, box_origin, rectify=True):
    """NumPy twin: the equation over the whole box at once. Modifies g in place; returns it."""
    y0, x0 = box_origin
    h, w, _ = g.shape
    active = x[:, y0:y0 + h, x0:x0 + w].transpose(1, 2, 0) > 0                  # (h, w, C)
    g[~active | ((g < 0) if rectify else False)] = 0
    return g


@njit(nogil=True, cache=True)
def relu_mask_cpu(g, x, y0, x0, rectify):
    """Numba kernel: one pass over g, each element written by itself."""
    h, w, C = g.shape
    for i in range(h):
        for j in range(w):
            for ch in range(C):
                if (rectify and g[i, j, ch] < 0) or not x[ch, y0 + i, x0 + j] > 0:
                    g[i, j, ch] = 0


def relu_mask(g, x, box_origin, rectify=True):
    """g (h, w, C) = max(g, 0) (if rectify) * [x > 0] on its box of x (C, H, W), in place; returns g."""
    y0, x0 = box_origin
    relu_mask_cpu(g, x, y0, x0, rectify)
    return g
