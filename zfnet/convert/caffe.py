"""Caffe: ``.caffemodel`` (binary NetParameter) and optionally a ``.prototxt`` (the same, as text).

    net = convert("squeezenet1_0.caffemodel")                       # layers and weights from one file
    net = convert("ZF.v2.caffemodel", prototxt="ZF_deploy.prototxt")  # layers from the prototxt

A .caffemodel holds the network it was saved from (every layer, its parameters and its blobs);
a deploy .prototxt holds the layers without weights. With a prototxt, its layers define the
network and each layer's blobs are taken from the caffemodel's layer of the same name, which is
what Caffe's ``Net::CopyTrainedLayersFrom`` does.

Both the current ``layer`` field (NetParameter field 100, LayerParameter with a string type) and
the deprecated ``layers`` field (field 2, V1LayerParameter with an enum type and 4-D blobs
num x channels x height x width) are read. Layers are filtered for the TEST phase by their
include/exclude rules, as Caffe does when it builds a net for inference.

Caffe semantics kept exactly (see REFERENCE.md section 5):
- in-place layers (ReLU, Dropout with top == bottom) become specs named after the layer itself
  (``relu1``), so every activation stays addressable;
- pooling rounds up (``ceil_mode``); AVE pooling divides by the window clipped to the padding
  (AvgPool with count_include_pad); global pooling covers the whole map;
- LRN WITHIN_CHANNEL always uses 1 as its additive constant (Caffe ignores ``k`` there);
- InnerProduct flattens a 4-D input implicitly: a Flatten spec ``<bottom>_flat`` is inserted,
  and likewise before a Softmax over a (C, 1, 1) blob (SqueezeNet's pool10).
Caffe's input convention is BGR, 0-255, mean subtracted; the mean is recorded when the file has
one (a data layer's ``transform_param.mean_value``).
"""
from pathlib import Path

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.graph import INPUT
from zfnet.net.spec import (LRN, AvgPool, Concat, Conv, Dropout, Flatten, GlobalAvgPool, Linear,
                            MaxPool, ReLU, Softmax)
from zfnet.convert._common import (GraphBuilder, adopt_builtin, float32_value, make_net, provenance,
                                   read_source)
from zfnet.convert._protobuf import F, ProtobufError, R, decode, parse_text

CONVERTER = "caffe"

# ---------------------------------------------------------------------------------------------
# The part of caffe.proto (BVLC) that we read. Field numbers are Caffe's; names are Caffe's.
# ---------------------------------------------------------------------------------------------

PHASE = {0: "TRAIN", 1: "TEST"}
POOL_METHOD = {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}
NORM_REGION = {0: "ACROSS_CHANNELS", 1: "WITHIN_CHANNEL"}

