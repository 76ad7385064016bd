"""The seed corpus: small files of every format, made from the shared SqueezeNet weights.

Each seed is cut down to a few layers so that one fuzz case takes milliseconds: the first
layers of the real .caffemodel / .prototxt / .onnx, a few real tensors of the .pth (zip and
legacy formats), and a .safetensors of a converted few-layer network. Beside them, small
synthetic files reach the parts the SqueezeNet files do not use (Gemm, MatMul + Add, LRN,
AveragePool, Constant nodes; V1 Caffe layers, InnerProduct). The Deep Compression format has one
fixed architecture, so its seed is the real 660 KB file. ``full=True`` adds the complete shared
files (slower cases: for the long run).

Building needs torch and onnx (test dependencies); the result is cached per process.
"""
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import pb

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ZFNET_TEST_DATA", REPO.parent / "shared" / "data")).resolve()
SQUEEZENET = DATA / "weights" / "squeezenet1_0"

FORMATS = ("safetensors", "onnx", "caffemodel", "prototxt", "pth", "net")
SUFFIX = {"safetensors": ".safetensors", "onnx": ".onnx", "caffemodel": ".caffemodel",
          "prototxt": ".prototxt", "pth": ".pth", "net": ".net"}


@dataclass
class Seed:
    name: str
    data: bytes                                  # the file the fuzzer mutates
    aux: dict = field(default_factory=dict)      # {"caffemodel" | "prototxt": bytes}, kept intact


def _file(name):
    path = SQUEEZENET / name
    if not path.is_file():
        raise FileNotFoundError(f"fuzz seeds need the shared data: {path} is missing "
                                f"(set ZFNET_TEST_DATA)")
    return path.read_bytes()


# -- Caffe ----------------------------------------------------------------------------------------
_KEEP_CAFFE = 6          # input, conv1, relu_conv1, pool1, fire2/squeeze1x1, its ReLU


def _caffe_cut(data, n_layers):
    """The real .caffemodel with only its first `n_layers` layer fields (100)."""
    out, kept = [], 0
    for f, w, v in pb.parse(data, depth=6):      # depth 6: top level only, payloads stay bytes
        if f == 100:
            if kept >= n_layers:
                continue
            kept += 1
        out.append([f, w, v])
    return pb.encode(out)


def _prototxt_cut(text, n_layers):
    """The deploy.prototxt up to its `n_layers`-th layer block (the 'input' field is its own)."""
    blocks = text.split("\nlayer {")
    return ("\nlayer {".join(blocks[:n_layers + 1])).rstrip() + "\n"


def _caffe_v1():
    """A small V1-format (field 2, enum types) net: conv, ReLU, LRN, AVE pool, InnerProduct, Softmax."""
    rng = np.random.default_rng(0)

    def blob(a):
        dims = (1,) * (4 - a.ndim) + a.shape
        return b"".join(pb.f_varint(i + 1, d) for i, d in enumerate(dims)) + \
            pb.f_bytes(5, a.astype("<f4").tobytes())

    def layer(name, t, bottom, top, blobs=(), params=b""):
        return pb.f_bytes(2, pb.f_bytes(4, name) + pb.f_varint(5, t) + pb.f_bytes(2, bottom)
                          + pb.f_bytes(3, top) + b"".join(pb.f_bytes(6, blob(b)) for b in blobs)
                          + params)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    fc = rng.standard_normal((5, 4 * 3 * 3)).astype(np.float32)
    net = pb.f_bytes(1, "v1net") + pb.f_bytes(3, "data") + b"".join(pb.f_varint(4, d) for d in (1, 3, 9, 9))
    net += layer("conv1", 4, "data", "conv1", (w, np.zeros(4, np.float32)),
                 pb.f_bytes(10, pb.f_varint(1, 4) + pb.f_varint(4, 3) + pb.f_varint(3, 1)))
    net += layer("relu1", 18, "conv1", "conv1")
    net += layer("norm1", 15, "conv1", "norm1", (), pb.f_bytes(18, pb.f_varint(1, 3) + pb.f_float(2, 1e-4)))
    net += layer("pool1", 17, "norm1", "pool1", (), pb.f_bytes(19, pb.f_varint(1, 1) + pb.f_varint(2, 3)
                                                               + pb.f_varint(3, 3)))
    net += layer("fc", 14, "pool1", "fc", (fc, np.ones(5, np.float32)), pb.f_bytes(17, pb.f_varint(1, 5)))
    net += layer("drop", 6, "fc", "fc", (), pb.f_bytes(12, pb.f_float(1, 0.5)))
    net += layer("prob", 20, "fc", "prob")
    return net


