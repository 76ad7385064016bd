"""The CUDA backend with device arrays: they go in and come out without a trip to the host, out=
writes into a channel slice on the device, and the device-side checks give the CPU's messages.

Runs where numba.cuda can (a real GPU, or the simulator started by test_cuda_simulator.py);
skipped with a reason elsewhere. Every test name holds 'cuda' (the simulator run selects -k cuda).
"""
import numpy as np
import pytest

from zfnet import kernels
from zfnet.kernels import ZFNetError
from zfnet.kernels._backend import cuda_problem

pytestmark = pytest.mark.skipif(
    cuda_problem() is not None,
    reason="no CUDA GPU here: test_cuda_simulator.py runs these in Numba's simulator")


@pytest.fixture
def cuda():
    from numba import cuda
    return cuda


def _is_device(a):
    from numba.cuda.cudadrv import devicearray
    return devicearray.is_cuda_ndarray(a)


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_cuda_device_arrays_stay_on_the_device(rng, cuda):
    """conv -> pool -> lrn -> unpool -> deconv, and fc -> softmax, all on device arrays, the
    default backend set to 'cuda': every result a device array, the end equal to the twins'."""
    x, w, b = _randn(rng, 1, 2, 9, 8), _randn(rng, 4, 2, 3, 3), _randn(rng, 4)
    wf = _randn(rng, 3, 4 * 5 * 5)                  # the pooled maps are 4 x 5x5

    def walk(x, w, b, wf):
        y = kernels.conv2d(x, w, b, padding=1, relu=True)
        pooled, switches = kernels.max_pool2d(y, 3, 2, 1, ceil_mode=True)
        normed = kernels.lrn(pooled, 3, 0.1)
        p = kernels.softmax(kernels.linear(kernels.relu(normed).reshape(1, 100), wf))
        back = kernels.conv_transpose2d(kernels.max_unpool2d(normed, switches, (9, 8)), w, padding=1)
        return normed, p, back

    with kernels.use_backend("cuda"):
        got = walk(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), cuda.to_device(wf))
    with kernels.use_backend("reference"):
        want = walk(x, w, b, wf)
    for g, r in zip(got, want):
        assert _is_device(g)
        np.testing.assert_allclose(g.copy_to_host(), r, rtol=1e-5, atol=1e-5)


def test_cuda_conv2d_out_channel_slice_on_the_device(rng, cuda):
    x, w = _randn(rng, 2, 3, 5, 4), _randn(rng, 2, 3, 3, 3)
    big = cuda.to_device(np.full((2, 5, 3, 2), 7.0, np.float32))
    got = kernels.conv2d(cuda.to_device(x), cuda.to_device(w), out=big[:, 1:3], backend="cuda", relu=True)
    assert _is_device(got)
    host = big.copy_to_host()
    np.testing.assert_allclose(host[:, 1:3], kernels.conv2d(x, w, relu=True, backend="reference"),
                               rtol=1e-5, atol=1e-5)
    assert (host[:, 0] == 7).all() and (host[:, 3:] == 7).all()


def test_cuda_device_checks_give_the_cpu_messages(rng, cuda):
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ZFNetError, match="must not overlap the input x"):
        d = cuda.to_device(np.zeros((1, 2, 4, 4), np.float32))
        kernels.conv2d(d, cuda.to_device(np.zeros((2, 2, 1, 1), np.float32)), out=d, backend="cuda")
    with pytest.raises(ZFNetError, match="out must be a CUDA device array like x"):
        kernels.conv2d(cuda.to_device(x), np.zeros((2, 2, 1, 1), np.float32), out=x, backend="cuda")
    with pytest.raises(ZFNetError, match="x must be float32, got float64"):
        kernels.relu(cuda.to_device(x.astype(np.float64)), backend="cuda")
    with pytest.raises(ZFNetError, match="C-contiguous"):
        kernels.relu(cuda.to_device(x)[:, :, ::2], backend="cuda")
    y, switches = kernels.max_pool2d(cuda.to_device(x), 2, backend="cuda")
    for dtype in (np.int64, np.int32):
        bad = cuda.to_device(np.full((1, 2, 2, 2), 16, dtype))          # the device range check
        with pytest.raises(ZFNetError, match=r"got values in \[16, 16\]"):
            kernels.max_unpool2d(y, bad, (4, 4), backend="cuda")


def test_cuda_call_to_a_cpu_module_is_an_error():
    from zfnet.kernels.relu import relu as relu_module
    with pytest.raises(ZFNetError, match="call zfnet.kernels.<op>"):
        relu_module(np.zeros(3, np.float32), backend="cuda")


def test_cuda_array_interface_is_viewed_without_a_copy(rng, cuda):
    from numba.core import config
    if config.ENABLE_CUDASIM:
        pytest.skip("the simulator's arrays have no __cuda_array_interface__")

    class Foreign:                      # what a CuPy array or a torch CUDA tensor offers
        def __init__(self, d):
            self.__cuda_array_interface__ = d.__cuda_array_interface__
    x = cuda.to_device(_randn(rng, 2, 70))
    y = kernels.relu(Foreign(x), backend="cuda")
    np.testing.assert_array_equal(y.copy_to_host(), np.maximum(x.copy_to_host(), 0))
