"""conv2d's Winograd F(4x4, 3x3) path against the NumPy twin, and the filter-transform cache.

The error bound is the one conv2d's tests use (relative to conv2d(|x|, |w|)), with the tolerance
raised from 1e-5 to 2e-5: the transforms scale values by up to 5 and 8 before the sums cancel.
"""
import gc
import importlib

import numpy as np
import pytest

from zfnet.kernels import conv2d, frozen, prepared
from zfnet.kernels.conv2d import conv2d_reference

from test_conv2d import assert_conv_close

wino = importlib.import_module("zfnet.kernels._winograd")
conv2d_mod = importlib.import_module("zfnet.kernels.conv2d")


def _frozen_randn(rng, *shape):
    a = rng.standard_normal(shape).astype(np.float32)
    a.setflags(write=False)
    return a


def _run(x, w, b, padding, relu):
    N, _, H, W = x.shape
    ho, wo = H + 2 * padding[0] - 2, W + 2 * padding[1] - 2
    y = np.full((N, w.shape[0], ho, wo), np.nan, np.float32)
    return wino.conv3x3_winograd(x, w, b, padding, relu, y)


@pytest.mark.parametrize("hw", [(3, 3), (4, 4), (5, 7), (8, 8), (13, 13), (17, 10)])
@pytest.mark.parametrize("padding", [(0, 0), (1, 1), (2, 2), (0, 2), (2, 1)])
def test_equals_reference_sizes_and_padding(hw, padding):
    rng = np.random.default_rng(hash((hw, padding)) % 2**32)
    if hw[0] + 2 * padding[0] < 3 or hw[1] + 2 * padding[1] < 3:
        pytest.skip("no window fits")
    x = rng.standard_normal((2, 5, *hw)).astype(np.float32)
    w, b = _frozen_randn(rng, 7, 5, 3, 3), _frozen_randn(rng, 7)
    got = _run(x, w, b, padding, False)
    want = conv2d_reference(x, w, b, 1, padding)
    assert_conv_close(got, want, x, w, 1, padding, 1, rtol=2e-5)


@pytest.mark.parametrize("C, K", [(1, 1), (3, 40), (33, 9), (64, 130)])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_equals_reference_channels_bias_relu(C, K, relu, bias):
    rng = np.random.default_rng(C * 1000 + K)
    x = rng.standard_normal((3, C, 11, 9)).astype(np.float32)
    w = _frozen_randn(rng, K, C, 3, 3)
    b = _frozen_randn(rng, K) if bias else None
    got = _run(x, w, b, (1, 1), relu)
    want = conv2d_reference(x, w, b, 1, 1)
    if relu:
        want = np.maximum(want, 0)
    assert_conv_close(got, want, x, w, 1, 1, 1, rtol=2e-5)
    if relu:
        assert (got >= 0).all()


def test_real_layer_shapes_match_im2col():
    """ZFNet conv4 (384 -> 384 at 13x13) and SqueezeNet fire4/expand3x3 (32 -> 128 at 55x55)."""
    rng = np.random.default_rng(4)
    for (C, K, H) in [(384, 384, 13), (32, 128, 55)]:
        x = np.maximum(rng.standard_normal((2, C, H, H)), 0).astype(np.float32)
        w = _frozen_randn(rng, K, C, 3, 3) * np.float32(np.sqrt(2 / (9 * C)))
        w.setflags(write=False)
        got = _run(x, w, None, (1, 1), False)
        want = conv2d_mod.CPU_PATHS["im2col_chunked"](x, w, None, (1, 1), (1, 1), 1, False,
                                                     np.empty_like(got))
        assert_conv_close(got, want, x, w, 1, 1, 1, rtol=2e-5)


def test_writes_only_its_channel_slice():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)
    w, b = _frozen_randn(rng, 4, 6, 3, 3), _frozen_randn(rng, 4)
    big = np.full((2, 10, 9, 9), 7.0, np.float32)
    wino.conv3x3_winograd(x, w, b, (1, 1), True, big[:, 3:7])
    assert (big[:, :3] == 7).all() and (big[:, 7:] == 7).all()
    assert_conv_close(big[:, 3:7], np.maximum(conv2d_reference(x, w, b, 1, 1), 0), x, w, 1, 1, 1, rtol=2e-5)


def test_image_chunks_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 8, 10, 10)).astype(np.float32)
    w, b = _frozen_randn(rng, 6, 8, 3, 3), _frozen_randn(rng, 6)
    whole = _run(x, w, b, (1, 1), False)
    monkeypatch.setattr(wino, "WINO_BYTES", 1)            # one image per chunk
    np.testing.assert_array_equal(_run(x, w, b, (1, 1), False), whole)


