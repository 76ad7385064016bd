"""ONNX: a ``.onnx`` ModelProto -> layer specs and tensors, read without the onnx package.

    net = convert("squeezenet1_0.onnx")
    net = convert("light_zfnet512.onnx")       # weights made by ConstantOfShape nodes: evaluated here

The graph's nodes are walked in their (topological) order. Tensors that do not depend on the
input (initializers, Constant and ConstantOfShape nodes, Identity of those) are evaluated at
conversion time; every other node must be one of the supported ops and becomes one spec:

    Conv -> Conv          Relu -> ReLU           MaxPool -> MaxPool     AveragePool -> AvgPool
    GlobalAveragePool -> GlobalAvgPool           LRN -> LRN             Concat (channels) -> Concat
    Dropout -> Dropout    Flatten / Reshape to (N, -1) -> Flatten       Softmax -> Softmax
    Gemm (transA 0, transB 0/1, alpha, beta) -> Linear   MatMul (+ Add of a bias) -> Linear

Gemm computes Y = alpha * A B' + beta * C with B' = B^T if transB else B; with A the input
(N, K) that is a Linear layer of weight W = alpha * B' ^T (O, K) and bias b = beta * C (O,).

Pooling pads may be asymmetric in ONNX; an end pad of exactly stride - 1 beyond the begin pad,
as Caffe2 exports write for Caffe's round-up rule, is read as ``ceil_mode``; other asymmetric
pads are refused.

Layer names: the node's name when it is meaningful (SqueezeNet's file says conv1, relu_conv1...);
else, for Conv/Gemm, the weight's name without prefix and suffix (gpu_0/conv1_w_0 -> conv1);
else the output's name; else, for auto-named graphs (n0, n1, ...), Caffe-style names numbered
after the last convolution or linear layer (relu1, norm1, pool1, ..., fc6, relu6, drop6).
"""
import math
import re
from pathlib import Path

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.graph import INPUT
from zfnet.net.spec import (LRN, AvgPool, Concat, Conv, Dropout, Flatten, GlobalAvgPool, Linear,
                            MaxPool, ReLU, Softmax)
from zfnet.kernels import pool_output_size
from zfnet.convert._common import (GraphBuilder, adopt_builtin, float32_value, make_net, provenance,
                                   read_source)
from zfnet.convert._protobuf import F, ProtobufError, R, decode

CONVERTER = "onnx"
MAX_RANK = 8
# Constants made at conversion time (ConstantOfShape, as in the light model-zoo test graphs): at
# most this many elements in all (134 M; light_zfnet512 makes 87 M). They are kept as read-only
# broadcast views, so only the layers that use them allocate (GraphBuilder bounds that).
MAX_FOLDED_ELEMENTS = 1 << 27

# ---------------------------------------------------------------------------------------------
# The part of onnx.proto that we read.
# ---------------------------------------------------------------------------------------------

ATTRIBUTE_TYPES = {0: "UNDEFINED", 1: "FLOAT", 2: "INT", 3: "STRING", 4: "TENSOR", 5: "GRAPH",
                   6: "FLOATS", 7: "INTS", 8: "STRINGS", 9: "TENSORS", 10: "GRAPHS",
                   11: "SPARSE_TENSOR", 12: "SPARSE_TENSORS", 13: "TYPE_PROTO", 14: "TYPE_PROTOS"}

