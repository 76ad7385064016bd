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


def test_slp_setting_is_given_back():
    before = numba.config.SLP_VECTORIZE
    with slp_vectorized():
        assert numba.config.SLP_VECTORIZE == 1
    assert numba.config.SLP_VECTORIZE == before


_X = np.ones(100_000, np.float32)
# each micro-kernel with the arguments of a small layer: 2 input blocks, 4 filter blocks
MICRO_KERNELS = {
    "_pointwise_gemm_6x16": (_X, _X, _X[:64], _X.copy(), 1, 2, 8, 64, 4, False, 4, 0, 8, 64, 0, 0),
    "_pointwise_gemm_12x32": (_X, _X, _X[:64], _X.copy(), 1, 2, 8, 64, 4, False, 4, 0, 8, 64, 0, 0),
    "_direct_6x16": (_X, _X, _X[:64], _X.copy(), 1, 32, 2, 10, 10, 4, 3, 3, 8, 8, 1, 1, False, 4, 0),
    "_direct_12x32": (_X, _X, _X[:64], _X.copy(), 1, 32, 2, 10, 10, 4, 3, 3, 8, 8, 1, 1, False, 4, 0),
    "_direct_6x64": (_X, _X, _X[:64], _X.copy(), 1, 32, 2, 10, 10, 4, 3, 3, 8, 8, 1, 1, False, 4, 0),
    "_direct_nchw_6x16": (_X, _X, _X[:64], _X.copy(), np.arange(27, dtype=np.uint64), 1, 3, 10, 10, 4, 8, 8, 1, 1,
                          False, 4, 0),
    "_direct_nchw_6x32": (_X, _X, _X[:64], _X.copy(), np.arange(27, dtype=np.uint64), 1, 3, 10, 10, 4, 8, 8, 1, 1,
                          False, 4, 0),
}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="checks x86 SIMD mnemonics")
@pytest.mark.parametrize("name", sorted(MICRO_KERNELS))
def test_micro_kernels_are_packed_simd_without_gathers(name):
    """The NCHWc micro-kernels as compiled here (a fresh copy with the kernel's own options, so that
    its assembly can be read):
    every multiply-add packed (compiled without SLP, the tile's were scalar vfmadd231ss), no gather
    or scatter (what LLVM built the tile from on an AVX-512 host before _codegen.py), and the
    stores of the tile packed too (they were 96 scalar adds per tile while the bias was read
    between them)."""
    from zfnet.kernels import conv2d_nchwc
    kernel = njit(fastmath=conv2d_nchwc.FAST, parallel=True, cache=False)(getattr(conv2d_nchwc, name).py_func)
    call_vectorized(kernel, *MICRO_KERNELS[name])
    asm = "\n".join(kernel.inspect_asm().values())
    assert re.search(r"\bvfmadd\d+ps\b", asm), "no packed multiply-add at all"
    assert not re.search(r"\b(v?fmadd\d+ss|v?mulss|v?addss)\b", asm), "scalar arithmetic left: the tile was not vectorised"
    assert not re.search(r"\bv(p?gather|p?scatter)\w*", asm), "the tile is built from gathers"
