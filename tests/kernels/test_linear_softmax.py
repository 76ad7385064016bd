"""linear (fc6-fc8) and softmax (prob): kernels against their NumPy twins and PyTorch, numerical
stability, and the argument checks."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zfnet.kernels import ZFNetError, linear, softmax

torch.set_num_threads(2)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def assert_linear_close(actual, expected, x, w, rtol=1e-5):
    """Error relative to |x| @ |w|^T, the sum of the magnitudes of the I products in each output."""
    assert actual.shape == expected.shape and actual.dtype == np.float32
    magnitude = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    assert np.all(err <= rtol * (np.abs(expected) + magnitude.max())), err.max()


# --------------------------------------------------------------------------------------------
# linear
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, i, o", [(1, 1, 1), (1, 17, 5), (3, 64, 33), (7, 9, 130), (2, 300, 1)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_cpu_equals_reference_and_pytorch(rng, n, i, o, with_bias):
    x, w = _randn(rng, n, i), _randn(rng, o, i)
    b = _randn(rng, o) if with_bias else None
    want = F.linear(torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b)).numpy()
    for backend in ("reference", "cpu"):
        got = linear(x, w, b, backend=backend)
        assert got.shape == (n, o)
        assert_linear_close(got, want, x, w)


def test_linear_by_hand():
    x = np.array([[1, 2, 3], [0, -1, 4]], np.float32)
    w = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    b = np.array([0.5, -1], np.float32)
    for backend in ("reference", "cpu"):
        np.testing.assert_array_equal(linear(x, w, b, backend=backend), [[1.5, 4], [0.5, 2]])


# ZFNet's fully connected layers at their real sizes (batch 1): fc6 9216 -> 4096, fc7, fc8.
@pytest.mark.parametrize("i, o", [(9216, 4096), (4096, 4096), (4096, 1000)], ids=["fc6", "fc7", "fc8"])
def test_linear_equals_pytorch_on_zfnet_fc_layers(rng, i, o):
    x = np.maximum(_randn(rng, 1, i), 0)              # after a ReLU, as in the network
    w = _randn(rng, o, i) * np.float32(0.01)
    b = _randn(rng, o)
    want = F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()
    assert_linear_close(linear(x, w, b), want, x, w)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("change, match", [
    (dict(x="1d"), r"x must have 2 dimensions"),
    (dict(x="4d"), r"x must have 2 dimensions"),
    (dict(w="1d"), r"w must have 2 dimensions"),
    (dict(b="2d"), r"b must have 1 dimensions"),
    (dict(x="float64"), r"x must be float32"),
    (dict(w="float64"), r"w must be float32"),
    (dict(b="float64"), r"b must be float32"),
    (dict(x="strided"), r"x must be C-contiguous"),
    (dict(w="transposed"), r"w must be C-contiguous"),
    (dict(w="wrong_inputs"), r"mismatch.*w"),         # w (4, 6) for x with 5 inputs
    (dict(b="short"), r"b must have shape"),
    (dict(x="empty"), r"x must be non-empty"),
    (dict(backend_name="fast"), r"backend"),
])
def test_linear_bad_arguments(rng, backend, change, match):
    x, w, b = _randn(rng, 3, 5), _randn(rng, 4, 5), _randn(rng, 4)
    x = {"1d": x[0], "4d": x[:, :, None, None], "float64": x.astype(np.float64),
         "strided": _randn(rng, 3, 10)[:, ::2], "empty": np.zeros((0, 5), np.float32)}.get(change.get("x"), x)
    w = {"1d": w[0], "float64": w.astype(np.float64), "transposed": _randn(rng, 5, 4).T,
         "wrong_inputs": _randn(rng, 4, 6)}.get(change.get("w"), w)
    b = {"2d": b[None], "float64": b.astype(np.float64), "short": b[:3].copy()}.get(change.get("b"), b)
    with pytest.raises(ZFNetError, match=match):
        linear(x, w, b, backend=change.get("backend_name", backend))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_linear_inputs_are_not_modified(rng, backend):
    x, w, b = _randn(rng, 3, 5), _randn(rng, 4, 5), _randn(rng, 4)
    copies = [a.copy() for a in (x, w, b)]
    linear(x, w, b, backend=backend)
    for a, a0 in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, a0)


# --------------------------------------------------------------------------------------------
# softmax
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [
    ((1, 1000), 1), ((3, 1000), -1), ((4, 7), 0), ((2, 5, 3, 3), 1), ((2, 5, 3, 4), -1),
    ((2, 5, 3, 4), 2), ((2, 5, 3, 4), -4), ((6,), 0), ((3, 1), 1),
])
def test_softmax_cpu_equals_reference_and_pytorch(rng, shape, axis):
    x = _randn(rng, *shape) * np.float32(4)
    want = F.softmax(torch.from_numpy(x), dim=axis).numpy()
    for backend in ("reference", "cpu"):
        p = softmax(x, axis, backend=backend)
        assert p.shape == x.shape and p.dtype == np.float32 and p.flags.c_contiguous
        np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(p.sum(axis=axis, dtype=np.float64), 1.0, rtol=1e-6)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_softmax_is_stable_for_huge_and_tiny_scores(backend):
    # exp(1e4) overflows float32 and float64; subtracting the max keeps every term in [0, 1].
    x = np.array([[1e4, 1e4 - 1, -1e4], [-1e30, -1e30, -1e30], [88.0, 89.0, 90.0], [0, 0, 3.4e38]],
                 np.float32)
    p = softmax(x, backend=backend)
    assert np.isfinite(p).all()
    e = np.exp(np.array([0.0, -1.0]))
    np.testing.assert_allclose(p[0], [*(e / e.sum()), 0.0], rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(p[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(p[2], F.softmax(torch.tensor([88.0, 89.0, 90.0]), 0).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(p[3], [0, 0, 1])


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_softmax_is_invariant_to_a_shift(rng, backend):
    x = _randn(rng, 3, 10)
    np.testing.assert_allclose(softmax(x + np.float32(50), backend=backend), softmax(x, backend=backend),
                               rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("x_kind, axis, match", [
    ("float64", 1, r"x must be float32"),
    ("strided", 1, r"x must be C-contiguous"),
    ("list", 1, r"x must be a numpy array"),
    ("ok", 2, r"axis"),
    ("ok", -3, r"axis"),
    ("ok", 1.0, r"axis"),
    ("ok", None, r"axis"),
    ("ok", True, r"axis"),
    ("empty", 1, r"x must be non-empty"),
])
def test_softmax_bad_arguments(rng, backend, x_kind, axis, match):
    x = _randn(rng, 3, 10)
    x = {"float64": x.astype(np.float64), "strided": x[:, ::2], "list": x.tolist(),
         "empty": np.zeros((3, 0), np.float32)}.get(x_kind, x)
    with pytest.raises(ZFNetError, match=match):
        softmax(x, axis, backend=backend)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_softmax_input_is_not_modified(rng, backend):
    for shape, axis in itertools.product([(3, 10), (2, 4, 3, 3)], [0, 1, -1]):
        x = _randn(rng, *shape)
        x0 = x.copy()
        softmax(x, axis, backend=backend)
        np.testing.assert_array_equal(x, x0)


# --------------------------------------------------------------------------------------------
# linear: batch invariance (each row's output depends only on that row)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("i, o", [(9, 7), (64, 33), (1027, 70), (9216, 40)])
def test_linear_rows_are_batch_invariant(rng, i, o):
    """Row n of a batch of 16 is bit-identical to row n alone and in batches of 2, 3, 5, 6 and 7
    (the kernel takes images 4 at a time: full and partial groups; I of every remainder mod the
    vector width; O with and without units past the last block of 4)."""
    x, w, b = _randn(rng, 16, i), _randn(rng, o, i), _randn(rng, o)
    batch = linear(x, w, b, backend="cpu")
    np.testing.assert_array_equal(linear(x[:5], w, b, backend="cpu"), batch[:5])
    np.testing.assert_array_equal(linear(x[11:16], w, b, backend="cpu"), batch[11:16])
    for first, count in ((0, 2), (3, 3), (6, 6), (9, 7)):
        np.testing.assert_array_equal(linear(x[first:first + count], w, b, backend="cpu"), batch[first:first + count])
    for n in range(16):
        np.testing.assert_array_equal(linear(x[n:n + 1], w, b, backend="cpu")[0], batch[n])
    assert_linear_close(batch, linear_reference_64(x, w, b), x, w)


def linear_reference_64(x, w, b):
    return (x.astype(np.float64) @ w.T.astype(np.float64) + b).astype(np.float32)