def test_filter_transform_is_G_w_Gt():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    U = wino.filter_transform(w)                                     # (36, C, K)
    for k in range(3):
        for c in range(2):
            want = wino.G @ w[k, c].astype(np.float64) @ wino.G.T      # (6, 6)
            np.testing.assert_allclose(U[:, c, k].reshape(6, 6), want, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# the matrices B^T, G, A^T, the matrix-form twin, and the hand-expanded transforms against them
# ----------------------------------------------------------------------------------------------

def test_matrices_give_a_1d_correlation():
    """F(4, 3): A^T [(G g) * (B^T d)] = the 4 outputs of correlating 6 inputs d with 3 taps g."""
    rng = np.random.default_rng(12)
    for _ in range(20):
        d, g = rng.standard_normal(6), rng.standard_normal(3)
        want = np.correlate(d, g, "valid")                                 # (4,)
        np.testing.assert_allclose(wino.A_T @ ((wino.G @ g) * (wino.B_T @ d)), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [(0, 0), (1, 1), (2, 0)])
def test_matrix_form_twin_equals_the_direct_twin(padding):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 9, 6)).astype(np.float32)
    w, b = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    got = wino.winograd_reference(x, w, b, padding)
    want = conv2d_reference(x, w, b, 1, padding)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_kernel_equals_the_matrix_form_twin():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 6, 10, 7)).astype(np.float32)
    w, b = _frozen_randn(rng, 5, 6, 3, 3), _frozen_randn(rng, 5)
    got = _run(x, w, b, (1, 2), False)
    assert_conv_close(got, wino.winograd_reference(x, w, b, (1, 2)), x, w, 1, (1, 2), 1, rtol=2e-5)


@pytest.mark.parametrize("padding", [(0, 0), (1, 2)])
def test_input_transform_is_BT_d_B(padding):
    """Small integers: every sum is exact in float32, so the expansion must equal the formula bit for bit."""
    rng = np.random.default_rng(15)
    N, C, H, W = 2, 3, 9, 7
    x = rng.integers(-8, 9, (N, C, H, W)).astype(np.float32)
    ph, pw = padding
    th, tw = -(-(H + 2 * ph - 2) // 4), -(-(W + 2 * pw - 2) // 4)
    V = np.full((N, 36, th * tw, C), np.nan, np.float32)
    wino._input_transform(x, ph, pw, th, tw, V)
    x_pad = np.zeros((N, C, 4 * th + 2, 4 * tw + 2))
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    for n in range(N):
        for ty in range(th):
            for tx in range(tw):
                d = x_pad[n, :, 4 * ty:4 * ty + 6, 4 * tx:4 * tx + 6]                 # (C, 6, 6)
                want = np.einsum("ir,crs,js->ijc", wino.B_T, d, wino.B_T).reshape(36, C)
                np.testing.assert_array_equal(V[n, :, ty * tw + tx], want)


@pytest.mark.parametrize("relu", [False, True])
def test_output_transform_is_AT_M_A(relu):
    rng = np.random.default_rng(16)
    N, K, Ho, Wo = 2, 3, 7, 5                                   # tiles overhang the map's edge
    th, tw = 2, 2
    M = rng.integers(-8, 9, (N, 36, th * tw, K)).astype(np.float32)
    b = rng.integers(-50, 51, K).astype(np.float32)
    y = np.full((N, K, Ho, Wo), np.nan, np.float32)
    wino._output_transform(M, b, relu, th, tw, y)
    want = np.empty((N, K, 4 * th, 4 * tw))
    for n in range(N):
        for ty in range(th):
            for tx in range(tw):
                m = M[n, :, ty * tw + tx].reshape(6, 6, K).astype(np.float64)
                tile = np.einsum("ai,ijk,bj->kab", wino.A_T, m, wino.A_T) + b[:, None, None]
                want[n, :, 4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4] = tile
    want = want[:, :, :Ho, :Wo]
    np.testing.assert_array_equal(y, np.maximum(want, 0) if relu else want)


# ----------------------------------------------------------------------------------------------
# the cache of transformed filters
# ----------------------------------------------------------------------------------------------

def test_frozen():
    a = np.zeros(4, np.float32)
    assert not frozen(a)
    v = a.view()
    v.setflags(write=False)
    assert not frozen(v)                     # a read-only view of a writeable array can still change
    a.setflags(write=False)
    assert frozen(a) and frozen(a[1:])
    assert frozen(np.frombuffer(b"\0" * 16, np.float32))
    assert not frozen(np.frombuffer(bytearray(16), np.float32))


def test_prepared_caches_frozen_arrays_only():
    calls = []

    def make(w):
        calls.append(1)
        return w * 2

    w = np.ones(3, np.float32)
    prepared(w, "t", make)
    prepared(w, "t", make)
    assert len(calls) == 2                    # writeable: recomputed every call
    w.setflags(write=False)
    first = prepared(w, "t", make)
    assert prepared(w, "t", make) is first and len(calls) == 3
    prepared(w, "other kind", make)
    assert len(calls) == 4


def test_cache_entry_dropped_with_its_array():
    from zfnet.kernels import _prepared
    w = np.ones(5, np.float32)
    w.setflags(write=False)
    prepared(w, "drop-test", lambda a: a + 1)
    key = (id(w), "drop-test")
    assert key in _prepared._cache
    del w
    gc.collect()
    assert key not in _prepared._cache


def test_net_weights_are_frozen_and_a_new_array_is_not_served_stale():
    from zfnet.net import Net, get_architecture
    net = Net.random(get_architecture("zfnet"), seed=0)
    w = net.weight("conv3")
    assert frozen(w)
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0, 0, 0] = 1.0
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 256, 13, 13)).astype(np.float32)
    first = conv2d(x, w, None, 1, 1)
    net.params["conv3.weight"] = w * np.float32(2)              # a new (writeable) array
    second = conv2d(x, net.weight("conv3"), None, 1, 1)
    assert_conv_close(second, 2 * first, x, net.weight("conv3"), 1, 1, 1, rtol=2e-5)