SCHEMA = {
    "ModelProto": {
        1: F("ir_version", "int"), 8: R("opset_import", "message", "OperatorSetIdProto"),
        2: F("producer_name", "string"), 7: F("graph", "message", "GraphProto"),
    },
    "OperatorSetIdProto": {1: F("domain", "string"), 2: F("version", "int")},
    "GraphProto": {
        1: R("node", "message", "NodeProto"), 2: F("name", "string"),
        5: R("initializer", "message", "TensorProto"), 15: R("sparse_initializer", "bytes"),
        11: R("input", "message", "ValueInfoProto"), 12: R("output", "message", "ValueInfoProto"),
    },
    "NodeProto": {
        1: R("input", "string"), 2: R("output", "string"), 3: F("name", "string"),
        4: F("op_type", "string"), 7: F("domain", "string"),
        5: R("attribute", "message", "AttributeProto"),
    },
    "AttributeProto": {
        1: F("name", "string"), 20: F("type", "enum", enum=ATTRIBUTE_TYPES), 2: F("f", "float"),
        3: F("i", "int"), 4: F("s", "bytes"), 5: F("t", "message", "TensorProto"),
        7: R("floats", "float"), 8: R("ints", "int"), 9: R("strings", "bytes"),
        21: F("ref_attr_name", "string"),
    },
    "TensorProto": {
        1: R("dims", "int"), 2: F("data_type", "int"), 4: R("float_data", "float"),
        5: R("int32_data", "int"), 7: R("int64_data", "int"), 8: F("name", "string"),
        9: F("raw_data", "view"), 10: R("double_data", "double"), 11: R("uint64_data", "uint"),
        14: F("data_location", "int"),
    },
    "ValueInfoProto": {1: F("name", "string"), 2: F("type", "message", "TypeProto")},
    "TypeProto": {1: F("tensor_type", "message", "TypeProtoTensor")},
    "TypeProtoTensor": {1: F("elem_type", "int"), 2: F("shape", "message", "TensorShapeProto")},
    "TensorShapeProto": {1: R("dim", "message", "Dimension")},
    "Dimension": {1: F("dim_value", "int"), 2: F("dim_param", "string")},
}

# TensorProto.DataType -> numpy dtype of its raw_data (little-endian) and its typed field.
DTYPES = {
    1: ("<f4", "float_data"), 2: ("u1", "int32_data"), 3: ("i1", "int32_data"),
    4: ("<u2", "int32_data"), 5: ("<i2", "int32_data"), 6: ("<i4", "int32_data"),
    7: ("<i8", "int64_data"), 9: ("?", "int32_data"), 10: ("<f2", "int32_data"),
    11: ("<f8", "double_data"), 12: ("<u4", "uint64_data"), 13: ("<u8", "uint64_data"),
    16: ("<u2", "int32_data"),                        # bfloat16: the top half of a float32
}
DTYPE_NAMES = {0: "UNDEFINED", 8: "STRING", 14: "COMPLEX64", 15: "COMPLEX128"}

SUPPORTED = ("Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "LRN", "Concat",
             "Dropout", "Flatten", "Reshape", "Gemm", "MatMul", "Softmax", "Constant",
             "ConstantOfShape", "Identity")


# ---------------------------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------------------------

def read_model(path):
    """(path, bytes, ModelProto as a dict); ZFNetError if the file is not a readable ONNX model."""
    path, data = read_source(path, "ONNX .onnx model")
    try:
        model = decode(data, "ModelProto", SCHEMA)
    except ProtobufError as e:
        raise ZFNetError(f"{path}: not a readable ONNX model ({e}); the file is damaged or is not "
                         f"ONNX") from None
    if "graph" not in model or not model["graph"].get("node"):
        raise ZFNetError(f"{path}: no graph with nodes found; this is not an ONNX model (or it is damaged)")
    return path, data, model


def tensor_to_array(t, path, where):
    """A TensorProto as a numpy array (float16/bfloat16/float64 kept; callers cast)."""
    if t.get("data_location", 0) == 1:
        raise ZFNetError(f"{path}: {where} is stored in an external data file, which zfnet does not "
                         f"read; re-save the model with onnx.save(model, path, "
                         f"save_as_external_data=False)")
    code = t.get("data_type", 0)
    if code not in DTYPES:
        raise ZFNetError(f"{path}: {where} has data type {DTYPE_NAMES.get(code, code)}, which zfnet "
                         f"does not read")
    dtype, field = DTYPES[code]
    dims = tuple(int(d) for d in t.get("dims", []))
    if len(dims) > MAX_RANK:
        raise ZFNetError(f"{path}: {where} has {len(dims)} dimensions; the layers here use at most "
                         f"{MAX_RANK} (damaged file?)")
    if any(d < 0 for d in dims):
        raise ZFNetError(f"{path}: {where} has negative dimensions {dims}")
    count = math.prod(dims)                           # exact: np.prod would wrap around
    raw = t.get("raw_data")
    if raw is not None:
        size = np.dtype(dtype).itemsize
        if len(raw) != count * size:
            raise ZFNetError(f"{path}: {where} has {len(raw)} bytes of data for shape {dims} "
                             f"({count * size} expected; truncated or damaged file)")
        a = np.frombuffer(raw, dtype=dtype)
    else:
        values = t.get(field, [])
        if len(values) != count:
            raise ZFNetError(f"{path}: {where} has {len(values)} values for shape {dims} (damaged file)")
        if field in ("int32_data",) and code in (10, 16):
            a = np.asarray(values, dtype=np.int64).astype("<u2").view(dtype)   # 16-bit patterns
        else:
            a = np.asarray(values).astype(dtype)
    if code == 16:                                    # bfloat16 -> float32, exactly
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(a.dtype.newbyteorder("=")).reshape(dims)      # one copy, owned and writable


