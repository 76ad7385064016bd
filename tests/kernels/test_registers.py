"""_registers.py: a stack tile compiled with SLP on becomes packed SIMD arithmetic (the reason the
NCHWc micro-kernels are fast), and the SLP setting is given back."""
import platform
import re

import numba
import numpy as np
import pytest
from numba import njit, uint64

from zfnet.kernels._registers import call_vectorized, slp_vectorized, stack_tile


def _tile_update():
    """A 2-pixel x 8-channel tile: acc[r, :] += x[r] * w[ci, :] over 16 input channels; a fresh
    (uncached) function each time, so that its assembly can be inspected."""
    @njit(fastmath=True, cache=False)
    def tile(x, w, y):
        acc = stack_tile(16)
        for k in range(16):
            acc[k] = 0.0
        for ci in range(uint64(x.shape[1])):
            for r in range(uint64(2)):
                xv = x[r, ci]
                for co in range(uint64(8)):
                    acc[r * uint64(8) + co] += xv * w[ci, co]
        for k in range(16):
            y[k] = acc[k]
    return tile


def test_stack_tile_computes_the_sum():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 16)).astype(np.float32), rng.standard_normal((16, 8)).astype(np.float32)
    y = np.empty(16, np.float32)
    call_vectorized(_tile_update(), x, w, y)
    np.testing.assert_allclose(y.reshape(2, 8), x @ w, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="checks x86 SIMD mnemonics")
def test_slp_packs_the_tile_into_simd_instructions():
    x, w, y = np.ones((2, 16), np.float32), np.ones((16, 8), np.float32), np.empty(16, np.float32)
    tile = _tile_update()
    call_vectorized(tile, x, w, y)
    asm = "\n".join(tile.inspect_asm().values())
    # every product is packed (vfmadd231ps / mulps); compiled without SLP, 48 of them were scalar (ss)
    assert re.search(r"\b(v?fmadd\d+ps|v?mulps)\b", asm), "no packed multiply at all"
    assert not re.search(r"\b(v?fmadd\d+ss|v?mulss)\b", asm), "scalar multiplies left: the tile was not vectorised"
    before = numba.config.SLP_VECTORIZE
    with slp_vectorized():
        assert numba.config.SLP_VECTORIZE == 1
    assert numba.config.SLP_VECTORIZE == before