# ----------------------------------------------------------------------------------------------
# conv2d's choice of path
# ----------------------------------------------------------------------------------------------

def _spy(monkeypatch):
    calls = []
    real = wino.conv3x3_winograd

    def spy(*args):
        calls.append(args[0].shape)
        return real(*args)
    monkeypatch.setattr(wino, "conv3x3_winograd", spy)
    return calls


def test_conv2d_takes_winograd_only_where_it_pays(monkeypatch):
    calls = _spy(monkeypatch)
    rng = np.random.default_rng(9)
    w = _frozen_randn(rng, 16, 128, 3, 3)
    small = rng.standard_normal((8, 128, 13, 13)).astype(np.float32)      # 16 tiles per image: im2col
    conv2d(small, w, None, 1, 1)
    assert calls == []
    big = rng.standard_normal((2, 128, 45, 45)).astype(np.float32)        # 144 tiles per image
    got = conv2d(big, w, None, 1, 1, relu=True)
    assert calls == [big.shape]
    assert_conv_close(got, np.maximum(conv2d_reference(big, w, None, 1, 1), 0), big, w, 1, 1, 1, rtol=2e-5)
    few_channels = _frozen_randn(rng, 16, 64, 3, 3)
    conv2d(rng.standard_normal((2, 64, 45, 45)).astype(np.float32), few_channels, None, 1, 1)
    strided = conv2d(big, w, None, 2, 1)                                  # stride 2: im2col
    assert len(calls) == 1 and strided.shape == (2, 16, 23, 23)


def test_conv2d_winograd_into_a_channel_slice(monkeypatch):
    calls = _spy(monkeypatch)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 128, 45, 45)).astype(np.float32)
    w, b = _frozen_randn(rng, 5, 128, 3, 3), _frozen_randn(rng, 5)
    big = np.full((2, 9, 45, 45), 3.0, np.float32)
    conv2d(x, w, b, 1, 1, out=big[:, 2:7])
    assert calls and (big[:, :2] == 3).all() and (big[:, 7:] == 3).all()
    assert_conv_close(big[:, 2:7], conv2d_reference(x, w, b, 1, 1), x, w, 1, 1, 1, rtol=2e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_keep_im2col_semantics(monkeypatch, bad):
    """An inf or NaN spreads over Winograd's whole tile; conv2d then recomputes that image (only)
    with im2col: the other images keep the bits they have alone."""
    calls = _spy(monkeypatch)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 128, 45, 45)).astype(np.float32)
    x[1, 7, 5, 6] = bad
    w = _frozen_randn(rng, 4, 128, 3, 3)
    got = conv2d(x, w, None, 1, 1)
    assert calls
    want = conv2d_reference(x, w, None, 1, 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert finite[1].sum() < finite[1].size and finite[0].all() and finite[2].all()  # the 3x3 neighbourhood
    for n in (0, 2):
        np.testing.assert_array_equal(got[n], conv2d(x[n:n + 1], w, None, 1, 1)[0])
    assert_conv_close(np.where(finite, got, 0), np.where(finite, want, 0),
                      np.where(np.isfinite(x), x, 0), w, 1, 1, 1, rtol=2e-5)
