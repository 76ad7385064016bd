"""The page's files ship in the wheel (package_data), so an installed zfnet explore has its page."""
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_static_page_is_in_the_wheel(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, cwd=tmp_path)
    (whl,) = tmp_path.glob("zfnet_deconvnet-*.whl")         # the distribution name (setup.cfg)
    names = zipfile.ZipFile(whl).namelist()
    for f in ("index.html", "app.js", "style.css"):
        assert f"zfnet/explore/static/{f}" in names
    assert "zfnet/cli/explore.py" in names and "zfnet/explore/api.py" in names
