"""Caffe: .caffemodel files written from scratch here (V1 `layers` and V2 `layer`), prototxts,
training nets, an independent PyTorch twin of Caffe's semantics, and damaged files.

The files are built with tests/convert/convert_pbenc.py, an encoder written from the protobuf
spec and caffe.proto's field numbers, not with zfnet's reader.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convert_pbenc as pb
from zfnet import ZFNetError
from zfnet.convert import caffe, convert
from zfnet.net import (LRN, Architecture, AvgPool, Concat, Conv, Dropout, Flatten, GlobalAvgPool,
                       Linear, MaxPool, ReLU, Softmax, forward)

# caffe.proto field numbers of the parameters used below: {param message: {field: (number, kind)}}.
FIELDS = {
    "convolution_param": {"num_output": (1, "v"), "bias_term": (2, "v"), "pad": (3, "v"),
                          "kernel_size": (4, "v"), "group": (5, "v"), "stride": (6, "v"),
                          "pad_h": (9, "v"), "pad_w": (10, "v"), "kernel_h": (11, "v"),
                          "kernel_w": (12, "v"), "stride_h": (13, "v"), "stride_w": (14, "v"),
                          "dilation": (18, "v")},
    "pooling_param": {"pool": (1, "e"), "kernel_size": (2, "v"), "stride": (3, "v"), "pad": (4, "v"),
                      "global_pooling": (12, "v")},
    "lrn_param": {"local_size": (1, "v"), "alpha": (2, "f"), "beta": (3, "f"), "norm_region": (4, "e"),
                  "k": (5, "f")},
    "inner_product_param": {"num_output": (1, "v"), "bias_term": (2, "v"), "transpose": (6, "v")},
    "dropout_param": {"dropout_ratio": (1, "f")},
    "concat_param": {"axis": (2, "v")},
    "softmax_param": {"axis": (2, "v")},
    "relu_param": {"negative_slope": (1, "f")},
    "transform_param": {"scale": (1, "f"), "crop_size": (3, "v"), "mean_value": (5, "f")},
}
ENUMS = {"MAX": 0, "AVE": 1, "STOCHASTIC": 2, "ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1}


def encode_params(params):
    out = {}
    for pname, fields in params.items():
        parts = []
        for k, v in fields.items():
            number, kind = FIELDS[pname][k]
            for item in (v if isinstance(v, list) else [v]):
                if kind == "f":
                    parts.append(pb.f_float(number, item))
                elif kind == "e":
                    parts.append(pb.f_varint(number, ENUMS[item]))
                else:
                    parts.append(pb.f_varint(number, int(item)))
        out[pname] = b"".join(parts)
    return out


def text_params(params):
    lines = []
    for pname, fields in params.items():
        lines.append(f"  {pname} {{")
        for k, v in fields.items():
            for item in (v if isinstance(v, list) else [v]):
                if isinstance(item, bool):
                    item = "true" if item else "false"
                lines.append(f"    {k}: {item}")
        lines.append("  }")
    return lines


class Layer:
    def __init__(self, name, type_, bottom, top, params=None, blobs=(), include=None):
        self.name, self.type, self.bottom, self.top = name, type_, list(bottom), list(top)
        self.params, self.blobs, self.include = params or {}, list(blobs), include


def caffemodel(layers, v1=False, input_shape=None, blobs=True):
    """Binary NetParameter; V1 nets declare their input with the deprecated input/input_dim."""
    encoded = [pb.layer(l.name, l.type, l.bottom, l.top, l.blobs if blobs else (),
                        encode_params(l.params), v1=v1, include_phase=l.include) for l in layers]
    if input_shape is not None:
        return pb.net(encoded, v1=v1, input_name="data", input_shape=input_shape)
    return pb.net(encoded, v1=v1)


V1_IDS = {"Convolution": "CONVOLUTION", "ReLU": "RELU", "Pooling": "POOLING", "LRN": "LRN",
          "Concat": "CONCAT", "Dropout": "DROPOUT", "InnerProduct": "INNER_PRODUCT",
          "Softmax": "SOFTMAX", "Eltwise": "ELTWISE"}


def prototxt(layers, v1=False, input_shape=(1, 3, 19, 17)):
    lines = ['name: "test"', 'input: "data"']
    lines += [f"input_dim: {d}" for d in input_shape]
    for l in layers:
        lines.append("layers {" if v1 else "layer {")
        lines.append(f'  name: "{l.name}"')
        lines.append(f"  type: {V1_IDS[l.type]}" if v1 else f'  type: "{l.type}"')
        lines += [f'  bottom: "{b}"' for b in l.bottom] + [f'  top: "{t}"' for t in l.top]
        lines += text_params(l.params)
        lines.append("}")
    return "\n".join(lines) + "\n"


def make_layers(rng, input_layer=True):
    """A net using every supported Caffe layer type, with random weights. Input 3 x 19 x 17."""
    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.3

    layers = []
    if input_layer:
        layers.append(Layer("input", "Input", [], ["data"]))
    layers += [
        Layer("conv1", "Convolution", ["data"], ["conv1"],
              {"convolution_param": {"num_output": 8, "kernel_h": 3, "kernel_w": 5, "stride_h": 2,
                                     "stride_w": 1, "pad_h": 1, "pad_w": 2}},
              [r(8, 3, 3, 5), r(8)]),
        Layer("relu1", "ReLU", ["conv1"], ["conv1"]),
        Layer("norm1", "LRN", ["conv1"], ["norm1"],
              {"lrn_param": {"local_size": 3, "alpha": 5e-5, "beta": 0.75,
                             "norm_region": "WITHIN_CHANNEL"}}),
        Layer("pool1", "Pooling", ["norm1"], ["pool1"],
              {"pooling_param": {"pool": "MAX", "kernel_size": 3, "stride": 2}}),
        Layer("conv2", "Convolution", ["pool1"], ["conv2"],
              {"convolution_param": {"num_output": 8, "kernel_size": 3, "pad": 1, "group": 2}},
              [r(8, 4, 3, 3), r(8)]),
        Layer("relu2", "ReLU", ["conv2"], ["conv2"]),
        Layer("norm2", "LRN", ["conv2"], ["norm2"],
              {"lrn_param": {"local_size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}}),
        Layer("e1", "Convolution", ["norm2"], ["e1"],
              {"convolution_param": {"num_output": 4, "kernel_size": 1}}, [r(4, 8, 1, 1), r(4)]),
        Layer("e3", "Convolution", ["norm2"], ["e3"],
              {"convolution_param": {"num_output": 4, "kernel_size": 3, "pad": 1, "bias_term": False}},
              [r(4, 8, 3, 3)]),
        Layer("cat", "Concat", ["e1", "e3"], ["cat"]),
        Layer("pool2", "Pooling", ["cat"], ["pool2"],
              {"pooling_param": {"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1}}),
        Layer("drop", "Dropout", ["pool2"], ["pool2"], {"dropout_param": {"dropout_ratio": 0.25}}),
        Layer("fc1", "InnerProduct", ["pool2"], ["fc1"],
              {"inner_product_param": {"num_output": 10}}, [r(10, 120), r(10)]),
        Layer("relu3", "ReLU", ["fc1"], ["fc1"]),
        Layer("fc2", "InnerProduct", ["fc1"], ["fc2"],
              {"inner_product_param": {"num_output": 5, "transpose": True}}, [r(10, 5), r(5)]),
        Layer("prob", "Softmax", ["fc2"], ["prob"]),
    ]
    if input_layer:
        layers[0].params = {}
    return layers


def input_layer_bytes(shape=(1, 3, 19, 17)):
    shape_msg = pb.f_msg(1, pb.f_packed_varints(1, shape))                 # InputParameter.shape
    return pb.f_str(1, "input") + pb.f_str(2, "Input") + pb.f_str(4, "data") + pb.f_msg(143, shape_msg)


def write_v2(tmp_path, layers, name="net_v2.caffemodel"):
    body = [input_layer_bytes()] + [
        pb.layer(l.name, l.type, l.bottom, l.top, l.blobs, encode_params(l.params))
        for l in layers if l.type != "Input"]
    path = tmp_path / name
    path.write_bytes(pb.net(body))
    return path


def write_v1(tmp_path, layers, name="net_v1.caffemodel"):
    path = tmp_path / name
    path.write_bytes(caffemodel([l for l in layers if l.type != "Input"], v1=True,
                                input_shape=(1, 3, 19, 17)))
    return path


def expected_arch(name):
    return Architecture(name, (
        Conv("conv1", ("data",), 3, 8, (3, 5), (2, 1), (1, 2), 1, True),
        ReLU("relu1", ("conv1",)),
        LRN("norm1", ("relu1",), 3, 5e-5, 0.75, 1.0, True),
        MaxPool("pool1", ("norm1",), 3, 2, 0, True),
        Conv("conv2", ("pool1",), 8, 8, 3, 1, 1, 2, True),
        ReLU("relu2", ("conv2",)),
        LRN("norm2", ("relu2",), 5, 1e-4, 0.75, 2.0, False),
        Conv("e1", ("norm2",), 8, 4, 1, 1, 0, 1, True),
        Conv("e3", ("norm2",), 8, 4, 3, 1, 1, 1, False),
        Concat("cat", ("e1", "e3")),
        AvgPool("pool2", ("cat",), 3, 2, 1, True, True),
        Dropout("drop", ("pool2",), 0.25),
        Flatten("drop_flat", ("drop",)),
        Linear("fc1", ("drop_flat",), 120, 10, True),
        ReLU("relu3", ("fc1",)),
        Linear("fc2", ("relu3",), 10, 5, True),
        Softmax("prob", ("fc2",)),
    ), (3, 19, 17))


def expected_params(layers):
    by_name = {l.name: l for l in layers}
    out = {}
    for name in ("conv1", "conv2", "e1", "fc1"):
        out[f"{name}.weight"], out[f"{name}.bias"] = by_name[name].blobs
    out["e3.weight"] = by_name["e3"].blobs[0]
    out["fc2.weight"] = by_name["fc2"].blobs[0].T            # transpose: stored (I, O)
    out["fc2.bias"] = by_name["fc2"].blobs[1]
    return out


def check_net(net, layers, name):
    assert net.arch == expected_arch(name)
    want = expected_params(layers)
    assert set(net.params) == set(want)
    for k, a in want.items():
        np.testing.assert_array_equal(net.params[k], a, err_msg=k)
    assert net.meta["converter"] == "caffe" and net.meta["channel_order"] == "BGR"


@pytest.fixture
def layers(rng):
    return make_layers(rng)


def test_v2_layer_field_round_trip(tmp_path, layers):
    check_net(caffe.convert(write_v2(tmp_path, layers)), layers, "net_v2")


def test_v1_layers_field_round_trip(tmp_path, layers):
    # V1: enum layer types, 4-D num/channels/height/width blobs, input declared by input_dim.
    check_net(caffe.convert(write_v1(tmp_path, layers)), layers, "net_v1")


@pytest.mark.parametrize("v1", [False, True])
def test_prototxt_defines_the_layers_and_caffemodel_the_blobs(tmp_path, layers, v1):
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(prototxt([l for l in layers if l.type != "Input"], v1=v1))
    model = write_v1(tmp_path, layers) if v1 else write_v2(tmp_path, layers)
    net = convert(model, prototxt=proto)
    check_net(net, layers, model.stem)
    assert net.meta["prototxt"] == "deploy.prototxt"


def test_prototxt_layers_take_blobs_by_name_and_ignore_extra_model_layers(tmp_path, layers):
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(prototxt([l for l in layers if l.type != "Input"]))
    # The model: blobs only for layers that have them, in another order, plus an unknown layer.
    with_blobs = [l for l in layers if l.blobs][::-1]
    body = [pb.layer(l.name, l.type, l.bottom, l.top, l.blobs) for l in with_blobs]
    body.append(pb.layer("extra", "Convolution", ["x"], ["y"], [np.ones((1, 1, 1, 1))]))
    model = tmp_path / "weights_only.caffemodel"
    model.write_bytes(pb.net(body))
    check_net(convert(model, prototxt=proto), layers, "weights_only")


def torch_caffe_forward(x, p):
    """PyTorch twin of the test net with Caffe's semantics written out by hand."""
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    y = TF.relu(TF.conv2d(x, t["conv1.weight"], t["conv1.bias"], (2, 1), (1, 2)))
    # WITHIN_CHANNEL LRN: a / (1 + alpha * mean over the zero-padded 3x3 window of a^2)^beta
    y = y / (1 + 5e-5 * TF.avg_pool2d(y * y, 3, 1, 1, count_include_pad=True)) ** 0.75
    y = TF.max_pool2d(y, 3, 2, ceil_mode=True)
    y = TF.relu(TF.conv2d(y, t["conv2.weight"], t["conv2.bias"], 1, 1, groups=2))
    y = TF.local_response_norm(y, 5, 1e-4, 0.75, 2.0)
    y = torch.cat([TF.conv2d(y, t["e1.weight"], t["e1.bias"]), TF.conv2d(y, t["e3.weight"], None, 1, 1)], 1)
    y = TF.avg_pool2d(y, 3, 2, 1, ceil_mode=True, count_include_pad=True)
    y = TF.relu(TF.linear(y.flatten(1), t["fc1.weight"], t["fc1.bias"]))
    y = TF.linear(y, t["fc2.weight"], t["fc2.bias"])
    return torch.softmax(y, 1)