# V1LayerParameter.LayerType: number -> (identifier in V1 prototxts, type string of the current format).
V1_LAYER_TYPES = {
    0: ("NONE", "NONE"), 35: ("ABSVAL", "AbsVal"), 1: ("ACCURACY", "Accuracy"),
    30: ("ARGMAX", "ArgMax"), 2: ("BNLL", "BNLL"), 3: ("CONCAT", "Concat"),
    37: ("CONTRASTIVE_LOSS", "ContrastiveLoss"), 4: ("CONVOLUTION", "Convolution"),
    5: ("DATA", "Data"), 39: ("DECONVOLUTION", "Deconvolution"), 6: ("DROPOUT", "Dropout"),
    32: ("DUMMY_DATA", "DummyData"), 7: ("EUCLIDEAN_LOSS", "EuclideanLoss"),
    25: ("ELTWISE", "Eltwise"), 38: ("EXP", "Exp"), 8: ("FLATTEN", "Flatten"),
    9: ("HDF5_DATA", "HDF5Data"), 10: ("HDF5_OUTPUT", "HDF5Output"), 28: ("HINGE_LOSS", "HingeLoss"),
    11: ("IM2COL", "Im2col"), 12: ("IMAGE_DATA", "ImageData"), 13: ("INFOGAIN_LOSS", "InfogainLoss"),
    14: ("INNER_PRODUCT", "InnerProduct"), 15: ("LRN", "LRN"), 29: ("MEMORY_DATA", "MemoryData"),
    16: ("MULTINOMIAL_LOGISTIC_LOSS", "MultinomialLogisticLoss"), 34: ("MVN", "MVN"),
    17: ("POOLING", "Pooling"), 26: ("POWER", "Power"), 18: ("RELU", "ReLU"),
    19: ("SIGMOID", "Sigmoid"), 27: ("SIGMOID_CROSS_ENTROPY_LOSS", "SigmoidCrossEntropyLoss"),
    36: ("SILENCE", "Silence"), 20: ("SOFTMAX", "Softmax"), 21: ("SOFTMAX_LOSS", "SoftmaxWithLoss"),
    22: ("SPLIT", "Split"), 33: ("SLICE", "Slice"), 23: ("TANH", "TanH"),
    24: ("WINDOW_DATA", "WindowData"), 31: ("THRESHOLD", "Threshold"),
}
V1_TYPE_ENUM = {num: ident for num, (ident, _) in V1_LAYER_TYPES.items()}
V1_NAMES = {ident: t for ident, t in V1_LAYER_TYPES.values()}

_LAYER_PARAMS = {  # sub-message fields shared by both layer formats: name -> (V2 number, V1 number)
    "convolution_param": (106, 10, "ConvolutionParameter"),
    "pooling_param": (121, 19, "PoolingParameter"),
    "lrn_param": (118, 18, "LRNParameter"),
    "inner_product_param": (117, 17, "InnerProductParameter"),
    "concat_param": (104, 9, "ConcatParameter"),
    "dropout_param": (108, 12, "DropoutParameter"),
    "softmax_param": (125, 39, "SoftmaxParameter"),
    "relu_param": (123, 30, "ReLUParameter"),
    "transform_param": (100, 36, "TransformationParameter"),
    "data_param": (107, 11, "DataParameter"),
    "image_data_param": (115, 15, "ImageDataParameter"),
    "window_data_param": (129, 20, "WindowDataParameter"),
}

