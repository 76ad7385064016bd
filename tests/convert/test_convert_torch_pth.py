"""PyTorch .pth state dicts: torch.save round trips (zip and legacy formats) with torchvision's
names, forward passes against torch.nn twins of the torchvision models, the restricted
unpickler (a pickle that tries to run code must be refused and must not run), damaged files."""
import collections
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn

from zfnet import ZFNetError
from zfnet.convert import convert, torch_pth
from zfnet.net import Net, forward, get_architecture


# --- torch.nn twins of torchvision's models (torchvision is not installed) -----------------------

class Fire(nn.Module):
    def __init__(self, inplanes, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


def squeezenet1_0():
    """torchvision.models.squeezenet1_0's module layout; final conv padded 1 as in Caffe."""
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(3, 96, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(96, 16, 64), Fire(128, 16, 64), Fire(128, 32, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(256, 32, 128), Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256),
        nn.MaxPool2d(3, 2, ceil_mode=True), Fire(512, 64, 256))
    m.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, 1000, 1, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d((1, 1)))
    m.forward = lambda x: torch.flatten(m.classifier(m.features(x)), 1)
    return m


def alexnet():
    """torchvision.models.alexnet's module layout."""
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    m.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    m.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096),
        nn.ReLU(), nn.Linear(4096, 1000))
    m.forward = lambda x: m.classifier(torch.flatten(m.avgpool(m.features(x)), 1))
    return m


def vgg16_shapes():
    """{key: shape} of torchvision's vgg16 state dict, built on the meta device (no memory)."""
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1, device="meta"), nn.ReLU()]
            c = v
    m = nn.Module()
    m.features = nn.Sequential(*layers)
    m.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096, device="meta"), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 4096, device="meta"), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 1000, device="meta"))
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def seeded(model_fn, seed=0):
    torch.manual_seed(seed)
    model = model_fn()
    with torch.no_grad():                             # non-zero biases, so a swapped bias shows
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.1, 0.1)
    return model.eval()


def check_same_tensors(net, state_dict, name_map):
    assert len(net.params) == len(state_dict)
    for key, t in state_dict.items():
        prefix, _, tensor = key.rpartition(".")
        ours = net.params[f"{name_map[prefix]}.{tensor}"]
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, t.numpy(), err_msg=key)


# --- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_squeezenet_state_dict_round_trip_and_forward(tmp_path, rng, zip_format):
    model = seeded(squeezenet1_0)
    path = tmp_path / "squeezenet1_0.pth"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=zip_format)
    net = convert(path)                               # the architecture is recognised by its keys
    assert net.arch == get_architecture("squeezenet1_0")
    assert net.meta["converter"] == "torch_pth" and net.meta["architecture"] == "squeezenet1_0"
    check_same_tensors(net, model.state_dict(), torch_pth.NAME_MAPS["squeezenet1_0"])
    x = rng.standard_normal((1, 3, 227, 227)).astype(np.float32)
    want = model(torch.from_numpy(x)).detach().numpy()
    got = forward(net, x, keep=["pool10_flat"])["pool10_flat"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_alexnet_state_dict_round_trip_and_forward(tmp_path, rng):
    # Real shapes (61 M parameters, a 244 MB file), random values.
    model = seeded(alexnet)
    path = tmp_path / "alexnet.pth"
    torch.save(model.state_dict(), path)
    net = convert(path, architecture="alexnet")
    assert net.arch == get_architecture("alexnet")
    check_same_tensors(net, model.state_dict(), torch_pth.NAME_MAPS["alexnet"])
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = model(torch.from_numpy(x)).detach().numpy()
    got = forward(net, x, keep=["fc8"])["fc8"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_vgg16_name_map_covers_torchvisions_keys_with_the_right_shapes():
    shapes = vgg16_shapes()
    mapping = torch_pth._name_map("vgg16", list(shapes))
    assert mapping is not None and len(mapping) == 32
    want = get_architecture("vgg16").param_shapes()
    assert set(mapping.values()) == set(want)
    for key, target in mapping.items():
        assert shapes[key] == want[target], key
    assert mapping["features.28.weight"] == "conv5_3.weight"
    assert mapping["classifier.6.bias"] == "fc8.bias"
    assert torch_pth.detect_architecture(list(shapes)) == "vgg16"


def test_zfnet_names_dtypes_views_and_checkpoint_wrappers(tmp_path):
    """A state dict in zfnet's own names, in float16/bfloat16/float64, sharing one storage with
    offsets and transposed strides, wrapped in a checkpoint dict with DataParallel prefixes."""
    net = Net.random(get_architecture("squeezenet1_0"), seed=3)
    state = {}
    for i, (key, a) in enumerate(net.params.items()):
        t = torch.from_numpy(a.copy())
        if i % 4 == 1:
            t = t.to(torch.float16)
        elif i % 4 == 2:
            t = t.to(torch.bfloat16)
        elif i % 4 == 3:
            t = t.to(torch.float64)
        state[f"module.{key}"] = t
    # conv1.weight as a non-contiguous view: the transpose of a transposed copy.
    w = torch.from_numpy(net.params["conv1.weight"].copy())
    state["module.conv1.weight"] = w.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)
    # conv10.bias as a slice at an offset inside a larger storage.
    big = torch.zeros(1500)
    big[300:1300] = torch.from_numpy(net.params["conv10.bias"].copy())
    state["module.conv10.bias"] = big[300:1300]
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": state, "epoch": 7}, path)
    got = torch_pth.convert(path, "squeezenet1_0")
    for i, (key, a) in enumerate(net.params.items()):
        want = state[f"module.{key}"].to(torch.float32).numpy()
        np.testing.assert_array_equal(got.params[key], want, err_msg=key)
    np.testing.assert_array_equal(got.params["conv1.weight"], net.params["conv1.weight"])


def test_real_squeezenet_pth_equals_caffemodel(squeezenet_dir):
    a = convert(squeezenet_dir / "squeezenet1_0.pth")
    b = convert(squeezenet_dir / "squeezenet1_0.caffemodel")
    assert a.arch == b.arch
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k])


