"""zfnet.convert.convert: choosing the converter by extension or content, and the promise that
the converters need neither PyTorch nor the onnx package."""
import shutil
import subprocess
import sys

import pytest

from zfnet import ZFNetError
from zfnet.convert import convert, detect_format

FILES = {"squeezenet1_0.caffemodel": "caffe", "squeezenet1_0.onnx": "onnx",
         "squeezenet1_0.pth": "torch_pth", "compressed_SqueezeNet.net": "deep_compression"}


@pytest.mark.parametrize("name", FILES)
def test_format_by_extension_and_by_content(squeezenet_dir, tmp_path, name):
    assert detect_format(squeezenet_dir / name) == FILES[name]
    # The same bytes under a meaningless extension are recognised from their first bytes.
    anonymous = tmp_path / "weights.bin"
    shutil.copyfile(squeezenet_dir / name, anonymous)
    assert detect_format(anonymous) == FILES[name]
    net = convert(anonymous)
    assert net.arch.name == "squeezenet1_0" and net.meta["converter"] == FILES[name]


def test_legacy_torch_stream_is_recognised_by_content(tmp_path):
    import torch
    path = tmp_path / "state.bin"
    torch.save({"w": torch.zeros(1)}, path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "torch_pth"


def test_dispatch_errors(squeezenet_dir, tmp_path):
    with pytest.raises(ZFNetError, match="holds no weights.*prototxt="):
        convert(squeezenet_dir / "deploy.prototxt")
    with pytest.raises(ZFNetError, match="load_net"):
        convert(tmp_path / "model.safetensors")
    with pytest.raises(ZFNetError, match="no such file"):
        convert(tmp_path / "missing.bin")
    with pytest.raises(ZFNetError, match="no such file"):
        convert(tmp_path / "missing.onnx")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ZFNetError, match="empty"):
        convert(empty)
    text = tmp_path / "notes.bin"
    text.write_bytes(b"hello, these are not weights")
    with pytest.raises(ZFNetError, match=r"notes\.bin: unknown weight format"):
        convert(text)
    with pytest.raises(ZFNetError, match="prototxt= is only for Caffe"):
        convert(squeezenet_dir / "squeezenet1_0.onnx", prototxt=squeezenet_dir / "deploy.prototxt")


def test_converters_need_neither_torch_nor_onnx(squeezenet_dir):
    """In a fresh interpreter where importing torch or onnx fails, all four files convert."""
    code = f"""
import sys
sys.modules["torch"] = None          # any 'import torch' now raises ImportError
sys.modules["onnx"] = None
sys.modules["onnxruntime"] = None
sys.modules["google.protobuf"] = None
from zfnet.convert import convert
d = {str(squeezenet_dir)!r}
for name in {list(FILES)!r}:
    net = convert(d + "/" + name)
    assert net.arch.name == "squeezenet1_0", name
bad = [m for m in ("torch", "onnx", "google.protobuf") if sys.modules.get(m) is not None]
assert not bad, bad
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