SCHEMA = {
    "NetParameter": {
        1: F("name", "string"), 3: R("input", "string"), 8: R("input_shape", "message", "BlobShape"),
        4: R("input_dim", "int"), 100: R("layer", "message", "LayerParameter"),
        2: R("layers", "message", "V1LayerParameter"),
    },
    "LayerParameter": {
        1: F("name", "string"), 2: F("type", "string"), 3: R("bottom", "string"), 4: R("top", "string"),
        10: F("phase", "enum", enum=PHASE), 7: R("blobs", "message", "BlobProto"),
        8: R("include", "message", "NetStateRule"), 9: R("exclude", "message", "NetStateRule"),
        143: F("input_param", "message", "InputParameter"),
        135: F("flatten_param", "message", "FlattenParameter"),
        **{v[0]: F(k, "message", v[2]) for k, v in _LAYER_PARAMS.items()},
    },
    "V1LayerParameter": {
        2: R("bottom", "string"), 3: R("top", "string"), 4: F("name", "string"),
        5: F("type", "enum", enum=V1_TYPE_ENUM), 6: R("blobs", "message", "BlobProto"),
        32: R("include", "message", "NetStateRule"), 33: R("exclude", "message", "NetStateRule"),
        1: F("layer", "bytes"),             # a V0 layer inside (format of 2014 and before)
        **{v[1]: F(k, "message", v[2]) for k, v in _LAYER_PARAMS.items()},
    },
    "BlobProto": {
        7: F("shape", "message", "BlobShape"), 5: R("data", "float"), 8: R("double_data", "double"),
        1: F("num", "int"), 2: F("channels", "int"), 3: F("height", "int"), 4: F("width", "int"),
    },
    "BlobShape": {1: R("dim", "int")},
    "NetStateRule": {
        1: F("phase", "enum", enum=PHASE), 2: F("min_level", "int"), 3: F("max_level", "int"),
        4: R("stage", "string"), 5: R("not_stage", "string"),
    },
    "InputParameter": {1: R("shape", "message", "BlobShape")},
    "ConvolutionParameter": {
        1: F("num_output", "uint"), 2: F("bias_term", "bool"), 3: R("pad", "uint"),
        4: R("kernel_size", "uint"), 6: R("stride", "uint"), 18: R("dilation", "uint"),
        9: F("pad_h", "uint"), 10: F("pad_w", "uint"), 11: F("kernel_h", "uint"),
        12: F("kernel_w", "uint"), 13: F("stride_h", "uint"), 14: F("stride_w", "uint"),
        5: F("group", "uint"), 16: F("axis", "int"),
    },
    "PoolingParameter": {
        1: F("pool", "enum", enum=POOL_METHOD), 4: R("pad", "uint"), 9: F("pad_h", "uint"),
        10: F("pad_w", "uint"), 2: R("kernel_size", "uint"), 5: F("kernel_h", "uint"),
        6: F("kernel_w", "uint"), 3: R("stride", "uint"), 7: F("stride_h", "uint"),
        8: F("stride_w", "uint"), 12: F("global_pooling", "bool"),
    },
    "LRNParameter": {
        1: F("local_size", "uint"), 2: F("alpha", "float"), 3: F("beta", "float"),
        4: F("norm_region", "enum", enum=NORM_REGION), 5: F("k", "float"),
    },
    "InnerProductParameter": {
        1: F("num_output", "uint"), 2: F("bias_term", "bool"), 5: F("axis", "int"),
        6: F("transpose", "bool"),
    },
    "ConcatParameter": {2: F("axis", "int"), 1: F("concat_dim", "uint")},
    "DropoutParameter": {1: F("dropout_ratio", "float")},
    "SoftmaxParameter": {2: F("axis", "int")},
    "ReLUParameter": {1: F("negative_slope", "float")},
    "FlattenParameter": {1: F("axis", "int"), 2: F("end_axis", "int")},
    "TransformationParameter": {
        1: F("scale", "float"), 3: F("crop_size", "uint"), 11: F("crop_h", "uint"),
        12: F("crop_w", "uint"), 4: F("mean_file", "string"), 5: R("mean_value", "float"),
    },
    "DataParameter": {5: F("crop_size", "uint"), 2: F("scale", "float"), 3: F("mean_file", "string")},
    "ImageDataParameter": {5: F("crop_size", "uint"), 2: F("scale", "float"), 3: F("mean_file", "string")},
    "WindowDataParameter": {5: F("crop_size", "uint"), 2: F("scale", "float"), 3: F("mean_file", "string")},
}

SUPPORTED = ("Input", "Convolution", "ReLU", "Pooling", "LRN", "Concat", "Dropout", "InnerProduct",
             "Softmax", "Flatten")
# Layers of training nets: data sources become the input, losses become the softmax, the rest go.
DATA_LAYERS = ("Data", "ImageData", "WindowData", "MemoryData", "HDF5Data", "DummyData")
SKIPPED = ("Accuracy", "Silence")
LABEL = object()   # marks the label blob of a data layer


# ---------------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------------

def read_caffemodel(path):
    """The NetParameter of a binary .caffemodel as a dict; ZFNetError if it is not one."""
    path, data = read_source(path, "Caffe .caffemodel")
    try:
        net = decode(data, "NetParameter", SCHEMA)
    except ProtobufError as e:
        raise ZFNetError(f"{path}: not a readable Caffe model ({e}); the file is damaged (download "
                         f"it again) or is not a binary .caffemodel") from None
    if not net.get("layer") and not net.get("layers"):
        raise ZFNetError(f"{path}: no layers found; this is not a Caffe .caffemodel (or it is damaged)")
    return path, data, net


