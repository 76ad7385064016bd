"""Pooling, LRN and ReLU on NCHW16c: each Numba kernel against its NumPy twin, and against the NCHW
kernels' twins through the layout conversion (odd sizes, ceil and floor rules, padding, N = 1 and
3, channel counts that are not multiples of 16, NaN)."""
import numpy as np
import pytest

from zfnet.kernels import ZFNetError, nchwc, relu
from zfnet.kernels.lrn import lrn_reference
from zfnet.kernels.max_pool2d import max_pool2d_reference, pool_output_size
from zfnet.kernels.pool_nchwc import (global_avg_pool_nchwc, global_avg_pool_nchwc_reference, lrn_nchwc,
                                      lrn_nchwc_reference, max_pool2d_nchwc, max_pool2d_nchwc_reference,
                                      max_pool2d_switches_nchwc_reference, switches_from_nchwc)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("N, C, H, W, k, s, p, ceil", [
    (1, 3, 11, 9, 3, 2, 0, True),      # Caffe rounding: a last window hanging over the edge
    (3, 17, 10, 13, 3, 2, 1, False),   # padding, one channel past a block
    (1, 40, 7, 7, 2, 2, 0, True),
    (3, 16, 5, 6, 3, 1, 1, True),      # stride 1
    (1, 5, 8, 8, 5, 3, 2, False),      # stride 3, padding 2
])
def test_max_pool2d_nchwc_equals_its_twin_and_max_pool2d(N, C, H, W, k, s, p, ceil):
    x = _randn(np.random.default_rng(0), N, C, H, W)
    x[0, 0, 1, 1] = np.nan                       # a NaN wins its windows, as in max_pool2d
    x_b = nchwc.to_nchwc(x)
    y_b = max_pool2d_nchwc(x_b, k, s, p, ceil)
    out_hw = pool_output_size((H, W), k, s, p, ceil)
    np.testing.assert_array_equal(y_b, max_pool2d_nchwc_reference(x_b, (k, k), (s, s), (p, p), out_hw))
    expected, _ = max_pool2d_reference(x, (k, k), (s, s), (p, p), out_hw)
    np.testing.assert_array_equal(nchwc.from_nchwc(y_b, C), expected)
    assert not y_b[:, -1, ..., C % 16:].any() if C % 16 else True