def test_forward_equals_a_pytorch_twin_of_caffe_semantics(tmp_path, layers, rng):
    net = caffe.convert(write_v2(tmp_path, layers))
    x = (rng.standard_normal((2, 3, 19, 17)) * 50).astype(np.float32)
    got = forward(net, x).output
    want = torch_caffe_forward(torch.from_numpy(x), expected_params(layers)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_global_pooling_and_softmax_over_c11_blob(tmp_path, rng):
    # Caffe's SqueezeNet ends: global AVE pool -> softmax on (C, 1, 1); zfnet inserts a Flatten.
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    layers = [
        Layer("conv", "Convolution", ["data"], ["conv"], {"convolution_param": {"num_output": 6, "kernel_size": 3}}, [w, np.zeros(6)]),
        Layer("gmax", "Pooling", ["conv"], ["gmax"], {"pooling_param": {"pool": "MAX", "global_pooling": True}}),
        Layer("gave", "Pooling", ["gmax"], ["gave"], {"pooling_param": {"pool": "AVE", "global_pooling": True}}),
        Layer("prob", "Softmax", ["gave"], ["prob"]),
    ]
    path = tmp_path / "g.caffemodel"
    path.write_bytes(caffemodel(layers, input_shape=(1, 3, 9, 7)))
    net = caffe.convert(path)
    assert [l.op for l in net.arch.layers] == ["conv", "maxpool", "gap", "flatten", "softmax"]
    assert net.arch.layer("gmax") == MaxPool("gmax", ("conv",), (7, 5), 1, 0, True)
    assert net.arch.layer("gave") == GlobalAvgPool("gave", ("gmax",))
    assert net.arch.layer("gave_flat") == Flatten("gave_flat", ("gave",))
    assert net.arch.shapes["prob"] == (6,)


def test_training_net_uses_test_phase_data_layer_and_loss_becomes_prob(tmp_path, rng):
    w = rng.standard_normal((4, 3 * 5 * 5)).astype(np.float32)
    transform = {"transform_param": {"crop_size": 5, "mean_value": [104.0, 117.0, 123.0], "scale": 0.5}}
    layers = [
        Layer("train_data", "Data", [], ["data", "label"], {"transform_param": {"crop_size": 7}}, include=0),
        Layer("test_data", "Data", [], ["data", "label"], transform, include=1),
        Layer("fc", "InnerProduct", ["data"], ["fc"], {"inner_product_param": {"num_output": 4}}, [w, np.zeros(4)]),
        Layer("accuracy", "Accuracy", ["fc", "label"], ["accuracy"], include=1),
        Layer("loss", "SoftmaxWithLoss", ["fc", "label"], ["loss"]),
    ]
    for v1 in (False, True):
        path = tmp_path / f"train_{v1}.caffemodel"
        path.write_bytes(caffemodel(layers, v1=v1))
        net = caffe.convert(path)
        assert net.arch.input_shape == (3, 5, 5)
        assert [l.name for l in net.arch.layers] == ["data_flat", "fc", "prob"]
        assert net.meta["mean"] == [104.0, 117.0, 123.0]
        assert net.meta["std"] == [2.0, 2.0, 2.0]          # Caffe scale 0.5 = divide by 2


def test_required_architecture_is_checked(squeezenet_dir):
    net = caffe.convert(squeezenet_dir / "squeezenet1_0.caffemodel", architecture="squeezenet1_0")
    assert net.arch.name == "squeezenet1_0"
    with pytest.raises(ZFNetError, match=r"squeezenet1_0\.caffemodel.*not 'alexnet'.*conv1"):
        caffe.convert(squeezenet_dir / "squeezenet1_0.caffemodel", architecture="alexnet")


# --- damaged and unsupported files ---------------------------------------------------------------

def test_empty_missing_truncated_and_garbage_files(tmp_path, layers, rng):
    good = write_v2(tmp_path, layers).read_bytes()
    cases = {
        "empty.caffemodel": (b"", "empty"),
        "truncated.caffemodel": (good[: len(good) - 7], "truncated"),
        "half.caffemodel": (good[: len(good) // 2], "truncated"),
        "garbage.caffemodel": (rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), "damaged|not a"),
        "text.caffemodel": (b"name: 'not binary'\n", "damaged|not a|no layers"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ZFNetError, match=words) as e:
            caffe.convert(path)
        assert str(path) in str(e.value)
    with pytest.raises(ZFNetError, match="no such file"):
        caffe.convert(tmp_path / "missing.caffemodel")


def test_corrupted_byte_in_a_blob_length_is_caught(tmp_path, layers):
    data = bytearray(write_v2(tmp_path, layers).read_bytes())
    # Blow up the length varint of the first layer field (after the 4 input-layer bytes).
    i = data.index(b"\xa2\x06", 10)                  # key of the 2nd `layer` (field 100, wire 2)
    data[i + 2] = 0xFF
    data[i + 3] = 0x7F
    path = tmp_path / "corrupt.caffemodel"
    path.write_bytes(bytes(data))
    with pytest.raises(ZFNetError, match="corrupt.caffemodel"):
        caffe.convert(path)


@pytest.mark.parametrize("mutate, words", [
    (lambda ls: ls.insert(3, Layer("sum", "Eltwise", ["conv1", "conv1"], ["sum"])), "'sum' has type 'Eltwise'"),
    (lambda ls: ls[1].blobs.__setitem__(0, np.full((8, 3, 3, 5), np.nan, np.float32)), "NaN"),
    (lambda ls: ls[1].blobs.__setitem__(0, np.ones((8, 3, 3, 3), np.float32)), r"conv1.*shape \(8, 3, 3, 3\)"),
    (lambda ls: ls[1].blobs.pop(), "'conv1' has 1 blobs, expected 2"),
    (lambda ls: ls[2].params.update({"relu_param": {"negative_slope": 0.1}}), "leaky"),
    (lambda ls: ls[3].params["lrn_param"].update({"local_size": 4}), "even"),
    (lambda ls: ls[4].params["pooling_param"].update({"pool": "STOCHASTIC"}), "STOCHASTIC"),
    (lambda ls: ls[5].params["convolution_param"].update({"dilation": 2}), "dilation"),
    (lambda ls: ls[5].params["convolution_param"].update({"group": 3}), "groups"),
    (lambda ls: setattr(ls[9], "bottom", ["nowhere"]), "'nowhere', which no earlier layer makes"),
    (lambda ls: ls[1].params["convolution_param"].update({"kernel_size": 3}), "either kernel_size or both"),
])
def test_bad_layers_are_refused_by_name(tmp_path, layers, mutate, words):
    mutate(layers)
    path = write_v2(tmp_path, layers, "bad.caffemodel")
    with pytest.raises(ZFNetError, match=words) as e:
        caffe.convert(path)
    assert "bad.caffemodel" in str(e.value)


def test_prototxt_and_caffemodel_that_do_not_belong_together(tmp_path, layers):
    proto = tmp_path / "other.prototxt"
    other = [l for l in layers if l.type != "Input"]
    other[0] = Layer("conv_other", "Convolution", ["data"], ["conv1"], other[0].params, other[0].blobs)
    proto.write_text(prototxt(other))
    with pytest.raises(ZFNetError, match="no weights for layer 'conv_other'"):
        convert(write_v2(tmp_path, layers), prototxt=proto)
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "x" type: "ReLU" bottom: "data" ')
    with pytest.raises(ZFNetError, match="bad.prototxt.*missing"):
        convert(write_v2(tmp_path, layers), prototxt=bad)


def test_v0_layers_and_mixed_formats_are_refused(tmp_path, layers):
    v0 = pb.f_bytes(2, pb.f_msg(1, pb.f_str(1, "conv1") + pb.f_str(2, "conv")))
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(pb.f_str(1, "old") + v0)
    with pytest.raises(ZFNetError, match="V0 layer format"):
        caffe.convert(path)
    mixed = tmp_path / "mixed.caffemodel"
    mixed.write_bytes(write_v2(tmp_path, layers).read_bytes() + pb.f_bytes(2, pb.f_str(4, "x")))
    with pytest.raises(ZFNetError, match="mixes the 'layer' and the deprecated 'layers'"):
        caffe.convert(mixed)


def test_two_inputs_are_refused(tmp_path):
    body = [input_layer_bytes(), input_layer_bytes().replace(b"data", b"datb")]
    path = tmp_path / "two.caffemodel"
    path.write_bytes(pb.net(body))
    with pytest.raises(ZFNetError, match="second input"):
        caffe.convert(path)
