"""Every CUDA kernel compiles for a real GPU (PTX for an H100, sm_90), with no GPU present.

The simulator runs the kernels as Python, so it cannot catch what only the CUDA compiler sees
(a type that does not unify, a feature numba.cuda lacks, float64 arithmetic slipping into the
GEMM's float32 loop). This test types and lowers every kernel through NVVM, as a GPU run would.
It needs numba-cuda with NVVM (pip install 'zfnet[cuda]'); without them it is skipped.
"""
import types

import pytest

numba_cuda = pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install 'zfnet[cuda]')")

from numba import cuda, types as t  # noqa: E402  (after the skip: the real target, not numba's built-in)
from numba.core import config  # noqa: E402

if config.ENABLE_CUDASIM:
    pytest.skip("the CUDA simulator does not compile", allow_module_level=True)

f32, f64, i32, i64, b1 = t.float32, t.float64, t.int32, t.int64, t.boolean


def _a(dtype, ndim, layout="C"):
    return t.Array(dtype, ndim, layout)


def _geo(n):
    return t.UniTuple(i64, n)


def _kernels():
    from zfnet.kernels.cuda import (avg_pool2d, conv2d, conv_transpose2d, linear, lrn, max_pool2d,
                                    max_unpool2d, relu, softmax)
    gemm = (i64, i64, i64)
    scratch = (_a(f32, 2), _a(i32, 2), _a(t.int8, 2))              # x, claims, done flags
    return {
        "conv2d": (conv2d._conv_gemm, (_a(f32, 2), _a(f32, 4), _a(f32, 4), _a(f32, 1), _geo(14)) + gemm),
        "conv2d out slice": (conv2d._conv_gemm, (_a(f32, 2), _a(f32, 4), _a(f32, 4, "A"), _a(f32, 1), _geo(14)) + gemm),
        "conv_transpose2d": (conv_transpose2d._transpose_gemm, (_a(f32, 4),) * 4 + (_geo(12),) + gemm),
        "linear": (linear._linear_gemm, (_a(f32, 2),) * 3 + (_a(f32, 1), _geo(1)) + gemm),
        "relu": (relu._relu, (_a(f32, 1), _a(f32, 1))),
        "max_pool2d": (max_pool2d._max_pool, (_a(f32, 4), _a(f32, 4), _a(i64, 4), _geo(8))),
        "avg_pool2d": (avg_pool2d._avg_pool, (_a(f32, 4), _a(f32, 4), _geo(7))),
        "unpool fill x": (max_unpool2d._fill, (_a(f32, 1), f64)),
        "unpool fill claims": (max_unpool2d._fill, (_a(i32, 1), i64)),
        "unpool fill done": (max_unpool2d._fill, (_a(t.int8, 1), i64)),
        "unpool int64": (max_unpool2d._unpool_rounds, (_a(f32, 2), _a(i64, 2)) + scratch),
        "unpool int32": (max_unpool2d._unpool_rounds, (_a(f32, 2), _a(i32, 2)) + scratch),
        "unpool range": (max_unpool2d._switch_range, (_a(i64, 1), _a(i64, 1))),
        "unpool widen": (max_unpool2d._widen, (_a(i32, 1), _a(i64, 1))),
        "lrn": (lrn._lrn, (_a(f32, 4), _a(f32, 4), i64, f64, f64, f64, b1)),
        "lrn_backward 1": (lrn._lrn_backward_pass1, (_a(f32, 4),) * 2 + (_a(f64, 4),) * 2 + (i64, f64, f64, f64, b1)),
        "lrn_backward 2": (lrn._lrn_backward_pass2, (_a(f32, 4),) * 2 + (_a(f64, 4),) * 2 + (_a(f32, 4), i64, f64, f64, b1)),
        "softmax": (softmax._softmax, (_a(f32, 1), _a(f32, 1), i64, i64)),
    }


NAMES = ["conv2d", "conv2d out slice", "conv_transpose2d", "linear", "relu", "max_pool2d", "avg_pool2d",
         "unpool fill x", "unpool fill claims", "unpool fill done", "unpool int64", "unpool int32",
         "unpool range", "unpool widen", "lrn", "lrn_backward 1", "lrn_backward 2", "softmax"]


@pytest.mark.parametrize("name", NAMES)
def test_cuda_kernel_compiles_to_ptx(monkeypatch, name):
    from numba.cuda import dispatcher
    # device functions ask the current GPU for its compute capability; there is none here
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=(9, 0)))
    kernel, signature = _kernels()[name]
    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
    except Exception as e:          # noqa: BLE001
        if "nvvm" in str(e).lower() or "nvrtc" in str(e).lower() or "libNVVM" in str(e):
            pytest.skip(f"NVVM is not installed: {str(e)[:200]}")
        raise
    assert ".entry" in ptx
    if name in ("conv2d", "conv_transpose2d", "linear"):
        assert ".f64" not in ptx, "float64 arithmetic in a float32 GEMM"
        assert ".shared" in ptx