def _attributes(node, path):
    """{name: value} of a node's attributes (numbers, lists, arrays for tensors)."""
    out = {}
    for a in node.get("attribute", []):
        name, t = a.get("name", ""), a.get("type")
        if t is None:                                   # very old files: the type is implicit
            t = next((ty for key, ty in (("f", "FLOAT"), ("i", "INT"), ("s", "STRING"), ("t", "TENSOR"),
                                         ("floats", "FLOATS"), ("ints", "INTS")) if key in a), None)
        if a.get("ref_attr_name"):
            raise ZFNetError(f"{path}: node {node.get('name', '')!r} uses a function attribute reference")
        if t == "FLOAT":
            out[name] = float32_value(a.get("f", 0.0))
        elif t == "INT":
            out[name] = int(a.get("i", 0))
        elif t == "STRING":
            out[name] = a.get("s", b"").decode("utf-8", "replace")
        elif t == "FLOATS":
            out[name] = [float32_value(v) for v in a.get("floats", [])]
        elif t == "INTS":
            out[name] = [int(v) for v in a.get("ints", [])]
        elif t == "TENSOR":
            out[name] = tensor_to_array(a.get("t", {}), path, f"attribute {name!r} of node "
                                                              f"{node.get('name', '')!r}")
        else:
            out[name] = (t, None)                       # graphs etc.: never used by our ops
        want = ATTRIBUTE_KINDS.get(name)
        if want is not None and t != want:
            raise ZFNetError(f"{path}: node {node.get('name', '')!r} ({node.get('op_type', '')}): "
                             f"attribute {name!r} is of type {t}, ONNX defines it as {want} "
                             f"(the file is damaged or not valid ONNX)")
    return out


# The type ONNX gives each attribute the supported ops read; any other type is a damaged file.
ATTRIBUTE_KINDS = {
    **dict.fromkeys(("kernel_shape", "strides", "pads", "dilations", "value_ints"), "INTS"),
    **dict.fromkeys(("group", "axis", "ceil_mode", "count_include_pad", "transA", "transB", "size",
                     "value_int", "storage_order"), "INT"),
    **dict.fromkeys(("alpha", "beta", "bias", "ratio", "value_float"), "FLOAT"),
    "value_floats": "FLOATS", "auto_pad": "STRING", "value": "TENSOR",
}


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

_GENERIC = re.compile(r"^(|n|node|r|output|out|[A-Za-z]+_output)_?\d*$")
_PREFIX = {"relu": "relu", "lrn": "norm", "maxpool": "pool", "avgpool": "pool", "gap": "pool",
           "dropout": "drop", "concat": "concat"}
_WEIGHT_SUFFIX = re.compile(r"([_./](w|W|weight|weights|kernel))(_\d+)?$")
_DEVICE_PREFIX = re.compile(r"^(gpu|cpu)_\d+/")


def _meaningful(name, op_type):
    """A node or tensor name worth keeping: not n12, node_3, Conv_0, /Flatten_output_0, ..."""
    if not name or _GENERIC.match(name):
        return None
    if re.fullmatch(rf"{re.escape(op_type)}_?\d*", name, re.IGNORECASE):
        return None
    m = re.fullmatch(r"/(?:.*/)?([^/]+)/[A-Za-z]+(?:_\d+)?(?:_output_\d+)?", name)
    if m:                                              # torch.onnx: /features/features.0/Conv
        return m.group(1)
    if name.startswith("/"):
        return None                                    # /Flatten, /Flatten_output_0
    return name


def weight_stem(name):
    """gpu_0/conv1_w_0 -> conv1; features.0.weight -> features.0; conv1_w -> conv1."""
    stem = _DEVICE_PREFIX.sub("", name)
    stem = _WEIGHT_SUFFIX.sub("", stem)
    return stem or name


# ---------------------------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------------------------

