"""The NCHW16c layout and conv2d_nchwc: each Numba kernel against its NumPy twin, and the blocked
convolution against conv2d's own twin on NCHW (so the blocking itself is checked, not only the loops).

Sizes are odd on purpose: channel counts that are not multiples of 16 (the zero padding of the
last block), output widths that are not multiples of the 6-pixel tile (tiles that wrap to the
next row and a last, partial tile), strides 1-3, padding, batch 1 and 3.
"""
import numpy as np
import pytest

from zfnet.kernels import ZFNetError, nchwc
from zfnet.kernels.conv2d import conv2d_reference
from zfnet.kernels.conv2d_nchwc import (PATHS, choose_path, conv2d_nchwc, conv2d_nchwc_from_nchw,
                                        conv2d_nchwc_reference)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def assert_close_to_sum(actual, expected, magnitude, rtol=1e-5):
    """|actual - expected| <= rtol * (|expected| + max magnitude): float32 error of a long sum."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.float32
    err = np.abs(actual.astype(np.float64) - expected)
    assert np.all(err <= rtol * (np.abs(expected) + magnitude.max())), f"max error {err.max():.3g}"


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (3, 16, 4, 3), (3, 33, 2, 5), (1, 1, 1, 1)])
def test_to_and_from_nchwc_equal_their_twins(shape):
    x = _randn(np.random.default_rng(0), *shape)
    x_b = nchwc.to_nchwc(x)
    assert x_b.shape == (shape[0], -(-shape[1] // 16), shape[2], shape[3], 16)
    np.testing.assert_array_equal(x_b, nchwc.to_nchwc_reference(x))
    np.testing.assert_array_equal(nchwc.from_nchwc(x_b, shape[1]), nchwc.from_nchwc_reference(x_b, shape[1]))
    np.testing.assert_array_equal(nchwc.from_nchwc(x_b, shape[1]), x)


def test_padded_channels_are_zero():
    x = np.full((2, 19, 3, 3), np.nan, np.float32)
    x_b = nchwc.to_nchwc(x)
    assert np.isnan(x_b[:, 1, ..., :3]).all() and (x_b[:, 1, ..., 3:] == 0).all()


@pytest.mark.parametrize("shape", [(20, 3, 7, 7), (16, 16, 1, 1), (5, 37, 3, 2)])
def test_filters_to_nchwc_equals_its_twin(shape):
    w = _randn(np.random.default_rng(1), *shape)
    np.testing.assert_array_equal(nchwc.filters_to_nchwc(w), nchwc.filters_to_nchwc_reference(w))


def test_layout_errors_name_the_argument():
    with pytest.raises(ZFNetError, match="x_b must be NCHW16c"):
        nchwc.from_nchwc(np.zeros((1, 1, 2, 2, 8), np.float32), 3)
    with pytest.raises(ZFNetError, match="channels must be in 1..16"):
        nchwc.from_nchwc(np.zeros((1, 1, 2, 2, 16), np.float32), 17)
    with pytest.raises(ZFNetError, match="b must have 5 elements"):
        nchwc.bias_to_nchwc(np.zeros(4, np.float32), 5)


# --------------------------------------------------------------------------------------------
# conv2d_nchwc
# --------------------------------------------------------------------------------------------

CASES = [
    # N, C, H, W, F, K, stride, pad
    (1, 3, 11, 13, 20, 7, 2, 1),       # a first layer: 3 real channels of 16, stride 2
    (3, 17, 9, 7, 33, 3, 1, 1),        # both channel counts one past a block
    (1, 16, 5, 5, 16, 3, 1, 0),        # exact blocks, 9 output pixels: one full tile and a partial one
    (3, 5, 8, 10, 7, 5, 3, 2),         # stride 3, padding 2
    (1, 40, 6, 7, 18, 1, 1, 0),        # 1x1: the pointwise GEMM
    (3, 20, 5, 3, 30, 1, 1, 0),        # 1x1, batch 3, 15 pixels: the last tile shifted back
    (2, 16, 2, 5, 48, 1, 1, 0),        # 1x1, 10 pixels: too few for a 12-pixel tile
    (3, 20, 7, 5, 30, 1, 2, 0),        # 1x1 with stride 2: direct
    (1, 8, 2, 2, 8, 1, 1, 1),          # 1x1 with padding: direct, output pixels of padding only
    (2, 40, 5, 4, 35, 1, 1, 1),        # 1x1 with padding, 20 input pixels: pointwise inside a border of biases
    (1, 20, 3, 3, 16, 1, 1, 2),        # 1x1, 9 input pixels, padding 2: pointwise_gemm_6x16 inside
    (2, 20, 7, 6, 100, 3, 1, 1),       # 7 filter blocks: direct_6x64 on 4, direct_12x32 on 2, 6x16 on 1
    (1, 33, 9, 9, 64, 5, 2, 2),        # 4 filter blocks, 3 input blocks (the last partial), stride 2
    (1, 16, 9, 9, 64, 3, 1, 1),        # 81 pixels: 14 tiles of 6 in two chunks, the last shifted back
    (2, 20, 4, 3, 64, 3, 1, 0),        # 2 output pixels: fewer than a tile, stored from a copy
]


@pytest.mark.parametrize("N, C, H, W, F, K, s, p", CASES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("wide", [False, True], ids=["6x16", "wide"])
def test_conv2d_nchwc_equals_both_twins(N, C, H, W, F, K, s, p, relu, wide):
    """Both tile sets on every case (F = 7..100: one to seven filter blocks, so the wide kernels run
    on their groups and the blocks left over on the narrower ones); the wide tiles give the 6x16
    tiles' bits."""
    rng = np.random.default_rng(2)
    x, w, b = _randn(rng, N, C, H, W), _randn(rng, F, C, K, K), _randn(rng, F)
    x_b, w_b, b_b = nchwc.to_nchwc(x), nchwc.filters_to_nchwc(w), nchwc.bias_to_nchwc(b, F)
    Ho, Wo = (H + 2 * p - K) // s + 1, (W + 2 * p - K) // s + 1
    path = choose_path((K, K), (s, s), (p, p), (Ho, Wo), wide=wide)
    assert wide or path.endswith("6x16")
    y_b = conv2d_nchwc(x_b, w_b, b_b, s, p, relu=relu, channels=C, path=path)
    if wide:
        narrow = choose_path((K, K), (s, s), (p, p), (Ho, Wo), wide=False)
        np.testing.assert_array_equal(y_b, conv2d_nchwc(x_b, w_b, b_b, s, p, relu=relu, channels=C, path=narrow))
    twin = conv2d_nchwc_reference(x_b, w_b, b_b, (s, s), (p, p), relu=relu)
    magnitude = conv2d_reference(np.abs(x), np.abs(w), np.abs(b), s, p)
    assert_close_to_sum(y_b, twin.astype(np.float64), magnitude)
    expected = conv2d_reference(x, w, b, s, p).astype(np.float64)
    expected = np.maximum(expected, 0) if relu else expected
    assert_close_to_sum(nchwc.from_nchwc(y_b, F), expected, magnitude)
    assert not y_b[:, -1, ..., F % 16:].any() if F % 16 else True   # padded filters stay zero