def read_prototxt(path):
    """The NetParameter of a text .prototxt as a dict."""
    path, data = read_source(path, "Caffe .prototxt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ZFNetError(f"{path}: not a text file; pass the .prototxt as prototxt= and the "
                         f"binary .caffemodel as the path") from None
    try:
        net = parse_text(text, "NetParameter", SCHEMA)
    except ProtobufError as e:
        raise ZFNetError(f"{path}: cannot parse the prototxt: {e}") from None
    if not net.get("layer") and not net.get("layers"):
        raise ZFNetError(f"{path}: the prototxt defines no layers")
    return path, net


class _Layer:
    """One Caffe layer, the same whichever format it came in."""

    def __init__(self, d, v1):
        self.d = d
        self.name = d.get("name", "")
        t = d.get("type", "")
        if v1:
            t = V1_NAMES.get(t, t)       # CONVOLUTION -> Convolution (unknown numbers stay numbers)
        self.type = str(t)
        self.bottom = list(d.get("bottom", []))
        self.top = list(d.get("top", []))

    def param(self, name):
        return self.d.get(name) or {}


def _layers(net, path):
    if net.get("layer") and net.get("layers"):
        raise ZFNetError(f"{path}: mixes the 'layer' and the deprecated 'layers' fields; Caffe "
                         f"refuses such files too")
    v1 = not net.get("layer")
    items = net.get("layers") if v1 else net.get("layer")
    out = []
    for d in items:
        if v1 and d.get("layer"):
            raise ZFNetError(f"{path}: uses the V0 layer format (Caffe before 2014); upgrade it with "
                             f"Caffe's tools/upgrade_net_proto_binary and convert the result")
        out.append(_Layer(d, v1))
    return out


def _rule_met(rule):
    """Does Caffe's default inference state (phase TEST, level 0, no stages) meet `rule`?"""
    if rule.get("phase") not in (None, "TEST"):
        return False
    if rule.get("min_level", 0) > 0 or rule.get("max_level", 0) < 0:
        return False
    return not rule.get("stage")


def _in_test_phase(layer):
    include, exclude = layer.d.get("include", []), layer.d.get("exclude", [])
    if include:
        return any(_rule_met(r) for r in include)
    return not any(_rule_met(r) for r in exclude)


def _blob_array(blob, where, path):
    """(array, shape) of a BlobProto; the shape from ``shape`` or the legacy 4-D fields."""
    data = blob.get("data")
    if data is None or len(data) == 0:
        data = blob.get("double_data")
    if data is None or len(data) == 0:
        raise ZFNetError(f"{path}: {where} holds no values")
    if "shape" in blob:
        shape = tuple(int(d) for d in blob["shape"].get("dim", []))
    else:
        shape = tuple(int(blob.get(k, 1) or 1) for k in ("num", "channels", "height", "width"))
    if any(d < 0 for d in shape) or int(np.prod(shape)) != len(data):
        raise ZFNetError(f"{path}: {where} has shape {shape} but {len(data)} values (damaged file)")
    return np.asarray(data, dtype=np.float32).reshape(shape)


def _as_shape(a, want, where, path, flat_ok=False):
    """`a` viewed as `want` if it is that shape up to leading 1s (V1 blobs are always 4-D)."""
    have = tuple(a.shape)
    squeeze = have
    while len(squeeze) > len(want) and squeeze[0] == 1:
        squeeze = squeeze[1:]
    if squeeze == tuple(want):
        return a.reshape(want)
    # An InnerProduct weight may be stored (O, C, H, W) for a (C, H, W) input.
    if flat_ok and len(have) == 4 and have[0] == want[0] and int(np.prod(have[1:])) == want[1]:
        return a.reshape(want)
    raise ZFNetError(f"{path}: {where} has shape {have}, expected {tuple(want)} "
                     f"(is the caffemodel for another network?)")