def convert(path, *, architecture=None, input_shape=None):
    """A Net from an ONNX model file.

    architecture: a built-in name the model must be (ZFNetError naming the first difference).
    input_shape: (C, H, W) when the model's input has symbolic height/width.
    """
    path, data, model = read_model(path)
    opset = 1
    for o in model.get("opset_import", []):
        if o.get("domain", "") in ("", "ai.onnx"):
            opset = int(o.get("version", 1))
    walk = _Walk(path, model["graph"], opset, input_shape)
    walk.run()
    arch, params, notes = walk.builder.finish(Path(path).stem, walk.output)
    arch, params, matched = adopt_builtin(arch, params, architecture, path)
    meta = provenance(path, data, CONVERTER, onnx_opset=opset)
    if notes:
        meta["conversion_notes"] = notes
    return make_net(path, arch, params, meta)


class _Walk:
    def __init__(self, path, graph, opset, input_shape):
        self.path, self.graph, self.opset = path, graph, opset
        self.override_shape = tuple(input_shape) if input_shape is not None else None
        self.consts = {}          # tensor name -> array (initializers and folded constants)
        self.tensor = {}          # ONNX tensor name -> spec tensor name (or INPUT)
        self.builder = None
        self.output = None
        self.last_number = None   # digits of the last conv/linear name, for Caffe-style names
        self.fused_adds = {}      # Add node index -> MatMul node index whose bias it is
        self.folded = 0           # elements made by ConstantOfShape so far

    def fail(self, msg):
        return ZFNetError(f"{self.path}: {msg}")

    # -- setup -----------------------------------------------------------------------------------
    def _initializers(self):
        for t in self.graph.get("initializer", []):
            name = t.get("name", "")
            self.consts[name] = tensor_to_array(t, self.path, f"initializer {name!r}")
        if self.graph.get("sparse_initializer"):
            raise self.fail("has sparse initializers, which zfnet does not read")

    def _input(self):
        inputs = [v for v in self.graph.get("input", []) if v.get("name") not in self.consts]
        used = {i for n in self.graph.get("node", []) for i in n.get("input", [])}
        inputs = [v for v in inputs if v.get("name") in used]
        if len(inputs) != 1:
            names = [v.get("name") for v in inputs]
            raise self.fail(f"the graph has {len(inputs)} inputs {names}; zfnet networks have exactly one")
        v = inputs[0]
        dims = v.get("type", {}).get("tensor_type", {}).get("shape", {}).get("dim", [])
        shape = [d.get("dim_value") if "dim_value" in d else None for d in dims]
        if self.override_shape is not None:
            chw = tuple(int(d) for d in self.override_shape)
            if len(shape) == 4 and shape[1] is not None and shape[1] != chw[0]:
                raise self.fail(f"input_shape {chw} does not match the model's {shape[1]} input channels")
        else:
            if len(shape) != 4:
                raise self.fail(f"input {v.get('name')!r} has shape {shape}; zfnet needs an (N, C, H, W) image input")
            if any(d is None or d <= 0 for d in shape[1:]):
                raise self.fail(f"input {v.get('name')!r} has symbolic size {shape}; pass "
                                f"input_shape=(C, H, W)")
            chw = tuple(shape[1:])
        self.builder = GraphBuilder(self.path, chw)
        self.tensor[v["name"]] = INPUT
        self.batch = shape[0] if shape and shape[0] else None

    def _outputs(self):
        outs = [v.get("name") for v in self.graph.get("output", [])]
        if len(outs) != 1:
            raise self.fail(f"the graph has {len(outs)} outputs {outs}; zfnet networks have one")
        return outs[0]

    def _plan_fusions(self, nodes):
        """MatMul followed by Add of a constant (its only consumer) is one Linear layer."""
        consumers = {}
        for i, n in enumerate(nodes):
            for t in n.get("input", []):
                consumers.setdefault(t, []).append(i)
        for i, n in enumerate(nodes):
            if n.get("op_type") != "MatMul":
                continue
            out = n.get("output", [""])[0]
            users = consumers.get(out, [])
            if len(users) == 1 and nodes[users[0]].get("op_type") == "Add":
                add = nodes[users[0]]
                other = [t for t in add.get("input", []) if t != out]
                if len(other) == 1 and other[0] in self.consts:
                    self.fused_adds[users[0]] = (i, other[0])
        self.consumers = consumers

    # -- the walk --------------------------------------------------------------------------------
    def run(self):
        self._initializers()
        self._input()
        final = self._outputs()
        nodes = self.graph["node"]
        self._plan_fusions(nodes)
        self.matmul_bias = {i: name for _, (i, name) in self.fused_adds.items()}
        for index, node in enumerate(nodes):
            op = node.get("op_type", "")
            if not node.get("output") or not node["output"][0]:
                raise self.fail(f"node {index} {node.get('name', '')!r} ({op}) has no output")
            if node.get("domain", "") not in ("", "ai.onnx"):
                raise self.fail(f"node {node.get('name', '')!r} uses op {op!r} of domain "
                                f"{node['domain']!r}; only standard ONNX ops are supported")
            attrs = _attributes(node, self.path)
            if self._fold_constant(node, op, attrs):
                continue
            if index in self.fused_adds:
                matmul_index, _ = self.fused_adds[index]
                self.tensor[node["output"][0]] = self._activation(node, nodes[matmul_index]["output"][0])
                continue
            handler = _HANDLERS.get(op)
            if handler is None:
                raise self.fail(f"node {node.get('name', '')!r} has op {op!r}, which zfnet does not "
                                f"support (supported: {', '.join(SUPPORTED)})")
            self.index = index
            out = handler(self, node, attrs)
            self.tensor[node["output"][0]] = out
        if final not in self.tensor:
            raise self.fail(f"the graph output {final!r} is not computed from the input by supported ops")
        self.output = self.tensor[final]
        if self.output == INPUT:
            raise self.fail("the graph output is its input")

    def _fold_constant(self, node, op, attrs):
        """Evaluate Constant, ConstantOfShape and Identity on constants; True if done."""
        outs = node.get("output", [])
        ins = node.get("input", [])
        if op == "Constant":
            for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                if key in attrs:
                    v = attrs[key]
                    if key != "value":
                        v = np.asarray(v, dtype=np.float32 if "float" in key else np.int64)
                    self.consts[outs[0]] = v
                    return True
            raise self.fail(f"Constant node {node.get('name', '')!r} has no value we can read")
        if op == "ConstantOfShape":
            if not ins or ins[0] not in self.consts:
                raise self.fail(f"ConstantOfShape node {node.get('name', '')!r} has a shape that is "
                                f"not a constant")
            shape = tuple(int(d) for d in np.asarray(self.consts[ins[0]]).reshape(-1))
            value = attrs.get("value", np.zeros(1, dtype=np.float32))
            if np.size(value) != 1 or any(d < 0 for d in shape) or len(shape) > MAX_RANK:
                raise self.fail(f"ConstantOfShape node {node.get('name', '')!r} is malformed")
            self.folded += math.prod(shape)
            if self.folded > MAX_FOLDED_ELEMENTS or max(shape, default=0) > MAX_FOLDED_ELEMENTS:
                raise self.fail(f"ConstantOfShape node {node.get('name', '')!r} makes a {shape} "
                                f"tensor: more than the {MAX_FOLDED_ELEMENTS} values any network "
                                f"here needs (damaged file?)")
            self.consts[outs[0]] = np.broadcast_to(np.asarray(value).reshape(()), shape)   # no copy
            return True
        if op == "Identity" and ins and ins[0] in self.consts:
            self.consts[outs[0]] = self.consts[ins[0]]
            return True
        if op == "Identity" and ins:
            self.tensor[outs[0]] = self._activation(node, 0)
            return True
        return False

    # -- helpers for handlers ----------------------------------------------------------------------
    def _activation(self, node, i=0):
        """The spec tensor of input `i` of `node` (or of the ONNX tensor named `i`)."""
        ins = node.get("input", [])
        if isinstance(i, str):
            t = i
        elif i >= len(ins) or not ins[i]:
            raise self.fail(f"node {node.get('name', '')!r} ({node.get('op_type')}) lacks input {i}")
        else:
            t = ins[i]
        if t in self.consts:
            raise self.fail(f"node {node.get('name', '')!r} ({node.get('op_type')}) applies to the "
                            f"constant {t!r}; only layers on the image are supported")
        if t not in self.tensor:
            raise self.fail(f"node {node.get('name', '')!r} reads {t!r}, which is not computed "
                            f"before it (nodes must be in topological order)")
        return self.tensor[t]

    def _const(self, node, i, what, optional=False):
        ins = node.get("input", [])
        if i >= len(ins) or not ins[i]:
            if optional:
                return None
            raise self.fail(f"node {node.get('name', '')!r} ({node.get('op_type')}) has no {what}")
        t = ins[i]
        if t not in self.consts:
            raise self.fail(f"node {node.get('name', '')!r}: its {what} {t!r} is not a constant "
                            f"(weights computed from the input are not supported)")
        return self.consts[t]

    def _only_first_output_used(self, node):
        for extra in node.get("output", [])[1:]:
            if extra and self.consumers.get(extra):
                raise self.fail(f"node {node.get('name', '')!r} ({node.get('op_type')}): its output "
                                f"{extra!r} is used; only the first output is supported")

    def name(self, node, op, weight=None):
        """The spec name for `node` (see the module docstring)."""
        op_type = node.get("op_type", "")
        name = _meaningful(node.get("name", ""), op_type)
        if name is None and weight is not None:
            name = weight_stem(weight)
        if name is None:
            out = node.get("output", [""])[0]
            name = _meaningful(out, op_type)
        if name is None:
            if op == "flatten":
                name = "flatten"
            elif op == "softmax":
                name = "prob"
            else:
                number = self.last_number if self.last_number is not None else ""
                name = f"{_PREFIX.get(op, op)}{number}"
        if op in ("conv", "linear"):
            m = re.search(r"(\d+)$", name)
            self.last_number = m.group(1) if m else None
        return self.builder.unique(name)


