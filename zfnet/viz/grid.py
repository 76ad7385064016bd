"""Tiling helpers: put small RGB images into cells, cells into grids, grids side by side.

Every image here is an (H, W, 3) uint8 RGB array; every function returns a new array and never
writes files (rendering to PNG happens in the callers, through ``zfnet.atomic.save_png``).

    cells = [fit(p, 64) for p in patches]               # each (64, 64, 3)
    g = tile(cells, ncols=3, gap=2)                      # (3*64 + 2*2, 3*64 + 2*2, 3)
    block = hstack([g_projections, g_patches], gap=8)    # the paper's Fig. 2 block for one map
"""
import math

import numpy as np

from zfnet.errors import ZFNetError

BACKGROUND = (255, 255, 255)   # page white between cells
EMPTY = (224, 224, 224)        # a cell with nothing in it (fewer than k units, or outside the image)


def _check_rgb(img, name="image"):
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", None)
        raise ZFNetError(f"{name} must be an (H, W, 3) uint8 array, got {type(img).__name__} {shape}")
    return img


def blank(h, w, color=EMPTY):
    """(h, w, 3) uint8 filled with `color`."""
    out = np.empty((h, w, 3), dtype=np.uint8)
    out[...] = color
    return out


def to_uint8(a, lo=None, hi=None):
    """Scale a float array linearly so [lo, hi] (default: its min and max) maps to [0, 255].

    A constant array (hi == lo) maps to mid-grey 128 rather than dividing by zero.
    """
    a = np.asarray(a, dtype=np.float64)
    lo = float(a.min()) if lo is None else float(lo)
    hi = float(a.max()) if hi is None else float(hi)
    if not hi > lo:
        return np.full(a.shape, 128, dtype=np.uint8)
    return np.clip(np.rint((a - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def resize(img, h, w, nearest=None):
    """Resize to (h, w, 3). Enlarging uses nearest neighbour by default (pixels stay visible:
    a 7x7 filter shown at 42x42 is 7x7 blocks); shrinking uses Lanczos (no aliasing)."""
    from PIL import Image
    _check_rgb(img)
    if img.shape[:2] == (h, w):
        return img.copy()
    if nearest is None:
        nearest = h >= img.shape[0] and w >= img.shape[1]
    method = Image.NEAREST if nearest else Image.LANCZOS
    return np.asarray(Image.fromarray(img).resize((w, h), method))   # (h, w, 3)


def fit(img, size, nearest=None, color=EMPTY):
    """Scale `img` to fit a size x size cell keeping its aspect ratio, centred on `color`."""
    _check_rgb(img)
    h, w = img.shape[:2]
    if h < 1 or w < 1:
        return blank(size, size, color)
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = blank(size, size, color)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = resize(img, nh, nw, nearest)
    return out


def place(img, canvas_hw, offset, color=EMPTY):
    """Put `img` into a blank canvas of canvas_hw at offset (oy, ox); whatever falls outside is cut."""
    _check_rgb(img)
    ch, cw = canvas_hw
    oy, ox = offset
    out = blank(ch, cw, color)
    ys, xs = max(0, oy), max(0, ox)
    ye, xe = min(ch, oy + img.shape[0]), min(cw, ox + img.shape[1])
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = img[ys - oy:ye - oy, xs - ox:xe - ox]
    return out


def grid_shape(n, ncols=None):
    """(rows, cols) of a near-square grid for n cells (9 -> 3x3, 10 -> 3x4 with 4 columns)."""
    if n < 1:
        raise ZFNetError(f"a grid needs at least one cell, got {n}")
    cols = ncols or math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def cell_origin(i, cell_hw, ncols, gap):
    """Top-left (y, x) of cell i in a grid made by ``tile``."""
    r, c = divmod(i, ncols)
    return r * (cell_hw[0] + gap), c * (cell_hw[1] + gap)


def tile(images, ncols=None, gap=2, color=BACKGROUND, n=None):
    """Equal-sized (h, w, 3) images -> one (R*h + (R-1)*gap, C*w + (C-1)*gap, 3) mosaic, row-major.

    n: the number of cells to lay out (default len(images)); cells past the images are EMPTY.
    """
    images = list(images)
    n = len(images) if n is None else n
    if not images and n < 1:
        raise ZFNetError("tile: nothing to tile")
    if images:
        h, w = _check_rgb(images[0]).shape[:2]
        for img in images:
            if _check_rgb(img).shape[:2] != (h, w):
                raise ZFNetError(f"tile: all cells must have one size, got {(h, w)} and {img.shape[:2]}")
    else:
        raise ZFNetError("tile: give at least one image to set the cell size")
    rows, cols = grid_shape(n, ncols)
    out = blank(rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, color)   # (R*h+.., C*w+.., 3)
    for i in range(n):
        y, x = cell_origin(i, (h, w), cols, gap)
        out[y:y + h, x:x + w] = images[i] if i < len(images) else EMPTY
    return out


def hstack(images, gap=8, color=BACKGROUND):
    """Images side by side, top-aligned, `gap` pixels apart; shorter ones padded below."""
    images = [_check_rgb(img) for img in images]
    h = max(img.shape[0] for img in images)
    w = sum(img.shape[1] for img in images) + gap * (len(images) - 1)
    out = blank(h, w, color)                                                      # (max h, sum w, 3)
    x = 0
    for img in images:
        out[:img.shape[0], x:x + img.shape[1]] = img
        x += img.shape[1] + gap
    return out