def test_global_avg_pool_nchwc_equals_its_twin_and_the_mean():
    x = _randn(np.random.default_rng(1), 3, 20, 13, 11)
    y_b = global_avg_pool_nchwc(nchwc.to_nchwc(x))
    np.testing.assert_allclose(y_b, global_avg_pool_nchwc_reference(nchwc.to_nchwc(x)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(nchwc.from_nchwc(y_b, 20), x.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("N, C, size, alpha, beta, k", [
    (1, 20, 5, 1e-4, 0.75, 1.0),       # ZFNet's norm1/norm2
    (3, 33, 5, 5e-4, 0.75, 2.0),       # ZFNet-512's, windows across two block boundaries
    (1, 16, 4, 0.1, 0.5, 1.5),         # an even window
    (3, 7, 1, 0.3, 1.0, 1.0),
])
def test_lrn_nchwc_equals_its_twin_and_lrn(N, C, size, alpha, beta, k):
    x = _randn(np.random.default_rng(2), N, C, 5, 3) * 10
    x_b = nchwc.to_nchwc(x)
    y_b = lrn_nchwc(x_b, size, alpha, beta, k)
    # float32 arithmetic (the window's sum, its power): within 4 float32 ulps (2**-23 each) of the
    # float64 twins; 2e-7 held while the kernel summed and took the power in float64
    np.testing.assert_allclose(y_b, lrn_nchwc_reference(x_b, size, alpha, beta, k), rtol=4 * 2.0**-23, atol=0)
    expected = lrn_reference(x, size, alpha, beta, k, within_channel=False)
    np.testing.assert_allclose(nchwc.from_nchwc(y_b, C), expected, rtol=4 * 2.0**-23, atol=0)
    assert not y_b[:, -1, ..., C % 16:].any() if C % 16 else True


def test_relu_is_layout_free():
    x = _randn(np.random.default_rng(3), 3, 19, 4, 5)
    np.testing.assert_array_equal(relu(nchwc.to_nchwc(x)), nchwc.to_nchwc(relu(x)))


def test_errors_name_the_argument():
    x_b = np.zeros((1, 1, 4, 4, 16), np.float32)
    with pytest.raises(ZFNetError, match="padding"):
        max_pool2d_nchwc(x_b, 2, 2, 2)
    with pytest.raises(ZFNetError, match="size must be an int"):
        lrn_nchwc(x_b, 0)
    with pytest.raises(ZFNetError, match="k > 0"):
        lrn_nchwc(x_b, 5, k=0.0)
    with pytest.raises(ZFNetError, match="NCHW16c"):
        global_avg_pool_nchwc(np.zeros((1, 1, 4, 4, 8), np.float32))


@pytest.mark.parametrize("N, C, H, W, k, s, p, ceil, relu_input", [
    (1, 3, 11, 9, 3, 2, 0, True, False),
    (3, 17, 10, 13, 3, 2, 1, False, True),
    (2, 40, 7, 7, 2, 2, 0, True, True),
    (1, 5, 8, 8, 5, 3, 2, False, False),
])
def test_max_pool2d_nchwc_switches_equal_max_pool2d(N, C, H, W, k, s, p, ceil, relu_input):
    x = _randn(np.random.default_rng(5), N, C, H, W)
    x[0, 0, 1, 1] = np.nan
    x[:, :, 2:4, 2:5] = -1.0                     # ties (and, rectified, zeros): the first maximum wins
    x[-1, -1, 3, 3] = 7.0
    x_b = nchwc.to_nchwc(x)
    y_b, switches_b = max_pool2d_nchwc(x_b, k, s, p, ceil, relu_input=relu_input, return_switches=True)
    out_hw = pool_output_size((H, W), k, s, p, ceil)
    ty_b, tswitches_b = max_pool2d_switches_nchwc_reference(x_b, (k, k), (s, s), (p, p), out_hw, relu_input)
    np.testing.assert_array_equal(y_b, ty_b)
    np.testing.assert_array_equal(switches_b, tswitches_b)
    expected, switches = max_pool2d_reference(relu(x) if relu_input else x, (k, k), (s, s), (p, p), out_hw)
    np.testing.assert_array_equal(nchwc.from_nchwc(y_b, C), expected)
    np.testing.assert_array_equal(switches_from_nchwc(switches_b, C), switches)
    np.testing.assert_array_equal(max_pool2d_nchwc(x_b, k, s, p, ceil, relu_input=relu_input), y_b)


def test_rectified_pooling_without_switches_keeps_the_bits_of_pooling_relu_x():
    """relu_input without switches rectifies the window's maximum, not each input: the same bits
    (+0.0 for an all-negative or -0.0 window, NaN kept, -inf inputs give 0) as pooling relu(x)."""
    x = -np.abs(_randn(np.random.default_rng(8), 2, 19, 9, 9))     # every window negative
    x[0, 0] = -0.0
    x[0, 1, 4, 4] = np.nan
    x[1, 2] = -np.inf
    x[1, 3, 0, 0] = 2.5
    x_b = nchwc.to_nchwc(x)
    for k, s, p, ceil in [(3, 2, 0, True), (3, 2, 1, False), (2, 2, 0, False)]:
        out_hw = pool_output_size((9, 9), k, s, p, ceil)
        y_b = max_pool2d_nchwc(x_b, k, s, p, ceil, relu_input=True)
        expected = max_pool2d_nchwc_reference(nchwc.to_nchwc(relu(x)), (k, k), (s, s), (p, p), out_hw)
        np.testing.assert_array_equal(y_b.view(np.int32), expected.view(np.int32))


def test_pools_and_lrn_write_into_out_and_check_it():
    """out=: the result is written there and returned (the blocked walk's arena buffers); a wrong
    shape, an overlap with the input, or a wrong dtype is refused with the expected shape named."""
    from zfnet.kernels.pool_nchwc import global_avg_pool_nchwc, lrn_nchwc, max_pool2d_nchwc
    x_b = nchwc.to_nchwc(np.random.default_rng(0).standard_normal((2, 20, 7, 6)).astype(np.float32))
    cases = [(lambda out: max_pool2d_nchwc(x_b, 3, 2, out=out), (2, 2, 3, 2, 16)),
             (lambda out: max_pool2d_nchwc(x_b, 3, 2, return_switches=True, out=out)[0], (2, 2, 3, 2, 16)),
             (lambda out: lrn_nchwc(x_b, 5, 1e-4, 0.75, 2.0, out=out), x_b.shape),
             (lambda out: global_avg_pool_nchwc(x_b, out=out), (2, 2, 1, 1, 16))]
    for op, shape in cases:
        want = op(None)
        out = np.full(shape, np.nan, np.float32)
        assert op(out) is out
        np.testing.assert_array_equal(out, want)
        with pytest.raises(ZFNetError, match=r"out must have shape"):
            op(np.empty((1,) + shape[1:], np.float32))
        with pytest.raises(ZFNetError, match=r"out must be float32"):
            op(np.empty(shape, np.float64))
    with pytest.raises(ZFNetError, match=r"must not overlap"):
        lrn_nchwc(x_b, 5, out=x_b)


@pytest.mark.parametrize("k, s, p", [(3, 2, 0), (3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2)])
def test_four_windows_at_a_time_keep_the_order_of_each_window(k, s, p):
    """_max_pool_rows takes four whole windows at once in the row's interior: each output still
    sees its elements in the order h, then w, so ties between 0.0 and -0.0 and NaN payloads come
    out as in the one-window-at-a-time kernel (the switches' kernel, compared as bits)."""
    rng = np.random.default_rng(5)
    x = rng.choice(np.array([0.0, -0.0, 1.0, -1.0], np.float32), size=(2, 20, 9, 41))
    x[0, 3, 4, 17] = np.frombuffer(np.uint32(0x7FC00001).tobytes(), np.float32)[0]    # a NaN with a payload
    x[1, 7, 2, 30] = np.frombuffer(np.uint32(0xFFC00002).tobytes(), np.float32)[0]
    x_b = nchwc.to_nchwc(x)
    for relu_input in (False, True):
        y_b = max_pool2d_nchwc(x_b, k, s, p, relu_input=relu_input)
        one_at_a_time, _ = max_pool2d_nchwc(x_b, k, s, p, relu_input=relu_input, return_switches=True)
        np.testing.assert_array_equal(y_b.view(np.uint32), one_at_a_time.view(np.uint32))
