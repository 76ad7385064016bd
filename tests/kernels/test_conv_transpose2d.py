"""conv_transpose2d: the deconvnet's filtering step, the exact adjoint of conv2d.

Checked four ways: the Numba/BLAS kernel against its NumPy twin on a grid of small shapes, both
against torch.nn.functional.conv_transpose2d (with output_padding = H - smallest H), the adjoint
identity <conv2d(x), y> = <x, conv_transpose2d(y)> for several strides/pads/groups, and the
argument checks.
"""
import importlib
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zfnet.kernels import ZFNetError, conv2d, conv2d_output_size, conv_transpose2d

# the module (``zfnet.kernels.conv_transpose2d`` the attribute is the function of the same name)
convT_mod = importlib.import_module("zfnet.kernels.conv_transpose2d")

torch.set_num_threads(2)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _smallest(hw_out, k, s, p):
    return tuple((o - 1) * si - 2 * pi + ki for o, ki, si, pi in zip(hw_out, k, s, p))


def _pairs(*values):
    return [(v, v) if isinstance(v, int) else tuple(v) for v in values]


def assert_convT_close(actual, expected, y, w, stride, padding, groups, output_size, rtol=1e-5):
    """|actual - expected| <= rtol * (|expected| + max conv_transpose2d(|y|, |w|)): the float32 error
    of a sum whose terms' magnitudes add up to conv_transpose2d(|y|, |w|)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == np.float32
    magnitude = conv_transpose2d(np.abs(y), np.abs(w), stride, padding, groups, output_size,
                                 backend="reference")
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = rtol * (np.abs(expected) + magnitude.max())
    assert np.all(err <= bound), f"max error {err.max():.3g}, bound {bound.min():.3g}"


def _torch_convT(y, w, stride, padding, groups, output_size):
    (kh, kw), s, p = w.shape[2:], *_pairs(stride, padding)
    smallest = _smallest(y.shape[2:], (kh, kw), s, p)
    output_padding = tuple(o - m for o, m in zip(output_size, smallest))
    return F.conv_transpose2d(torch.from_numpy(y), torch.from_numpy(w), None, stride, padding,
                              output_padding, groups).numpy()


# --------------------------------------------------------------------------------------------
# Numba/BLAS kernel == NumPy twin
# --------------------------------------------------------------------------------------------

# (N, C, H, W, F, KH, KW, stride, padding, groups): the (H, W) x of the conv2d whose adjoint is
# taken; y has conv2d's output size, and the transposed convolution must give back (H, W). Every
# stride 1-4 x padding 0-3 x groups 1-2 x N in (1, 3), then non-square cases and 1x1 kernels.
GRID = [
    (n, 4, 11, 9, 6, 3, 3, s, p, g)
    for s, p, g, n in itertools.product((1, 2, 3, 4), (0, 1, 2, 3), (1, 2), (1, 3))
] + [
    (1, 3, 9, 13, 5, 3, 2, (2, 3), (1, 0), 1),
    (3, 4, 10, 7, 6, 2, 5, (1, 2), (0, 2), 2),
    (2, 6, 8, 12, 6, 5, 3, (3, 1), (2, 1), 3),
    (3, 5, 7, 7, 4, 7, 7, 2, 3, 1),
    (1, 3, 7, 9, 4, 7, 9, 1, 0, 1),             # one-pixel y
    (3, 8, 9, 11, 6, 1, 1, 1, 0, 2),            # 1x1, stride 1, no pad: the plain-GEMM path
    (1, 8, 9, 11, 6, 1, 1, 1, 0, 1),
    (3, 4, 9, 11, 6, 1, 1, 2, 1, 1),            # 1x1 with stride and padding: the col2im path
    (1, 1, 5, 6, 1, 3, 3, 1, 1, 1),
]


@pytest.mark.parametrize("n, c, h, w_, f, kh, kw, stride, padding, groups", GRID)
def test_cpu_equals_reference(rng, n, c, h, w_, f, kh, kw, stride, padding, groups):
    hw_out = conv2d_output_size((h, w_), (kh, kw), stride, padding)
    y = _randn(rng, n, f, *hw_out)
    w = _randn(rng, f, c // groups, kh, kw)
    want = conv_transpose2d(y, w, stride, padding, groups, output_size=(h, w_), backend="reference")
    got = conv_transpose2d(y, w, stride, padding, groups, output_size=(h, w_), backend="cpu")
    assert got.shape == (n, c, h, w_)
    assert_convT_close(got, want, y, w, stride, padding, groups, (h, w_))
    # the default size is the smallest one
    want = conv_transpose2d(y, w, stride, padding, groups, backend="reference")
    got = conv_transpose2d(y, w, stride, padding, groups, backend="cpu")
    smallest = _smallest(hw_out, (kh, kw), *_pairs(stride, padding))
    assert got.shape == want.shape == (n, c, *smallest)
    assert_convT_close(got, want, y, w, stride, padding, groups, smallest)


@pytest.mark.parametrize("groups", [1, 2])
def test_cpu_batches_in_chunks_like_one_image_at_a_time(rng, monkeypatch, groups):
    """Batch invariance: each image's output is bit-identical alone, in chunks and in the whole batch."""
    y = _randn(rng, 5, 6, 5, 4)
    w = _randn(rng, 6, 4 // groups, 3, 3)
    args = (2, 1, groups, (10, 8))               # stride, padding, groups, output_size
    whole = conv_transpose2d(y, w, *args, backend="cpu")
    per_image = np.concatenate([conv_transpose2d(y[i:i + 1], w, *args, backend="cpu") for i in range(5)])
    np.testing.assert_array_equal(whole, per_image)
    assert_convT_close(whole, conv_transpose2d(y, w, *args, backend="reference"), y, w, *args)
    for cols_bytes in (1, 2 * 36 * 20 * 4):      # 1 image, then 2 images (of 5) per chunk
        monkeypatch.setattr(convT_mod, "COLS_BYTES", cols_bytes)
        np.testing.assert_array_equal(conv_transpose2d(y, w, *args, backend="cpu"), whole)


def test_a_single_unit_paints_its_filter_onto_its_receptive_field():
    # The deconvnet's picture: one active unit y[0, f, i, j] = a projects to a * w[f] placed at
    # rows i*s - p .. and columns j*s - p .. of x (cut where that falls in the padding).
    w = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)
    y = np.zeros((1, 2, 4, 4), np.float32)
    y[0, 1, 2, 0] = 2.0
    for backend in ("reference", "cpu"):
        x = conv_transpose2d(y, w, stride=2, padding=1, output_size=(8, 8), backend=backend)
        want = np.zeros((1, 3, 8 + 2, 8 + 2), np.float32)         # padded x
        want[0, :, 4:7, 0:3] = 2.0 * w[1]
        np.testing.assert_array_equal(x, want[:, :, 1:9, 1:9])


