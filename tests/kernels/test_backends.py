"""One test matrix: every public op on every backend against its NumPy twin (backend='reference').

The 'cuda' column runs wherever numba.cuda can: on a real GPU, or in Numba's CUDA simulator,
which test_cuda_simulator.py starts in a subprocess (NUMBA_ENABLE_CUDASIM=1 must be set before
numba.cuda is imported, so it cannot share this process with the CPU tests). Shapes are tiny
(the simulator runs every GPU thread as a Python thread) but cross the launch boundaries: more
than 64 filters, positions, units or images (a GEMM tile is 64x64) and more than 128 outputs (a
1-D block is 128 threads), so a grid that misses its last tile or block fails here.
"""
import numpy as np
import pytest

from zfnet import kernels
from zfnet.kernels import ZFNetError
from zfnet.kernels._backend import cuda_problem

NO_CUDA = cuda_problem()
CUDA = pytest.param("cuda", marks=pytest.mark.skipif(
    NO_CUDA is not None, reason="no CUDA GPU here: test_cuda_simulator.py runs these in Numba's simulator"))
BACKENDS = ["cpu", CUDA]


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _ties(rng, *shape):
    """Small integers: many equal values in every pooling window."""
    return rng.integers(-2, 3, size=shape).astype(np.float32)


def assert_close(got, want, rtol=1e-5):
    """float32 agreement, relative to the largest value (GEMMs sum in another order than the twin)."""
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, float(np.abs(want).max())))


# ----------------------------------------------------------------------------------------------
# GEMM ops: conv2d, conv_transpose2d, linear
# ----------------------------------------------------------------------------------------------

