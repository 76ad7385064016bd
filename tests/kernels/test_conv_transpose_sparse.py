"""conv_transpose_sparse (the sparse walk's filter step): each of its three kernels against the
NumPy twin, on odd boxes, strides, groups, boxes cut by the padding, rectified or not, at every
density; and the whole-plane case against kernels.conv_transpose2d."""
import itertools

import numpy as np
import pytest

from zfnet import kernels
from zfnet.kernels import ZFNetError
from zfnet.kernels.conv_transpose_sparse import (DENSE, FILTER_BANK_BYTES, PATHS, choose_path, conv_transpose_sparse,
                                                 conv_transpose_sparse_reference)


def _signal(rng, shape, density):
    """g (h', w', F) with about `density` of its values nonzero, both signs."""
    g = rng.standard_normal(shape).astype(np.float32)
    g[rng.random(shape) >= density] = 0
    return g


# (g's box (h', w'), F, C, groups, (KH, KW), stride, offset, out's box (h, w))
CASES = [
    ((1, 1), 5, 3, 1, (7, 7), (2, 2), (0, 0), (7, 7)),          # one unit: its window exactly
    ((3, 5), 4, 3, 1, (7, 7), (2, 2), (-1, -3), (9, 11)),       # cut by the padding on top and left
    ((5, 3), 6, 4, 2, (3, 3), (1, 1), (-1, -1), (5, 3)),        # groups, cut on every side
    ((4, 4), 6, 6, 3, (5, 3), (3, 2), (0, 1), (13, 9)),         # odd kernel, unequal strides
    ((3, 3), 8, 5, 1, (1, 1), (1, 1), (0, 0), (3, 3)),          # 1x1
    ((2, 3), 3, 2, 1, (3, 5), (2, 3), (2, 0), (8, 11)),         # the window starts inside the box
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rectify", [False, True])
@pytest.mark.parametrize("density", [0.1, 0.5, 1.0])
def test_every_path_equals_the_twin(rng, case, rectify, density):
    (gh, gw), F, C, groups, (KH, KW), stride, offset, (oh, ow) = case
    g = _signal(rng, (gh, gw, F), density)
    w = rng.standard_normal((F, C // groups, KH, KW)).astype(np.float32)
    start = rng.standard_normal((oh, ow, C)).astype(np.float32)             # the sum adds to out
    want = conv_transpose_sparse_reference(g, w, stride, groups, offset, start.copy(), rectify)
    for path in PATHS:
        if path in ("by_position", "filter_windows") and groups != 1:
            continue
        got = conv_transpose_sparse(g, w, stride, groups, offset, start.copy(), rectify, path=path)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=path)


def test_whole_plane_equals_conv_transpose2d(rng):
    # out's box the whole input plane, offset = -padding: kernels.conv_transpose2d, channels last
    F, C, H, W, stride, padding = 6, 4, 10, 8, (2, 2), (1, 2)
    w = rng.standard_normal((F, C, 3, 5)).astype(np.float32)
    y = kernels.max_pool2d(rng.standard_normal((1, F, 2 * 5, 2 * 4)).astype(np.float32), 2)[0]   # (1, F, 5, 4)
    dense = kernels.conv_transpose2d(y, w, stride, padding, output_size=(H, W))[0]           # (C, H, W)
    g = np.ascontiguousarray(y[0].transpose(1, 2, 0))                                          # (5, 4, F)
    for path in PATHS:
        out = conv_transpose_sparse(g, w, stride, 1, (-padding[0], -padding[1]), np.zeros((H, W, C), np.float32),
                                    path=path)
        np.testing.assert_allclose(out.transpose(2, 0, 1), dense, rtol=1e-5, atol=1e-5, err_msg=path)


def test_rectify_skips_the_negative_values(rng):
    g = _signal(rng, (3, 3, 4), 1.0)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    for path in PATHS:
        a = conv_transpose_sparse(g, w, (1, 1), 1, (0, 0), np.zeros((5, 5, 2), np.float32), True, path=path)
        b = conv_transpose_sparse(np.maximum(g, 0), w, (1, 1), 1, (0, 0), np.zeros((5, 5, 2), np.float32),
                                  path=path)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=path)


def test_the_dispatch_table():
    few = np.zeros((4, 4, 8), np.float32)
    few[1, 2, 3] = 1
    many = np.ones((4, 4, 8), np.float32)
    assert choose_path(few, False, 1, unpooled=True) == "by_position"
    assert choose_path(many, False, 1, unpooled=True) == "by_position"    # below an unpool: always
    assert choose_path(few, False, 2, unpooled=True) == "by_filter"       # groups: never by position
    assert choose_path(few, False, 1, unpooled=False) == "by_position"
    assert choose_path(few, False, 2, unpooled=False) == "by_filter"
    assert choose_path(many, False, 1, unpooled=False) == "columns"
    assert choose_path(-many, True, 1, unpooled=False) == "by_position"   # rectified: all zero
    half = many.copy()
    half.reshape(-1)[: int(DENSE * half.size)] = 0
    assert choose_path(half, False, 2, unpooled=False) == "by_filter"
    big = FILTER_BANK_BYTES + 1                                            # a bank larger than L2
    assert choose_path(few, False, 1, unpooled=False, filter_bytes=big) == "filter_windows"
    assert choose_path(few, False, 1, unpooled=True, filter_bytes=big) == "by_position"
    assert choose_path(few, False, 2, unpooled=False, filter_bytes=big) == "by_filter"
    assert choose_path(many, False, 1, unpooled=False, filter_bytes=big) == "columns"


@pytest.mark.parametrize("path,groups", [("by_position", 2), ("filter_windows", 2), ("winograd", 1)])
def test_a_path_that_cannot_run_is_an_error(rng, path, groups):
    g = _signal(rng, (2, 2, 4), 1.0)
    w = rng.standard_normal((4, 2 // groups, 3, 3)).astype(np.float32)                    # C = 2
    with pytest.raises(ZFNetError, match="by_position and filter_windows take groups=1"):
        conv_transpose_sparse(g, w, (1, 1), groups, (0, 0), np.zeros((4, 4, 2), np.float32), path=path)
