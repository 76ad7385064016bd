"""The device steps of the pipeline (kernels/cuda/tensors.py) against their NumPy twins
(zfnet/net/tensors.py's NumPy branch, crop.local_switches, backward.avgpool_back's host loop).

Sizes are odd and not multiples of the 128-thread block. Runs on a GPU or in Numba's simulator
(test_cuda_simulator.py); skipped elsewhere. Every test name holds 'cuda'.
"""
import numpy as np
import pytest

from zfnet.kernels._backend import cuda_problem
from zfnet.net import tensors

pytestmark = pytest.mark.skipif(
    cuda_problem() is not None,
    reason="no CUDA GPU here: test_cuda_simulator.py runs these in Numba's simulator")


@pytest.fixture
def cuda():
    from numba import cuda
    return cuda


def _randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_cuda_copies_views_repeats_and_takes(rng, cuda):
    a = _randn(rng, 3, 5, 7, 9)
    d = cuda.to_device(a)
    np.testing.assert_array_equal(tensors.contiguous(d[:, 1:4, 2:7, 3:8]).copy_to_host(), a[:, 1:4, 2:7, 3:8])
    np.testing.assert_array_equal(tensors.repeat(d[1:2], 4).copy_to_host(), tensors.repeat(a[1:2], 4))
    np.testing.assert_array_equal(tensors.take(d, [2, 0, 2]).copy_to_host(), tensors.take(a, [2, 0, 2]))
    flat = a.reshape(3, -1)
    np.testing.assert_array_equal(tensors.take(cuda.to_device(flat), [1]).copy_to_host(), flat[[1]])
    z = np.zeros((3, 8, 7, 9), np.float32)
    dz = tensors.zeros(z.shape, d)
    tensors.assign(dz[:, 2:7], d)                     # a channel slice, as a concat fills it
    tensors.assign(z[:, 2:7], a)
    np.testing.assert_array_equal(dz.copy_to_host(), z)
    s = rng.integers(0, 99, (2, 3, 5, 7)).astype(np.int64)       # switches copy too (int64)
    np.testing.assert_array_equal(tensors.repeat(cuda.to_device(s[:1]), 3).copy_to_host(), tensors.repeat(s[:1], 3))


def test_cuda_add_mask_gap_spread_flat(rng, cuda):
    g, x = _randn(rng, 3, 4, 5, 7), _randn(rng, 1, 4, 5, 7)
    dg, dx = cuda.to_device(g), cuda.to_device(x)
    np.testing.assert_array_equal(tensors.add(dg, dg).copy_to_host(), tensors.add(g, g))
    np.testing.assert_array_equal(tensors.mask_positive(dg, dx).copy_to_host(), tensors.mask_positive(g, x))
    np.testing.assert_array_equal(tensors.mask_positive(dg, dg).copy_to_host(), tensors.mask_positive(g, g))
    np.testing.assert_allclose(tensors.gap(dg).copy_to_host(), tensors.gap(g), rtol=1e-6)
    pooled = tensors.gap(g)
    np.testing.assert_array_equal(tensors.spread(cuda.to_device(pooled), (5, 7)).copy_to_host(),
                                  tensors.spread(pooled, (5, 7)))
    np.testing.assert_array_equal(tensors.flat(dg).copy_to_host(), tensors.flat(g))
    fc = _randn(rng, 3, 11)
    np.testing.assert_array_equal(tensors.mask_positive(cuda.to_device(fc), cuda.to_device(fc[:1])).copy_to_host(),
                                  tensors.mask_positive(fc, fc[:1]))


def test_cuda_local_switches(rng, cuda):
    from zfnet.deconv.crop import local_switches
    H, W, box = 9, 11, (2, 7, 3, 10)
    h = rng.integers(box[0], box[1], (2, 3, 4, 5))
    w = rng.integers(box[2], box[3], (2, 3, 4, 5))
    s = (h * W + w).astype(np.int64)
    got = local_switches(cuda.to_device(s), box, W)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.copy_to_host(), local_switches(s, box, W))


@pytest.mark.parametrize("include_pad, ceil", [(True, False), (False, True)])
def test_cuda_avgpool_back_on_a_box(rng, cuda, include_pad, ceil):
    """The average pool's adjoint on a cropped box (and the whole plane) equals the host loop."""
    from zfnet.deconv.backward import Context, avgpool_back
    from zfnet.net import Architecture, AvgPool
    arch = Architecture("pool", (AvgPool("p", "data", 3, 2, 1, ceil_mode=ceil, count_include_pad=include_pad),),
                        (2, 9, 8))
    layer, out_shape = arch.layers[0], arch.shapes["p"]
    for plan in ({"p": (1, 3, 0, 2), "data": (1, 6, 0, 4)}, {"p": (0, out_shape[1], 0, out_shape[2]),
                                                             "data": (0, 9, 0, 8)}):
        a, b, c, d = plan["p"]
        g = _randn(rng, 2, 2, b - a, d - c)
        ctx = Context(None, arch.shapes, plan, {}, {}, np.zeros(2, np.int64))
        want = avgpool_back(layer, g, ctx)[0]
        ctx.device = True
        got = avgpool_back(layer, cuda.to_device(g), ctx)[0]
        np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-6, atol=1e-7)
