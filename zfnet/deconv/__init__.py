"""The deconvnet: project any unit of any layer back to pixel space (Zeiler & Fergus, Sec. 2.1).

    from zfnet.deconv import project, Unit, strongest_unit, top_maps, render
    fwd = forward(net, x, keep="all")
    u = strongest_unit(fwd["conv5"], image=0, channel=12)       # Unit(0, 12, y, x)
    p = project(net, x, "conv5", [u], forward_result=fwd)       # (1, 3, H, W)
    rgb = render(p[0], net.meta)                                # (H, W, 3) uint8

Modules, one job each:
    select.py    which activations to keep: Unit, strongest_unit, whole_map, top_maps
    modes.py     the three modes as data (deconvnet, guided, gradient): rectify? mask?
    backward.py  one rule per layer type
    crop.py      the boxes of the receptive-field-cropped walk
    project.py   the walk from a layer down to the pixels
    sparse.py    the fast walk of one unit of a chain network: only its nonzero values
    render.py    a projection as an RGB image; the receptive-field patch
    unit.py      one unit end to end (forward, choose, project, box): what the CLI calls
"""
from zfnet.deconv.backward import LRN_RULES
from zfnet.deconv.modes import MODES
from zfnet.deconv.project import project
from zfnet.deconv.render import cut, render
from zfnet.deconv.select import (DeadMapWarning, Unit, is_dead_map, map_strengths, strongest_unit,
                                 top_maps, whole_map)
from zfnet.deconv.unit import Projection, project_unit

__all__ = [
    "project", "project_unit", "Projection", "render", "cut", "Unit", "strongest_unit", "whole_map",
    "top_maps", "map_strengths", "is_dead_map", "DeadMapWarning", "MODES", "LRN_RULES",
]
