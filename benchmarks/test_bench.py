"""pytest-benchmark front end over the case registry (benchmarks/cases.py): not part of the tests.

    python -m pytest benchmarks/ --benchmark-only                     # everything
    python -m pytest benchmarks/ --benchmark-only -k "forward or scan"
    python -m pytest benchmarks/ --benchmark-only -m quick            # report.py --quick's subset

Each case is two benchmarks, `zfnet` and `torch`, grouped under the case's name, timed on the very
functions tests/test_benchmark_cases.py checks against each other (and checked here too, once,
before timing). The first zfnet call (JIT compile or Numba-cache load) is made before timing and
stored in extra_info["first_s"]. Both sides run with the same thread count (BENCH_THREADS, default
all cores). benchmarks/report.py prints the same cases as one table with ratios.
"""
import os
import time

import pytest

from benchmarks.cases import CASES

_built = {}


def _bench(case):
    """Build a case once per session (both sides share it) and check it before any timing."""
    if case.name not in _built:
        import numba
        import torch
        threads = int(os.environ.get("BENCH_THREADS", os.cpu_count()))
        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        b = case.build()
        t = time.perf_counter()
        b.zfnet()
        first = time.perf_counter() - t
        b.check(b.zfnet(), b.torch())
        _built.clear()                   # keep one case's inputs alive at a time
        _built[case.name] = (b, first)
    return _built[case.name]


_params = [pytest.param(c, side, id=f"{c.name}[{side}]", marks=[pytest.mark.quick] if c.quick else [])
           for c in CASES for side in ("zfnet", "torch")]


@pytest.mark.parametrize("case,side", _params)
def test_bench(benchmark, case, side):
    b, first = _bench(case)
    benchmark.group = case.name
    benchmark.extra_info.update(side=side, first_s=first)
    if b.flops:
        benchmark.extra_info["flops"] = b.flops
    if b.images:
        benchmark.extra_info["images"] = b.images
    fn = b.zfnet if side == "zfnet" else b.torch
    heavy = b.flops and b.flops > 5e10 or case.group in ("project", "scan") and "unit" not in case.name
    if heavy:
        # seconds per call: a few rounds, not pytest-benchmark's default of one second's worth
        benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)
