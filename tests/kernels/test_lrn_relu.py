"""relu, lrn and lrn_backward.

Across-channel LRN is checked against torch's local_response_norm and its autograd gradient.
PyTorch has no within-channel LRN, so that form is checked against its definition written out
independently here (torch avg_pool2d of the squares, count_include_pad=True, in float64) and its
gradient against autograd through that composition and a finite difference of our own forward.
"""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zfnet.kernels import ZFNetError, lrn, relu
from zfnet.kernels.lrn import lrn_backward

torch.set_num_threads(2)
BACKENDS = ["reference", "cpu"]


def _x(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _scaled(a, b, frac=1e-5):
    """rtol/atol for comparing gradients, where terms cancel: atol relative to the largest entry."""
    return dict(rtol=1e-4, atol=frac * float(np.abs(b).max()))


# --------------------------------------------------------------------------------------------
# relu
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(7,), (3, 5), (1, 3, 7, 9), (3, 2, 5, 4), (2, 3, 4, 5, 6)])
def test_relu_twins_and_pytorch_agree(rng, shape):
    x = _x(rng, shape)
    x.reshape(-1)[::7] = 0.0
    want = torch.relu(torch.from_numpy(x)).numpy()
    for backend in BACKENDS:
        y = relu(x, backend=backend)
        assert y.shape == x.shape and y.dtype == np.float32
        np.testing.assert_array_equal(y, want)
        assert np.all(y >= 0) and np.all(y[x > 0] == x[x > 0]) and np.all(y[x <= 0] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_nan_and_infinities(backend):
    x = np.array([np.nan, -np.inf, np.inf, -1.0, 0.0, -0.0, 2.5], dtype=np.float32)
    y = relu(x, backend=backend)
    np.testing.assert_array_equal(y, [np.nan, 0, np.inf, 0, 0, 0, 2.5])
    np.testing.assert_array_equal(y, torch.relu(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_returns_a_new_array_and_leaves_x_alone(rng, backend):
    x = _x(rng, (2, 3, 5, 5))
    x0 = x.copy()
    y = relu(x, backend=backend)
    np.testing.assert_array_equal(x, x0)
    assert not np.shares_memory(x, y)


def test_relu_at_a_real_layer_shape(rng):
    x = _x(rng, (1, 96, 110, 110))
    np.testing.assert_array_equal(relu(x), torch.relu(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("call, match", [
    (lambda: relu(np.zeros((2, 3))), "must be float32"),
    (lambda: relu(np.zeros((4, 6), np.float32)[:, ::2]), "C-contiguous"),
    (lambda: relu([1.0, -1.0]), "numpy array"),
    (lambda: relu(np.float32(1.0)), "numpy array with at least 1 dimension"),
    (lambda: relu(np.zeros(3, np.float32), backend="tpu"), "unknown kernel backend"),
], ids=["float64", "strided", "list", "scalar", "backend"])
def test_bad_relu_arguments_raise_zfnet_error(call, match):
    with pytest.raises(ZFNetError, match=match):
        call()


# --------------------------------------------------------------------------------------------
# lrn across channels
# --------------------------------------------------------------------------------------------

def _torch_lrn(x, size, alpha, beta, k):
    return F.local_response_norm(torch.from_numpy(x), size, alpha, beta, k).numpy()


# beta 0.75 takes the kernels' square-root path, any other beta the exp/log path.
ACROSS_GRID = list(itertools.product((1, 2, 3, 4, 5, 6, 9), (1, 4, 7), (1, 3), (0.75, 0.6)))


@pytest.mark.parametrize("size, c, n, beta", ACROSS_GRID)
def test_lrn_across_channels_twins_and_pytorch_agree(rng, size, c, n, beta):
    # alpha large enough that the denominator is far from k, so the window really matters.
    x = _x(rng, (n, c, 5, 7), scale=2.0)
    alpha, k = 0.8, 1.5
    y_ref = lrn(x, size, alpha, beta, k, backend="reference")
    y_cpu = lrn(x, size, alpha, beta, k, backend="cpu")
    assert y_cpu.shape == x.shape and y_cpu.dtype == np.float32
    np.testing.assert_allclose(y_cpu, y_ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y_cpu, _torch_lrn(x, size, alpha, beta, k), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hw", [(16, 16), (17, 31), (3, 100)])        # one block, a partial last block, several
@pytest.mark.parametrize("size", [1, 4, 5, 13])
def test_lrn_across_channels_sliding_window_over_pixel_blocks(rng, hw, size):
    """The CPU kernel slides the channel sum over blocks of ACROSS_BLOCK pixels: every block
    boundary and every window size (wider than C too) gives the twin's numbers."""
    x = _x(rng, (2, 11, *hw), scale=3.0)
    x[0, 4] = 0.0                                                    # a silent channel inside the window
    x[1, :, 0, :5] *= 1e4                                            # large squares next to small ones
    y_ref = lrn(x, size, 0.5, 0.75, 1.0, backend="reference")
    y_cpu = lrn(x, size, 0.5, 0.75, 1.0, backend="cpu")
    np.testing.assert_allclose(y_cpu, y_ref, rtol=2e-7, atol=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_lrn_across_channels_non_finite_values_stay_in_their_windows(bad):
    x = np.ones((1, 12, 4, 70), np.float32)
    x[0, 2, 1, 3] = bad
    with np.errstate(invalid="ignore"):                              # inf * 0 in the twin
        y_ref = lrn(x, 3, 1e-4, 0.75, 1.0, backend="reference")
    y_cpu = lrn(x, 3, 1e-4, 0.75, 1.0)
    np.testing.assert_array_equal(np.isnan(y_cpu), np.isnan(y_ref))
    assert np.isfinite(y_cpu[0, 5:]).all()
    np.testing.assert_allclose(np.nan_to_num(y_cpu), np.nan_to_num(y_ref), rtol=2e-7)


def test_lrn_across_channels_huge_values_do_not_leak_into_later_windows():
    """A square of 1e40 leaving the window would leave float64 rounding of ~1e24 behind in a
    running sum; such blocks sum every window afresh, so the small windows after it stay exact."""
    x = np.ones((1, 12, 4, 70), np.float32)
    x[0, 0, 1, 3] = 1e20
    for backend in ("reference", "cpu"):
        y = lrn(x, 3, 1e-4, 0.75, 1.0, backend=backend)
        np.testing.assert_allclose(y[0, 5:11], (1 + 1e-4) ** -0.75, rtol=1e-7)   # full windows of ones
    np.testing.assert_allclose(lrn(x, 3, 1e-4, 0.75, 1.0), lrn(x, 3, 1e-4, 0.75, 1.0, backend="reference"), rtol=2e-7)


def test_lrn_window_for_even_sizes_is_pytorchs():
    """size 4: channel c is normalised by channels c-2 .. c+1 (torch's window; ONNX's is c-1 .. c+2)."""
    x = np.zeros((1, 6, 1, 1), dtype=np.float32)
    x[0, 3] = 1.0
    x[0, 5] = 10.0      # a large value in channel 5
    y = lrn(x, 4, alpha=4.0, beta=1.0, k=1.0)
    # channel 3's window 1..4 misses channel 5: d = 1 + 4/4 * 1 = 2.
    np.testing.assert_allclose(y[0, 3, 0, 0], 0.5, rtol=1e-6)
    np.testing.assert_allclose(y, _torch_lrn(x, 4, 4.0, 1.0, 1.0), rtol=1e-6)


LRN_REAL = [
    ("zfnet norm1", (1, 96, 55, 55), 5, 1e-4, 0.75, 1.0),
    ("zfnet norm2", (1, 256, 13, 13), 5, 1e-4, 0.75, 1.0),
    ("zfnet512 norm1", (1, 96, 54, 54), 5, 5e-4, 0.75, 2.0),
]


@pytest.mark.parametrize("name, shape, size, alpha, beta, k", LRN_REAL, ids=[r[0] for r in LRN_REAL])
def test_lrn_across_channels_at_real_layer_shapes(rng, name, shape, size, alpha, beta, k):
    # Post-ReLU activations of magnitude ~50, where alpha/n * sum a^2 is comparable to k.
    x = np.maximum(_x(rng, shape, scale=50.0), 0)
    y = lrn(x, size, alpha, beta, k)
    np.testing.assert_allclose(y, _torch_lrn(x, size, alpha, beta, k), rtol=1e-5, atol=1e-5)
    assert np.abs(y - x).max() > 0.1 * np.abs(x).max(), "the normalisation must actually bite here"
    np.testing.assert_allclose(lrn(x, size, alpha, beta, k, backend="reference"), y, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# lrn within channel
# --------------------------------------------------------------------------------------------

def _within_channel_definition(x, size, alpha, beta, k):
    """b = a / (k + alpha * mean_{n x n, zero padded}(a^2))^beta, written independently in torch."""
    xt = torch.from_numpy(x).double()
    mean = F.avg_pool2d(xt * xt, size, stride=1, padding=(size - 1) // 2, count_include_pad=True)
    return xt / (k + alpha * mean) ** beta


WITHIN_GRID = list(itertools.product((1, 3, 5, 7), ((5, 7), (9, 9), (4, 3)), (1, 3), (0.75, 0.6)))


@pytest.mark.parametrize("size, hw, n, beta", WITHIN_GRID)
def test_lrn_within_channel_twins_and_definition_agree(rng, size, hw, n, beta):
    x = _x(rng, (n, 3, *hw), scale=2.0)
    alpha, k = 0.9, 1.0
    y_ref = lrn(x, size, alpha, beta, k, within_channel=True, backend="reference")
    y_cpu = lrn(x, size, alpha, beta, k, within_channel=True, backend="cpu")
    np.testing.assert_allclose(y_cpu, y_ref, rtol=1e-5, atol=1e-7)
    want = _within_channel_definition(x, size, alpha, beta, k).numpy()
    np.testing.assert_allclose(y_cpu, want, rtol=1e-5, atol=1e-6)


def test_lrn_within_channel_always_divides_by_n_squared():
    """A lone 1 in a corner: its 3x3 window holds 4 real cells but the mean still divides by 9."""
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, 0, 0] = 3.0
    y = lrn(x, 3, alpha=1.0, beta=1.0, k=1.0, within_channel=True)
    np.testing.assert_allclose(y[0, 0, 0, 0], 3.0 / (1 + 9.0 / 9), rtol=1e-6)
    np.testing.assert_allclose(lrn(x, 3, 1.0, 1.0, 1.0, True, backend="reference"), y, rtol=1e-6)


def test_lrn_within_channel_at_zf_caffe_shape(rng):
    """ZF (py-faster-rcnn): LRN size 3, alpha 5e-5, beta 0.75, within channel, on conv1's 96x112x112."""
    x = np.maximum(_x(rng, (1, 96, 112, 112), scale=100.0), 0)
    y = lrn(x, 3, 5e-5, 0.75, 1.0, within_channel=True)
    want = _within_channel_definition(x, 3, 5e-5, 0.75, 1.0).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    assert np.abs(y - x).max() > 0.1 * np.abs(x).max()


# --------------------------------------------------------------------------------------------
# lrn_backward
# --------------------------------------------------------------------------------------------

BACKWARD_GRID = list(itertools.product((1, 2, 3, 5), (1, 3), (0.75, 1.3), (False, True)))


@pytest.mark.parametrize("size, n, beta, within", BACKWARD_GRID)
def test_lrn_backward_twins_agree(rng, size, n, beta, within):
    if within and size % 2 == 0:
        size += 1
    x, dy = _x(rng, (n, 6, 5, 7), 2.0), _x(rng, (n, 6, 5, 7))
    dx_ref = lrn_backward(x, dy, size, 0.7, beta, 1.2, within, backend="reference")
    dx_cpu = lrn_backward(x, dy, size, 0.7, beta, 1.2, within, backend="cpu")
    assert dx_cpu.shape == x.shape and dx_cpu.dtype == np.float32
    np.testing.assert_allclose(dx_cpu, dx_ref, rtol=1e-5, atol=1e-6 * np.abs(dx_ref).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
def test_lrn_backward_across_channels_equals_torch_autograd(rng, backend, size):
    x, dy = _x(rng, (2, 7, 4, 5), 2.0), _x(rng, (2, 7, 4, 5))
    alpha, beta, k = 0.9, 0.75, 1.1
    xt = torch.from_numpy(x).double().requires_grad_(True)
    (F.local_response_norm(xt, size, alpha, beta, k) * torch.from_numpy(dy).double()).sum().backward()
    want = xt.grad.numpy()
    got = lrn_backward(x, dy, size, alpha, beta, k, backend=backend)
    np.testing.assert_allclose(got, want, **_scaled(got, want))
    # The term through the window is not negligible here: dx differs from dy * d^-beta = dy * y / x.
    assert np.abs(got - dy * lrn(x, size, alpha, beta, k) / x).max() > 0.05 * np.abs(got).max()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn_backward_within_channel_equals_autograd_of_the_definition(rng, backend, size):
    x, dy = _x(rng, (2, 3, 6, 7), 2.0), _x(rng, (2, 3, 6, 7))
    alpha, beta, k = 0.9, 0.75, 1.0
    xt = torch.from_numpy(x).double().requires_grad_(True)
    mean = F.avg_pool2d(xt * xt, size, stride=1, padding=(size - 1) // 2, count_include_pad=True)
    (xt / (k + alpha * mean) ** beta * torch.from_numpy(dy).double()).sum().backward()
    want = xt.grad.numpy()
    got = lrn_backward(x, dy, size, alpha, beta, k, within_channel=True, backend=backend)
    np.testing.assert_allclose(got, want, **_scaled(got, want))


@pytest.mark.parametrize("within", [False, True])
def test_lrn_backward_matches_a_finite_difference_of_lrn(rng, within):
    """<dx, v> == (L(x + eps v) - L(x - eps v)) / 2 eps for L(x) = sum(lrn(x) * dy), our forward."""
    x, dy, v = _x(rng, (1, 4, 5, 5), 2.0), _x(rng, (1, 4, 5, 5)), _x(rng, (1, 4, 5, 5))
    size, alpha, beta, k = 3, 0.9, 0.75, 1.0
    eps = np.float32(1e-2)

    def loss(a):
        return float((lrn(a, size, alpha, beta, k, within).astype(np.float64) * dy).sum())

    numeric = (loss((x + eps * v).astype(np.float32)) - loss((x - eps * v).astype(np.float32))) / (2 * eps)
    analytic = float((lrn_backward(x, dy, size, alpha, beta, k, within).astype(np.float64) * v).sum())
    np.testing.assert_allclose(analytic, numeric, rtol=2e-3)


def test_lrn_backward_at_real_layer_shapes(rng):
    x = np.maximum(_x(rng, (1, 96, 55, 55), 50.0), 0)
    dy = _x(rng, x.shape)
    xt = torch.from_numpy(x).double().requires_grad_(True)
    (F.local_response_norm(xt, 5, 1e-4, 0.75, 1.0) * torch.from_numpy(dy).double()).sum().backward()
    got = lrn_backward(x, dy, 5, 1e-4, 0.75, 1.0)
    np.testing.assert_allclose(got, xt.grad.numpy(), **_scaled(got, xt.grad.numpy()))
    # ZF (Caffe) within-channel norm1 on 96x112x112.
    x = np.maximum(_x(rng, (1, 96, 112, 112), 100.0), 0)
    dy = _x(rng, x.shape)
    xt = torch.from_numpy(x).double().requires_grad_(True)
    mean = F.avg_pool2d(xt * xt, 3, stride=1, padding=1, count_include_pad=True)
    (xt / (1.0 + 5e-5 * mean) ** 0.75 * torch.from_numpy(dy).double()).sum().backward()
    got = lrn_backward(x, dy, 3, 5e-5, 0.75, 1.0, within_channel=True)
    np.testing.assert_allclose(got, xt.grad.numpy(), **_scaled(got, xt.grad.numpy()))


# --------------------------------------------------------------------------------------------
# Arguments and inputs
# --------------------------------------------------------------------------------------------

def _x4():
    return np.ones((1, 4, 5, 5), dtype=np.float32)


BAD_LRN_CALLS = [
    ("3-D x", lambda f: f(np.ones((4, 5, 5), np.float32), 3), "must have 4 dimensions"),
    ("float64 x", lambda f: f(np.ones((1, 4, 5, 5)), 3), "must be float32"),
    ("strided x", lambda f: f(np.ones((1, 4, 5, 10), np.float32)[..., ::2], 3), "C-contiguous"),
    ("size 0", lambda f: f(_x4(), 0), "size must be an int >= 1"),
    ("size float", lambda f: f(_x4(), 3.0), "size must be an int >= 1"),
    ("size bool", lambda f: f(_x4(), True), "size must be an int >= 1"),
    ("even within", lambda f: f(_x4(), 4, within_channel=True), "odd size"),
    ("k zero", lambda f: f(_x4(), 3, k=0.0), "k must be > 0"),
    ("alpha negative", lambda f: f(_x4(), 3, alpha=-1e-4), "alpha must be >= 0"),
    ("beta nan", lambda f: f(_x4(), 3, beta=float("nan")), "beta must be a finite real number"),
    ("alpha str", lambda f: f(_x4(), 3, alpha="1e-4"), "alpha must be a finite real number"),
    ("within str", lambda f: f(_x4(), 3, within_channel="yes"), "within_channel must be True or False"),
    ("empty channels", lambda f: f(np.ones((1, 0, 5, 5), np.float32), 3), "N, C, H, W >= 1"),
    ("backend", lambda f: f(_x4(), 3, backend="gpu"), "unknown kernel backend"),
]


def _forward(x, size, **kw):
    return lrn(x, size, **kw)


def _backward(x, size, **kw):
    return lrn_backward(x, np.ones_like(x) if x.dtype == np.float32 and x.flags.c_contiguous else x, size, **kw)


@pytest.mark.parametrize("op", [_forward, _backward], ids=["lrn", "lrn_backward"])
@pytest.mark.parametrize("what, call, match", BAD_LRN_CALLS, ids=[b[0] for b in BAD_LRN_CALLS])
def test_bad_lrn_arguments_raise_zfnet_error(op, what, call, match):
    with pytest.raises(ZFNetError, match=match):
        call(op)


@pytest.mark.parametrize("dy, match", [
    (np.ones((1, 4, 5, 4), np.float32), "dy must have x's shape"),
    (np.ones((1, 4, 5, 5)), "dy must be float32"),
    (np.ones((1, 4, 5, 10), np.float32)[..., ::2], "C-contiguous"),
], ids=["shape", "float64", "strided"])
def test_bad_lrn_backward_gradient_raises_zfnet_error(dy, match):
    with pytest.raises(ZFNetError, match=match):
        lrn_backward(_x4(), dy, 3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("within", [False, True])
def test_lrn_leaves_its_inputs_alone(rng, backend, within):
    x, dy = _x(rng, (2, 5, 6, 6)), _x(rng, (2, 5, 6, 6))
    x0, dy0 = x.copy(), dy.copy()
    y = lrn(x, 3, 0.5, 0.75, 1.0, within, backend=backend)
    dx = lrn_backward(x, dy, 3, 0.5, 0.75, 1.0, within, backend=backend)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    assert not np.shares_memory(y, x) and not np.shares_memory(dx, dy)