def _pads(w, node, attrs):
    """ONNX pads [top, left, bottom, right] -> (begin (ph, pw), end (ph, pw)); auto_pad refused."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto not in ("NOTSET", "VALID", ""):
        raise w.fail(f"node {node.get('name', '')!r}: auto_pad {auto} is not supported; export "
                     f"the model with explicit pads")
    pads = attrs.get("pads", [0, 0, 0, 0])
    if len(pads) != 4:
        raise w.fail(f"node {node.get('name', '')!r}: pads {pads} are not 2-D")
    return (pads[0], pads[1]), (pads[2], pads[3])


def _spatial(w, node, x):
    shape = w.builder.shape(x)
    if len(shape) != 3:
        raise w.fail(f"node {node.get('name', '')!r} ({node.get('op_type')}) needs an (N, C, H, W) "
                     f"input, gets (N, {', '.join(map(str, shape))})")
    return shape


def _pair(values, default, what, w, node):
    if values is None:
        return default
    if len(values) != 2:
        raise w.fail(f"node {node.get('name', '')!r}: {what} {values} is not 2-D")
    return int(values[0]), int(values[1])


def _conv(w, node, attrs):
    x = w._activation(node, 0)
    c, h, wd = _spatial(w, node, x)
    weight = np.asarray(w._const(node, 1, "weight"), dtype=np.float32)
    bias = w._const(node, 2, "bias", optional=True)
    if weight.ndim != 4:
        raise w.fail(f"Conv {node.get('name', '')!r}: weight of shape {weight.shape} is not 4-D")
    groups = int(attrs.get("group", 1))
    kernel = _pair(attrs.get("kernel_shape"), weight.shape[2:], "kernel_shape", w, node)
    if tuple(kernel) != tuple(weight.shape[2:]):
        raise w.fail(f"Conv {node.get('name', '')!r}: kernel_shape {kernel} does not match the "
                     f"weight {weight.shape}")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise w.fail(f"Conv {node.get('name', '')!r}: dilations {attrs['dilations']} are not supported")
    begin, end = _pads(w, node, attrs)
    if begin != end:
        raise w.fail(f"Conv {node.get('name', '')!r}: asymmetric pads {attrs.get('pads')} are not supported")
    stride = _pair(attrs.get("strides"), (1, 1), "strides", w, node)
    tensors = {"weight": weight}
    if bias is not None:
        tensors["bias"] = np.asarray(bias, dtype=np.float32).reshape(-1)
    spec = Conv(w.name(node, "conv", node["input"][1]), (x,), c, weight.shape[0], kernel, stride,
                begin, groups, bias is not None)
    return w.builder.add(spec, **tensors)


def _pool(w, node, attrs, op):
    x = w._activation(node, 0)
    c, h, wd = _spatial(w, node, x)
    w._only_first_output_used(node)
    if "kernel_shape" not in attrs:
        raise w.fail(f"{node.get('op_type')} {node.get('name', '')!r} has no kernel_shape")
    kernel = _pair(attrs["kernel_shape"], None, "kernel_shape", w, node)
    stride = _pair(attrs.get("strides"), (1, 1), "strides", w, node)
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise w.fail(f"{node.get('op_type')} {node.get('name', '')!r}: dilations are not supported")
    begin, end = _pads(w, node, attrs)
    ceil = bool(attrs.get("ceil_mode", 0))
    if begin != end:
        # Caffe2's export of Caffe's round-up rule: end pad = begin pad + stride - 1, floor mode.
        want = tuple(b + s - 1 for b, s in zip(begin, stride))
        onnx_out = tuple((n + b + e - k) // s + 1 for n, b, e, k, s in zip((h, wd), begin, end, kernel, stride))
        if ceil or tuple(end) != want or pool_output_size((h, wd), kernel, stride, begin, True) != onnx_out:
            raise w.fail(f"{node.get('op_type')} {node.get('name', '')!r}: asymmetric pads "
                         f"{attrs.get('pads')} are not supported")
        ceil = True
    if any(p > k // 2 for p, k in zip(begin, kernel)):
        raise w.fail(f"{node.get('op_type')} {node.get('name', '')!r}: pads {begin} larger than "
                     f"half the kernel {kernel} are not supported")
    if op == "maxpool":
        spec = MaxPool(w.name(node, op), (x,), kernel, stride, begin, ceil)
    else:
        if (ceil and attrs.get("count_include_pad", 0)
                and pool_output_size((h, wd), kernel, stride, begin, True)
                != pool_output_size((h, wd), kernel, stride, begin, False)):
            # Windows running past the padding: ONNX versions disagree on their divisor.
            raise w.fail(f"AveragePool {node.get('name', '')!r}: ceil_mode with count_include_pad "
                         f"and windows past the padding is ambiguous in ONNX; not supported")
        spec = AvgPool(w.name(node, op), (x,), kernel, stride, begin, ceil,
                       bool(attrs.get("count_include_pad", 0)))
    return w.builder.add(spec)


def _maxpool(w, node, attrs):
    return _pool(w, node, attrs, "maxpool")


def _avgpool(w, node, attrs):
    return _pool(w, node, attrs, "avgpool")


def _gap(w, node, attrs):
    x = w._activation(node, 0)
    _spatial(w, node, x)
    return w.builder.add(GlobalAvgPool(w.name(node, "gap"), (x,)))


def _relu(w, node, attrs):
    return w.builder.add(ReLU(w.name(node, "relu"), (w._activation(node, 0),)))


def _lrn(w, node, attrs):
    x = w._activation(node, 0)
    _spatial(w, node, x)
    size = int(attrs.get("size", 0))
    if size < 1 or size % 2 == 0:
        raise w.fail(f"LRN {node.get('name', '')!r}: size {size} must be odd (an even window is "
                     f"centred differently in ONNX)")
    spec = LRN(w.name(node, "lrn"), (x,), size, attrs.get("alpha", 1e-4), attrs.get("beta", 0.75),
               attrs.get("bias", 1.0), False)
    return w.builder.add(spec)


def _concat(w, node, attrs):
    inputs = tuple(w._activation(node, i) for i in range(len(node.get("input", []))))
    ranks = {len(w.builder.shape(t)) for t in inputs}
    axis = int(attrs.get("axis", 1))
    if ranks != {3} or axis not in (1, -3):
        raise w.fail(f"Concat {node.get('name', '')!r}: only concatenation of (N, C, H, W) maps "
                     f"along channels is supported (axis {axis})")
    return w.builder.add(Concat(w.name(node, "concat"), inputs))


def _dropout(w, node, attrs):
    w._only_first_output_used(node)
    ratio = attrs.get("ratio", 0.5)
    r = w._const(node, 1, "ratio", optional=True)
    if r is not None:
        ratio = float32_value(np.asarray(r).reshape(()))
    return w.builder.add(Dropout(w.name(node, "dropout"), (w._activation(node, 0),), ratio))


def _flatten(w, node, attrs):
    x = w._activation(node, 0)
    rank = len(w.builder.shape(x)) + 1
    axis = int(attrs.get("axis", 1))
    if axis < 0:
        axis += rank
    if axis != 1:
        raise w.fail(f"Flatten {node.get('name', '')!r}: only axis 1 (to (N, -1)) is supported")
    return w.builder.add(Flatten(w.name(node, "flatten"), (x,)))


def _reshape(w, node, attrs):
    x = w._activation(node, 0)
    shape = [int(v) for v in np.asarray(w._const(node, 1, "shape")).reshape(-1)]
    features = int(np.prod(w.builder.shape(x)))
    ok = len(shape) == 2 and (
        (shape[0] in (0, 1, -1, w.batch) and shape[1] == features)
        or (shape[0] in (0, 1, w.batch) and shape[1] == -1))
    if not ok:
        raise w.fail(f"Reshape {node.get('name', '')!r} to {shape}: only a flatten to (N, -1) "
                     f"(here (N, {features})) is supported")
    return w.builder.add(Flatten(w.name(node, "flatten"), (x,)))


def _linear(w, node, weight, bias, x):
    shape = w.builder.shape(x)
    if len(shape) != 1:
        raise w.fail(f"{node.get('op_type')} {node.get('name', '')!r} needs a flat (N, K) input, "
                     f"gets (N, {', '.join(map(str, shape))}); add a Flatten before it")
    tensors = {"weight": weight}
    if bias is not None:
        tensors["bias"] = bias
    name = w.name(node, "linear", node["input"][1])
    return w.builder.add(Linear(name, (x,), shape[0], weight.shape[0], bias is not None), **tensors)


def _gemm(w, node, attrs):
    if attrs.get("transA", 0):
        raise w.fail(f"Gemm {node.get('name', '')!r}: transA=1 is not supported")
    x = w._activation(node, 0)
    b = np.asarray(w._const(node, 1, "weight B"), dtype=np.float32)
    c = w._const(node, 2, "bias C", optional=True)
    if b.ndim != 2:
        raise w.fail(f"Gemm {node.get('name', '')!r}: B has shape {b.shape}, not 2-D")
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    # Y = alpha * x B' + beta * C: W = alpha * B'^T, i.e. B itself when transB = 1.
    weight = b if attrs.get("transB", 0) else b.T                      # (O, K)
    if alpha != 1.0:
        weight = weight * np.float32(alpha)
    bias = None
    if c is not None:
        c = np.asarray(c, dtype=np.float32)
        out = weight.shape[0]
        if c.size not in (1, out) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
            raise w.fail(f"Gemm {node.get('name', '')!r}: bias C of shape {c.shape} does not "
                         f"broadcast to ({out},)")
        bias = np.broadcast_to(c.reshape(-1), (out,)).copy()
        if beta != 1.0:
            bias = bias * np.float32(beta)
    return _linear(w, node, np.ascontiguousarray(weight), bias, x)


def _matmul(w, node, attrs):
    x = w._activation(node, 0)
    b = np.asarray(w._const(node, 1, "weight"), dtype=np.float32)
    if b.ndim != 2:
        raise w.fail(f"MatMul {node.get('name', '')!r}: weight of shape {b.shape} is not 2-D")
    bias = None
    if w.index in w.matmul_bias:
        c = np.asarray(w.consts[w.matmul_bias[w.index]], dtype=np.float32)
        if c.size != b.shape[1]:
            raise w.fail(f"Add after MatMul {node.get('name', '')!r}: bias of shape {c.shape} "
                         f"does not match {b.shape[1]} outputs")
        bias = c.reshape(-1)
    return _linear(w, node, np.ascontiguousarray(b.T), bias, x)        # x (N, K) @ B (K, O)


def _softmax(w, node, attrs):
    x = w._activation(node, 0)
    shape = w.builder.shape(x)
    axis = int(attrs.get("axis", 1 if w.opset < 13 else -1))
    rank = len(shape) + 1
    if axis < 0:
        axis += rank
    flat = len(shape) == 1 or shape[1:] == (1, 1) and w.opset < 13
    if not ((len(shape) == 1 and axis == 1) or (len(shape) == 3 and w.opset >= 13 and axis == 1)
            or (flat and axis == 1)):
        raise w.fail(f"Softmax {node.get('name', '')!r}: only a softmax over the channels/classes "
                     f"(axis 1) is supported, here axis {attrs.get('axis')} of a rank-{rank} tensor "
                     f"(opset {w.opset})")
    return w.builder.add(Softmax(w.name(node, "softmax"), (x,)))


_HANDLERS = {
    "Conv": _conv, "Relu": _relu, "MaxPool": _maxpool, "AveragePool": _avgpool,
    "GlobalAveragePool": _gap, "LRN": _lrn, "Concat": _concat, "Dropout": _dropout,
    "Flatten": _flatten, "Reshape": _reshape, "Gemm": _gemm, "MatMul": _matmul, "Softmax": _softmax,
}
