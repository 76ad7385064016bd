"""Receptive fields: which input pixels a unit of any layer can see, from the same layer specs.

Per axis, every tensor's units are described by three numbers (in input pixels):

    size   r   how many input pixels one unit sees
    stride j   how far apart the receptive fields of two neighbouring units are
    offset o   where the field of unit 0 starts (negative when padding puts it partly off the image)

so unit i covers input pixels [o + i*j, o + i*j + r). The input ``data`` has r = 1, j = 1, o = 0.
A layer with kernel k, stride s and padding p on a tensor (r, j, o) gives

    r' = r + (k - 1) * j,     j' = j * s,     o' = o - p * j

(its window covers k neighbouring units of the tensor below, starting p of them before 0).
Convolutions and max/avg pools use their own (k, s, p); within-channel LRN (Caffe's
WITHIN_CHANNEL) mixes an n x n neighbourhood, so it counts as k = n, s = 1, p = (n-1)/2.
ReLU, dropout and across-channel LRN do not move spatially.

Concat (SqueezeNet's fire modules) joins branches that see different fields: a unit of the
concatenation is the union of its branches' fields (the widest extent), so

    o' = min over branches of o_b,     r' = max over branches of (o_b + r_b) - o'.

All branches must share the same stride j (they have the same spatial grid); otherwise the union
is not one grid of boxes and we raise.

Global average pooling, flatten and fully connected layers see everything below: their units get
the union of every position of the last spatial tensor (one field covering, clipped, the whole
image); such an RF has ``spatial == False``.

    rf = receptive_field(get_architecture("zfnet"), "conv5")     # RF(size=(139, 139), ...)
    unit_box(arch, "conv5", 6, 6, (224, 224))                  # (47, 186, 47, 186) half-open, clipped
"""
from dataclasses import dataclass

from zfnet.errors import ZFNetError
from zfnet.net.graph import INPUT


@dataclass(frozen=True)
class RF:
    """Receptive field of the units of one tensor, per axis (y, x), in input pixels.

    Unit (i, k) covers rows [offset[0] + i*stride[0], ... + size[0]) and columns likewise.
    ``spatial`` is False for tensors whose units see the whole grid below (GAP, flatten, linear).
    """
    size: tuple
    stride: tuple
    offset: tuple
    spatial: bool = True

    def box(self, y, x):
        """Unclipped half-open box (y0, y1, x0, x1) of unit (y, x), possibly off the image."""
        y0 = self.offset[0] + y * self.stride[0]
        x0 = self.offset[1] + x * self.stride[1]
        return (y0, y0 + self.size[0], x0, x0 + self.size[1])


def layer_window(layer):
    """(kernel, stride, padding) pairs by which `layer` moves spatially, or None if it does not.

    The same geometry the forward pass uses: conv and pools from their spec; within-channel LRN
    as an n x n window of stride 1 padded by (n-1)/2 (see the module docstring).
    """
    if layer.op in ("conv", "maxpool", "avgpool"):
        return layer.rf
    if layer.op == "lrn" and layer.within_channel:
        r = (layer.size - 1) // 2
        return (layer.size, layer.size), (1, 1), (r, r)
    return None


def _through_window(rf, window):
    # r' = r + (k-1) j,  j' = j s,  o' = o - p j   (per axis)
    (kh, kw), (sh, sw), (ph, pw) = window
    k, s, p = (kh, kw), (sh, sw), (ph, pw)
    return RF(
        size=tuple(rf.size[a] + (k[a] - 1) * rf.stride[a] for a in range(2)),
        stride=tuple(rf.stride[a] * s[a] for a in range(2)),
        offset=tuple(rf.offset[a] - p[a] * rf.stride[a] for a in range(2)),
    )


def _whole_grid(rf, hw):
    # the union of the fields of every unit of an H x W grid: one field, not a grid any more
    return RF(
        size=tuple(rf.size[a] + (hw[a] - 1) * rf.stride[a] for a in range(2)),
        stride=tuple(rf.stride[a] * hw[a] for a in range(2)),
        offset=rf.offset,
        spatial=False,
    )


def _union(name, rfs):
    if len({rf.stride for rf in rfs}) != 1:
        raise ZFNetError(
            f"layer {name!r} joins branches with different strides "
            f"{[rf.stride for rf in rfs]}; their receptive fields are not one grid"
        )
    offset = tuple(min(rf.offset[a] for rf in rfs) for a in range(2))
    end = tuple(max(rf.offset[a] + rf.size[a] for rf in rfs) for a in range(2))
    return RF(size=tuple(end[a] - offset[a] for a in range(2)), stride=rfs[0].stride, offset=offset,
              spatial=all(rf.spatial for rf in rfs))


def receptive_fields(arch):
    """{tensor name: RF} for ``data`` and every layer of `arch`, walking the DAG in order."""
    rfs = {INPUT: RF((1, 1), (1, 1), (0, 0))}
    shapes = arch.shapes
    for layer in arch.layers:
        below = [rfs[i] for i in layer.inputs]
        window = layer_window(layer)
        if layer.op == "concat":
            rfs[layer.name] = _union(layer.name, below)
        elif window is not None:
            (rf,) = below
            if not rf.spatial:
                raise ZFNetError(f"layer {layer.name!r} slides a window over a tensor with no spatial grid")
            rfs[layer.name] = _through_window(rf, window)
        elif layer.op in ("gap", "flatten"):
            (rf,) = below
            rfs[layer.name] = _whole_grid(rf, shapes[layer.inputs[0]][1:]) if rf.spatial else rf
        else:
            # relu, dropout, across-channel lrn, linear (after flatten), softmax: the same field
            (rf,) = below
            rfs[layer.name] = rf
    return rfs


def receptive_field(arch, layer):
    """RF(size, stride, offset, spatial) of the units of `layer` (per axis, in input pixels)."""
    if layer != INPUT:
        arch.layer(layer)  # unknown names raise, listing the valid ones
    return receptive_fields(arch)[layer]


def unit_box(arch, layer, y, x, input_hw=None):
    """Half-open box (y0, y1, x0, x1) of input pixels seen by unit (y, x) of `layer`, clipped.

    input_hw: the input's (H, W) (default: the architecture's); the box is clipped to it.
    For layers without a spatial grid (fully connected, global pool) pass y = x = None (or 0):
    the box is every pixel any position below sees, clipped to the image.
    """
    if input_hw is not None and tuple(input_hw) != tuple(arch.input_shape[1:]):
        arch = arch.with_input_shape((arch.input_shape[0], *input_hw))
    H, W = arch.input_shape[1:]
    rf = receptive_field(arch, layer)
    shape = arch.shapes[layer]
    if rf.spatial:
        if y is None or x is None:
            raise ZFNetError(f"layer {layer!r} has a {shape[1]}x{shape[2]} grid: give a position (y, x)")
        if not (0 <= y < shape[1] and 0 <= x < shape[2]):
            raise ZFNetError(
                f"position ({y}, {x}) is outside layer {layer!r}'s {shape[1]}x{shape[2]} map; "
                f"y must be in 0..{shape[1] - 1} and x in 0..{shape[2] - 1}"
            )
        y0, y1, x0, x1 = rf.box(y, x)
    else:
        if (y or 0) != 0 or (x or 0) != 0:
            raise ZFNetError(f"layer {layer!r} has no spatial grid: its units see the whole image")
        y0, y1, x0, x1 = rf.box(0, 0)
    # clip to the image: the part of the field in the padding holds no pixels
    return (max(y0, 0), min(y1, H), max(x0, 0), min(x1, W))