# --------------------------------------------------------------------------------------------
# Adjointness: <conv2d(x, w), y> == <x, conv_transpose2d(y, w)>
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("n, c, h, w_, f, kh, kw, stride, padding, groups", [
    (1, 3, 12, 12, 4, 3, 3, 1, 0, 1),
    (2, 3, 13, 11, 5, 3, 3, 2, 1, 1),
    (1, 4, 15, 15, 6, 5, 5, 2, 2, 2),
    (3, 4, 10, 9, 4, 4, 3, (3, 2), (1, 2), 2),
    (1, 6, 16, 14, 6, 7, 7, 4, 3, 3),
    (2, 8, 7, 7, 4, 1, 1, 1, 0, 2),
    (1, 3, 22, 22, 8, 7, 7, 2, 1, 1),            # ZFNet conv1's kernel, stride and padding
])
def test_adjoint_of_conv2d(rng, backend, n, c, h, w_, f, kh, kw, stride, padding, groups):
    x = _randn(rng, n, c, h, w_)
    w = _randn(rng, f, c // groups, kh, kw)
    y = _randn(rng, n, f, *conv2d_output_size((h, w_), (kh, kw), stride, padding))
    cx = conv2d(x, w, None, stride, padding, groups, backend=backend)
    cty = conv_transpose2d(y, w, stride, padding, groups, output_size=x.shape[2:], backend=backend)
    lhs = np.dot(cx.ravel().astype(np.float64), y.ravel().astype(np.float64))
    rhs = np.dot(x.ravel().astype(np.float64), cty.ravel().astype(np.float64))
    # float32 rounding of the two sides, relative to the magnitude of the terms summed
    scale = np.dot(np.abs(cx).ravel().astype(np.float64), np.abs(y).ravel().astype(np.float64))
    assert abs(lhs - rhs) <= 1e-5 * scale, (lhs, rhs, scale)


def test_transposing_w_instead_of_using_it_breaks_the_adjoint(rng):
    # The known bug (REFERENCE.md section 6): filtering with W instead of its transpose. With C != F
    # the shapes already refuse it; with C == F it runs, and the adjoint identity catches it.
    x = _randn(rng, 1, 4, 9, 9)
    w = _randn(rng, 4, 4, 3, 3)
    y = _randn(rng, 1, 4, 9, 9)
    lhs = np.dot(conv2d(x, w, None, 1, 1).ravel().astype(np.float64), y.ravel())
    good = np.dot(x.ravel(), conv_transpose2d(y, w, 1, 1).ravel().astype(np.float64))
    wrong = np.dot(x.ravel(), conv2d(y, w, None, 1, 1).ravel().astype(np.float64))
    assert abs(lhs - good) < 1e-3 < abs(lhs - wrong)


# --------------------------------------------------------------------------------------------
# Against PyTorch
# --------------------------------------------------------------------------------------------

# The deconvnet's filtering step for each of ZFNet's conv layers at its real size (batch 1):
# y is the layer's output, x its input size.
REAL_LAYERS = {
    "zf.conv1": ((1, 96, 110, 110), (96, 3, 7, 7), 2, 1, (224, 224)),    # output_padding 1
    "zf.conv2": ((1, 256, 26, 26), (256, 96, 5, 5), 2, 0, (55, 55)),
    "zf.conv3": ((1, 384, 13, 13), (384, 256, 3, 3), 1, 1, (13, 13)),
    "zf.conv4": ((1, 384, 13, 13), (384, 384, 3, 3), 1, 1, (13, 13)),
    "zf.conv5": ((1, 256, 13, 13), (256, 384, 3, 3), 1, 1, (13, 13)),
    "sq.fire2.squeeze1x1": ((1, 16, 55, 55), (16, 96, 1, 1), 1, 0, (55, 55)),
}


@pytest.mark.parametrize("layer", list(REAL_LAYERS))
def test_cpu_equals_pytorch_on_real_layer_shapes(rng, layer):
    y_shape, w_shape, stride, padding, hw = REAL_LAYERS[layer]
    y = _randn(rng, *y_shape)
    w = _randn(rng, *w_shape) * np.float32(0.05)
    got = conv_transpose2d(y, w, stride, padding, output_size=hw)
    assert got.shape == (1, w_shape[1], *hw)
    assert_convT_close(got, _torch_convT(y, w, stride, padding, 1, hw), y, w, stride, padding, 1, hw)


def test_reference_equals_pytorch_on_a_real_layer_shape(rng):
    y_shape, w_shape, stride, padding, hw = REAL_LAYERS["zf.conv3"]
    y = _randn(rng, *y_shape)
    w = _randn(rng, *w_shape) * np.float32(0.05)
    got = conv_transpose2d(y, w, stride, padding, output_size=hw, backend="reference")
    assert_convT_close(got, _torch_convT(y, w, stride, padding, 1, hw), y, w, stride, padding, 1, hw)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("n, f, ho, wo, c, kh, kw, stride, padding, groups, extra", [
    (2, 6, 6, 5, 4, 3, 3, 2, 1, 2, (1, 0)),     # output_padding (1, 0)
    (3, 5, 4, 7, 3, 5, 3, (3, 2), (2, 0), 1, (2, 1)),
    (1, 8, 9, 9, 4, 1, 1, 1, 0, 4, (0, 0)),
    (4, 3, 3, 3, 2, 4, 4, 4, 3, 1, (3, 3)),
])
def test_equals_pytorch_on_small_random_shapes(rng, backend, n, f, ho, wo, c, kh, kw, stride, padding,
                                               groups, extra):
    y = _randn(rng, n, f, ho, wo)
    w = _randn(rng, f, c // groups, kh, kw)
    hw = tuple(m + e for m, e in zip(_smallest((ho, wo), (kh, kw), *_pairs(stride, padding)), extra))
    got = conv_transpose2d(y, w, stride, padding, groups, output_size=hw, backend=backend)
    want = _torch_convT(y, w, stride, padding, groups, hw)
    assert_convT_close(got, want, y, w, stride, padding, groups, hw)


# --------------------------------------------------------------------------------------------
# output_size
# --------------------------------------------------------------------------------------------

def test_every_valid_output_size_is_accepted_and_no_other():
    # stride 3: H = smallest, smallest + 1, smallest + 2 all convolve down to H'; nothing else does
    y = np.ones((1, 2, 4, 5), np.float32)
    w = np.ones((2, 1, 3, 3), np.float32)
    smallest = _smallest((4, 5), (3, 3), (3, 3), (1, 1))
    for dh, dw in itertools.product(range(-2, 5), range(-2, 5)):
        hw = (smallest[0] + dh, smallest[1] + dw)
        if 0 <= dh < 3 and 0 <= dw < 3:
            assert conv_transpose2d(y, w, 3, 1, output_size=hw).shape == (1, 1, *hw)
        else:
            with pytest.raises(ZFNetError, match="output_size"):
                conv_transpose2d(y, w, 3, 1, output_size=hw)


# --------------------------------------------------------------------------------------------
# Bad arguments: a ZFNetError naming the argument; inputs never modified
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("change, match", [
    (dict(y="3d"), r"y must have 4 dimensions"),
    (dict(w="3d"), r"w must have 4 dimensions"),
    (dict(y="float64"), r"y must be float32"),
    (dict(w="float64"), r"w must be float32"),
    (dict(y="strided"), r"y must be C-contiguous"),
    (dict(w="strided"), r"w must be C-contiguous"),
    (dict(y="list"), r"y must be a numpy array"),
    (dict(w="wrong_filters"), r"channel mismatch"),   # w has 4 filters, y 6 feature maps
    (dict(groups=4), r"groups"),                       # F=6 is not divisible by 4
    (dict(groups=0), r"groups must be an int >= 1"),
    (dict(groups=1.0), r"groups must be an int >= 1"),
    (dict(stride=0), r"stride must be >= 1"),
    (dict(stride=(2, -1)), r"stride must be >= 1"),
    (dict(stride="2"), r"stride must be an int or a pair of ints"),
    (dict(padding=-1), r"padding must be >= 0"),
    (dict(padding=(1, 2, 3)), r"padding must be an int or a pair of ints"),
    (dict(output_size=(11, 11)), r"output_size"),              # convolves down to 6x6, not 5x5
    (dict(output_size=(9, 100000)), r"output_size"),           # absurd
    (dict(output_size=(-9, 9)), r"output_size"),
    (dict(output_size=(0, 9)), r"output_size"),
    (dict(output_size=(9.0, 9)), r"output_size"),
    (dict(output_size=(9, 9, 9)), r"output_size"),
    (dict(output_size="9x9"), r"output_size"),
    (dict(w="huge"), r"output_size|larger than the padded input"),   # a 13x13 kernel does not fit a padded 9x9 x
    (dict(backend_name="gpu"), r"backend"),
])
def test_bad_arguments_raise_zfnet_error_naming_the_argument(rng, backend, change, match):
    # good: y (2, 6, 5, 5) from a conv2d of x (2, 4, 9, 9) with w (6, 2, 3, 3), stride 2, pad 1, 2 groups
    y, w = _randn(rng, 2, 6, 5, 5), _randn(rng, 6, 2, 3, 3)
    kwargs = dict(stride=2, padding=1, groups=2, output_size=(9, 9))
    y = {"3d": y[0], "float64": y.astype(np.float64), "strided": y[:, ::2], "list": y.tolist()}.get(
        change.get("y"), y)
    w = {"3d": w[0], "float64": w.astype(np.float64), "strided": w[:, :, ::-1],
         "wrong_filters": _randn(rng, 4, 2, 3, 3), "huge": _randn(rng, 6, 2, 13, 13)}.get(change.get("w"), w)
    kwargs.update({k: v for k, v in change.items() if k in kwargs})
    backend = change.get("backend_name", backend)
    with pytest.raises(ZFNetError, match=match):
        conv_transpose2d(y, w, backend=backend, **kwargs)


def test_an_impossible_default_size_is_an_error():
    # 1x1 y, 1x1 kernel, padding 1: the smallest H = 0 - 2 + 1 < 1, and no H convolves down to 1
    with pytest.raises(ZFNetError, match="output_size"):
        conv_transpose2d(np.ones((1, 1, 1, 1), np.float32), np.ones((1, 1, 1, 1), np.float32), 1, 1)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_inputs_are_not_modified(rng, backend):
    for (stride, padding, groups, k, hw) in [(2, 1, 2, 3, (10, 9)), (1, 0, 1, 1, (5, 5))]:
        y_ = _randn(rng, 3, 6, 5, 5)
        w = _randn(rng, 6, 4 // groups, k, k)
        copies = [y_.copy(), w.copy()]
        conv_transpose2d(y_, w, stride, padding, groups, output_size=hw, backend=backend)
        for a, a0 in zip((y_, w), copies):
            np.testing.assert_array_equal(a, a0)
