"""Boxes: the part of every tensor that a projection can touch (the receptive-field-cropped path).

A single unit's projection is zero outside its receptive field at every layer below it, so the
walk down can run on a box of each tensor instead of the whole plane. A box is a half-open
rectangle (y0, y1, x0, x1) in the tensor's own (H, W) grid; flat tensors (fully connected
layers) have no box (None), and a box equal to the whole plane means "dense".

Going down through a layer whose window has kernel k, stride s and padding p, output rows
[a, b) read input rows

    [a*s - p, (b-1)*s - p + k)        clipped to [0, H)

(a max-pool's switches always lie inside that range, and padding holds no inputs). Global
pooling and flatten read their whole input; elementwise layers keep the box; a tensor read by
several layers (SqueezeNet's squeeze output feeding both expand convolutions) gets the union of
the boxes its readers need. With lrn="gradient" a within-channel LRN also reads an
(n-1)/2 margin around the box; with lrn="identity" nothing crosses it spatially.

A plan is {tensor name: box} for the tensor projected from and every tensor below it that the
signal reaches. ``dense_plan`` gives every tensor its whole plane; ``unit_plan`` the boxes of one
unit. The walk (project.py) and the per-layer rules (backward.py) read the same plan, so the two
paths differ only in these boxes, and tests check that they give the same projection.
"""
import numpy as np

from zfnet.net import tensors
from zfnet.net.receptive import layer_window


def full_box(shape):
    """The whole plane of a tensor of shape (C, H, W) -> (0, H, 0, W); flat (F,) -> None."""
    return (0, shape[1], 0, shape[2]) if len(shape) == 3 else None


def box_shape(box):
    """(h, w) of a box."""
    return box[1] - box[0], box[3] - box[2]


def is_empty(box):
    """True for a box with no rows or no columns (a unit whose window lies in the padding)."""
    return box is not None and (box[1] <= box[0] or box[3] <= box[2])


def union(a, b):
    """The smallest box holding both (None for flat tensors); an empty box adds nothing."""
    if a is None or b is None:
        return None
    if is_empty(a):
        return b
    if is_empty(b):
        return a
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))


def window_back(box, window, in_hw):
    """Rows/columns of the input that the windows of output `box` read, clipped to (H, W).

    window: ((KH, KW), (sy, sx), (py, px)): kernel, stride, padding. Output rows [a, b) -> input
    rows [a*sy - py, (b-1)*sy - py + KH) clipped to [0, H); columns likewise.
    """
    (KH, KW), (sy, sx), (py, px) = window
    a, b, c, d = box
    H, W = in_hw
    return (max(a * sy - py, 0), min((b - 1) * sy - py + KH, H),
            max(c * sx - px, 0), min((d - 1) * sx - px + KW, W))


def input_box(layer, box, in_shape, lrn):
    """The box of `layer`'s input (of shape in_shape) that its output `box` depends on."""
    if len(in_shape) != 3:
        return None
    if layer.op in ("gap", "flatten") or box is None:
        return full_box(in_shape)
    if layer.op == "lrn" and not (layer.within_channel and lrn == "gradient"):
        return box                      # passed through, or mixes channels only
    window = layer_window(layer)
    if window is None:
        return box                      # relu, dropout, concat: elementwise in space
    return window_back(box, window, in_shape[1:])


def ancestors(arch, start):
    """Layers from `start` down to the input that the signal from `start` reaches, top first."""
    reached = {start}
    out = []
    for layer in reversed(arch.layers[: arch.index(start) + 1]):
        if layer.name in reached:
            out.append(layer)
            reached.update(layer.inputs)
    return out


def dense_plan(arch, start):
    """Every tensor the signal from `start` reaches, on its whole plane."""
    shapes = arch.shapes
    plan = {start: full_box(shapes[start])}
    for layer in ancestors(arch, start):
        for name in layer.inputs:
            plan[name] = full_box(shapes[name])
    return plan


def unit_plan(arch, start, y, x, lrn="identity"):
    """Boxes of every tensor below unit (y, x) of tensor `start` that its projection can touch.

    Walks down in reverse topological order; a tensor read by several layers gets the union of
    what they need. Returns {tensor name: (y0, y1, x0, x1)}; plan["data"] is the unit's box in
    input pixels (equal to zfnet.net.receptive.unit_box, within-channel LRN aside: see there).

    A window that lies entirely in the padding (SqueezeNet's conv10 border units: 1x1 kernel,
    pad 1) reads no input at all: such a tensor gets no box, the walk stops there, and a unit
    whose every path ends so has no "data" box (its projection is zero).
    """
    shapes = arch.shapes
    plan = {start: (y, y + 1, x, x + 1)}
    for layer in ancestors(arch, start):
        if layer.name not in plan:
            continue                    # nothing reaches this layer: its readers saw only padding
        box = plan[layer.name]
        for name in layer.inputs:
            b = input_box(layer, box, shapes[name], lrn)
            if is_empty(b):
                continue
            plan[name] = union(plan[name], b) if name in plan else b
    return plan


def expand(box, r, hw):
    """`box` grown by r on every side, clipped to the (H, W) plane."""
    return (max(box[0] - r, 0), min(box[1] + r, hw[0]), max(box[2] - r, 0), min(box[3] + r, hw[1]))


def paste(z, y0, x0, box):
    """z (K, C, h, w), whose element [.., 0, 0] sits at (y0, x0) of the full plane, onto `box`.

    Returns (K, C, box height, box width): z where it overlaps the box, zero elsewhere; the parts
    of z outside the box are dropped (the caller guarantees they lie off the image, or are zero).
    """
    bh, bw = box_shape(box)
    if (y0, x0) == (box[0], box[2]) and z.shape[2:] == (bh, bw):
        return z
    out = tensors.zeros(tuple(z.shape[:2]) + (bh, bw), z)               # (K, C, bh, bw)
    # the overlap, in full-plane coordinates
    t, b = max(y0, box[0]), min(y0 + z.shape[2], box[1])
    l, r = max(x0, box[2]), min(x0 + z.shape[3], box[3])
    if t < b and l < r:
        tensors.assign(out[:, :, t - box[0]:b - box[0], l - box[2]:r - box[2]], z[:, :, t - y0:b - y0, l - x0:r - x0])
    return out


def crop(a, box):
    """a (K, C, H, W) cut to `box` -> (K, C, h, w), C-contiguous (None box: a itself)."""
    if box is None:
        return a
    return tensors.contiguous(a[:, :, box[0]:box[1], box[2]:box[3]])


def local_switches(switches, in_box, in_w):
    """Switches (flat indices h*W + w into the full input plane) -> flat indices into `in_box`.

    (h, w) -> (h - y0) * Wb + (w - x0), Wb the box width; with w = s - h*W that is
    s - h*(W - Wb) - (y0*Wb + x0). Every switch of an output in the box lies inside the input box
    (window_back holds every window), so the result is in [0, box area). int32 arithmetic (a
    plane has far fewer than 2^31 positions) is twice as fast as int64 here.
    """
    if tensors.is_device(switches):
        from zfnet.kernels.cuda.tensors import local_switches as on_device
        return on_device(switches, in_box, in_w)
    wb = in_box[3] - in_box[2]
    s = switches.astype(np.int32)
    h = s // np.int32(in_w)
    return s - h * np.int32(in_w - wb) - np.int32(in_box[0] * wb + in_box[2])
