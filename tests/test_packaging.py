"""The distribution installs kernels/ as zfnet.kernels, never as a top-level `kernels` package."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
         str(REPO)],
        check=True, capture_output=True, cwd=out,
    )
    (whl,) = out.glob("zfnet_deconvnet-*.whl")         # the distribution name (setup.cfg)
    return zipfile.ZipFile(whl).namelist()


def test_kernels_installed_under_zfnet(wheel):
    top = {name.split("/")[0] for name in wheel}
    assert "kernels" not in top, "a top-level 'kernels' package would clash with other projects"
    assert "zfnet/kernels/__init__.py" in wheel
    for op in ("conv2d", "conv_transpose2d", "relu", "max_pool2d", "max_unpool2d", "lrn", "linear", "softmax"):
        assert f"zfnet/kernels/{op}.py" in wheel
        assert f"zfnet/kernels/cuda/{op}.py" in wheel      # the CUDA kernels, one file per op


def test_every_subpackage_is_in_the_wheel(wheel):
    # setup.cfg lists packages by hand (find: cannot see the mapped folder): catch a forgotten one.
    for init in (REPO / "zfnet").rglob("__init__.py"):
        rel = init.relative_to(REPO).as_posix()
        assert rel in wheel, f"{rel} is missing from the wheel: add its package to setup.cfg"


def test_model_cards_are_in_the_wheel(wheel):
    cards = [n for n in wheel if n.startswith("zfnet/model_cards/") and n.endswith(".json")]
    assert cards, "model cards (weights/*.json) must ship as zfnet.model_cards"


def test_distribution_name_and_command(wheel):
    """Published as zfnet-deconvnet ('zfnet' on the index is another project), imported and run as zfnet."""
    (meta,) = [n for n in wheel if n.endswith(".dist-info/entry_points.txt")]
    assert meta.startswith("zfnet_deconvnet-")
    assert "zfnet/__init__.py" in wheel