# --- safety: pickles that try to run code ----------------------------------------------------------

def zip_pth(path, pkl, extra=None):
    """A torch-style zip archive around the pickle bytes `pkl`."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for name, data in (extra or {}).items():
            z.writestr(f"archive/{name}", data)
    return path


def legacy_pth(path, pkl):
    """The legacy stream: magic number, protocol, sys info, then the main pickle."""
    head = b"".join(pickle.dumps(v, protocol=2) for v in (torch_pth.LEGACY_MAGIC, 1001, {"little_endian": True}))
    path.write_bytes(head + pkl)
    return path


def evil_pickles(marker):
    """Hand-built pickles that call os.system / builtins.exec / posix.system if unpickled."""
    cmd = f"touch {marker}".encode()
    n = len(cmd)
    proto2 = b"\x80\x02cos\nsystem\nq\x00X" + n.to_bytes(4, "little") + cmd + b"\x85R."
    proto4 = b"\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c" + bytes([n]) + cmd + b"\x85R."
    code = f"open({str(marker)!r}, 'w').close()".encode()
    exec_ = b"\x80\x02cbuiltins\nexec\nX" + len(code).to_bytes(4, "little") + code + b"\x85R."

    class Reduce:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    # Also hidden inside an otherwise valid state dict: a tensor entry next to the payload.
    hidden = pickle.dumps(collections.OrderedDict([("conv1.weight", Reduce())]), protocol=2)
    return {"os.system": proto2, "posix.system": proto4, "builtins.exec": exec_,
            "reduce": pickle.dumps(Reduce(), protocol=2), "hidden": hidden}


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_pickles_that_call_functions_are_refused_and_never_run(tmp_path, container):
    marker = tmp_path / "pwned"
    for name, pkl in evil_pickles(marker).items():
        # Sanity: each payload really would run under plain pickle.
        path = tmp_path / f"{name}.pth"
        (zip_pth(path, pkl) if container == "zip" else legacy_pth(path, pkl))
        with pytest.raises(ZFNetError, match=r"refused to load: the pickle asks for (os|posix|builtins)\.(system|exec)") as e:
            convert(path)
        assert str(path) in str(e.value)
        assert not marker.exists(), f"{name}: the payload ran"


def test_the_evil_payloads_are_real(tmp_path):
    """The same bytes do run under the standard unpickler (so the test above means something)."""
    marker = tmp_path / "ran"
    for name, pkl in evil_pickles(marker).items():
        pickle.loads(pkl)
        assert marker.exists(), name
        marker.unlink()


def test_whitelisted_globals_cannot_be_abused(tmp_path):
    # Calling a storage class directly, or BUILD on a tensor record, is refused as damage.
    call_storage = b"\x80\x02ctorch\nFloatStorage\n)R."
    path = zip_pth(tmp_path / "s.pth", call_storage)
    with pytest.raises(ZFNetError, match="damaged.*calls torch.FloatStorage"):
        convert(path)
    pkl = pickle.dumps(collections.OrderedDict(), protocol=2)
    path = zip_pth(tmp_path / "empty_dict.pth", pkl)
    with pytest.raises(ZFNetError, match="not a state dict"):
        convert(path)


@pytest.mark.parametrize("container", ["zip", "legacy", "legacy header"])
def test_a_memo_index_far_beyond_the_pickle_is_refused_before_unpickling(tmp_path, container):
    """LONG_BINPUT 2**31 + 409 in a 5 KB pickle (tests/fuzz found it) made the C unpickler grow its
    memo table to gigabytes; check_memo refuses it from the opcodes alone."""
    bomb = b"\x80\x02}r" + (2**31 + 409).to_bytes(4, "little") + b"."     # {} then memo[2**31+409] = it
    path = tmp_path / "bomb.pth"
    if container == "zip":
        zip_pth(path, bomb)
    elif container == "legacy":
        legacy_pth(path, bomb)
    else:
        path.write_bytes(pickle.dumps(torch_pth.LEGACY_MAGIC, protocol=2) + bomb)   # the version is the bomb
    with pytest.raises(ZFNetError, match=r"bomb.pth: damaged PyTorch file .*memo index 2147484057"):
        torch_pth.load_state_dict(path)


def test_check_memo_accepts_what_pickle_writes_and_rewinds():
    import io
    obj = collections.OrderedDict((f"k{i}", [i, (i, "x")]) for i in range(300))   # > 256 memo entries
    f = io.BytesIO(b"junk" + pickle.dumps(obj, protocol=2))
    f.seek(4)
    torch_pth.check_memo(f)
    assert f.tell() == 4 and pickle.load(f) == obj


# --- damaged and mismatched files ----------------------------------------------------------------

@pytest.fixture
def squeezenet_pth(tmp_path):
    model = seeded(squeezenet1_0)
    path = tmp_path / "sq.pth"
    torch.save(model.state_dict(), path)
    return path


def test_empty_truncated_and_garbage_files(tmp_path, squeezenet_pth, rng):
    data = squeezenet_pth.read_bytes()
    legacy = tmp_path / "legacy.pth"
    torch.save(seeded(squeezenet1_0).state_dict(), legacy, _use_new_zipfile_serialization=False)
    ldata = legacy.read_bytes()
    cases = {
        "empty.pth": b"",
        "truncated.pth": data[: len(data) // 2],
        "tail_cut.pth": data[:-100],
        "garbage.pth": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "legacy_truncated.pth": ldata[: len(ldata) - 1000],
        "legacy_extra.pth": ldata + b"\x00",
        "plain_pickle.pth": pickle.dumps({"a": 1}),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ZFNetError) as e:
            torch_pth.convert(path, "squeezenet1_0")
        assert str(path) in str(e.value), name


def test_corrupted_storage_is_caught(tmp_path, squeezenet_pth):
    # Rewrite the archive with one storage cut short.
    src = zipfile.ZipFile(squeezenet_pth)
    path = tmp_path / "short_storage.pth"
    with zipfile.ZipFile(path, "w") as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data/3"):
                data = data[:-4]
            z.writestr(info.filename, data)
    with pytest.raises(ZFNetError, match=r"short_storage\.pth.*storage '3' has \d+ bytes, \d+ expected"):
        convert(path)


def test_wrong_architecture_and_unknown_keys(tmp_path, squeezenet_pth):
    with pytest.raises(ZFNetError, match=r"sq\.pth: is not a state dict for alexnet.*It looks like 'squeezenet1_0'"):
        convert(squeezenet_pth, architecture="alexnet")
    state = seeded(squeezenet1_0).state_dict()
    state["features.3.extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(ZFNetError, match=r"unexpected keys \['features.3.extra.weight'\]"):
        convert(path, architecture="squeezenet1_0")
    with pytest.raises(ZFNetError, match="match none of the known name maps"):
        convert(path)
    del state["features.3.extra.weight"], state["classifier.1.bias"]
    torch.save(state, path)
    with pytest.raises(ZFNetError, match=r"missing \['conv10.bias'\]"):
        convert(path, architecture="squeezenet1_0")


def test_wrong_shape_and_nan(tmp_path):
    state = seeded(squeezenet1_0).state_dict()
    state["classifier.1.weight"] = torch.zeros(10, 512, 1, 1)
    state["classifier.1.bias"] = torch.zeros(10)
    path = tmp_path / "ten_classes.pth"
    torch.save(state, path)
    with pytest.raises(ZFNetError, match=r"classifier.1.weight \(conv10.weight\) has shape \(10, 512, 1, 1\)"):
        convert(path, architecture="squeezenet1_0")
    state = seeded(squeezenet1_0).state_dict()
    state["features.0.bias"][3] = float("nan")
    torch.save(state, path)
    with pytest.raises(ZFNetError, match=r"features.0.bias \(conv1.bias\) contains NaN"):
        convert(path, architecture="squeezenet1_0")


def test_integer_tensors_are_refused(tmp_path):
    state = {k: torch.zeros(v, dtype=torch.int64) for k, v in get_architecture("squeezenet1_0").param_shapes().items()}
    path = tmp_path / "ints.pth"
    torch.save(state, path)
    with pytest.raises(ZFNetError, match="holds int64 values"):
        convert(path)