def _pair(p, what, field, default, where, path):
    """Caffe's 2-D hyper-parameter: ``<field>: v`` (once or per axis) or ``<what>_h``/``<what>_w``."""
    h, w = p.get(f"{what}_h"), p.get(f"{what}_w")
    values = p.get(field, [])
    if not isinstance(values, list):
        values = [values]
    if h is not None or w is not None:
        if h is None or w is None or values:
            raise ZFNetError(f"{path}: layer {where}: give either {field} or both {what}_h and {what}_w")
        return int(h), int(w)
    if len(values) == 0:
        if default is None:
            raise ZFNetError(f"{path}: layer {where} has no {field}")
        return default
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise ZFNetError(f"{path}: layer {where}: {field} has {len(values)} values; only 2-D layers are supported")


# ---------------------------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------------------------

def convert(path, prototxt=None, *, architecture=None, input_shape=None):
    """A Net from a Caffe .caffemodel (and optionally its deploy .prototxt).

    architecture: a built-in name the file must be (ZFNetError naming the first difference).
    input_shape: (C, H, W) for files that do not say (a training net without crop_size).
    The Net's meta: channel_order BGR, scale 255, std [1, 1, 1], the mean if the file has one.
    """
    path, data, model = read_caffemodel(path)
    proto_path = None
    if prototxt is not None:
        proto_path, net_def = read_prototxt(prototxt)
    else:
        net_def = model
    blobs = {}
    for layer in _layers(model, path):
        if layer.d.get("blobs"):
            blobs[layer.name] = [(_blob_array(b, f"layer {layer.name!r} blob {i}", path))
                                 for i, b in enumerate(layer.d["blobs"])]
    where = proto_path or path
    layers = [layer for layer in _layers(net_def, where) if _in_test_phase(layer)]
    graph = _Walk(path, where, blobs, input_shape).run(net_def, layers)
    name = Path(path).stem
    arch, params, notes = graph.builder.finish(name, graph.output)
    arch, params, matched = adopt_builtin(arch, params, architecture, path)
    meta = provenance(path, data, CONVERTER, channel_order="BGR", scale=255.0, std=[1.0, 1.0, 1.0])
    if proto_path is not None:
        meta["prototxt"] = Path(proto_path).name
    meta.update(graph.meta)
    if notes:
        meta["conversion_notes"] = notes
    return make_net(path, arch, params, meta)