CONV = [
    # (N, C, H, W), F, kernel, stride, padding, groups, bias, relu
    ((2, 3, 7, 6), 5, 3, 1, 1, 1, True, False),        # 84 positions: two column tiles, odd sizes
    ((1, 4, 9, 8), 6, 3, 2, 0, 2, False, True),        # groups, stride 2, fused ReLU
    ((1, 2, 8, 7), 3, (3, 2), 3, (1, 2), 1, True, True),  # stride 3, rectangular kernel and padding
    ((1, 2, 3, 3), 70, 1, 1, 0, 1, True, False),       # 70 filters: two row tiles
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CONV, ids=str)
def test_conv2d(rng, backend, case):
    shape, F, k, s, p, G, bias, relu = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x, w = _randn(rng, *shape), _randn(rng, F, shape[1] // G, kh, kw)
    b = _randn(rng, F) if bias else None
    want = kernels.conv2d(x, w, b, s, p, G, backend="reference", relu=relu)
    assert_close(kernels.conv2d(x, w, b, s, p, G, backend=backend, relu=relu), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_out_numpy(rng, backend):
    x, w, b = _randn(rng, 1, 2, 5, 5), _randn(rng, 3, 2, 3, 3), _randn(rng, 3)
    big = np.full((1, 7, 3, 3), 9.0, np.float32)
    got = kernels.conv2d(x, w, b, out=big[:, 2:5], backend=backend)
    assert np.shares_memory(got, big)
    assert_close(big[:, 2:5], kernels.conv2d(x, w, b, backend="reference"))
    assert (big[:, :2] == 9).all() and (big[:, 5:] == 9).all()


TRANSPOSED = [
    # (N, F, H', W'), C, kernel, stride, padding, groups, output_size
    ((2, 4, 4, 3), 3, 3, 2, 1, 1, (7, 6)),              # 84 outputs: two column tiles; the larger size
    ((1, 4, 3, 2), 2, (3, 2), 3, (1, 0), 2, None),      # groups, stride 3, rectangular
    ((1, 3, 4, 4), 2, 3, 1, 1, 1, None),                # stride 1, padding
    ((1, 2, 3, 3), 66, 1, 1, 0, 1, None),               # 66 channels: two row tiles
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", TRANSPOSED, ids=str)
def test_conv_transpose2d(rng, backend, case):
    shape, C, k, s, p, G, size = case
    kh, kw = (k, k) if isinstance(k, int) else k
    y, w = _randn(rng, *shape), _randn(rng, shape[1], C // G, kh, kw)
    want = kernels.conv_transpose2d(y, w, s, p, G, size, backend="reference")
    assert_close(kernels.conv_transpose2d(y, w, s, p, G, size, backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, i, o, bias", [(3, 5, 70, True), (1, 20, 4, False), (66, 3, 2, True)])
def test_linear(rng, backend, n, i, o, bias):
    x, w = _randn(rng, n, i), _randn(rng, o, i)
    b = _randn(rng, o) if bias else None
    assert_close(kernels.linear(x, w, b, backend=backend), kernels.linear(x, w, b, backend="reference"))


# ----------------------------------------------------------------------------------------------
# Elementwise, pooling, normalisation
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_relu(rng, backend):
    x = _randn(rng, 3, 50)                                  # 150 elements: two 1-D blocks
    x[0, :3] = [np.nan, -0.0, np.inf]
    got = kernels.relu(x, backend=backend)
    np.testing.assert_array_equal(got, kernels.relu(x, backend="reference"))


POOLS = [
    # kernel, stride, padding, ceil_mode
    (3, 2, 1, True), (3, 2, 0, False), (2, 1, 0, True), (3, 3, 1, False), ((3, 2), (2, 3), (1, 0), True),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k, s, p, ceil", POOLS, ids=str)
def test_max_pool2d_switches_and_ties(rng, backend, k, s, p, ceil):
    x = _ties(rng, 2, 3, 13, 11)                              # 720 outputs at stride 1: six blocks
    x[0, 0, 2, 3] = np.nan
    for relu_input in (False, True):
        want_y, want_s = kernels.max_pool2d(x, k, s, p, ceil, backend="reference", relu_input=relu_input)
        y, switches = kernels.max_pool2d(x, k, s, p, ceil, backend=backend, relu_input=relu_input)
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(switches, want_s)
        assert switches.dtype == np.int64
    alone = kernels.max_pool2d(x, k, s, p, ceil, backend=backend, relu_input=True, return_switches=False)
    np.testing.assert_array_equal(alone, want_y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("switch_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("shape", [(3, 2, 11, 9), (1, 2, 27, 25)], ids=str)
def test_max_unpool2d_sums_overlaps(rng, backend, switch_dtype, shape):
    x = _ties(rng, *shape)                                   # 3x3 stride 2: windows overlap, ties
    x[0, 0, 4:7, 4:7] = 5                                    # one input wins all four windows around it
    y, switches = kernels.max_pool2d(x, 3, 2, 0, True, backend="cpu")   # 13x12 = 156 values a plane
    switches = switches.astype(switch_dtype)
    want = kernels.max_unpool2d(y, switches, shape[2:], backend="reference")
    got = kernels.max_unpool2d(y, switches, shape[2:], backend=backend)
    np.testing.assert_array_equal(got, want)
    assert np.bincount(switches[0, 0].ravel().astype(np.int64)).max() == 4


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k, s, p, ceil, count_pad", [(3, 2, 1, True, False), (2, 2, 0, False, True),
                                                      (3, 3, 1, True, True)], ids=str)
def test_avg_pool2d(rng, backend, k, s, p, ceil, count_pad):
    x = _randn(rng, 2, 3, 13, 11)
    want = kernels.avg_pool2d(x, k, s, p, ceil, count_pad, backend="reference")
    assert_close(kernels.avg_pool2d(x, k, s, p, ceil, count_pad, backend=backend), want, rtol=1e-6)


LRN = [(3, 0.75, False), (4, 0.6, False), (3, 0.75, True), (5, 0.6, True)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size, beta, within", LRN, ids=str)
def test_lrn_and_backward(rng, backend, size, beta, within):
    x, dy = _randn(rng, 2, 6, 5, 3) * 3, _randn(rng, 2, 6, 5, 3)      # 180 elements: two blocks
    args = (size, 0.1, beta, 1.5, within)
    assert_close(kernels.lrn(x, *args, backend=backend), kernels.lrn(x, *args, backend="reference"))
    assert_close(kernels.lrn_backward(x, dy, *args, backend=backend),
                 kernels.lrn_backward(x, dy, *args, backend="reference"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, axis", [((130, 3), -1), ((2, 3, 5), 1), ((2, 3, 5), 0), ((4, 7), 0)], ids=str)
def test_softmax(rng, backend, shape, axis):
    x = _randn(rng, *shape) * 10
    assert_close(kernels.softmax(x, axis, backend=backend), kernels.softmax(x, axis, backend="reference"))


# ----------------------------------------------------------------------------------------------
# The same argument checks and messages on every backend
# ----------------------------------------------------------------------------------------------

_x = np.zeros((1, 2, 5, 5), np.float32)
BAD_CALLS = {
    "conv2d float64": lambda be: kernels.conv2d(_x.astype(np.float64), np.zeros((1, 2, 3, 3), np.float32), backend=be),
    "conv2d groups": lambda be: kernels.conv2d(_x, np.zeros((3, 1, 3, 3), np.float32), groups=2, backend=be),
    "conv2d kernel too big": lambda be: kernels.conv2d(_x, np.zeros((1, 2, 7, 7), np.float32), backend=be),
    "conv2d out shape": lambda be: kernels.conv2d(_x, np.zeros((1, 2, 3, 3), np.float32),
                                                  out=np.zeros((1, 1, 2, 2), np.float32), backend=be),
    "conv_transpose2d size": lambda be: kernels.conv_transpose2d(_x, np.zeros((2, 1, 3, 3), np.float32),
                                                                 2, output_size=(20, 20), backend=be),
    "linear mismatch": lambda be: kernels.linear(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32), backend=be),
    "relu strided": lambda be: kernels.relu(_x[:, :, ::2], backend=be),
    "max_pool2d padding": lambda be: kernels.max_pool2d(_x, 3, 1, 2, backend=be),
    "max_pool2d flag": lambda be: kernels.max_pool2d(_x, 3, relu_input=1, backend=be),
    "max_unpool2d range": lambda be: kernels.max_unpool2d(_x, np.full(_x.shape, 30, np.int64), (5, 5), backend=be),
    "max_unpool2d dtype": lambda be: kernels.max_unpool2d(_x, np.zeros(_x.shape, np.float32), (5, 5), backend=be),
    "avg_pool2d stride": lambda be: kernels.avg_pool2d(_x, 2, 0, backend=be),
    "lrn size": lambda be: kernels.lrn(_x, 4, within_channel=True, backend=be),
    "lrn_backward dy": lambda be: kernels.lrn_backward(_x, _x[0], 3, backend=be),
    "softmax axis": lambda be: kernels.softmax(_x, 4, backend=be),
}


@pytest.mark.parametrize("backend", ["reference"] + BACKENDS)
@pytest.mark.parametrize("call", BAD_CALLS, ids=str)
def test_same_error_on_every_backend(backend, call):
    with pytest.raises(ZFNetError) as cpu:
        BAD_CALLS[call]("cpu")
    with pytest.raises(ZFNetError) as other:
        BAD_CALLS[call](backend)
    assert str(other.value) == str(cpu.value)
