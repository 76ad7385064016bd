"""The converted-weights file: round trip, metadata readable by plain safetensors, atomic writes,
and a clear ZFNetError naming the file for every kind of damage."""
import json
import os

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from zfnet import ZFNetError
from zfnet.net import Net, get_architecture
from zfnet.weights import load_net, read_meta, save_net

META = {
    "model": "squeezenet1_0", "input_size": [227, 227], "channel_order": "BGR", "scale": 255,
    "mean": [104.0, 117.0, 123.0], "std": [1.0, 1.0, 1.0], "resize": 256, "classes": "imagenet",
    "source_file": "compressed_SqueezeNet.net", "source_sha256": "e4" * 32,
    "converter": "deep_compression", "converter_version": "1",
}


@pytest.fixture(scope="module")
def net():
    return Net.random(get_architecture("squeezenet1_0"), seed=5, meta=META)


@pytest.fixture
def saved(net, tmp_path):
    path = tmp_path / "sq.safetensors"
    save_net(net, path)
    return path


def _raw(path):
    """(tensors, metadata) of a safetensors file, read with the plain library."""
    with safe_open(str(path), framework="numpy") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def test_round_trip_is_exact(net, saved):
    back = load_net(saved)
    assert back.arch == net.arch
    assert back.arch.name == "squeezenet1_0" and back.arch.input_shape == (3, 227, 227)
    assert set(back.params) == set(net.params)
    for k in net.params:
        assert back.params[k].dtype == np.float32
        np.testing.assert_array_equal(back.params[k], net.params[k])
    assert back.meta == {**META, "architecture": "squeezenet1_0"}


def test_metadata_is_plain_json_strings(saved):
    tensors, metadata = _raw(saved)
    assert metadata["zfnet_format"] == "1"
    arch = json.loads(metadata["architecture"])
    assert arch["name"] == "squeezenet1_0" and arch["layers"][0]["name"] == "conv1"
    assert json.loads(metadata["channel_order"]) == "BGR"
    assert json.loads(metadata["mean"]) == [104.0, 117.0, 123.0]
    assert json.loads(metadata["source_sha256"]) == "e4" * 32
    assert tensors["fire2/expand3x3.weight"].shape == (64, 16, 3, 3)
    arch_back, meta = read_meta(saved)
    assert arch_back.name == "squeezenet1_0" and meta["input_size"] == [227, 227]


def test_save_is_atomic(net, saved, tmp_path):
    before = saved.read_bytes()
    bad = Net(net.arch, net.params, {**META, "scale": object()})
    with pytest.raises(ZFNetError, match="not JSON-serialisable"):
        save_net(bad, saved)
    assert saved.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sq.safetensors"]  # no temp file left


@pytest.mark.parametrize("keep", [0, 5, 8, 200, -1000, -4])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    with pytest.raises(ZFNetError, match=f"{saved.name}.*(truncated|not a safetensors)"):
        load_net(saved)


def test_not_safetensors(tmp_path, images_dir):
    png = tmp_path / "photo.safetensors"
    png.write_bytes((images_dir / "skimage_coffee.png").read_bytes())
    with pytest.raises(ZFNetError, match="photo.safetensors: not a safetensors file"):
        load_net(png)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + b"\0" * 64)
    with pytest.raises(ZFNetError, match="garbage.safetensors: not a safetensors file"):
        load_net(garbage)


def test_missing_file(tmp_path):
    with pytest.raises(ZFNetError, match="not found"):
        load_net(tmp_path / "nope.safetensors")


def test_foreign_safetensors_without_metadata(tmp_path, net):
    path = tmp_path / "hf.safetensors"
    save_file(dict(net.params), str(path))
    with pytest.raises(ZFNetError, match="not a zfnet weights file.*zfnet weights convert"):
        load_net(path)


def _rewrite(src, dst, tensors=None, metadata=None):
    t, m = _raw(src)
    t.update(tensors or {})
    m.update(metadata or {})
    save_file({k: v for k, v in t.items() if v is not None}, str(dst), metadata=m)


def test_misshaped_tensor(saved, tmp_path):
    bad = tmp_path / "bad.safetensors"
    _rewrite(saved, bad, {"conv10.weight": np.zeros((10, 512, 1, 1), np.float32)})
    with pytest.raises(ZFNetError, match=r"bad.safetensors.*conv10.weight.*\(10, 512, 1, 1\).*\(1000, 512, 1, 1\)"):
        load_net(bad)


def test_missing_and_extra_tensors(saved, tmp_path):
    bad = tmp_path / "bad.safetensors"
    _rewrite(saved, bad, {"conv1.bias": None, "conv0.weight": np.ones(3, np.float32)})
    with pytest.raises(ZFNetError, match=r"bad.safetensors.*missing \['conv1.bias'\].*unexpected \['conv0.weight'\]"):
        load_net(bad)


def test_nan_tensor(saved, tmp_path):
    t, _ = _raw(saved)
    w = t["fire7/expand1x1.weight"].copy()
    w[0, 0, 0, 0] = np.nan
    bad = tmp_path / "nan.safetensors"
    _rewrite(saved, bad, {"fire7/expand1x1.weight": w})
    with pytest.raises(ZFNetError, match="nan.safetensors.*fire7/expand1x1.weight.*NaN"):
        load_net(bad)


def test_float64_tensor(saved, tmp_path):
    t, _ = _raw(saved)
    bad = tmp_path / "f64.safetensors"
    _rewrite(saved, bad, {"conv1.bias": t["conv1.bias"].astype(np.float64)})
    with pytest.raises(ZFNetError, match="f64.safetensors: tensor 'conv1.bias' is float64"):
        load_net(bad)


def test_newer_format_version(saved, tmp_path):
    bad = tmp_path / "v2.safetensors"
    _rewrite(saved, bad, metadata={"zfnet_format": "2"})
    with pytest.raises(ZFNetError, match="format '2'.*Upgrade zfnet"):
        load_net(bad)


def test_malformed_architecture(saved, tmp_path):
    bad = tmp_path / "arch.safetensors"
    _rewrite(saved, bad, metadata={"architecture": json.dumps({"name": "x", "layers": [{"op": "warp"}],
                                                               "input_shape": [3, 8, 8]})})
    with pytest.raises(ZFNetError, match="arch.safetensors: invalid architecture.*unknown layer op 'warp'"):
        load_net(bad)
    _rewrite(saved, bad, metadata={"architecture": "{oops"})
    with pytest.raises(ZFNetError, match="arch.safetensors: damaged metadata"):
        load_net(bad)


def test_save_overwrites_and_creates_folders(net, tmp_path):
    path = tmp_path / "a" / "b" / "net.safetensors"
    save_net(net, path)
    save_net(net, path)
    assert load_net(path).arch == net.arch
    assert os.listdir(path.parent) == ["net.safetensors"]