class _Walk:
    """Turns the Caffe layer list into specs; ``blob`` maps Caffe blob names to spec tensors."""

    def __init__(self, path, where, blobs, input_shape):
        self.path, self.where, self.blobs = path, where, blobs
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.blob = {}
        self.builder = None
        self.meta = {}
        self.output = None

    def fail(self, msg):
        return ZFNetError(f"{self.where}: {msg}")

    # -- the input -----------------------------------------------------------------------------
    def _set_input(self, top, shape, what):
        if self.builder is not None:
            raise self.fail(f"{what} defines a second input {top!r}; zfnet networks have one input")
        shape = tuple(int(d) for d in shape)
        if len(shape) == 4:
            shape = shape[1:]                      # drop N
        if len(shape) != 3:
            raise self.fail(f"{what}: input {top!r} must be N x C x H x W, got {shape}")
        self.builder = GraphBuilder(self.where, shape)
        self.blob[top] = INPUT

    def _net_inputs(self, net):
        names = net.get("input", [])
        if not names:
            return
        if len(names) > 1:
            raise self.fail(f"the net has {len(names)} inputs {names}; zfnet networks have one")
        if net.get("input_shape"):
            shape = net["input_shape"][0].get("dim", [])
        elif net.get("input_dim"):
            shape = net["input_dim"][:4]
        elif self.input_shape is not None:
            shape = self.input_shape
        else:
            raise self.fail(f"input {names[0]!r} has no input_shape or input_dim")
        self._set_input(names[0], shape, "the net's input field")

    def _data_layer(self, layer):
        p = layer.param("transform_param")
        legacy = (layer.param("data_param") or layer.param("image_data_param")
                  or layer.param("window_data_param"))
        crop = p.get("crop_size") or legacy.get("crop_size")
        if self.input_shape is not None:
            shape = self.input_shape
        elif crop:
            shape = (3, crop, crop)
        elif p.get("crop_h") and p.get("crop_w"):
            shape = (3, p["crop_h"], p["crop_w"])
        else:
            raise self.fail(f"data layer {layer.name!r} does not say the input size (no crop_size); "
                            f"pass the deploy prototxt, or input_shape=(3, H, W)")
        if not layer.top:
            raise self.fail(f"data layer {layer.name!r} has no top")
        self._set_input(layer.top[0], shape, f"data layer {layer.name!r}")
        for t in layer.top[1:]:
            self.blob[t] = LABEL
        mean = p.get("mean_value")
        if mean is not None and len(mean) in (1, 3):
            mean = [float32_value(v) for v in (list(mean) * 3 if len(mean) == 1 else mean)]
            self.meta["mean"] = mean
        if p.get("mean_file") or legacy.get("mean_file"):
            self.meta["mean_file"] = p.get("mean_file") or legacy.get("mean_file")
        scale = p.get("scale", legacy.get("scale"))
        if scale is not None and scale != 1.0:
            # Caffe: x = (pixel - mean) * scale, i.e. a std of 1/scale on the 0-255 scale.
            self.meta["std"] = [float32_value(1.0 / scale)] * 3

    # -- the walk ------------------------------------------------------------------------------
    def bottom(self, layer, i=0):
        if i >= len(layer.bottom):
            raise self.fail(f"layer {layer.name!r} ({layer.type}) needs a bottom blob")
        name = layer.bottom[i]
        if name not in self.blob:
            raise self.fail(f"layer {layer.name!r} reads blob {name!r}, which no earlier layer makes")
        t = self.blob[name]
        if t is LABEL:
            raise self.fail(f"layer {layer.name!r} ({layer.type}) reads the label blob {name!r}; "
                            f"only loss and accuracy layers may (pass the deploy prototxt)")
        return t

    def params(self, layer, count):
        blobs = self.blobs.get(layer.name)
        if not blobs:
            raise ZFNetError(f"{self.path}: has no weights for layer {layer.name!r} ({layer.type}); "
                             f"the caffemodel and prototxt do not belong together")
        if len(blobs) != count:
            raise ZFNetError(f"{self.path}: layer {layer.name!r} has {len(blobs)} blobs, expected {count}")
        return blobs

    def run(self, net, layers):
        self._net_inputs(net)
        for layer in layers:
            t = layer.type
            if t == "Input":
                shapes = layer.param("input_param").get("shape", [])
                if len(layer.top) != 1:
                    raise self.fail(f"Input layer {layer.name!r} has {len(layer.top)} tops; zfnet "
                                    f"networks have one input")
                shape = shapes[0].get("dim", []) if shapes else self.input_shape
                if shape is None:
                    raise self.fail(f"Input layer {layer.name!r} has no shape; pass input_shape=(C, H, W)")
                self._set_input(layer.top[0], shape, f"Input layer {layer.name!r}")
                continue
            if t in DATA_LAYERS:
                self._data_layer(layer)
                continue
            if t in SKIPPED:
                continue
            if self.builder is None:
                raise self.fail(f"layer {layer.name!r} comes before any input is defined")
            if t == "Split":
                src = self.bottom(layer)
                for top in layer.top:
                    self.blob[top] = src
                continue
            handler = _HANDLERS.get(t)
            if handler is None:
                raise self.fail(
                    f"layer {layer.name!r} has type {t!r}, which zfnet does not support "
                    f"(supported: {', '.join(SUPPORTED)})")
            out = handler(self, layer)
            for top in layer.top[:1]:
                self.blob[top] = out
            self.output = out
        if self.builder is None:
            raise self.fail("the net defines no input (no input field, Input or data layer)")
        if self.output is None:
            raise self.fail("the net has no layers after its input")
        return self

    def name(self, layer):
        return self.builder.unique(layer.name or layer.type.lower())


