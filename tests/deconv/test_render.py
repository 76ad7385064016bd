"""Rendering a projection for display: centred on grey, symmetric scale, channel order undone."""
import numpy as np
import pytest

from zfnet import ZFNetError
from zfnet.deconv import cut, render


def test_zero_is_grey_and_the_scale_is_symmetric():
    p = np.zeros((3, 4, 5), np.float32)
    assert (render(p) == 128).all() and render(p).shape == (4, 5, 3) and render(p).dtype == np.uint8
    p[0, 1, 2] = 2.0
    p[1, 3, 4] = -4.0
    p[2, 0, 0] = 1.0
    img = render(p)                                   # RGB model: channel 0 is red
    assert img[3, 4, 1] == 1                          # -max -> 128 - 127
    assert img[1, 2, 0] == 128 + round(127 * 0.5)     # half the largest magnitude
    assert img[0, 0, 2] == 128 + round(127 * 0.25)
    assert (render(-p)[3, 4, 1], render(-p)[1, 2, 0]) == (255, 128 - round(127 * 0.5))


def test_bgr_models_are_shown_in_rgb_and_std_scales_channels():
    p = np.zeros((3, 2, 2), np.float32)
    p[0, 0, 0] = 1.0                                  # network channel 0 = blue for a BGR model
    img = render(p, {"channel_order": "BGR"})
    assert tuple(img[0, 0]) == (128, 128, 255)
    # a step of 1 in the input space of a model with std s is s pixel units
    p[2, 1, 1] = 1.0
    img = render(p, {"channel_order": "RGB", "std": [0.5, 1.0, 0.25]})
    assert img[0, 0, 0] == 255 and img[1, 1, 2] == 128 + round(127 * 0.5)


def test_percentile_ignores_the_zeros_outside_the_field():
    p = np.zeros((3, 50, 50), np.float32)
    p[:, :4, :5] = np.arange(60, dtype=np.float32).reshape(3, 4, 5) + 1   # 60 nonzero values 1..60
    img = render(p, percentile=50)
    m = np.percentile(np.arange(1, 61), 50)
    assert img[0, 0, 0] == 128 + round(127 * 1 / m)
    assert img[3, 4, 2] == 255                                            # saturates (HWC)
    assert (img[10:, 10:] == 128).all()
    with pytest.raises(ZFNetError, match="percentile"):
        render(p, percentile=0)


def test_bad_shape_and_cut():
    with pytest.raises(ZFNetError, match=r"\(3, H, W\)"):
        render(np.zeros((1, 3, 4, 4), np.float32))
    img = np.arange(5 * 6 * 3).reshape(5, 6, 3)
    assert np.array_equal(cut(img, (1, 3, 2, 6)), img[1:3, 2:6])
