"""load_model / fetch / convert_file on the real SqueezeNet files: $ZFNET_WEIGHTS, the cache and its
revalidation, every alternative source, downloads (plain and from an archive) from a local HTTP
server, and the preprocessing metadata the rest of zfnet relies on."""
import copy
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

import zfnet.convert
from zfnet import ZFNetError
from zfnet.net import forward
from zfnet.weights import (DEFAULT_MODEL, class_names, complete_meta, convert_file, converted_path, fetch,
                           load_model, load_net, model_status, read_meta, save_net)
from zfnet.weights import registry
from zfnet.weights.registry import card_from_dict

SQUEEZENET_META = {
    "model": "squeezenet1_0", "architecture": "squeezenet1_0", "input_size": [227, 227],
    "channel_order": "BGR", "scale": 255, "mean": [104.0, 117.0, 123.0], "std": [1.0, 1.0, 1.0],
    "resize": 256, "classes": "imagenet", "converter_version": "1",
}
NET_SHA = "e4ab6960ae8cd81505e1c2136921201507e930966c53deaf15862a395b3a3261"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache."""
    monkeypatch.setenv("ZFNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def count_conversions(monkeypatch):
    calls = []
    real = zfnet.convert.convert

    def counting(path, **kw):
        calls.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(zfnet.convert, "convert", counting)
    return calls


@pytest.fixture
def weights_with(tmp_path, squeezenet_dir, monkeypatch):
    """A $ZFNET_WEIGHTS holding only the given SqueezeNet files (copies)."""
    def make(*files):
        root = tmp_path / "weights"
        (root / "squeezenet1_0").mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(squeezenet_dir / f, root / "squeezenet1_0" / f)
        monkeypatch.setenv("ZFNET_WEIGHTS", str(root))
        return root / "squeezenet1_0"
    return make


def test_default_model_converts_from_zfnet_weights_then_caches(cache, count_conversions, reference_outputs):
    assert DEFAULT_MODEL == "squeezenet1_0"
    assert model_status("squeezenet1_0") == "local"
    net = load_model()
    assert count_conversions == ["compressed_SqueezeNet.net"]
    for k, v in SQUEEZENET_META.items():
        assert net.meta[k] == v, k
    assert net.meta["source_file"] == "compressed_SqueezeNet.net" and net.meta["source_sha256"] == NET_SHA
    assert converted_path("squeezenet1_0") == cache / "models" / "squeezenet1_0.safetensors"
    assert converted_path("squeezenet1_0").is_file() and model_status("squeezenet1_0") == "converted"
    # The real network on the reference inputs gives the reference probabilities.
    prob = forward(net, reference_outputs["data"]).output
    np.testing.assert_allclose(prob, reference_outputs["prob"], rtol=0, atol=1e-5)
    # Second time: from the cache, no conversion, same tensors and metadata.
    again = load_model("squeezenet1_0")
    assert count_conversions == ["compressed_SqueezeNet.net"]
    assert again.meta == net.meta
    for k in net.params:
        np.testing.assert_array_equal(again.params[k], net.params[k])
    assert class_names(again)[285] == "Egyptian cat"


def test_fetch_returns_the_cached_file(count_conversions):
    path = fetch("squeezenet1_0")
    assert path == converted_path("squeezenet1_0")
    assert fetch("squeezenet1_0") == path and count_conversions == ["compressed_SqueezeNet.net"]
    arch, meta = read_meta(path)
    assert arch.name == "squeezenet1_0" and meta["source_sha256"] == NET_SHA


@pytest.mark.parametrize("change", [
    {"source_sha256": "0" * 64},            # not a file the card knows
    {"source_file": "mystery.net"},
    {"converter_version": "0"},             # converted by an older converter
    {"model": "other"},
])
def test_stale_cache_is_converted_again(count_conversions, change):
    net = load_model()
    save_net(type(net)(net.arch, net.params, {**net.meta, **change}), converted_path("squeezenet1_0"))
    load_model()
    assert count_conversions == ["compressed_SqueezeNet.net"] * 2
    assert read_meta(converted_path("squeezenet1_0"))[1]["source_sha256"] == NET_SHA


def test_damaged_cache_warns_and_is_replaced(count_conversions):
    path = fetch()
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="damaged cached conversion"):
        net = load_model()
    assert net.meta["source_sha256"] == NET_SHA and len(count_conversions) == 2
    assert load_net(path).arch.name == "squeezenet1_0"


def test_local_file_with_wrong_checksum_is_refused(weights_with, cache):
    folder = weights_with("compressed_SqueezeNet.net")
    path = folder / "compressed_SqueezeNet.net"
    data = bytearray(path.read_bytes())
    data[5000] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ZFNetError, match=f"checksum mismatch: {path} has sha256 .*expects {NET_SHA}"):
        load_model("squeezenet1_0")
    assert not (cache / "models").exists()


@pytest.mark.parametrize("files", [
    ("squeezenet1_0.onnx",),
    ("squeezenet1_0.caffemodel", "deploy.prototxt"),
    ("squeezenet1_0.pth",),
])
def test_any_alternative_source_gives_the_same_net(weights_with, count_conversions, files, squeezenet_dir):
    weights_with(*files)
    net = load_model("squeezenet1_0")
    assert count_conversions == [files[0]]
    assert net.meta["source_file"] == files[0]
    assert {k: net.meta[k] for k in SQUEEZENET_META} == SQUEEZENET_META
    from zfnet.convert import deep_compression
    reference = deep_compression.convert(squeezenet_dir / "compressed_SqueezeNet.net")
    for k in reference.params:   # the README: all formats hold bit-identical values
        np.testing.assert_array_equal(net.params[k], reference.params[k])


def test_paths_load_or_convert(tmp_path, squeezenet_dir):
    onnx_net = load_model(squeezenet_dir / "squeezenet1_0.onnx")
    # Recognised by its sha256 as a squeezenet1_0 source: the card's Caffe preprocessing.
    assert {k: onnx_net.meta[k] for k in SQUEEZENET_META} == SQUEEZENET_META
    pth_net = load_model(str(squeezenet_dir / "squeezenet1_0.pth"))   # the card names the architecture
    assert pth_net.meta["channel_order"] == "BGR" and pth_net.arch.name == "squeezenet1_0"
    out = tmp_path / "mine.safetensors"
    save_net(onnx_net, out)
    back = load_model(out)
    assert back.meta == onnx_net.meta


def test_unknown_names_and_missing_paths():
    with pytest.raises(ZFNetError, match="unknown model 'resnet50'.*squeezenet1_0"):
        load_model("resnet50")
    with pytest.raises(ZFNetError, match="no such weights file"):
        load_model("missing/model.onnx")


def test_unrecognised_file_needs_its_preprocessing(unknown_onnx):
    with pytest.raises(ZFNetError, match="tuned.onnx: the file does not say how its input images are "
                                         "prepared.*--model-card"):
        convert_file(unknown_onnx)
    net = convert_file(unknown_onnx, card="squeezenet1_0")     # a card forced by name
    assert net.meta["model"] == "squeezenet1_0" and net.meta["channel_order"] == "BGR"
    assert net.meta["input_size"] == [227, 227] and net.meta["source_file"] == "tuned.onnx"
    net = convert_file(unknown_onnx, card="zfnet512")          # another architecture's card: its convention only
    assert net.meta["model"] == "squeezenet1_0" and net.meta["channel_order"] == "BGR"
    assert net.meta["input_size"] == [224, 224] and net.meta["source_file"] == "tuned.onnx"
    net = convert_file(unknown_onnx, preprocessing={"channel_order": "RGB", "scale": 1,
                                                    "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
    assert net.meta["model"] == "squeezenet1_0" and net.meta["input_size"] == [227, 227]
    assert net.meta["resize"] == 259 and net.meta["classes"] == "imagenet"


def test_input_size_must_fit_the_architecture(unknown_onnx):
    net = convert_file(unknown_onnx, card="squeezenet1_0")
    with pytest.raises(ZFNetError, match="input size 10x10 does not fit architecture 'squeezenet1_0'"):
        complete_meta(net, overrides={"input_size": [10, 10]})


def test_class_list_from_zfnet_weights(weights_with, monkeypatch):
    folder = weights_with("compressed_SqueezeNet.net")
    net = load_model()
    lines = [f"n{i:08d}\tthing {i}, other" for i in range(1000)]
    (folder / "imagenet_classes.txt").write_text("\n".join(lines) + "\n")
    assert class_names(net)[:2] == ["thing 0", "thing 1"]
    (folder / "imagenet_classes.txt").unlink()
    (folder.parent / "imagenet_classes.txt").write_text("\n".join(lines[:10]) + "\n")
    with pytest.raises(ZFNetError, match="10 labels but squeezenet1_0 has 1000 outputs"):
        class_names(net)


# -- downloads through load_model -------------------------------------------------------------------
def _patched_card(monkeypatch, edit):
    raw = copy.deepcopy(registry.get_card("squeezenet1_0").raw)
    edit(raw)
    card = card_from_dict(raw)
    monkeypatch.setattr(registry, "_CARDS", {**registry._load_cards(), "squeezenet1_0": card})
    return card


@pytest.fixture
def nothing_local(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("ZFNET_WEIGHTS", str(tmp_path / "empty"))


def test_download_convert_and_cache(server, monkeypatch, nothing_local, squeezenet_dir, cache, count_conversions):
    server.routes["/sq.net"] = ((squeezenet_dir / "compressed_SqueezeNet.net").read_bytes(), "ok")
    _patched_card(monkeypatch, lambda d: d["sources"][0].update(urls=[server.url("/sq.net")]))
    assert model_status("squeezenet1_0") == "download"
    net = load_model("squeezenet1_0", progress=False)
    assert server.requests == ["/sq.net"] and net.meta["source_sha256"] == NET_SHA
    assert (cache / "downloads" / "squeezenet1_0" / "compressed_SqueezeNet.net").is_file()
    assert converted_path("squeezenet1_0").is_file()
    load_model("squeezenet1_0")
    assert server.requests == ["/sq.net"] and count_conversions == ["compressed_SqueezeNet.net"]


@pytest.mark.parametrize("mode", ["bad-bytes", "truncate"])
def test_failed_download_leaves_the_cache_empty(server, monkeypatch, nothing_local, squeezenet_dir, cache, mode):
    data = (squeezenet_dir / "compressed_SqueezeNet.net").read_bytes()
    server.routes["/sq.net"] = (data[:-1] + b"\0" if mode == "bad-bytes" else data, "ok" if mode == "bad-bytes" else "truncate")
    _patched_card(monkeypatch, lambda d: d["sources"][0].update(urls=[server.url("/sq.net")]))
    with pytest.raises(ZFNetError, match="(?s)could not download compressed_SqueezeNet.net.*(checksum mismatch|interrupted).*put it in .*empty/squeezenet1_0/compressed_SqueezeNet.net"):
        load_model("squeezenet1_0", progress=False)
    leftovers = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert leftovers == []


def test_download_from_an_archive(server, monkeypatch, nothing_local, squeezenet_dir, cache):
    """Like zf_caffe's ZF.v2.caffemodel inside imagenet_models.tgz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("bundle/README", "bundle/compressed_SqueezeNet.net"):
            data = (squeezenet_dir / Path(name).name).read_bytes() if name.endswith(".net") else b"hello"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    server.routes["/bundle.tgz"] = (buf.getvalue(), "ok")

    def edit(d):
        d["sources"][0].update(urls=[], archive="bundle.tgz", member="bundle/compressed_SqueezeNet.net")
        d["files"].append({"file": "bundle.tgz", "urls": [server.url("/bundle.tgz")], "sha256": None})
    _patched_card(monkeypatch, edit)
    with pytest.warns(UserWarning, match="no checksum is known"):
        net = load_model("squeezenet1_0", progress=False)
    assert net.meta["source_sha256"] == NET_SHA        # the member is checked against the card
    assert sorted(os.listdir(cache / "downloads" / "squeezenet1_0")) == ["compressed_SqueezeNet.net"]


def test_nothing_anywhere(monkeypatch, nothing_local):
    _patched_card(monkeypatch, lambda d: d["sources"][0].update(urls=[]))
    assert model_status("squeezenet1_0") == "unavailable"
    with pytest.raises(ZFNetError, match="no weights for model 'squeezenet1_0'.*Put one of them there"):
        load_model("squeezenet1_0")
