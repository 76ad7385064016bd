"""Regression tests of issue 16 for zfnet's own weights file and the cache: malformed safetensors
headers and metadata, a tampered cached tensor, absurd weights, and classification that never
reports NaN."""
import json
import struct
from pathlib import Path

import numpy as np
import pytest

import zfnet.convert
from zfnet import ZFNetError
from zfnet.classify import classify
from zfnet.cli import main
from zfnet.net import Net, get_architecture
from zfnet.weights import converted_path, fetch, load_model, load_net, save_net
from zfnet.weights.format import tensors_sha256

META = {"model": "squeezenet1_0", "input_size": [227, 227], "channel_order": "BGR", "scale": 255,
        "mean": [104.0, 117.0, 123.0], "std": [1.0, 1.0, 1.0], "resize": 256, "classes": "imagenet"}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZFNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def net():
    return Net.random(get_architecture("squeezenet1_0"), seed=3, meta=META)


@pytest.fixture
def saved(net, tmp_path):
    path = tmp_path / "sq.safetensors"
    save_net(net, path)
    return path


def _header(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _write_header(path, header, body):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


@pytest.mark.parametrize("offsets", [[12], [0, 4, 8], "0:4", ["0", "4"], {"begin": 0}, None, [4.0, 8.0],
                                     [8, 4], [-4, 0], [True, False]])
def test_data_offsets_that_are_not_two_ints(saved, tmp_path, offsets):
    header, body = _header(saved)
    header["conv1.bias"]["data_offsets"] = offsets
    path = tmp_path / "offsets.safetensors"
    _write_header(path, header, body)
    with pytest.raises(ZFNetError, match=r"offsets\.safetensors: damaged header: tensor 'conv1\.bias' has "
                                         r"malformed data_offsets"):
        load_net(path)


@pytest.mark.parametrize("field,value", [("shape", [96, "x"]), ("shape", [1] * 65), ("shape", "96"),
                                         ("dtype", {"F32": 1}), ("dtype", "F128"), ("shape", [97])])
def test_malformed_tensor_entries(saved, tmp_path, field, value):
    header, body = _header(saved)
    header["conv1.bias"][field] = value
    path = tmp_path / "entry.safetensors"
    _write_header(path, header, body)
    with pytest.raises(ZFNetError, match=r"entry\.safetensors: damaged header: tensor 'conv1\.bias'"):
        load_net(path)


@pytest.mark.parametrize("key,value", [("input_size", ["a", 2]), ("input_size", [0, 227]), ("input_size", [227]),
                                       ("input_size", "227"), ("std", [0, 1, 1]), ("std", [1, 1]),
                                       ("std", ["x", 1, 1]), ("mean", [1, 2, None]), ("scale", -1),
                                       ("channel_order", "GRB"), ("resize", 2.5), ("classes", 7)])
def test_bad_preprocessing_metadata(saved, tmp_path, key, value):
    header, body = _header(saved)
    header["__metadata__"][key] = json.dumps(value)
    path = tmp_path / "meta.safetensors"
    _write_header(path, header, body)
    with pytest.raises(ZFNetError, match=rf"meta\.safetensors: damaged metadata: {key} is"):
        load_model(str(path))


def test_metadata_that_is_not_json_or_nested_without_end(saved, tmp_path):
    header, body = _header(saved)
    header["__metadata__"]["mean"] = "[" * 100000
    path = tmp_path / "deep.safetensors"
    _write_header(path, header, body)
    with pytest.raises(ZFNetError, match=r"deep\.safetensors: damaged metadata"):
        load_net(path)


def test_tensors_sha256_is_recorded_and_checked(net, saved, tmp_path):
    header, body = _header(saved)
    assert header["__metadata__"]["tensors_sha256"] == tensors_sha256(net.params)
    assert "tensors_sha256" not in load_net(saved).meta
    # one float changed, still finite and plausible
    begin = header["fire5/expand3x3.weight"]["data_offsets"][0]
    body = bytearray(body)
    body[begin:begin + 4] = struct.pack("<f", 0.5)
    path = tmp_path / "tampered.safetensors"
    _write_header(path, header, bytes(body))
    with pytest.raises(ZFNetError, match=r"tampered\.safetensors: its tensors have changed since the file "
                                         r"was written"):
        load_net(path)


def test_a_tampered_cached_tensor_is_converted_again(monkeypatch, reference_outputs):
    """The dog became a matchstick: one tensor of the cached file changed. Now the cache notices
    and converts again from the source."""
    calls = []
    real = zfnet.convert.convert
    monkeypatch.setattr(zfnet.convert, "convert", lambda path, **kw: calls.append(Path(path).name) or real(path, **kw))
    path = fetch()
    good = load_net(path)
    header, body = _header(path)
    begin, end = header["conv10.weight"]["data_offsets"]
    w = np.frombuffer(body[begin:end], "<f4").copy()
    w[:1000] = -w[:1000]
    body = body[:begin] + w.tobytes() + body[end:]
    _write_header(path, header, body)
    with pytest.warns(UserWarning, match=r"damaged cached conversion .*its tensors have changed"):
        net = load_model()
    assert calls == ["compressed_SqueezeNet.net"] * 2
    np.testing.assert_array_equal(net.params["conv10.weight"], good.params["conv10.weight"])
    assert load_net(converted_path("squeezenet1_0")).params["conv10.weight"][0, 0, 0, 0] == \
        good.params["conv10.weight"][0, 0, 0, 0]


def test_a_cache_without_tensor_hash_is_converted_again(monkeypatch, net):
    """Caches written before the hash existed are replaced, not trusted."""
    path = fetch()
    header, body = _header(path)
    del header["__metadata__"]["tensors_sha256"]
    _write_header(path, header, body)
    calls = []
    real = zfnet.convert.convert
    monkeypatch.setattr(zfnet.convert, "convert", lambda p, **kw: calls.append(1) or real(p, **kw))
    load_model()
    assert calls == [1]
    assert "tensors_sha256" in _header(converted_path("squeezenet1_0"))[0]["__metadata__"]


def test_absurd_weights_in_a_weights_file_name_the_layer(net, tmp_path):
    params = dict(net.params)
    params["conv1.weight"] = params["conv1.weight"].copy()
    params["conv1.weight"][0, 0, 0, 0] = 3e38
    path = tmp_path / "absurd.safetensors"
    save_net(Net(net.arch, params, net.meta), path)
    with pytest.raises(ZFNetError, match=r"absurd\.safetensors: layer 'conv1': conv1\.weight holds a value "
                                         r"of magnitude 3e\+38"):
        load_net(path)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_classify_refuses_non_finite_outputs_naming_the_layer(net):
    params = dict(net.params)
    params["fire2/expand3x3.weight"] = np.full_like(params["fire2/expand3x3.weight"], 3e38)
    bad = Net(net.arch, params, net.meta)                      # built in memory, past every loader
    x = np.ones((2, 3, 227, 227), np.float32)
    with pytest.raises(ZFNetError, match=r"squeezenet1_0: the network computes NaN or infinite values, first "
                                         r"in layer 'fire2/expand3x3'"):
        classify(bad, x)


def test_classify_cli_never_prints_nan(net, tmp_path, images_dir, capsys):
    params = dict(net.params)
    params["conv1.weight"] = np.full_like(params["conv1.weight"], 3e38)
    path = tmp_path / "absurd.safetensors"
    save_net(Net(net.arch, params, net.meta), path)
    image = str(images_dir / "skimage_chelsea.png")
    for extra in ([], ["--json"]):
        code = main(["classify", image, "--model", str(path), *extra])
        out, err = capsys.readouterr()
        assert code == 2 and out == ""                          # no table, no JSON: no nan% anywhere
        assert "absurd.safetensors: layer 'conv1'" in err and "nan%" not in err
