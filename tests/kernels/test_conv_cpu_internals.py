"""The CPU conv path's machinery: reused work buffers, and the choice of Numba's thread pool.

conv2d and conv_transpose2d keep their im2col buffers between calls (one set per thread), so a
call must never read what an earlier call left there: every padding tap must be written as a zero
and every output row cleared before it is summed into.
"""
import importlib
import os
import platform
import subprocess
import sys
import threading

import numpy as np
import pytest

from zfnet.kernels import conv2d, conv_transpose2d

conv2d_mod = importlib.import_module("zfnet.kernels.conv2d")
convT_mod = importlib.import_module("zfnet.kernels.conv_transpose2d")


def _poison_work_buffers():
    # big enough for every call below, so they reuse these arrays instead of growing new ones
    for slot in ("cols", "out"):
        conv2d_mod.work_buffer(slot, 1 << 20)[:] = np.nan


def _assert_close(got, want):
    assert np.isfinite(got).all(), "garbage from an earlier call's work buffer reached the result"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("n, stride, padding, cols_bytes", [
    (1, 1, 2, None),            # one image: GEMM straight into y
    (3, 2, 3, None),            # a stacked batch: GEMM into the "out" buffer, then unstacked
    (5, (2, 1), (1, 3), 4000),  # several chunks of 1-2 images
])
def test_stale_work_buffers_never_reach_the_result(rng, monkeypatch, n, stride, padding, cols_bytes):
    if cols_bytes is not None:
        monkeypatch.setattr(conv2d_mod, "COLS_BYTES", cols_bytes)
        monkeypatch.setattr(convT_mod, "COLS_BYTES", cols_bytes)
    x = rng.standard_normal((n, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)

    want = conv2d(x, w, b, stride, padding, backend="reference")
    _poison_work_buffers()
    _assert_close(conv2d(x, w, b, stride, padding, backend="cpu"), want)

    y = rng.standard_normal(want.shape).astype(np.float32)
    want = conv_transpose2d(y, w, stride, padding, output_size=(7, 6), backend="reference")
    _poison_work_buffers()
    _assert_close(conv_transpose2d(y, w, stride, padding, output_size=(7, 6), backend="cpu"), want)


def test_work_buffers_are_reused_within_a_thread_and_separate_across_threads():
    a = conv2d_mod.work_buffer("cols", 1000)
    assert np.shares_memory(a, conv2d_mod.work_buffer("cols", 10))     # reused, not reallocated
    assert not np.shares_memory(a, conv2d_mod.work_buffer("out", 10))  # slots are independent
    other = []
    t = threading.Thread(target=lambda: other.append(conv2d_mod.work_buffer("cols", 1000)))
    t.start()
    t.join()
    assert not np.shares_memory(a, other[0])


CHILD = """
import numba, numpy as np
from zfnet.kernels import conv2d
conv2d(np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32), None, 1, 1)
print(numba.threading_layer())
"""


def _threading_layer_in_child(**env):
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    proc = subprocess.run([sys.executable, "-c", CHILD], env={**environ, **env},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()[-1]


def test_numba_pool_is_not_libgomp_unless_the_user_asks():
    # libgomp's busy-waiting workers steal the cores of the GEMM that follows each kernel: tbb where
    # its library loads (a dependency on x86-64, so there it must), else workqueue
    from zfnet.kernels._threads import load_tbb
    expected = "tbb" if load_tbb() else "workqueue"
    if platform.machine() in ("x86_64", "AMD64") and sys.platform.startswith("linux"):
        assert expected == "tbb", "the tbb wheel is a dependency here, but its libtbb.so.12 did not load"
    assert _threading_layer_in_child() == expected
    # an explicit choice by the user wins
    assert _threading_layer_in_child(NUMBA_THREADING_LAYER="omp") == "omp"
    assert _threading_layer_in_child(NUMBA_THREADING_LAYER="workqueue") == "workqueue"


def test_missing_tbb_is_no_error():
    from zfnet.kernels._threads import _tbb_version, load_tbb, tbb_candidates
    assert not load_tbb(["/nonexistent/libtbb.so.12", "libtbb-not-there.so.12"])
    assert not load_tbb([])
    assert _tbb_version("libtbb-not-there.so.12") == 0
    assert tbb_candidates()[0] == "libtbb.so.12"
    assert any(p.startswith(sys.prefix) for p in tbb_candidates()[1:])


@pytest.mark.parametrize("threshold, kernel", [(1 << 40, "_bias_serial"), (0, "_bias_parallel")])
@pytest.mark.parametrize("n, k, relu", [(1, 3, True), (3, 3, False), (2, 1, True)])
def test_bias_pass_serial_and_parallel_agree(rng, monkeypatch, threshold, kernel, n, k, relu):
    # small outputs take the one-thread bias pass, large ones the parallel one: same numbers
    x = rng.standard_normal((n, 8, 9, 8)).astype(np.float32)           # Kg = 72 (k=3): not folded
    w = rng.standard_normal((6, 8, k, k)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    want = conv2d(x, w, b, 1, k // 2, backend="cpu", relu=relu)
    calls = []
    real = getattr(conv2d_mod, kernel)
    monkeypatch.setattr(conv2d_mod, "SERIAL_BIAS_BELOW", threshold)
    monkeypatch.setattr(conv2d_mod, kernel, lambda *a: (calls.append(1), real(*a)))
    got = conv2d(x, w, b, 1, k // 2, backend="cpu", relu=relu)
    assert calls, f"{kernel} did not run"
    np.testing.assert_array_equal(got, want)
    ref = conv2d(x, w, b, 1, k // 2, backend="reference", relu=relu)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_bias_pass_threshold_sits_between_the_layers_it_splits():
    # SqueezeNet's fire convs (<= 0.4 M outputs) run serially, ZFNet conv1 at batch 16 in parallel
    assert 128 * 3025 < conv2d_mod.SERIAL_BIAS_BELOW < 16 * 96 * 110 * 110


def _frozen(a):
    a = a.copy()
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("n, groups, relu", [(1, 1, False), (1, 2, True), (2, 1, False)])
def test_bias_folded_into_the_gemm_frozen_and_writeable_agree(rng, monkeypatch, n, groups, relu):
    # 4*3*3 = 36 rows < 63 output pixels per image: one image per chunk folds the bias into the GEMM
    monkeypatch.setattr(conv2d_mod, "COLS_BYTES", 1)
    x = rng.standard_normal((n, 4, 9, 7)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    built = []
    real = conv2d_mod._filters_with_bias
    monkeypatch.setattr(conv2d_mod, "_filters_with_bias", lambda *a: (built.append(1), real(*a))[1])
    writeable = conv2d(x, w, b, 1, 1, groups, backend="cpu", relu=relu)
    assert built, "the bias was not folded"
    wf, bf = _frozen(w), _frozen(b)
    frozen_1 = conv2d(x, wf, bf, 1, 1, groups, backend="cpu", relu=relu)
    frozen_2 = conv2d(x, wf, bf, 1, 1, groups, backend="cpu", relu=relu)     # from the cache
    np.testing.assert_array_equal(frozen_1, writeable)
    np.testing.assert_array_equal(frozen_2, writeable)
    want = conv2d(x, w, b, 1, 1, groups, backend="reference", relu=relu)
    np.testing.assert_allclose(writeable, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_folded_filters_follow_a_new_bias_or_new_filters(rng):
    # a cached [w | b] must never outlive either array: a new b (or a new w) gives new numbers
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    w1 = _frozen(rng.standard_normal((5, 3, 3, 3)).astype(np.float32))
    b1 = _frozen(rng.standard_normal(5).astype(np.float32))
    y1 = conv2d(x, w1, b1, 1, 1, backend="cpu")
    b2 = _frozen(b1 + 1)
    np.testing.assert_allclose(conv2d(x, w1, b2, 1, 1, backend="cpu"), y1 + 1, rtol=1e-5, atol=1e-5)
    w2 = _frozen(w1 * 2)
    want = conv2d(x, w2, b1, 1, 1, backend="reference")
    np.testing.assert_allclose(conv2d(x, w2, b1, 1, 1, backend="cpu"), want, rtol=1e-5, atol=1e-4)
    b_writeable = b1.copy()                                  # not cached: changed in place, seen at once
    conv2d(x, w1, b_writeable, 1, 1, backend="cpu")
    b_writeable += 3
    np.testing.assert_allclose(conv2d(x, w1, b_writeable, 1, 1, backend="cpu"), y1 + 3, rtol=1e-5, atol=1e-5)
