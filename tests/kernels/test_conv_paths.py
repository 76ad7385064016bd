"""conv2d's named CPU paths (kernels.conv2d.CPU_PATHS): each against the NumPy twin, and the
dispatch table `cpu_path` choosing each one where its docstring says.

Every path is called directly on shapes it can compute (not only where the dispatch would send
them), with and without bias and fused ReLU, and into a channel slice of a larger array.
"""
import importlib

import numpy as np
import pytest

from zfnet.kernels import conv2d

from test_conv2d import assert_conv_close

conv2d_mod = importlib.import_module("zfnet.kernels.conv2d")
reference = conv2d_mod.conv2d_reference

# (N, C, H, W), (F, C/G, KH, KW), stride, padding, groups: shapes each path can compute
GENERAL = [((2, 4, 9, 7), (6, 4, 3, 3), (1, 1), (1, 1), 1),
           ((3, 4, 11, 10), (6, 2, 5, 3), (2, 1), (2, 0), 2),
           ((1, 3, 30, 30), (5, 3, 7, 7), (2, 2), (1, 1), 1)]
ONE_BY_ONE = [((3, 6, 5, 7), (4, 6, 1, 1), (1, 1), (0, 0), 1),
              ((2, 8, 4, 4), (6, 4, 1, 1), (1, 1), (0, 0), 2)]
THREE_BY_THREE = [((2, 5, 9, 11), (7, 5, 3, 3), (1, 1), (1, 1), 1),
                  ((3, 3, 6, 5), (4, 3, 3, 3), (1, 1), (2, 0), 1)]
CAN_COMPUTE = {
    "winograd": THREE_BY_THREE,
    "gemm_1x1": ONE_BY_ONE,
    "im2col_chunked": GENERAL + ONE_BY_ONE + THREE_BY_THREE,
    "im2col_one_image": GENERAL + ONE_BY_ONE + THREE_BY_THREE,
    "im2col_bias_folded": GENERAL + ONE_BY_ONE + THREE_BY_THREE,
}


def test_every_path_is_in_the_table():
    assert set(CAN_COMPUTE) == set(conv2d_mod.CPU_PATHS)


def _cases():
    for name, shapes in CAN_COMPUTE.items():
        for i, shape in enumerate(shapes):
            yield pytest.param(name, shape, id=f"{name}-{i}")


@pytest.mark.parametrize("name, shape", list(_cases()))
@pytest.mark.parametrize("bias, relu", [(False, False), (True, False), (True, True), (False, True)])
def test_path_equals_the_twin(rng, name, shape, bias, relu):
    if name == "im2col_bias_folded" and not bias:
        return                                            # folding needs a bias to fold
    x_shape, w_shape, stride, padding, G = shape
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    want = reference(x, w, b, stride, padding, G)
    want = np.maximum(want, 0) if relu else want
    N, F = x_shape[0], w_shape[0]
    big = np.full((N, F + 3, *want.shape[2:]), 5.0, np.float32)           # y is a channel slice
    y = big[:, 1:F + 1]
    conv2d_mod.CPU_PATHS[name](x, w, b, stride, padding, G, relu, y)
    rtol = 2e-5 if name == "winograd" else 1e-5
    assert_conv_close(y, want, x, w, stride, padding, G, rtol=rtol)
    assert (big[:, 0] == 5).all() and (big[:, F + 1:] == 5).all()        # nothing outside its slice


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, bias, cols_bytes, want", [
    ((1, 128, 45, 45), (16, 128, 3, 3), 1, 1, False, None, "winograd"),      # 144 tiles, 128 channels
    ((16, 128, 13, 13), (16, 128, 3, 3), 1, 1, True, None, "im2col_chunked"),  # 16 tiles per image: too few
    ((8, 64, 45, 45), (16, 64, 3, 3), 1, 1, False, None, "im2col_one_image"),  # too few channels
    ((8, 64, 13, 13), (16, 64, 3, 3), 1, 1, True, None, "im2col_chunked"),    # Kg = 576 > 169
    ((8, 128, 13, 13), (16, 128, 3, 3), 2, 1, True, None, "im2col_chunked"),  # stride 2
    ((8, 4, 13, 13), (16, 4, 3, 3), 1, 1, True, None, "im2col_bias_folded"),  # Kg = 36 < 169, any batch
    ((1, 4, 13, 13), (16, 4, 3, 3), 1, 1, True, None, "im2col_bias_folded"),
    ((4, 16, 13, 13), (8, 16, 1, 1), 1, 0, True, None, "gemm_1x1"),
    ((4, 16, 13, 13), (8, 16, 1, 1), 1, 1, True, None, "im2col_bias_folded"),  # padded 1x1: unrolled
    ((4, 16, 13, 13), (8, 16, 1, 1), 1, 1, False, None, "im2col_chunked"),
    ((2, 3, 40, 40), (8, 3, 7, 7), 2, 1, True, 1, "im2col_bias_folded"),      # over COLS_BYTES, Kg < P
    ((2, 3, 40, 40), (8, 3, 7, 7), 2, 1, False, 1, "im2col_one_image"),       # the same without a bias
    ((1, 128, 13, 13), (16, 128, 3, 3), 1, 1, True, None, "im2col_one_image"),  # batch 1, Kg > P
    ((2, 128, 13, 13), (16, 128, 3, 3), 1, 1, True, 1, "im2col_one_image"),   # over COLS_BYTES
    ((2, 3, 64, 64), (8, 3, 7, 7), 2, 1, True, None, "im2col_bias_folded"),   # 30x30 = 900 >= 512
    ((2, 64, 30, 30), (8, 64, 5, 5), 1, 2, True, None, "im2col_one_image"),   # 900 >= 512, Kg = 1600
])
def test_dispatch_picks_the_path_its_docstring_names(monkeypatch, x_shape, w_shape, stride, padding,
                                                     bias, cols_bytes, want):
    if cols_bytes is not None:
        monkeypatch.setattr(conv2d_mod, "COLS_BYTES", cols_bytes)
    stride, padding = conv2d_mod.positive_pair(stride, "s"), conv2d_mod.non_negative_pair(padding, "p")
    out_hw = conv2d_mod.conv2d_output_size(x_shape[2:], w_shape[2:], stride, padding)
    assert conv2d_mod.cpu_path(x_shape, w_shape, out_hw, stride, padding, 1, bias) == want
    if want == "winograd":
        assert conv2d_mod.cpu_path(x_shape, w_shape, out_hw, stride, padding, 1, bias,
                                   winograd=False) == "im2col_one_image"


