"""--device cpu|cuda on every command, and a one-line error (exit 2) where 'cuda' cannot run.

The error cases run where there is no usable CUDA GPU (CI); on a GPU machine they are skipped
with that reason and the simulator/GPU tests cover the device path.
"""
import os
import subprocess
import sys

import pytest

from zfnet import kernels
from zfnet.cli import build_parser, main
from zfnet.kernels._backend import cuda_problem

NO_GPU = pytest.mark.skipif(cuda_problem() is None, reason="a CUDA GPU is present here")


def _leaves(sub, prefix=""):
    for name, command in sub.choices.items():
        nested = [a for a in command._actions if a.__class__.__name__ == "_SubParsersAction"]
        if nested:
            yield from _leaves(nested[0], f"{prefix}{name} ")
        else:
            yield prefix + name, command


def test_every_command_takes_device():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    leaves = dict(_leaves(sub))
    assert len(leaves) >= 10 and "weights list" in leaves and "topk" in leaves
    for name, command in leaves.items():
        device = [a for a in command._actions if "--device" in a.option_strings]
        assert len(device) == 1 and tuple(device[0].choices) == ("cpu", "cuda"), name
        assert device[0].default is None, name         # None: $ZFNET_BACKEND, else cpu


@NO_GPU
def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(capsys):
    before = kernels.get_backend()
    assert main(["weights", "list", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zfnet: error: the 'cuda' kernel backend cannot run here: ")
    assert any(w in err[0] for w in ("driver", "GPU", "pip install 'zfnet[cuda]'")), err[0]
    assert kernels.get_backend() == before


@NO_GPU
def test_zfnet_backend_cuda_without_a_gpu_is_exit_2():
    env = dict(os.environ, ZFNET_BACKEND="cuda")
    run = subprocess.run([sys.executable, "-c", "import sys; from zfnet.cli import main; sys.exit(main(['weights', 'list']))"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("zfnet: error: the 'cuda' kernel backend cannot run here: "), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