def caffe_seeds():
    model = _file("squeezenet1_0.caffemodel")
    text = _file("deploy.prototxt").decode()
    small = _caffe_cut(model, _KEEP_CAFFE)
    proto = _prototxt_cut(text, _KEEP_CAFFE - 1).encode()
    return small, proto


# -- ONNX -----------------------------------------------------------------------------------------
def _onnx_squeezenet(n_nodes=10):
    import onnx
    m = onnx.load_from_string(_file("squeezenet1_0.onnx"))
    nodes = list(m.graph.node[:n_nodes])
    used = {i for n in nodes for i in n.input}
    inits = [t for t in m.graph.initializer if t.name in used]
    out = onnx.helper.make_tensor_value_info(nodes[-1].output[0], onnx.TensorProto.FLOAT, None)
    g = onnx.helper.make_graph(nodes, "squeezenet_head", [m.graph.input[0]], [out], inits)
    model = onnx.helper.make_model(g, opset_imports=list(m.opset_import))
    model.ir_version = m.ir_version
    return model.SerializeToString()


def _onnx_synthetic():
    """Conv, Relu, LRN, MaxPool, AveragePool, Dropout, Flatten, Gemm, Reshape, MatMul + Add,
    Constant, ConstantOfShape, Identity, Softmax: every op the converter reads, on tiny shapes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(1)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)   # noqa: E731
    inits = [numpy_helper.from_array(f32(4, 3, 3, 3), "conv_w"), numpy_helper.from_array(f32(4), "conv_b"),
             numpy_helper.from_array(f32(6, 16), "fc_w"),
             numpy_helper.from_array(f32(6, 5), "mm_w"), numpy_helper.from_array(f32(5), "mm_b")]
    # one initializer in the typed float_data field instead of raw_data
    inits.append(helper.make_tensor("fc_b", TensorProto.FLOAT, [6], f32(6).tolist()))
    N = helper.make_node
    nodes = [
        N("Conv", ["data", "conv_w", "conv_b"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
          strides=[1, 1], group=1),
        N("Relu", ["c1"], ["r1"], name="relu1"),
        N("LRN", ["r1"], ["n1"], name="norm1", size=3, alpha=1e-4, beta=0.75, bias=1.0),
        N("MaxPool", ["n1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        N("AveragePool", ["p1"], ["p2"], name="pool2", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
          count_include_pad=1),
        N("Dropout", ["p2"], ["d1"], name="drop1", ratio=0.5),
        N("Flatten", ["d1"], ["f1"], name="flat", axis=1),
        N("Identity", ["fc_w"], ["fc_w2"], name="ident"),
        N("Gemm", ["f1", "fc_w2", "fc_b"], ["g1"], name="fc1", transB=1, alpha=1.0, beta=1.0),
        N("Relu", ["g1"], ["r2"], name="relu2"),
        N("Constant", [], ["shape"], name="shape_const",
          value=numpy_helper.from_array(np.array([1, -1], np.int64))),
        N("Reshape", ["r2", "shape"], ["rs"], name="reshape"),
        N("MatMul", ["rs", "mm_w"], ["mm"], name="fc2"),
        N("Add", ["mm", "mm_b"], ["fc2_out"], name="fc2_bias"),
        N("Softmax", ["fc2_out"], ["prob"], name="prob", axis=1),
    ]
    g = helper.make_graph(nodes, "synthetic",
                          [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    return model.SerializeToString()


def _onnx_constant_of_shape():
    """Weights made at conversion time by ConstantOfShape (as the light test graphs do)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    N = helper.make_node
    nodes = [
        N("Constant", [], ["wshape"], value=numpy_helper.from_array(np.array([2, 3, 3, 3], np.int64))),
        N("ConstantOfShape", ["wshape"], ["w"], value=numpy_helper.from_array(np.array([0.01], np.float32))),
        N("Conv", ["data", "w"], ["c"], name="conv1", kernel_shape=[3, 3], strides=[2, 2]),
        N("GlobalAveragePool", ["c"], ["gap"], name="pool"),
        N("Flatten", ["gap"], ["flat"]),
        N("Softmax", ["flat"], ["prob"], axis=1),
    ]
    g = helper.make_graph(nodes, "cos", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 7, 7])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


