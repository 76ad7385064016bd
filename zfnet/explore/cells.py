"""One top-k cell as the page shows it: a unit's projection beside the image patch it came from.

The unit (y, x) sees the half-open box `field` of input pixels (zfnet.net.receptive), clipped to
the image as `box`. Both pictures are that box, placed where it belongs in the whole field (the
part outside the image light grey) and fitted to a cell x cell square; the projection is rendered
centred on grey and scaled by the `percentile` of its magnitudes in the box (zfnet.deconv.render),
the same rules as ``zfnet topk``'s figures.
"""
import numpy as np

from zfnet.deconv import cut, render
from zfnet.viz import grid


def _in_field(img, box, field, hw):
    """The box's pixels placed in the unit's whole field, capped at the image size (H, W)."""
    fh = min(field[1] - field[0], hw[0])
    fw = min(field[3] - field[2], hw[1])
    h, w = img.shape[:2]
    oy = min(box[0] - field[0], fh - h)
    ox = min(box[2] - field[2], fw - w)
    return grid.place(img, (fh, fw), (oy, ox))


def unit_cell(display, projection, box, field, meta, cell, percentile):
    """(projection cell, patch cell), each (cell, cell, 3) uint8.

    display: (H, W, 3) uint8, the input as the network saw it; projection: (3, H, W) float.
    """
    y0, y1, x0, x1 = box
    hw = display.shape[:2]
    proj = render(np.ascontiguousarray(projection[:, y0:y1, x0:x1]), meta, percentile)   # (h, w, 3)
    patch = cut(display, box)                                                          # (h, w, 3)
    return grid.fit(_in_field(proj, box, field, hw), cell), grid.fit(_in_field(patch, box, field, hw), cell)
