"""Checking what a request names (layer, map, position, mode) before any computation, so that bad
input is a clear 4xx message and never reaches a kernel."""
from zfnet.deconv import MODES
from zfnet.errors import ZFNetError
from zfnet.explore.errors import NotFound


def check_layer(arch, layer):
    """The layer's output shape (C, H, W) or (C,); NotFound listing the layers."""
    if layer not in arch.names:
        raise NotFound(f"no layer {layer!r} in {arch.name}; its layers are: {', '.join(arch.names)}")
    return arch.shapes[layer]


def check_map(arch, layer, m):
    shape = check_layer(arch, layer)
    if not 0 <= m < shape[0]:
        raise NotFound(f"map {m} is out of range: layer {layer!r} has {shape[0]} maps (0..{shape[0] - 1})")
    return shape


def check_spatial(arch, layer):
    shape = check_layer(arch, layer)
    if len(shape) != 3:
        raise ZFNetError(f"layer {layer!r} has no feature maps (shape {shape}); pick a convolutional layer")
    return shape


def check_position(shape, layer, y, x):
    """(y, x) inside an (C, H, W) layer, both given or both None; flat layers take neither."""
    if (y is None) != (x is None):
        raise ZFNetError("give both y and x, or neither (then the map's strongest unit is used)")
    if y is None:
        return
    if len(shape) != 3:
        raise ZFNetError(f"layer {layer!r} has no spatial grid (shape {shape}): leave out y and x")
    if not (0 <= y < shape[1] and 0 <= x < shape[2]):
        raise ZFNetError(f"position (y={y}, x={x}) is outside layer {layer!r}'s {shape[1]}x{shape[2]} map; "
                         f"y must be in 0..{shape[1] - 1} and x in 0..{shape[2] - 1}")


def check_mode(mode):
    if mode not in MODES:
        raise ZFNetError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return mode
