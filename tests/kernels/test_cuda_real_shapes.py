"""On a real GPU: every kernel case of the benchmark registry (ZFNet's and SqueezeNet's layers at
their real shapes, batch 1) on backend='cuda', against PyTorch, with the registry's own check
(switches exact). Far too large for the simulator; skipped (one line) without a GPU.
"""
import pytest

from zfnet import kernels
from zfnet.kernels._backend import cuda_problem

if cuda_problem() is not None:
    pytest.skip("no CUDA GPU here (these real-shape cases need a real one)", allow_module_level=True)
from numba.core import config  # noqa: E402

if config.ENABLE_CUDASIM:
    pytest.skip("real shapes are too large for the CUDA simulator", allow_module_level=True)

from benchmarks.cases import CASES  # noqa: E402

KERNEL_CASES = [c for c in CASES if c.group == "kernel"]


@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c.name for c in KERNEL_CASES])
def test_cuda_kernel_at_real_shape_equals_torch(case):
    bench = case.build()
    with kernels.use_backend("cuda"):
        got = bench.zfnet()
    bench.check(got, bench.torch())
