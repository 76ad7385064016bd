"""Arrays to PNG bytes for the browser: images, projections, and activation heat maps.

    png_bytes(rgb)                 # (H, W, 3) or (H, W, 4) uint8 -> PNG
    heat_rgba(a)                   # (h, w) float -> (h, w, 4) uint8, inferno colours, alpha by value
"""
import io

import numpy as np

# zlib level 1: several times faster to encode than the default level, and the files barely grow.
PNG_LEVEL = 1


def png_bytes(img):
    """(H, W, 3) RGB or (H, W, 4) RGBA uint8 -> the bytes of a PNG file."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def read_png(path):
    """A PNG file -> (H, W, 3) uint8 RGB."""
    from PIL import Image
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _inferno():
    from matplotlib import colormaps
    return np.rint(colormaps["inferno"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)   # (256, 3)


_LUT = None


def heat_rgba(a, hi=None):
    """(h, w) activations -> (h, w, 4) uint8: colour and opacity grow with a / hi (hi: the maximum).

    Zero is fully transparent, so laid over the image the heat map shows where the map fires.
    """
    global _LUT
    if _LUT is None:
        _LUT = _inferno()
    a = np.asarray(a, dtype=np.float64)
    hi = float(a.max()) if hi is None else float(hi)
    t = np.clip(a / hi, 0.0, 1.0) if hi > 0 else np.zeros_like(a)
    idx = np.rint(t * 255).astype(np.intp)
    rgba = np.empty((*a.shape, 4), np.uint8)
    rgba[..., :3] = _LUT[idx]
    rgba[..., 3] = np.rint(40 + 200 * t).astype(np.uint8) * (t > 0)
    return rgba
