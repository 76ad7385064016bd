"""benchmarks/report.py --device cuda: the GPU registry, its dry run, and its error without a GPU.

The GPU timings themselves need an NVIDIA GPU and PyTorch CUDA (see the README's GPU section);
here: the registry is built for 'cuda' (every CPU case, forward at batch 1, 16 and 128 too), each
case's build is the GPU wrapper, and without a GPU the report stops with one line, exit 2.
"""
import pytest

from benchmarks import report
from benchmarks.cases import CASES, cases
from zfnet.kernels._backend import cuda_problem


def test_gpu_registry_is_the_cpu_one_plus_batch_128():
    gpu = cases("cuda")
    names = [c.name for c in gpu]
    assert set(names) - {c.name for c in CASES} == {"forward/zfnet/b128", "forward/squeezenet1_0/b128"}
    assert {c.name for c in CASES} <= set(names)
    assert all(c.build.__name__ == "build_on_gpu" for c in gpu)       # synced, TF32 off/on
    assert all(c.build.__name__ == "build" for c in CASES)            # the CPU cases unchanged
    for want in ("project/zfnet.conv5/one_unit", "project/zfnet.conv5/maps_0-31", "scan/zfnet.conv5/top9_of_64"):
        assert want in names


def test_report_dry_run_lists_the_gpu_cases(capsys):
    assert report.main(["--device", "cuda", "--dry-run", "--cases", "forward/"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "6 cases on cuda"
    assert any(line.endswith("forward/zfnet/b128") for line in out)


@pytest.mark.skipif(cuda_problem() is None, reason="a CUDA GPU is present here")
def test_report_device_cuda_without_a_gpu_is_one_line_exit_2(capsys):
    assert report.main(["--device", "cuda", "--cases", "forward/zfnet/b1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("report.py: error: --device cuda cannot run here: ")
    assert "driver" in err[0] or "GPU" in err[0] or "zfnet[cuda]" in err[0] or "PyTorch" in err[0]
