"""The CUDA backend without a GPU: its kernels run in Numba's CUDA simulator, and selecting it
where it cannot run is a ZFNetError that says what is missing.

NUMBA_ENABLE_CUDASIM=1 must be set before numba.cuda is imported, so the simulator gets its own
Python process: it runs the 'cuda' column of test_backends.py and test_cuda_device.py (-k cuda).
On a machine with a GPU those run in this process too, on the GPU. A second subprocess runs the
pipeline's tests (tests/net/test_tensors_cuda.py, tests/deconv/test_cuda_pipeline.py) the same way.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zfnet import kernels
from zfnet.kernels import ZFNetError
from zfnet.kernels import _backend

HERE = Path(__file__).resolve().parent
SIMULATED = ["test_backends.py", "test_cuda_device.py"]
# the cuda cases of those files, less the one the simulator cannot run (__cuda_array_interface__)
EXPECTED_PASSED = 52


def test_cuda_kernels_in_numba_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", "-rs",
         *(str(HERE / name) for name in SIMULATED)],
        env=env, cwd=HERE.parent.parent, capture_output=True, text=True, timeout=900,
    )
    tail = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    summary = run.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= EXPECTED_PASSED and "failed" not in summary and "error" not in summary, tail
    assert "no CUDA GPU here" not in run.stdout, tail         # the simulator really ran them


# the pipeline on the device: forward + projection end to end, and the device steps between the ops
PIPELINE = ["net/test_tensors_cuda.py", "deconv/test_cuda_pipeline.py"]
PIPELINE_PASSED = 13


def test_cuda_pipeline_in_numba_cuda_simulator():
    """forward() and project() with backend='cuda' equal the CPU's, in the simulator."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", "-rs",
         *(str(HERE.parent / name) for name in PIPELINE)],
        env=env, cwd=HERE.parent.parent, capture_output=True, text=True, timeout=900,
    )
    tail = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    summary = run.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= PIPELINE_PASSED and "failed" not in summary and "skipped" not in summary, tail


@pytest.mark.skipif(_backend.cuda_problem() is None, reason="a CUDA GPU is present here")
def test_selecting_cuda_without_a_gpu_names_what_is_missing():
    x = np.ones((2, 3), np.float32)
    for select in (lambda: kernels.relu(x, backend="cuda"), lambda: kernels.set_backend("cuda"),
                   lambda: kernels.use_backend("cuda").__enter__()):
        with pytest.raises(ZFNetError, match="the 'cuda' kernel backend cannot run here: .*(driver|GPU|install)"):
            select()
    assert kernels.get_backend() != "cuda"
    np.testing.assert_array_equal(kernels.relu(x), x)                # the CPU still works


def test_missing_numba_cuda_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba.cuda", None)             # as if numba had no CUDA target
    assert "pip install 'zfnet[cuda]'" in _backend.cuda_problem.__wrapped__()
