"""max_unpool_sparse (the sparse walk's unpool step) against its NumPy twin and against
kernels.max_unpool2d: odd boxes, strides, overlapping windows whose switches tie."""
import numpy as np
import pytest

from zfnet import kernels
from zfnet.kernels.max_unpool_sparse import max_unpool_sparse, max_unpool_sparse_reference


@pytest.mark.parametrize("k,s,hw", [(3, 2, (13, 11)), (2, 2, (9, 7)), (3, 1, (6, 5)), (5, 3, (17, 14))])
@pytest.mark.parametrize("rectify", [False, True])
def test_equals_the_twin_and_max_unpool2d(rng, k, s, hw, rectify):
    C, (H, W) = 3, hw
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    x[0, :, H // 2, W // 2] = 10                      # one bright pixel: overlapping windows tie on it
    y, switches = kernels.max_pool2d(x, k, s, ceil_mode=True)
    g_full = rng.standard_normal(y.shape[1:]).astype(np.float32)                           # (C, H', W')
    g_full[rng.random(g_full.shape) < 0.3] = 0
    Hp, Wp = y.shape[2:]
    # a box of g (rows a.., columns c..) and a box of out that holds every switch it reaches
    a, c = Hp // 3, Wp // 4
    g = np.ascontiguousarray(g_full[:, a:, c:].transpose(1, 2, 0))                          # (h', w', C)
    y0, x0 = a * s, c * s
    start = rng.standard_normal((H - y0, W - x0, C)).astype(np.float32)
    want = max_unpool_sparse_reference(g, switches[0], (a, c), (y0, x0), W, start.copy(), rectify)
    got = max_unpool_sparse(g, switches[0], (a, c), (y0, x0), W, start.copy(), rectify)
    np.testing.assert_array_equal(got, want)
    # the same as the dense unpool of the box's values (rectified where asked), added to start
    boxed = np.zeros_like(g_full)
    boxed[:, a:, c:] = np.maximum(g_full[:, a:, c:], 0) if rectify else g_full[:, a:, c:]
    dense = kernels.max_unpool2d(boxed[None], switches, (H, W))[0]                         # (C, H, W)
    np.testing.assert_allclose(got - start, dense[:, y0:, x0:].transpose(1, 2, 0), rtol=1e-6, atol=1e-6)


def test_values_sharing_a_switch_add_up():
    switches = np.zeros((1, 2, 2), np.int64)          # all four pooled units chose input (0, 0)
    g = np.array([[[1.0], [2.0]], [[3.0], [-4.0]]], np.float32)                             # (2, 2, 1)
    for rectify, total in ((False, 2.0), (True, 6.0)):
        out = max_unpool_sparse(g, switches, (0, 0), (0, 0), 3, np.zeros((3, 3, 1), np.float32), rectify)
        assert out[0, 0, 0] == total and np.count_nonzero(out) == 1
