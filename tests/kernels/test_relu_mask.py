"""relu_mask (the guided and gradient ReLU rule on one unit's signal) against its NumPy twin."""
import numpy as np
import pytest

from zfnet.kernels.relu_mask import relu_mask, relu_mask_reference


@pytest.mark.parametrize("box", [(0, 0, 7, 5), (2, 3, 4, 1), (1, 0, 6, 6)])
@pytest.mark.parametrize("rectify", [False, True])
def test_equals_the_twin(rng, box, rectify):
    y0, x0, h, w = box
    x = rng.standard_normal((3, 7, 6)).astype(np.float32)                                   # (C, H, W)
    x[0, y0, x0] = 0                                  # x == 0 masks, as x < 0 does
    x[1, y0, x0] = np.nan                             # NaN masks too
    g = rng.standard_normal((h, w, 3)).astype(np.float32)
    g[0, 0, 2] = np.nan
    want = relu_mask_reference(g.copy(), x, (y0, x0), rectify)
    got = relu_mask(g.copy(), x, (y0, x0), rectify)
    np.testing.assert_array_equal(got, want)
    active = x[:, y0:y0 + h, x0:x0 + w].transpose(1, 2, 0) > 0
    assert not got[~active].any()
    kept = np.where(active, np.maximum(g, 0) if rectify else g, 0)
    np.testing.assert_array_equal(got, kept)
