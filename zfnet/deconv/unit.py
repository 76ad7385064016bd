"""One unit end to end: forward pass, choose the unit, project it, find its receptive field.

    r = project_unit(net, x, "fire9/concat", channel=40)          # the strongest unit of map 40
    r.unit, r.activation, r.box, r.projection                      # Unit, float, (y0,y1,x0,x1), (3, H, W)

This is what ``zfnet project`` calls. Unlike ``project`` (which only warns), a dead map is an
error here: there is no strongest unit to show.
"""
from dataclasses import dataclass

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.forward import check_input, forward
from zfnet.net.receptive import unit_box
from zfnet.deconv.project import project, seed_tensor, shaped_arch
from zfnet.deconv.select import Unit, check_units, is_dead_map, map_strengths, strongest_unit


@dataclass
class Projection:
    """A projected unit: which one, its activation, its receptive field, the projection itself."""
    layer: str
    unit: Unit
    activation: float
    box: tuple               # (y0, y1, x0, x1) in input pixels, clipped; the whole image for flat layers
    projection: np.ndarray   # (3, H, W) float32, network input space
    mode: str


def project_unit(net, x, layer, channel, at=None, image=0, mode="deconvnet", lrn="identity", crop=True,
                 forward_result=None, backend=None):
    """Project unit `at` = (y, x) of map `channel` of `layer` (default: the map's strongest unit).

    x: (N, 3, H, W) preprocessed; image: which of the N. Returns a Projection. Raises ZFNetError
    for a map that is all zeros for this image (naming the strongest maps instead).
    """
    check_input(net, x)
    arch = shaped_arch(net, x)
    start = seed_tensor(arch, layer)
    shape = arch.shapes[start]
    unit = Unit(int(image), int(channel), *(at if at is not None else (None, None)))
    check_units([unit], layer, shape, x.shape[0])
    if forward_result is None:
        forward_result = forward(net, x, keep="all", upto=layer, backend=backend)
    act = forward_result.outputs[start]
    if len(shape) == 3 and is_dead_map(act, image, channel):
        best = np.argsort(-map_strengths(act, image), kind="stable")[:5]
        raise ZFNetError(
            f"map {channel} of layer {layer!r} is all zeros for this image (a dead map here): its "
            f"projection would be blank; the strongest maps of {layer!r} are {', '.join(map(str, best))}"
        )
    if at is None:
        unit = strongest_unit(act, image, channel)
    activation = float(act[unit.image, unit.channel] if unit.y is None else act[unit.image, unit.channel, unit.y, unit.x])
    p = project(net, x, layer, [unit], mode=mode, lrn=lrn, crop=crop, forward_result=forward_result,
                backend=backend)
    box = unit_box(arch, start, unit.y, unit.x) if unit.y is not None else (0, x.shape[2], 0, x.shape[3])
    return Projection(layer, unit, activation, box, p[0], mode)
