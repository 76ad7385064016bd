"""Turn a projection into an image a person can look at.

A projection p (3, H, W) lives in the network's input space: the same channel order and units
as the preprocessed input x. It is a signed signal, not an image, so it is shown centred on
mid-grey (zero = 128), scaled by its own largest magnitude:

    q = p * std                     per channel: a step in the network's input space -> in
                                    (scaled) pixel units, since x = (pixel*scale - mean) / std
    img = 128 + 127 * clip(q / m, -1, 1),   m = max |q|
                                            (or, with `percentile`, that percentile of the
                                            nonzero |q|: a projection is zero outside its
                                            receptive field, and those zeros must not count)

then the channel order is undone (BGR models -> RGB) and the result rounded to uint8 (H, W, 3).
An all-zero projection renders as flat grey (128). Each projection is normalised on its own, so
brightness is comparable within one image, not between two.
"""
import numpy as np

from zfnet.errors import ZFNetError


def render(projection_chw, meta=None, percentile=None):
    """(3, H, W) float projection -> (H, W, 3) uint8 RGB, centred on 128 (see module docstring).

    meta: the net's metadata ("channel_order" "BGR"/"RGB", "std"); None = RGB, std 1.
    percentile: scale by this percentile of the nonzero |q| instead of the maximum (e.g. 99.5: the
    few strongest pixels then saturate instead of leaving the rest faint).
    """
    p = np.asarray(projection_chw, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] != 3:
        raise ZFNetError(f"render takes one projection of shape (3, H, W), got {p.shape}")
    meta = meta or {}
    std = np.asarray(meta.get("std", (1.0, 1.0, 1.0)), dtype=np.float64)
    q = p * std[:, None, None]                                                       # (3, H, W)
    if meta.get("channel_order", "RGB") == "BGR":
        q = q[::-1]
    mag = np.abs(q)
    m = float(mag.max())
    if percentile is not None and m > 0:
        if not 0 < percentile <= 100:
            raise ZFNetError(f"percentile must be in (0, 100], got {percentile}")
        m = float(np.percentile(mag[mag > 0], percentile))
    m = m or 1.0                                # all zero: flat grey
    img = 128.0 + 127.0 * np.clip(q / m, -1.0, 1.0)
    return np.ascontiguousarray(np.rint(img).astype(np.uint8).transpose(1, 2, 0))    # (H, W, 3)


def cut(image_hwc, box):
    """The (y0, y1, x0, x1) half-open box of an (H, W, ...) image: the receptive-field patch."""
    y0, y1, x0, x1 = box
    return np.ascontiguousarray(image_hwc[y0:y1, x0:x1])
