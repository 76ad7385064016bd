"""The sparse walk: one unit's cropped projection, skipping the zeros (project()'s fast path).

Shape legend: C/F = channels below/above a layer, (h, w) a tensor's box (crop.py), (h', w') the
box of the layer's output. Signals here are channels-last, (h, w, C), one unit at a time.

The deconvnet signal of a single unit is mostly zeros on the way down: every unpooled map holds
one value per pooled unit (at its switch) and zeros elsewhere, and each rectification zeroes
about half of what is left (ZFNet conv5, measured: 8% of the signal below pool1 and pool2 is
nonzero, 50% below relu3 and relu4). The dense rules (backward.py) multiply all those zeros; this
walk does work in proportion to the nonzero values only:

    filter      g_in[i*sy + u - py, j*sx + v - px, c] += g[i, j, f] * w[f, c, u, v]
                for the nonzero g[i, j, f] only (kernels/conv_transpose_sparse.py: below an
                unpool each position's window in registers over its packed nonzero values;
                about half nonzero, a GEMM's register tile over the positions; else by position,
                by filter, or a GEMM and a col2im)
    unpool      g_in[switch] += g: each pooled value at its switch; values that share a switch
                (overlapping windows) add up before anything reads them
                (kernels/max_unpool_sparse.py)
    rectify     (a mode that rectifies and does not mask: the deconvnet) not a pass of its own:
                the next filter or unpool reads max(g, 0), so zeros made by the rectification
                are skipped like the others
    mask        (a mode that masks: guided) g = max(g, 0) * [forward input > 0]
                (kernels/relu_mask.py)
    lrn, dropout   the identity: nothing to do.

Everything else is what the dense walk does, on the same boxes, with the same float32 products,
summed in another order: the tests compare the two walks and PyTorch autograd.

The walk covers the modes that rectify (modes.py: deconvnet, guided) on chains (every tensor
below the unit read by one layer) of convolutions, ReLUs, max-pools, dropout and LRN layers passed through
(lrn="identity"): ZFNet, AlexNet/CaffeNet, VGG. ``supports`` says when; project() walks the
others (branches, average pools, the LRN gradient, the gradient mode) by the rules of backward.py.
"""
import numpy as np

from zfnet.kernels.conv_transpose_sparse import conv_transpose_sparse
from zfnet.kernels.max_unpool_sparse import max_unpool_sparse
from zfnet.kernels.relu_mask import relu_mask
from zfnet.net.graph import INPUT
from zfnet.deconv.crop import ancestors
from zfnet.deconv.modes import as_mode

OPS = ("conv", "relu", "maxpool", "dropout", "lrn")


def supports(arch, start, mode, lrn):
    """True when the walk from tensor `start` is a chain of OPS, LRNs passed through, and the mode
    rectifies (modes.py: deconvnet, guided).

    A mode that does not rectify (the gradient) is left to backward.py: its signal keeps both
    signs, and where large terms cancel, this walk's summation order moves the result by ~1e-6
    of its largest value, more than the 1e-6 the tests allow between the cropped and the dense walk.
    """
    if not as_mode(mode).rectify:
        return False
    below = start
    for layer in ancestors(arch, start):
        if layer.name != below or layer.op not in OPS or len(layer.inputs) != 1:
            return False                # a branch point, or an op with no sparse rule
        if layer.op == "lrn" and lrn != "identity":
            return False
        below = layer.inputs[0]
    return below == INPUT


def walk_unit(net, arch, plan, start, outputs, switches, unit, mode):
    """The projection of one unit, on the input's box: (3, h, w) float32, or None (no signal).

    plan: crop.unit_plan(arch, start, unit.y, unit.x); outputs, switches: the forward result's;
    mode: a Mode or its name (modes.py); arch and mode must pass ``supports``. The seed is the
    unit's activation, every other one zero. Signals are channels last: g (h', w', C) on a
    layer's output box, g_in (h, w, C) on its input's box.
    """
    mode = as_mode(mode)
    image = unit.image
    value = outputs[start][image, unit.channel, unit.y, unit.x]
    if value == 0 or INPUT not in plan:
        return None                     # a zero seed stays zero; a padding-only unit sees nothing
    g = np.zeros((1, 1, arch.shapes[start][0]), np.float32)                         # (1, 1, C)
    g[0, 0, unit.channel] = value
    rectify = False                     # a ReLU above rectifies g, not yet applied
    unpooled = False                    # g came from an unpool
    for layer in ancestors(arch, start):
        (name,) = layer.inputs
        y0, y1, x0, x1 = plan[name]
        if layer.op == "conv":
            a, _, c, _ = plan[layer.name]          # g's box starts at row a, column c
            (sy, sx), (py, px) = layer.stride, layer.padding
            g_in = np.zeros((y1 - y0, x1 - x0, arch.shapes[name][0]), np.float32)     # (h, w, C)
            conv_transpose_sparse(g, net.weight(layer.name), layer.stride, layer.groups,
                                  (a * sy - py - y0, c * sx - px - x0), g_in, rectify, unpooled)
            g, rectify, unpooled = g_in, False, False
        elif layer.op == "maxpool":
            a, _, c, _ = plan[layer.name]
            g_in = np.zeros((y1 - y0, x1 - x0, g.shape[2]), np.float32)              # (h, w, C)
            max_unpool_sparse(g, switches[layer.name][image], (a, c), (y0, x0), arch.shapes[name][2],
                              g_in, rectify)
            g, rectify, unpooled = g_in, False, True
        elif layer.op == "relu" and mode.mask:
            relu_mask(g, outputs[name][image], (y0, x0), rectify or mode.rectify)  # applied now
            rectify = False
        elif layer.op == "relu":
            rectify = rectify or mode.rectify   # applied as the next filter or unpool reads g
        # lrn (passed through) and dropout: the identity
    if rectify:
        g = np.maximum(g, np.float32(0))    # a ReLU right on the input (no network has one)
    return g.transpose(2, 0, 1)                                                        # (3, h, w)