NCHW_CASES = [c for c in CASES if c[1] <= 20] + [
    (2, 1, 7, 8, 32, 2, 1, 0),         # 4 (channel, tap) pairs: direct_nchw_6x32's trip of 3 and 1 left over
]   # the others leave 0 (147, 153, 144, 180 pairs) or 2 (125, 20, 8)


@pytest.mark.parametrize("N, C, H, W, F, K, s, p", NCHW_CASES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("path", ["direct_nchw_6x16", "direct_nchw_6x32"])
def test_conv2d_nchwc_from_nchw_equals_the_blocked_kernel_and_the_twins(N, C, H, W, F, K, s, p, relu, path):
    """direct_nchw_6x16 and _6x32 read the plain NCHW input where direct_6x16 reads its blocked
    copy: the same sums in the same order, so the same bits; and both twins within float32 rounding."""
    rng = np.random.default_rng(12)
    x, w, b = _randn(rng, N, C, H, W), _randn(rng, F, C, K, K), _randn(rng, F)
    x_b, w_b, b_b = nchwc.to_nchwc(x), nchwc.filters_to_nchwc(w), nchwc.bias_to_nchwc(b, F)
    y_b = conv2d_nchwc_from_nchw(x, w_b, b_b, s, p, relu=relu, path=path)
    np.testing.assert_array_equal(y_b, conv2d_nchwc(x_b, w_b, b_b, s, p, relu=relu, channels=C, path="direct_6x16"))
    magnitude = conv2d_reference(np.abs(x), np.abs(w), np.abs(b), s, p)
    twin = conv2d_nchwc_reference(x_b, w_b, b_b, (s, s), (p, p), relu=relu)
    assert_close_to_sum(y_b, twin.astype(np.float64), magnitude)
    expected = conv2d_reference(x, w, b, s, p).astype(np.float64)
    assert_close_to_sum(nchwc.from_nchwc(y_b, F), np.maximum(expected, 0) if relu else expected, magnitude)


def test_conv2d_nchwc_from_nchw_out_block_and_errors():
    rng = np.random.default_rng(13)
    x, w_b = _randn(rng, 2, 3, 9, 9), nchwc.filters_to_nchwc(_randn(rng, 16, 3, 3, 3))
    b_b = nchwc.bias_to_nchwc(_randn(rng, 16), 16)
    out = np.full((2, 3, 4, 4, 16), np.nan, np.float32)
    y_b = conv2d_nchwc_from_nchw(x, w_b, b_b, 2, 0, out=out, out_block=1)
    np.testing.assert_array_equal(y_b, conv2d_nchwc_from_nchw(x, w_b, b_b, 2, 0))
    assert np.isnan(out[:, 0]).all() and np.isnan(out[:, 2]).all()
    with pytest.raises(ZFNetError, match="do not fit x"):
        conv2d_nchwc_from_nchw(_randn(rng, 2, 17, 9, 9), w_b, b_b)
    with pytest.raises(ZFNetError, match="x must have 4 dimensions"):
        conv2d_nchwc_from_nchw(x[0], w_b, b_b)
    with pytest.raises(ZFNetError, match="unknown conv2d_nchwc_from_nchw path 'direct_6x16'"):
        conv2d_nchwc_from_nchw(x, w_b, b_b, path="direct_6x16")
    with pytest.raises(ZFNetError, match="are conv2d_nchwc_from_nchw's"):
        conv2d_nchwc(nchwc.to_nchwc(x), w_b, b_b, path="direct_nchw_6x16")


def test_both_paths_agree_on_a_pointwise_layer():
    rng = np.random.default_rng(3)
    x_b, w_b, b_b = nchwc.to_nchwc(_randn(rng, 3, 24, 5, 7)), nchwc.filters_to_nchwc(_randn(rng, 20, 24, 1, 1)), \
        nchwc.bias_to_nchwc(_randn(rng, 20), 20)
    assert choose_path((1, 1), (1, 1), (0, 0), (5, 7), wide=False) == "pointwise_gemm_6x16"
    assert choose_path((1, 1), (1, 1), (0, 0), (5, 7), wide=True) == "pointwise_gemm_12x32"
    ys = [conv2d_nchwc(x_b, w_b, b_b, path=path)
          for path in ("pointwise_gemm_6x16", "direct_6x16", "pointwise_gemm_12x32", "direct_12x32", "direct_6x64")]
    for y in ys[1:]:
        np.testing.assert_allclose(ys[0], y, rtol=1e-5, atol=1e-5)


def test_out_is_written_and_returned():
    rng = np.random.default_rng(4)
    x_b, w_b = nchwc.to_nchwc(_randn(rng, 1, 20, 6, 6)), nchwc.filters_to_nchwc(_randn(rng, 17, 20, 3, 3))
    b_b = nchwc.bias_to_nchwc(_randn(rng, 17), 17)
    out = np.full((1, 2, 6, 6, 16), np.nan, np.float32)
    assert conv2d_nchwc(x_b, w_b, b_b, 1, 1, out=out) is out
    np.testing.assert_array_equal(out, conv2d_nchwc(x_b, w_b, b_b, 1, 1))
    with pytest.raises(ZFNetError, match="out must have shape"):
        conv2d_nchwc(x_b, w_b, b_b, 1, 0, out=out)



@pytest.mark.parametrize("path", ["direct_6x16", "pointwise_gemm_6x16", "direct_12x32", "pointwise_gemm_12x32",
                                  "direct_6x64"])
def test_out_block_fills_its_blocks_of_a_wider_array_only(path):
    """out_block: the convolution's blocks of a concat's output are written, the rest untouched."""
    rng = np.random.default_rng(6)
    x_b, w_b = nchwc.to_nchwc(_randn(rng, 3, 20, 7, 5)), nchwc.filters_to_nchwc(_randn(rng, 32, 20, 1, 1))
    b_b = nchwc.bias_to_nchwc(_randn(rng, 32), 32)
    out = np.full((3, 5, 7, 5, 16), np.nan, np.float32)
    y_b = conv2d_nchwc(x_b, w_b, b_b, relu=True, path=path, out=out, out_block=2)
    assert np.shares_memory(y_b, out) and y_b.shape == (3, 2, 7, 5, 16)
    np.testing.assert_array_equal(out[:, 2:4], conv2d_nchwc(x_b, w_b, b_b, relu=True, path=path))
    assert np.isnan(out[:, :2]).all() and np.isnan(out[:, 4:]).all()
    for bad in (4, -1, 1.0, True):
        with pytest.raises(ZFNetError, match="out_block must be an integer from 0 to 3"):
            conv2d_nchwc(x_b, w_b, b_b, out=out, out_block=bad)
    with pytest.raises(ZFNetError, match="needs out="):
        conv2d_nchwc(x_b, w_b, b_b, out_block=1)

def test_out_block_with_direct_6x64_groups_and_a_block_left_over():
    """5 filter blocks into blocks 2..6 of an 8-block output: direct_6x64 writes 2..5, direct_6x16 6."""
    rng = np.random.default_rng(7)
    x_b, w_b = nchwc.to_nchwc(_randn(rng, 2, 20, 7, 6)), nchwc.filters_to_nchwc(_randn(rng, 80, 20, 3, 3))
    b_b = nchwc.bias_to_nchwc(_randn(rng, 80), 80)
    out = np.full((2, 8, 7, 6, 16), np.nan, np.float32)
    conv2d_nchwc(x_b, w_b, b_b, 1, 1, relu=True, path="direct_6x64", out=out, out_block=2)
    np.testing.assert_array_equal(out[:, 2:7], conv2d_nchwc(x_b, w_b, b_b, 1, 1, relu=True, path="direct_6x16"))
    assert np.isnan(out[:, :2]).all() and np.isnan(out[:, 7:]).all()


@pytest.mark.parametrize("wide, direct, pointwise", [(False, "direct_6x16", "pointwise_gemm_6x16"),
                                                     (True, "direct_6x64", "pointwise_gemm_12x32")])
def test_path_rule(wide, direct, pointwise):
    assert choose_path((1, 1), (1, 1), (0, 0), (2, 2), wide=wide) == direct   # fewer pixels than a tile
    assert choose_path((3, 3), (1, 1), (1, 1), (13, 13), wide=wide) == direct
    assert choose_path((1, 1), (2, 2), (0, 0), (13, 13), wide=wide) == direct
    assert choose_path((1, 1), (1, 1), (0, 0), (13, 13), wide=wide) == pointwise
    assert choose_path((1, 1), (1, 1), (0, 0), (2, 5), wide=wide) == "pointwise_gemm_6x16"   # 10 pixels: < 12


def test_the_default_tile_follows_the_compiled_vector_width():
    from zfnet.kernels import _codegen
    wide = _codegen.wide_vectors()
    assert choose_path((3, 3), (1, 1), (1, 1), (13, 13)) == ("direct_6x64" if wide else "direct_6x16")


def test_conv2d_nchwc_errors_name_the_fix():
    x_b = np.zeros((1, 1, 4, 4, 16), np.float32)
    w_b, b_b = np.zeros((1, 2, 3, 3, 16, 16), np.float32), np.zeros(16, np.float32)
    with pytest.raises(ZFNetError, match="filters_to_nchwc"):
        conv2d_nchwc(x_b, w_b, b_b)
    with pytest.raises(ZFNetError, match="use path='direct_6x16'"):
        conv2d_nchwc(x_b, np.zeros((1, 1, 3, 3, 16, 16), np.float32), b_b, path="pointwise_gemm_6x16")
    with pytest.raises(ZFNetError, match="unknown conv2d_nchwc path"):
        conv2d_nchwc(x_b, np.zeros((1, 1, 3, 3, 16, 16), np.float32), b_b, path="winograd")
    with pytest.raises(ZFNetError, match="larger than the padded input"):
        conv2d_nchwc(x_b, np.zeros((1, 1, 5, 5, 16, 16), np.float32), b_b)


def test_blocked_arrays_start_on_a_cache_line(rng):
    """aligned_empty, and every array the blocked kernels allocate (blocked input, prepared
    filters, outputs, the padding buffer): data on a 64-byte boundary, so a pixel's 16 floats are
    one cache line."""
    from zfnet.kernels._scratch import CACHE_LINE, aligned_empty, work_buffer
    for shape, dtype in (((3, 5), np.float32), (7, np.int64), ((1, 1, 2, 2, 16), np.float32), ((1,), np.float64)):
        a = aligned_empty(shape, dtype)
        assert a.ctypes.data % CACHE_LINE == 0 and a.dtype == dtype and a.flags.c_contiguous
        assert a.shape == (shape if isinstance(shape, tuple) else (shape,))
    x = rng.standard_normal((2, 20, 9, 9), dtype=np.float32)
    w = rng.standard_normal((40, 20, 3, 3), dtype=np.float32)
    x_b, w_b, b_b = nchwc.to_nchwc(x), nchwc.filters_to_nchwc(w), nchwc.bias_to_nchwc(None, 40)
    y_b = conv2d_nchwc(x_b, w_b, b_b, padding=1)
    from zfnet.kernels.pool_nchwc import max_pool2d_nchwc
    for a in (x_b, w_b, y_b, work_buffer("nchwc_pad", 1000), max_pool2d_nchwc(y_b, 3, 2)):
        assert a.ctypes.data % CACHE_LINE == 0


@pytest.mark.parametrize("relu", [False, True])
def test_a_padded_pointwise_layer_is_the_direct_kernels_bits(relu):
    """SqueezeNet v1.0's conv10 is 1x1 with padding 1: the pointwise GEMM inside a border of biases
    gives direct_6x16's very bits (the same sums in the same order; the border's sum has no
    products, so it is 0 + b), also into blocks of a wider array (only its own blocks' border)."""
    rng = np.random.default_rng(5)
    x_b = nchwc.to_nchwc(_randn(rng, 2, 40, 5, 7))
    w_b = nchwc.filters_to_nchwc(_randn(rng, 50, 40, 1, 1))
    b_b = nchwc.bias_to_nchwc(_randn(rng, 50), 50)
    assert choose_path((1, 1), (1, 1), (1, 1), (7, 9), wide=True) == "pointwise_gemm_12x32"
    assert choose_path((1, 1), (1, 1), (1, 1), (7, 9), wide=False) == "pointwise_gemm_6x16"
    assert choose_path((1, 1), (1, 1), (1, 1), (3, 4), wide=False) == "direct_6x16"    # 2 input pixels
    direct = conv2d_nchwc(x_b, w_b, b_b, padding=1, relu=relu, path="direct_6x16")
    for path in ("pointwise_gemm_6x16", "pointwise_gemm_12x32"):
        np.testing.assert_array_equal(conv2d_nchwc(x_b, w_b, b_b, padding=1, relu=relu, path=path), direct)
        out = np.full((2, 6, 7, 9, 16), 7.0, np.float32)
        conv2d_nchwc(x_b, w_b, b_b, padding=1, relu=relu, path=path, out=out, out_block=2)
        np.testing.assert_array_equal(out[:, 2:6], direct)
        assert (out[:, :2] == 7.0).all()
    with pytest.raises(ZFNetError, match="stride-1"):
        conv2d_nchwc(x_b, w_b, b_b, stride=2, padding=1, path="pointwise_gemm_6x16")


@pytest.mark.parametrize("ph, pw", [(1, 1), (2, 0), (0, 3)])
def test_pad_planes_is_numpys_pad(ph, pw):
    """The padding copy writes every float of the padded planes (border rows, side pixels, input
    rows) once: what was in the buffer before does not show."""
    from zfnet.kernels.conv2d_nchwc import _pad_planes
    x = np.random.default_rng(0).random((2, 3, 5, 4, 16), dtype=np.float32)
    x_pad = np.full((2, 3, 5 + 2 * ph, 4 + 2 * pw, 16), 9.0, np.float32)
    _pad_planes(x, ph, pw, x_pad)
    np.testing.assert_array_equal(x_pad, np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw), (0, 0))))
