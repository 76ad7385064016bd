"""conv2d: the Numba/BLAS kernel against its NumPy twin, both against PyTorch, and the argument checks.

Tolerances are scaled to the size of what is summed: each output is a sum of C/G*KH*KW products, so
the float32 rounding error is relative to conv2d(|x|, |w|) (the sum of the terms' magnitudes), not
to the (possibly cancelled) result.
"""
import importlib
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zfnet.kernels import ZFNetError, conv2d, conv2d_output_size

# the module (``zfnet.kernels.conv2d`` the attribute is the function of the same name)
conv2d_mod = importlib.import_module("zfnet.kernels.conv2d")

torch.set_num_threads(2)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def assert_conv_close(actual, expected, x, w, stride, padding, groups, rtol=1e-5):
    """|actual - expected| <= rtol * (|expected| + conv2d(|x|, |w|)): float32 error of a K-term sum."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.float32
    magnitude = conv2d(np.abs(x), np.abs(w), None, stride, padding, groups, backend="reference")
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = rtol * (np.abs(expected) + magnitude.max())
    assert np.all(err <= bound), f"max error {err.max():.3g}, bound {bound.min():.3g}"


# --------------------------------------------------------------------------------------------
# Output size
# --------------------------------------------------------------------------------------------

def test_output_size_equals_pytorch():
    checked = 0
    for h, k, s, p in itertools.product(range(1, 12), (1, 2, 3, 5, 7), (1, 2, 3, 4), (0, 1, 2, 3)):
        if h + 2 * p < k:
            with pytest.raises(ZFNetError, match="larger than the padded input"):
                conv2d_output_size((h, h + 1), k, s, p)
            continue
        want = F.conv2d(torch.zeros(1, 1, h, h + 1), torch.zeros(1, 1, k, k), None, s, p).shape[2:]
        assert conv2d_output_size((h, h + 1), k, s, p) == tuple(want)
        checked += 1
    assert checked > 600


@pytest.mark.parametrize("hw, k, s, p, want", [
    ((224, 224), 7, 2, 1, (110, 110)),   # ZFNet conv1
    ((55, 55), 5, 2, 0, (26, 26)),       # ZFNet conv2
    ((13, 13), 3, 1, 1, (13, 13)),       # ZFNet conv3-5
    ((227, 227), 7, 2, 0, (111, 111)),   # SqueezeNet conv1
    ((224, 224), 7, 2, 3, (112, 112)),   # ZF (Caffe/py-faster-rcnn) conv1
])
def test_output_size_of_the_papers_layers(hw, k, s, p, want):
    assert conv2d_output_size(hw, k, s, p) == want


# --------------------------------------------------------------------------------------------
# Numba/BLAS kernel == NumPy twin
# --------------------------------------------------------------------------------------------

# (N, C, H, W, F, KH, KW, stride, padding, groups): every stride 1-4 x padding 0-3 x groups 1-2 x
# N in (1, 3) on odd sizes, then non-square kernels/strides/paddings, 1x1 kernels, one-pixel outputs.
GRID = [
    (n, 4, 11, 9, 6, 3, 3, s, p, g)
    for s, p, g, n in itertools.product((1, 2, 3, 4), (0, 1, 2, 3), (1, 2), (1, 3))
] + [
    (1, 3, 9, 13, 5, 3, 2, (2, 3), (1, 0), 1),
    (3, 4, 10, 7, 6, 2, 5, (1, 2), (0, 2), 2),
    (2, 6, 8, 12, 6, 5, 3, (3, 1), (2, 1), 3),
    (3, 5, 7, 7, 4, 7, 7, 2, 3, 1),             # kernel as large as the input + padding allows
    (1, 3, 7, 9, 4, 7, 9, 1, 0, 1),             # kernel == input: one output pixel
    (3, 8, 9, 11, 6, 1, 1, 1, 0, 2),            # 1x1, stride 1, no pad: the plain-GEMM path
    (1, 8, 9, 11, 6, 1, 1, 1, 0, 1),
    (3, 4, 9, 11, 6, 1, 1, 2, 1, 1),            # 1x1 with stride and padding: the im2col path
    (1, 1, 5, 6, 1, 3, 3, 1, 1, 1),             # one channel, one filter
]


@pytest.mark.parametrize("n, c, h, w_, f, kh, kw, stride, padding, groups", GRID)
def test_cpu_equals_reference(rng, n, c, h, w_, f, kh, kw, stride, padding, groups):
    x = _randn(rng, n, c, h, w_)
    w = _randn(rng, f, c // groups, kh, kw)
    b = _randn(rng, f)
    want = conv2d(x, w, b, stride, padding, groups, backend="reference")
    got = conv2d(x, w, b, stride, padding, groups, backend="cpu")
    assert_conv_close(got, want, x, w, stride, padding, groups)
    # and without a bias
    got = conv2d(x, w, None, stride, padding, groups, backend="cpu")
    assert_conv_close(got, want - b[:, None, None], x, w, stride, padding, groups)


def test_cpu_batches_in_chunks_like_one_image_at_a_time(rng, monkeypatch):
    # A column buffer too small for two images forces one image per chunk; a larger one, uneven chunks.
    x = _randn(rng, 5, 4, 9, 8)
    w = _randn(rng, 6, 4, 3, 3)
    b = _randn(rng, 6)
    whole = conv2d(x, w, b, 2, 1, backend="cpu")
    per_image = np.concatenate([conv2d(x[i:i + 1], w, b, 2, 1, backend="cpu") for i in range(5)])
    assert_conv_close(whole, per_image, x, w, 2, 1, 1)
    for cols_bytes in (1, 2 * 4 * 9 * 4 * 5 * 4):     # 1 image, then 2 images (of 5) per chunk
        monkeypatch.setattr(conv2d_mod, "COLS_BYTES", cols_bytes)
        assert_conv_close(conv2d(x, w, b, 2, 1, backend="cpu"), whole, x, w, 2, 1, 1)


def test_results_are_finite_float32_and_new_arrays(rng):
    x = _randn(rng, 2, 3, 8, 8)
    w = _randn(rng, 4, 3, 3, 3)
    for backend in ("reference", "cpu"):
        y = conv2d(x, w, backend=backend)
        assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == (2, 4, 6, 6)
        assert np.isfinite(y).all()
        assert not np.shares_memory(y, x)


def test_a_delta_filter_copies_the_input():
    # the equation by hand: a filter with one 1 at (u, v) = (1, 2) shifts x by that tap
    x = np.arange(2 * 1 * 5 * 6, dtype=np.float32).reshape(2, 1, 5, 6)
    w = np.zeros((1, 1, 3, 3), np.float32)
    w[0, 0, 1, 2] = 1.0
    for backend in ("reference", "cpu"):
        y = conv2d(x, w, np.array([10.0], np.float32), 1, 1, backend=backend)
        x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        np.testing.assert_array_equal(y, x_pad[:, :, 1:6, 2:8] + 10.0)


# --------------------------------------------------------------------------------------------
# Against PyTorch
# --------------------------------------------------------------------------------------------

def _torch_conv(x, w, b, stride, padding, groups):
    tb = None if b is None else torch.from_numpy(b)
    return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), tb, stride, padding, 1, groups).numpy()


# ZFNet's layers at their real sizes (batch 1), and SqueezeNet's conv1 and a fire module's convs.
REAL_LAYERS = {
    "zf.conv1": ((1, 3, 224, 224), (96, 3, 7, 7), 2, 1),
    "zf.conv2": ((1, 96, 55, 55), (256, 96, 5, 5), 2, 0),
    "zf.conv3": ((1, 256, 13, 13), (384, 256, 3, 3), 1, 1),
    "zf.conv4": ((1, 384, 13, 13), (384, 384, 3, 3), 1, 1),
    "zf.conv5": ((1, 384, 13, 13), (256, 384, 3, 3), 1, 1),
    "sq.conv1": ((1, 3, 227, 227), (96, 3, 7, 7), 2, 0),
    "sq.fire2.squeeze1x1": ((1, 96, 55, 55), (16, 96, 1, 1), 1, 0),
    "sq.fire2.expand3x3": ((1, 16, 55, 55), (64, 16, 3, 3), 1, 1),
}


@pytest.mark.parametrize("layer", list(REAL_LAYERS))
def test_cpu_equals_pytorch_on_real_layer_shapes(rng, layer):
    x_shape, w_shape, stride, padding = REAL_LAYERS[layer]
    x = _randn(rng, *x_shape)
    w = _randn(rng, *w_shape) * np.float32(0.05)
    b = _randn(rng, w_shape[0])
    got = conv2d(x, w, b, stride, padding)
    assert_conv_close(got, _torch_conv(x, w, b, stride, padding, 1), x, w, stride, padding, 1)


def test_reference_equals_pytorch_on_a_real_layer_shape(rng):
    x_shape, w_shape, stride, padding = REAL_LAYERS["zf.conv3"]
    x = _randn(rng, *x_shape)
    w = _randn(rng, *w_shape) * np.float32(0.05)
    b = _randn(rng, w_shape[0])
    got = conv2d(x, w, b, stride, padding, backend="reference")
    assert_conv_close(got, _torch_conv(x, w, b, stride, padding, 1), x, w, stride, padding, 1)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("n, c, h, w_, f, kh, kw, stride, padding, groups", [
    (2, 6, 13, 11, 4, 3, 3, 2, 1, 2),          # AlexNet-style 2 groups
    (3, 3, 10, 15, 5, 5, 3, (2, 1), (2, 0), 1),
    (1, 4, 9, 9, 8, 1, 1, 1, 0, 4),             # depthwise-like 1x1, 4 groups
    (4, 2, 8, 8, 3, 4, 4, 4, 3, 1),
])
def test_equals_pytorch_on_small_random_shapes(rng, backend, n, c, h, w_, f, kh, kw, stride, padding, groups):
    x = _randn(rng, n, c, h, w_)
    w = _randn(rng, f, c // groups, kh, kw)
    b = _randn(rng, f)
    got = conv2d(x, w, b, stride, padding, groups, backend=backend)
    assert_conv_close(got, _torch_conv(x, w, b, stride, padding, groups), x, w, stride, padding, groups)


# --------------------------------------------------------------------------------------------
# Bad arguments: a ZFNetError naming the argument; inputs never modified
# --------------------------------------------------------------------------------------------

def _good(rng):
    return _randn(rng, 2, 4, 9, 9), _randn(rng, 6, 2, 3, 3), _randn(rng, 6)   # x, w (groups=2), b


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("change, match", [
    (dict(x="3d"), r"x must have 4 dimensions"),
    (dict(w="3d"), r"w must have 4 dimensions"),
    (dict(b="2d"), r"b must have 1 dimensions"),
    (dict(x="float64"), r"x must be float32"),
    (dict(w="float64"), r"w must be float32"),
    (dict(b="float64"), r"b must be float32"),
    (dict(x="strided"), r"x must be C-contiguous"),
    (dict(w="strided"), r"w must be C-contiguous"),
    (dict(x="list"), r"x must be a numpy array"),
    (dict(b="short"), r"b must have shape"),
    (dict(groups=1), r"channel mismatch"),            # x has 4 channels, w expects 2 x 1
    (dict(groups=3), r"groups"),                      # C=4 is not divisible by 3
    (dict(groups=4), r"groups"),                      # F=6 is not divisible by 4
    (dict(groups=0), r"groups must be an int >= 1"),
    (dict(groups=2.0), r"groups must be an int >= 1"),
    (dict(groups=True), r"groups must be an int >= 1"),
    (dict(stride=0), r"stride must be >= 1"),
    (dict(stride=(1, 0)), r"stride must be >= 1"),
    (dict(stride=-2), r"stride must be >= 1"),
    (dict(stride=1.5), r"stride must be an int or a pair of ints"),
    (dict(stride=(1, 2, 3)), r"stride must be an int or a pair of ints"),
    (dict(padding=-1), r"padding must be >= 0"),
    (dict(padding=(0, -3)), r"padding must be >= 0"),
    (dict(padding="same"), r"padding must be an int or a pair of ints"),
    (dict(w="huge"), r"larger than the padded input"),
    (dict(backend_name="gpu"), r"backend"),
])
def test_bad_arguments_raise_zfnet_error_naming_the_argument(rng, backend, change, match):
    x, w, b = _good(rng)
    kwargs = dict(stride=1, padding=1, groups=2)
    x = {"3d": x[0], "float64": x.astype(np.float64), "strided": x[:, :, ::2], "list": x.tolist()}.get(
        change.get("x"), x)
    w = {"3d": w[0], "float64": w.astype(np.float64), "strided": w[:, :, :, ::-1],
         "huge": _randn(rng, 6, 2, 12, 12)}.get(change.get("w"), w)
    b = {"2d": b[None], "float64": b.astype(np.float64), "short": b[:5].copy()}.get(change.get("b"), b)
    kwargs.update({k: v for k, v in change.items() if k in kwargs})
    backend = change.get("backend_name", backend)
    with pytest.raises(ZFNetError, match=match):
        conv2d(x, w, b, backend=backend, **kwargs)


def test_zfnet_error_is_a_value_error():
    assert issubclass(ZFNetError, ValueError)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_inputs_are_not_modified(rng, backend):
    for (stride, padding, groups, k) in [(2, 1, 2, 3), (1, 0, 1, 1)]:
        x, w, b = _randn(rng, 3, 4, 9, 9), _randn(rng, 6, 4 // groups, k, k), _randn(rng, 6)
        copies = [a.copy() for a in (x, w, b)]
        conv2d(x, w, b, stride, padding, groups, backend=backend)
        for a, a0 in zip((x, w, b), copies):
            np.testing.assert_array_equal(a, a0)


# --------------------------------------------------------------------------------------------
# out=: write y into a given array, e.g. a conv's channels of a concat's output
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("n, c, h, w_, f, k, stride, padding, groups, bias, relu", [
    (1, 4, 9, 8, 6, 3, 1, 1, 1, True, True),        # im2col, one image: the GEMM writes the slice
    (3, 4, 9, 8, 6, 3, 2, 1, 2, True, False),       # a chunk of images, groups: unstacked into the slice
    (3, 4, 9, 8, 6, 3, 1, 0, 1, False, True),       # no bias, rectified
    (1, 6, 7, 5, 4, 1, 1, 0, 1, True, True),        # 1x1: the plain GEMM into the slice
    (3, 6, 7, 5, 4, 1, 1, 0, 2, False, False),      # 1x1, a batch, groups, nothing after the GEMM
])
def test_out_channel_slice_equals_a_new_array(rng, backend, n, c, h, w_, f, k, stride, padding, groups,
                                              bias, relu):
    x = _randn(rng, n, c, h, w_)
    w = _randn(rng, f, c // groups, k, k)
    b = _randn(rng, f) if bias else None
    want = conv2d(x, w, b, stride, padding, groups, backend=backend, relu=relu)
    big = np.full((n, f + 5, *want.shape[2:]), 7.0, np.float32)      # 2 channels before, 3 after
    got = conv2d(x, w, b, stride, padding, groups, backend=backend, relu=relu, out=big[:, 2:2 + f])
    assert np.shares_memory(got, big)
    np.testing.assert_array_equal(big[:, 2:2 + f], want)              # bit for bit: the same path
    assert (big[:, :2] == 7).all() and (big[:, 2 + f:] == 7).all()    # the neighbours untouched
    whole = np.empty_like(want)
    assert conv2d(x, w, b, stride, padding, groups, backend=backend, relu=relu, out=whole) is whole
    np.testing.assert_array_equal(whole, want)


def test_out_with_chunked_batches(rng, monkeypatch):
    monkeypatch.setattr(conv2d_mod, "COLS_BYTES", 2 * 4 * 9 * 4 * 5 * 4)     # 2 images per chunk
    x, w, b = _randn(rng, 5, 4, 9, 8), _randn(rng, 6, 4, 3, 3), _randn(rng, 6)
    want = conv2d(x, w, b, 2, 1, backend="cpu", relu=True)
    big = np.zeros((5, 9, *want.shape[2:]), np.float32)
    conv2d(x, w, b, 2, 1, backend="cpu", relu=True, out=big[:, 3:])
    np.testing.assert_array_equal(big[:, 3:], want)
    assert (big[:, :3] == 0).all()


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("make, match", [
    (lambda y: y.tolist(), r"out must be a numpy array"),
    (lambda y: y.astype(np.float64), r"out must be float32"),
    (lambda y: y[:, :-1].copy(), r"out must have the output's shape"),
    (lambda y: y[0].copy(), r"out must have the output's shape"),
    (lambda y: np.zeros((*y.shape[:3], 2 * y.shape[3]), np.float32)[..., ::2], r"C-contiguous block"),
    (lambda y: np.zeros((y.shape[0], y.shape[1], y.shape[2] + 1, y.shape[3]), np.float32)[:, :, 1:],
     r"C-contiguous block"),
    (lambda y: np.zeros((2 * y.shape[0], *y.shape[1:]), np.float32)[::-2], r"C-contiguous block"),
    (lambda y: np.zeros((y.shape[0], *y.shape[1:]), np.float32).transpose(0, 1, 3, 2), r"shape|C-contiguous"),
    (lambda y: _read_only(np.zeros_like(y)), r"read-only"),
])
def test_bad_out_raises_zfnet_error(rng, backend, make, match):
    x, w, b = _randn(rng, 2, 4, 9, 7), _randn(rng, 6, 4, 3, 3), _randn(rng, 6)
    y = conv2d(x, w, b, 1, 1, backend="cpu")
    with pytest.raises(ZFNetError, match=match):
        conv2d(x, w, b, 1, 1, backend=backend, out=make(y))


def _read_only(a):
    a.setflags(write=False)
    return a


def test_out_must_not_overlap_the_input(rng):
    x = _randn(rng, 1, 4, 9, 9)
    w = _randn(rng, 4, 4, 1, 1)
    with pytest.raises(ZFNetError, match="overlap"):
        conv2d(x, w, out=x)