def test_wide_maps_go_one_image_at_a_time():
    # ZFNet conv1 at 224x224: 110x110 positions, one image per GEMM, the bias folded in
    assert conv2d_mod.images_per_chunk(16, 3, 7, 7, 110 * 110) == 1
    assert conv2d_mod.cpu_path((16, 3, 224, 224), (96, 3, 7, 7), (110, 110), (2, 2), (1, 1), 1,
                               True) == "im2col_bias_folded"
    # ZFNet conv5 at batch 16 (13x13) unrolls all images in one call (then one GEMM per image)
    assert conv2d_mod.images_per_chunk(16, 384, 3, 3, 169) == 16


@pytest.mark.parametrize("name", sorted(CAN_COMPUTE))
def test_conv2d_runs_the_path_the_table_names(rng, monkeypatch, name):
    """Through the public conv2d: the named path runs, and its result is the twin's."""
    x_shape, w_shape, stride, padding, bias = {
        "winograd": ((1, 128, 45, 45), (4, 128, 3, 3), 1, 1, True),
        "gemm_1x1": ((3, 8, 6, 6), (5, 8, 1, 1), 1, 0, True),
        "im2col_chunked": ((3, 12, 9, 9), (5, 12, 3, 3), 1, 1, True),
        "im2col_bias_folded": ((2, 3, 64, 64), (8, 3, 7, 7), 2, 1, True),
        "im2col_one_image": ((2, 3, 64, 64), (8, 3, 7, 7), 2, 1, False),
    }[name]
    ran = []
    real = conv2d_mod.CPU_PATHS[name]
    monkeypatch.setitem(conv2d_mod.CPU_PATHS, name, lambda *a: (ran.append(name), real(*a))[1])
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    got = conv2d(x, w, b, stride, padding, relu=True, backend="cpu")
    assert ran == [name]
    want = np.maximum(reference(x, w, b, stride, padding), 0)
    assert_conv_close(got, want, x, w, stride, padding, 1, rtol=2e-5 if name == "winograd" else 1e-5)


@pytest.mark.parametrize("name", sorted(CAN_COMPUTE))
@pytest.mark.parametrize("bias, relu", [(True, True), (False, False)])
def test_path_is_batch_invariant(rng, name, bias, relu):
    """Each path's output for an image is bit-identical alone, in a batch of 5 and of 16."""
    for x_shape, w_shape, stride, padding, G in CAN_COMPUTE[name][:2]:
        if name == "im2col_bias_folded" and not bias:
            continue
        x = rng.standard_normal((16, *x_shape[1:])).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
        out_hw = conv2d_mod.conv2d_output_size(x_shape[2:], w_shape[2:], stride, padding)

        def run(xs):
            y = np.empty((xs.shape[0], w_shape[0], *out_hw), np.float32)
            return conv2d_mod.CPU_PATHS[name](xs, w, b, stride, padding, G, relu, y)
        batch = run(x)
        np.testing.assert_array_equal(run(x[:5]), batch[:5])
        for n in (0, 4, 15):
            np.testing.assert_array_equal(run(x[n:n + 1])[0], batch[n])


def test_chunked_and_one_image_compute_the_same_bits(rng, monkeypatch):
    """cpu_path picks between these two by N (and COLS_BYTES): they must agree bit for bit."""
    x = rng.standard_normal((6, 8, 11, 9)).astype(np.float32)
    w = rng.standard_normal((5, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    y = [np.empty((6, 5, 11, 9), np.float32) for _ in range(3)]
    conv2d_mod.CPU_PATHS["im2col_chunked"](x, w, b, (1, 1), (1, 1), 1, True, y[0])
    conv2d_mod.CPU_PATHS["im2col_one_image"](x, w, b, (1, 1), (1, 1), 1, True, y[1])
    monkeypatch.setattr(conv2d_mod, "COLS_BYTES", 2 * 8 * 9 * 99 * 4)                  # 2 images per call
    conv2d_mod.CPU_PATHS["im2col_chunked"](x, w, b, (1, 1), (1, 1), 1, True, y[2])
    np.testing.assert_array_equal(y[0], y[1])
    np.testing.assert_array_equal(y[2], y[1])