# -- PyTorch --------------------------------------------------------------------------------------
def _pth(state, legacy=False):
    import torch
    buf = io.BytesIO()
    torch.save(state, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def pth_seeds(full=False):
    import torch
    sd = torch.load(io.BytesIO(_file("squeezenet1_0.pth")), weights_only=True)
    few = {k: sd[k] for k in list(sd)[:4]}                         # conv1, fire2 squeeze
    mixed = {"features.0.weight": torch.nn.Parameter(sd["features.0.weight"][:8].clone()),
             "features.0.bias": sd["features.0.bias"][:8].to(torch.float16),
             "counter": torch.tensor(3, dtype=torch.int64)}
    view = sd["features.3.squeeze.weight"]
    seeds = [Seed("pth_zip_few", _pth(few)), Seed("pth_legacy_few", _pth(few, legacy=True)),
             Seed("pth_zip_mixed", _pth({"state_dict": mixed})),
             Seed("pth_zip_views", _pth({"a": view, "b": view[2:5], "c": view[:, :, 0, 0].t()}))]
    if full:
        seeds.append(Seed("pth_full", _file("squeezenet1_0.pth")))
    return seeds


# -- safetensors ----------------------------------------------------------------------------------
def _safetensors(onnx_bytes, tmp):
    from zfnet.convert import convert
    from zfnet.weights import complete_meta, save_net
    src = Path(tmp) / "seed.onnx"
    src.write_bytes(onnx_bytes)
    net = convert(src)
    complete_meta(net, None, {"channel_order": "BGR", "scale": 255, "mean": [104.0, 117.0, 123.0],
                              "std": [1.0, 1.0, 1.0], "classes": "imagenet"})
    out = Path(tmp) / "seed.safetensors"
    save_net(net, out)
    return out.read_bytes()


_CACHE = {}


def build(full=False, tmp=None):
    """{format: [Seed, ...]} (cached per process)."""
    if full in _CACHE:
        return _CACHE[full]
    import tempfile
    squeeze_head, synthetic, cos = _onnx_squeezenet(), _onnx_synthetic(), _onnx_constant_of_shape()
    small_model, small_proto = caffe_seeds()
    with tempfile.TemporaryDirectory() as d:
        st = [Seed("st_squeezenet_head", _safetensors(squeeze_head, d)),
              Seed("st_synthetic", _safetensors(synthetic, d))]
    seeds = {
        "safetensors": st,
        "onnx": [Seed("onnx_squeezenet_head", squeeze_head), Seed("onnx_synthetic", synthetic),
                 Seed("onnx_constant_of_shape", cos)],
        "caffemodel": [Seed("caffe_squeezenet_head", small_model), Seed("caffe_v1", _caffe_v1()),
                       Seed("caffe_with_prototxt", small_model, {"prototxt": small_proto})],
        "prototxt": [Seed("prototxt_squeezenet_head", small_proto, {"caffemodel": small_model})],
        "pth": pth_seeds(full),
        "net": [Seed("deep_compression", _file("compressed_SqueezeNet.net"))],
    }
    if full:
        seeds["onnx"].append(Seed("onnx_full", _file("squeezenet1_0.onnx")))
        seeds["caffemodel"].append(Seed("caffe_full", _file("squeezenet1_0.caffemodel")))
        seeds["prototxt"].append(Seed("prototxt_full", _file("deploy.prototxt"),
                                      {"caffemodel": _file("squeezenet1_0.caffemodel")}))
    _CACHE[full] = seeds
    return seeds