def _conv(w, layer):
    p = layer.param("convolution_param")
    where = repr(layer.name)
    x = w.bottom(layer)
    shape = w.builder.shape(x)
    if len(shape) != 3:
        raise w.fail(f"convolution {where} reads a flat blob of shape {shape}")
    if p.get("axis", 1) != 1 or any(int(d) != 1 for d in p.get("dilation", [])):
        raise w.fail(f"convolution {where}: only axis 1 and dilation 1 are supported")
    kernel = _pair(p, "kernel", "kernel_size", None, where, w.where)
    stride = _pair(p, "stride", "stride", (1, 1), where, w.where)
    pad = _pair(p, "pad", "pad", (0, 0), where, w.where)
    groups = int(p.get("group", 1))
    out_channels = int(p.get("num_output", 0))
    bias = bool(p.get("bias_term", True))
    blobs = w.params(layer, 2 if bias else 1)
    in_channels = shape[0]
    if groups < 1 or in_channels % groups:
        raise w.fail(f"convolution {where}: {in_channels} input channels are not divisible into "
                     f"{groups} groups")
    want = (out_channels, in_channels // groups, *kernel)
    tensors = {"weight": _as_shape(blobs[0], want, f"layer {where} weight", w.path)}
    if bias:
        tensors["bias"] = _as_shape(blobs[1], (out_channels,), f"layer {where} bias", w.path)
    spec = Conv(w.name(layer), (x,), in_channels, out_channels, kernel, stride, pad, groups, bias)
    return w.builder.add(spec, **tensors)


def _inner_product(w, layer):
    p = layer.param("inner_product_param")
    where = repr(layer.name)
    if p.get("axis", 1) != 1:
        raise w.fail(f"inner product {where}: only axis 1 is supported")
    x = w.builder.flatten(w.bottom(layer))            # Caffe flattens (C, H, W) implicitly
    in_features = w.builder.shape(x)[0]
    out_features = int(p.get("num_output", 0))
    bias = bool(p.get("bias_term", True))
    blobs = w.params(layer, 2 if bias else 1)
    if p.get("transpose", False):
        # Stored (I, O): the weight of y = x W^T is its transpose.
        weight = _as_shape(blobs[0], (in_features, out_features), f"layer {where} weight", w.path).T
    else:
        weight = _as_shape(blobs[0], (out_features, in_features), f"layer {where} weight", w.path,
                           flat_ok=True)
    tensors = {"weight": weight}
    if bias:
        tensors["bias"] = _as_shape(blobs[1], (out_features,), f"layer {where} bias", w.path)
    return w.builder.add(Linear(w.name(layer), (x,), in_features, out_features, bias), **tensors)


def _pooling(w, layer):
    p = layer.param("pooling_param")
    where = repr(layer.name)
    x = w.bottom(layer)
    shape = w.builder.shape(x)
    if len(shape) != 3:
        raise w.fail(f"pooling {where} reads a flat blob of shape {shape}")
    method = p.get("pool", "MAX")
    if method not in ("MAX", "AVE"):
        raise w.fail(f"pooling {where} uses {method} pooling; only MAX and AVE are supported")
    if p.get("global_pooling", False):
        if method == "AVE":
            return w.builder.add(GlobalAvgPool(w.name(layer), (x,)))
        return w.builder.add(MaxPool(w.name(layer), (x,), shape[1:], (1, 1), (0, 0), True))
    kernel = _pair(p, "kernel", "kernel_size", None, where, w.where)
    stride = _pair(p, "stride", "stride", (1, 1), where, w.where)
    pad = _pair(p, "pad", "pad", (0, 0), where, w.where)
    if any(pp > k // 2 for pp, k in zip(pad, kernel)):
        raise w.fail(f"pooling {where}: pad {pad} is more than half the kernel {kernel}; "
                     f"not supported")
    if method == "MAX":
        return w.builder.add(MaxPool(w.name(layer), (x,), kernel, stride, pad, ceil_mode=True))
    # Caffe divides by the window clipped to the padded input: PyTorch's count_include_pad rule.
    return w.builder.add(AvgPool(w.name(layer), (x,), kernel, stride, pad, ceil_mode=True,
                                 count_include_pad=True))


def _lrn(w, layer):
    p = layer.param("lrn_param")
    size = int(p.get("local_size", 5))
    if size % 2 == 0:
        raise w.fail(f"LRN {layer.name!r}: local_size {size} is even; Caffe needs it odd")
    within = p.get("norm_region", "ACROSS_CHANNELS") == "WITHIN_CHANNEL"
    x = w.bottom(layer)
    if len(w.builder.shape(x)) != 3:
        raise w.fail(f"LRN {layer.name!r} reads a flat blob")
    # Caffe's WITHIN_CHANNEL is 1 + alpha * mean(a^2): the constant k does not apply there.
    k = 1.0 if within else float32_value(p.get("k", 1.0))
    spec = LRN(w.name(layer), (x,), size, float32_value(p.get("alpha", 1.0)),
               float32_value(p.get("beta", 0.75)), k, within)
    return w.builder.add(spec)


def _relu(w, layer):
    slope = layer.param("relu_param").get("negative_slope", 0.0)
    if slope != 0.0:
        raise w.fail(f"ReLU {layer.name!r} is leaky (negative_slope {slope}); not supported")
    return w.builder.add(ReLU(w.name(layer), (w.bottom(layer),)))


def _dropout(w, layer):
    ratio = float32_value(layer.param("dropout_param").get("dropout_ratio", 0.5))
    return w.builder.add(Dropout(w.name(layer), (w.bottom(layer),), ratio))


def _concat(w, layer):
    p = layer.param("concat_param")
    if p.get("axis", 1) != 1 or p.get("concat_dim", 1) != 1:
        raise w.fail(f"concat {layer.name!r}: only concatenation along channels (axis 1) is supported")
    inputs = tuple(w.bottom(layer, i) for i in range(len(layer.bottom)))
    if not inputs:
        raise w.fail(f"concat {layer.name!r} has no bottoms")
    return w.builder.add(Concat(w.name(layer), inputs))


def _softmax(w, layer):
    if layer.param("softmax_param").get("axis", 1) != 1:
        raise w.fail(f"softmax {layer.name!r}: only axis 1 is supported")
    x = w.bottom(layer)
    if w.builder.shape(x)[1:] == (1, 1):
        x = w.builder.flatten(x)                      # (C, 1, 1) scores -> (C,), e.g. pool10
    return w.builder.add(Softmax(w.name(layer), (x,)))


def _softmax_with_loss(w, layer):
    """A training net's loss: at inference its first bottom goes through a plain softmax."""
    x = w.bottom(layer)
    if w.builder.shape(x)[1:] == (1, 1):
        x = w.builder.flatten(x)
    name = "prob" if "prob" not in w.builder.shapes else w.name(layer)
    return w.builder.add(Softmax(name, (x,)))


def _flatten(w, layer):
    p = layer.param("flatten_param")
    if p.get("axis", 1) != 1 or p.get("end_axis", -1) != -1:
        raise w.fail(f"flatten {layer.name!r}: only axis 1 to the end is supported")
    x = w.bottom(layer)
    return w.builder.add(Flatten(w.name(layer), (x,)))


_HANDLERS = {
    "Convolution": _conv, "InnerProduct": _inner_product, "Pooling": _pooling, "LRN": _lrn,
    "ReLU": _relu, "Dropout": _dropout, "Concat": _concat, "Softmax": _softmax,
    "SoftmaxWithLoss": _softmax_with_loss, "Flatten": _flatten,
}
