"""Every benchmark case computes the same thing in zfnet and in PyTorch: what is timed is tested."""
import pytest

from benchmarks.cases import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_agrees_with_torch(case):
    bench = case.build()
    bench.check(bench.zfnet(), bench.torch())
