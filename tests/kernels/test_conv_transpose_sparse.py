"""conv_transpose_sparse (the sparse walk's filter step): each of its kernels against the NumPy
twin, on odd boxes, strides, groups, boxes cut by the padding, rectified or not, at every density;
the whole-plane case against kernels.conv_transpose2d; and pack_nonzero's compress (AVX-512
vcompressps) against np.flatnonzero."""
import itertools

import numpy as np
import pytest

from zfnet import kernels
from zfnet.kernels import ZFNetError
from zfnet.kernels.conv_transpose_sparse import (DENSE, FILTER_BANK_BYTES, PATHS, TILE_TAPS, TILES_DENSITY, choose_path,
                                                 conv_transpose_sparse, conv_transpose_sparse_reference, pack_nonzero)


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
        if path in ("by_position", "window_tiles", "filter_windows", "position_tiles") and groups != 1:
            continue
        if path == "position_tiles" and C % TILE_TAPS:
            continue                    # below: TILE_CASES
        got = conv_transpose_sparse(g, w, stride, groups, offset, start.copy(), rectify, path=path)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=path)


# position_tiles and window_tiles on channel counts that fill their register tiles, and not:
# (g's box, F, C, (KH, KW), stride, offset, out's box). position_tiles takes C in blocks of 64;
# window_tiles cuts a window of KH rows of KW*C floats into tiles of 14 vectors (here 1 to 11 tiles,
# rows of 21, 48, 192 or 480 floats, the last vector of a row partial or not).
TILE_CASES = [
    ((3, 3), 40, 64, (3, 3), (1, 1), (-1, -1), (3, 3)),           # one tile of positions short of 6, cut
    ((5, 4), 24, 128, (3, 3), (1, 1), (0, 0), (7, 6)),            # 20 positions: 4 tiles, the last of 2
    ((4, 5), 17, 96, (5, 5), (2, 2), (-2, -1), (9, 11)),          # ZFNet conv2's shape of window, cut
    ((6, 7), 20, 3, (7, 7), (2, 2), (-1, -3), (15, 17)),          # ZFNet conv1's shape of window, cut
    ((2, 2), 33, 16, (1, 3), (3, 1), (1, 0), (7, 4)),             # F not a multiple of 16
]


@pytest.mark.parametrize("case", TILE_CASES)
@pytest.mark.parametrize("rectify", [False, True])
@pytest.mark.parametrize("density", [0.05, 0.5, 1.0])
def test_the_register_tiles_equal_the_twin(rng, case, rectify, density):
    (gh, gw), F, C, (KH, KW), stride, offset, (oh, ow) = case
    g = _signal(rng, (gh, gw, F), density)
    w = rng.standard_normal((F, C, KH, KW)).astype(np.float32)
    w.setflags(write=False)                                    # frozen: its tiles are computed once
    start = rng.standard_normal((oh, ow, C)).astype(np.float32)
    want = conv_transpose_sparse_reference(g, w, stride, 1, offset, start.copy(), rectify)
    for path in ("window_tiles", "position_tiles") if C % TILE_TAPS == 0 else ("window_tiles",):
        for _ in range(2):                                     # the second call: the frozen tiles reused
            got = conv_transpose_sparse(g, w, stride, 1, offset, start.copy(), rectify, path=path)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=path)


@pytest.mark.parametrize("F", [16, 96, 37, 5])
def test_pack_nonzero_lists_what_flatnonzero_finds(rng, F):
    g = _signal(rng, (3, 4, F), 0.4)
    g[0, 0, :3] = [np.nan, -0.0, np.inf]                     # NaN is nonzero and not positive; -0 is zero
    for rectify in (False, True):
        start = np.empty(13, np.int64)
        values, filters = np.empty(g.size + 16, np.float32), np.empty(g.size + 16, np.int32)
        pack_nonzero(g, rectify, start, values, filters)
        for p in range(12):
            row = g.reshape(12, F)[p]
            want = np.flatnonzero(row > 0) if rectify else np.flatnonzero(row != 0)
            np.testing.assert_array_equal(filters[start[p]:start[p + 1]], want)
            np.testing.assert_array_equal(values[start[p]:start[p + 1]], row[want])


