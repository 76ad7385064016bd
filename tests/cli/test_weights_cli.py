"""``zfnet weights list | get | info | convert`` on the real SqueezeNet files and onnx's test graph."""
import json
from pathlib import Path

import pytest

from zfnet.cli import main
from zfnet.weights import list_cards, load_net


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZFNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_list(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for card in list_cards():
        assert card.name in out
    assert "squeezenet1_0 *" in out and "local" in out
    assert main(["weights", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["squeezenet1_0"]["status"] == "local" and rows["squeezenet1_0"]["default"] is True
    assert rows["zfnet512"]["status"] == "download" and rows["zfnet512"]["size"] == 349005501


def test_get_prints_the_cached_file(capsys, cache):
    assert main(["weights", "get", "squeezenet1_0"]) == 0
    out, err = capsys.readouterr()
    path = Path(out.strip())
    assert path == cache / "models" / "squeezenet1_0.safetensors"
    assert load_net(path).meta["source_file"] == "compressed_SqueezeNet.net"
    assert "compressed_SqueezeNet.net" in err
    assert main(["weights", "list"]) == 0 and "converted" in capsys.readouterr().out
    assert main(["weights", "get", "nonet"]) == 2
    assert "unknown model 'nonet'" in capsys.readouterr().err


def test_convert_recognises_a_known_file(capsys, squeezenet_dir, tmp_path):
    out = tmp_path / "sq.safetensors"
    assert main(["weights", "convert", str(squeezenet_dir / "squeezenet1_0.caffemodel"),
                 "--prototxt", str(squeezenet_dir / "deploy.prototxt"), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    meta = load_net(out).meta
    assert meta["model"] == "squeezenet1_0" and meta["source_file"] == "squeezenet1_0.caffemodel"
    assert meta["mean"] == [104.0, 117.0, 123.0] and meta["channel_order"] == "BGR"


def test_convert_unknown_file_needs_preprocessing(capsys, tmp_path, monkeypatch, unknown_onnx):
    monkeypatch.chdir(tmp_path)
    assert main(["weights", "convert", str(unknown_onnx)]) == 2
    assert "--model-card" in capsys.readouterr().err
    assert not (tmp_path / "tuned.safetensors").exists()
    assert main(["weights", "convert", str(unknown_onnx), "--channel-order", "RGB", "--scale", "1",
                 "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--input-size", "224",
                 "--classes", "imagenet"]) == 0
    net = load_net(tmp_path / "tuned.safetensors")      # default output: ./<stem>.safetensors
    assert net.arch.name == "squeezenet1_0"
    m = net.meta
    assert (m["model"], m["channel_order"], m["scale"], m["std"], m["input_size"], m["resize"]) == (
        "squeezenet1_0", "RGB", 1, [0.229, 0.224, 0.225], [224, 224], 256)
    assert main(["weights", "convert", str(unknown_onnx), "--model-card", "squeezenet1_0", "-o", "z.safetensors"]) == 0
    m = load_net(tmp_path / "z.safetensors").meta
    assert (m["model"], m["channel_order"], m["input_size"], m["source_file"]) == (
        "squeezenet1_0", "BGR", [227, 227], "tuned.onnx")


def test_convert_argument_errors(capsys, squeezenet_dir, tmp_path):
    onnx_file = str(squeezenet_dir / "squeezenet1_0.onnx")
    assert main(["weights", "convert", onnx_file, "-o", str(tmp_path / "x.bin")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["weights", "convert", onnx_file, "--mean", "1,2"])
    assert e.value.code == 2 and "expected 3 comma-separated numbers" in capsys.readouterr().err
    assert main(["weights", "convert", str(tmp_path / "nope.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_info(capsys, squeezenet_dir, tmp_path):
    assert main(["weights", "info", "zf_caffe"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["files"][0]["md5"] == "ed34ca912d6782edfb673a8c3a0bda6d"
    out = tmp_path / "sq.safetensors"
    assert main(["weights", "convert", str(squeezenet_dir / "squeezenet1_0.onnx"), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["weights", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 1_248_424 and info["meta"]["source_file"] == "squeezenet1_0.onnx"