def test_whole_plane_equals_conv_transpose2d(rng):
    # out's box the whole input plane, offset = -padding: kernels.conv_transpose2d, channels last
    F, C, H, W, stride, padding = 6, 4, 10, 8, (2, 2), (1, 2)
    w = rng.standard_normal((F, C, 3, 5)).astype(np.float32)
    y = kernels.max_pool2d(rng.standard_normal((1, F, 2 * 5, 2 * 4)).astype(np.float32), 2)[0]   # (1, F, 5, 4)
    dense = kernels.conv_transpose2d(y, w, stride, padding, output_size=(H, W))[0]           # (C, H, W)
    g = np.ascontiguousarray(y[0].transpose(1, 2, 0))                                          # (5, 4, F)
    for path in set(PATHS) - {"position_tiles"}:                # C = 4 (TILE_CASES: position_tiles)
        out = conv_transpose_sparse(g, w, stride, 1, (-padding[0], -padding[1]), np.zeros((H, W, C), np.float32),
                                    path=path)
        np.testing.assert_allclose(out.transpose(2, 0, 1), dense, rtol=1e-5, atol=1e-5, err_msg=path)


def test_rectify_skips_the_negative_values(rng):
    g = _signal(rng, (3, 3, 4), 1.0)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    for path in set(PATHS) - {"position_tiles"}:                # C = 2
        a = conv_transpose_sparse(g, w, (1, 1), 1, (0, 0), np.zeros((5, 5, 2), np.float32), True, path=path)
        b = conv_transpose_sparse(np.maximum(g, 0), w, (1, 1), 1, (0, 0), np.zeros((5, 5, 2), np.float32),
                                  path=path)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=path)


def test_the_dispatch_table():
    few = np.zeros((4, 4, 8), np.float32)
    few[1, 2, 3] = 1
    many = np.ones((4, 4, 8), np.float32)
    assert choose_path(few, False, 1, unpooled=True) == "window_tiles"
    assert choose_path(many, False, 1, unpooled=True) == "window_tiles"   # below an unpool: always
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
    assert choose_path(few, False, 1, unpooled=True, filter_bytes=big) == "window_tiles"
    assert choose_path(few, False, 2, unpooled=False, filter_bytes=big) == "by_filter"
    assert choose_path(many, False, 1, unpooled=False, filter_bytes=big) == "columns"
    # C in blocks of 64, at least TILES_DENSITY of the values nonzero, one group: position_tiles
    part = many.copy()
    part.reshape(-1)[int(TILES_DENSITY * part.size) + 1:] = 0
    assert choose_path(part, False, 1, unpooled=False, out_channels=128) == "position_tiles"
    assert choose_path(part, False, 1, unpooled=False, out_channels=96) == "by_position"      # C = 96
    assert choose_path(few, False, 1, unpooled=False, out_channels=128) == "by_position"   # too few
    assert choose_path(part, False, 2, unpooled=False, out_channels=128) != "position_tiles"
    assert choose_path(part, False, 1, unpooled=True, out_channels=128) == "window_tiles"


@pytest.mark.parametrize("path,groups", [("by_position", 2), ("window_tiles", 2), ("filter_windows", 2),
                                        ("position_tiles", 2), ("winograd", 1)])
def test_a_path_that_cannot_run_is_an_error(rng, path, groups):
    g = _signal(rng, (2, 2, 4), 1.0)
    w = rng.standard_normal((4, 2 // groups, 3, 3)).astype(np.float32)                    # C = 2
    with pytest.raises(ZFNetError, match="filter_windows and position_tiles take groups=1"):
        conv_transpose_sparse(g, w, (1, 1), groups, (0, 0), np.zeros((4, 4, 2), np.float32), path=path)


def test_position_tiles_needs_channels_in_blocks_of_64(rng):
    g = _signal(rng, (2, 2, 4), 1.0)
    w = rng.standard_normal((4, 96, 3, 3)).astype(np.float32)
    with pytest.raises(ZFNetError, match="input channels .* 96. in blocks of 64"):
        conv_transpose_sparse(g, w, (1, 1), 1, (0, 0), np.zeros((4, 4, 96), np.float32), path="position_tiles")
