"""ONNX: the onnx package's light_zfnet512 / light_bvlc_alexnet graphs (real files nobody here
wrote), models built with onnx.helper, the ONNX reference evaluator as the independent check,
and damaged or unsupported files."""
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from zfnet import ZFNetError
from zfnet.convert import convert
from zfnet.convert import onnx as onnx_convert
from zfnet.net import (LRN, AvgPool, Concat, Conv, Dropout, Flatten, Linear, MaxPool,
                       ReLU, Softmax, forward, get_architecture)

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


class LRN_spec(OpRun):
    """ONNX LRN as its specification says, for the reference evaluator.

    onnx <= 1.23's reference LRN loops over the batch axis instead of the channels
    (onnx/onnx#7805, fixed upstream by #8331): with N = 1 only channel 0 is normalised. This is
    the spec's formula: y = x / (bias + alpha/size * sum_{c'} x[c']^2)^beta over channels
    c - floor((size-1)/2) ... c + ceil((size-1)/2).
    """
    op_domain = ""

    def _run(self, x, alpha=None, beta=None, bias=None, size=None):
        c = x.shape[1]
        before, after = (size - 1) // 2, size // 2
        square_sum = np.zeros_like(x, dtype=np.float64)
        for i in range(c):
            lo, hi = max(0, i - before), min(c, i + after + 1)
            square_sum[:, i] = (x[:, lo:hi].astype(np.float64) ** 2).sum(axis=1)
        return ((x / (bias + alpha / size * square_sum) ** beta).astype(x.dtype),)


LRN_spec.__name__ = "LRN"


def evaluator(model):
    return ReferenceEvaluator(model, new_ops=[LRN_spec])


def light(name):
    path = LIGHT / f"light_{name}.onnx"
    assert path.is_file(), f"{path} missing: the onnx package (a dev dependency) ships it"
    return path


# --- the light model-zoo graphs -------------------------------------------------------------------

def test_light_zfnet512_is_the_builtin_zfnet512():
    net = onnx_convert.convert(light("zfnet512"))
    assert net.arch == get_architecture("zfnet512")
    assert net.meta["architecture"] == "zfnet512" and net.meta["onnx_opset"] == 9
    # Every weight came from a ConstantOfShape node (value 0.02), evaluated at conversion time.
    for key, a in net.params.items():
        assert np.all(a == np.float32(0.02)), key


def test_light_bvlc_alexnet_has_bvlc_alexnets_hyper_parameters():
    net = onnx_convert.convert(light("bvlc_alexnet"))
    builtin = get_architecture("bvlc_alexnet")
    mine = net.arch
    assert [l.name for l in mine.layers] == [l.name for l in builtin.layers]
    assert mine.param_shapes() == builtin.param_shapes()
    # The same layers with the same hyper-parameters, except what the Caffe2 export changed:
    # a 224x224 input, and pool1/pool2 rounding down (ONNX's default; at 227 this is the same).
    differences = {l.name for l, b in zip(mine.layers, builtin.layers) if l != b}
    assert differences == {"pool1", "pool2"}
    for name in differences:
        assert mine.layer(name) == MaxPool(name, builtin.layer(name).inputs, 3, 2, 0, ceil_mode=False)
    assert mine.input_shape == (3, 224, 224)
    # pool5 is written with pads [0, 0, 1, 1]: end pad = stride - 1 is Caffe's round-up rule.
    assert mine.layer("pool5") == builtin.layer("pool5") and mine.layer("pool5").ceil_mode
    assert net.meta["architecture"] == "light_bvlc_alexnet"


def randomize_light(name, rng):
    """The light model with its ConstantOfShape weights replaced by random initializers."""
    model = onnx.load(light(name))
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes, weights = [], {}
    for n in g.node:
        if n.op_type == "ConstantOfShape":
            shape = tuple(int(d) for d in consts[n.input[0]])
            if len(shape) > 1:                         # He-scaled weights keep activations O(1)
                a = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / np.prod(shape[1:])))
            else:
                a = rng.uniform(0.0, 0.1, shape).astype(np.float32)
            weights[n.output[0]] = a
            g.initializer.append(numpy_helper.from_array(a, n.output[0]))
        else:
            nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    pool5 = next(n for n in nodes if n.op_type == "Reshape").input[0]     # before the flatten
    logits = next(n for n in nodes if n.op_type == "Softmax").input[0]
    return model, weights, (pool5, logits)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zfnet512", "bvlc_alexnet"])
def test_light_models_with_random_weights_equal_the_onnx_reference_evaluator(tmp_path, rng, name):
    model, weights, (pool5_name, logits_name) = randomize_light(name, rng)
    path = tmp_path / f"{name}_random.onnx"
    onnx.save(model, path)
    net = convert(path)
    x = (rng.standard_normal((1, 3, 224, 224)) * 20).astype(np.float32)
    # One image: the evaluator is plain NumPy (about 3 s for ZFNet-512 at 224x224 here).
    prob, pool5, logits = evaluator(model).run([model.graph.output[0].name, pool5_name, logits_name],
                                               {model.graph.input[0].name: x})
    result = forward(net, x, keep=["pool5", "fc8"])
    for got, want in ((result["pool5"], pool5), (result["fc8"], logits)):
        scale = np.abs(want).max()
        assert np.abs(got.reshape(want.shape) - want).max() <= 1e-4 * scale
    np.testing.assert_allclose(result.output, prob, atol=1e-5)
    # The random tensors arrived unchanged (Gemm transB=1: the weight is B itself).
    assert np.array_equal(net.params["fc6.weight"], weights[[k for k in weights if "fc6_w" in k][0]])


# --- models built with onnx.helper -------------------------------------------------------------------

def make_model(rng, opset=13):
    """A small graph with every supported op, random weights; returns (model, weights)."""
    def r(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    w = {"c1_w": r(6, 3, 3, 3), "c1_b": r(6), "g_w": r(6, 3, 1, 1), "e3_w": r(4, 6, 3, 3),
         "e3_b": r(4), "fc1_B": r(10 * 2 * 3, 7), "fc1_C": r(7), "mm_B": r(7, 5), "mm_C": r(5),
         "ratio": np.array(0.3, dtype=np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "c1_w", "c1_b"], ["c1"], "c1", pads=[1, 1, 1, 1], strides=[2, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["relu_a"], "relu_a"),
        helper.make_node("MaxPool", ["relu_a"], ["p1"], "p1", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("LRN", ["p1"], ["norm_a"], "norm_a", size=3, alpha=1e-3, beta=0.7, bias=1.5),
        helper.make_node("Conv", ["norm_a", "g_w"], ["g"], "g", group=2),
        helper.make_node("Conv", ["norm_a", "e3_w", "e3_b"], ["e3"], "e3", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["g", "e3"], ["cat"], "cat", axis=1),
        helper.make_node("AveragePool", ["cat"], ["a1"], "a1", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("Dropout", ["a1", "ratio"], ["d"], "d"),
        helper.make_node("Flatten", ["d"], ["f"], "f", axis=1),
        helper.make_node("Gemm", ["f", "fc1_B", "fc1_C"], ["fc1"], "fc1", alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["fc1"], ["relu_b"], "relu_b"),
        helper.make_node("MatMul", ["relu_b", "mm_B"], ["mm"], "mm"),
        helper.make_node("Add", ["mm", "mm_C"], ["mm_add"], "mm_add"),
        helper.make_node("Softmax", ["mm_add"], ["prob"], "prob", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 15, 13])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(a, k) for k, a in w.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), w


def test_helper_model_round_trip_specs_and_tensors(tmp_path, rng):
    model, w = make_model(rng)
    path = tmp_path / "small.onnx"
    onnx.save(model, path)
    net = convert(path)
    a = net.arch
    assert a.input_shape == (3, 15, 13) and a.name == "small"
    assert a.layers == (
        Conv("c1", ("data",), 3, 6, 3, (2, 1), 1, 1, True), ReLU("relu_a", ("c1",)),
        MaxPool("p1", ("relu_a",), 3, 2, 0, True), LRN("norm_a", ("p1",), 3, 1e-3, 0.7, 1.5, False),
        Conv("g", ("norm_a",), 6, 6, 1, 1, 0, 2, False), Conv("e3", ("norm_a",), 6, 4, 3, 1, 1, 1, True),
        Concat("cat", ("g", "e3")), AvgPool("a1", ("cat",), 3, 2, 1, False, True),
        Dropout("d", ("a1",), 0.3), Flatten("f", ("d",)), Linear("fc1", ("f",), 60, 7, True),
        ReLU("relu_b", ("fc1",)), Linear("mm", ("relu_b",), 7, 5, True), Softmax("prob", ("mm",)))
    p = net.params
    np.testing.assert_array_equal(p["c1.weight"], w["c1_w"])
    np.testing.assert_array_equal(p["g.weight"], w["g_w"])
    # Gemm transB=0, alpha, beta: W = alpha * B^T, b = beta * C.
    np.testing.assert_array_equal(p["fc1.weight"], np.float32(0.5) * w["fc1_B"].T)
    np.testing.assert_array_equal(p["fc1.bias"], np.float32(2.0) * w["fc1_C"])
    # MatMul + Add: W = B^T, b = C.
    np.testing.assert_array_equal(p["mm.weight"], w["mm_B"].T)
    np.testing.assert_array_equal(p["mm.bias"], w["mm_C"])
    x = rng.standard_normal((2, 3, 15, 13)).astype(np.float32)
    (want,) = evaluator(model).run(None, {"x": x})
    np.testing.assert_allclose(forward(net, x).output, want, rtol=1e-4, atol=1e-6)


def test_constant_identity_reshape_gap_and_added_softmax(tmp_path, rng):
    w = rng.standard_normal((5, 6)).astype(np.float32)
    cw = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["cw"], value=numpy_helper.from_array(cw)),
        helper.make_node("Identity", ["cw"], ["cw2"]),
        helper.make_node("Conv", ["input.1", "cw2"], ["/features/features.0/Conv_output_0"],
                         "/features/features.0/Conv"),
        helper.make_node("GlobalAveragePool", ["/features/features.0/Conv_output_0"], ["gap_out"], "GlobalAveragePool_3"),
        helper.make_node("Constant", [], ["shape"], value_ints=[0, -1]),
        helper.make_node("Reshape", ["gap_out", "shape"], ["flat"], "Reshape_5"),
        helper.make_node("Gemm", ["flat", "classifier.weight", "classifier.bias"], ["logits"], "Gemm_6", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(w, "classifier.weight"), numpy_helper.from_array(np.ones(5, np.float32), "classifier.bias")])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    net = convert(path)
    assert [(l.name, l.op) for l in net.arch.layers] == [
        ("features.0", "conv"), ("gap_out", "gap"), ("flat", "flatten"), ("classifier", "linear"),
        ("prob", "softmax")]
    assert net.meta["conversion_notes"] == {"softmax_added": True}
    np.testing.assert_array_equal(net.params["features.0.weight"], cw)
    assert "features.0.bias" not in net.params


def test_symbolic_input_size_needs_input_shape(tmp_path, rng):
    model, _ = make_model(rng)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    path = tmp_path / "dyn.onnx"
    onnx.save(model, path)
    with pytest.raises(ZFNetError, match=r"dyn\.onnx.*symbolic size.*input_shape"):
        convert(path)
    assert convert(path, input_shape=(3, 15, 13)).arch.input_shape == (3, 15, 13)


def test_required_architecture_is_checked(squeezenet_dir):
    with pytest.raises(ZFNetError, match=r"squeezenet1_0\.onnx.*not 'vgg16'"):
        convert(squeezenet_dir / "squeezenet1_0.onnx", architecture="vgg16")


# --- damaged and unsupported files ---------------------------------------------------------------

def save_edited(tmp_path, rng, edit, name="bad.onnx"):
    model, _ = make_model(rng)
    edit(model)
    path = tmp_path / name
    onnx.save(model, path)
    return path


def node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def set_attr(model, node_name, **attrs):
    n = node(model, node_name)
    keep = [a for a in n.attribute if a.name not in attrs]
    del n.attribute[:]
    n.attribute.extend(keep + [helper.make_attribute(k, v) for k, v in attrs.items()])


def add_second_input(model):
    model.graph.input.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4]))
    node(model, "cat").input.append("y")


def replace_init(model, name, array):
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, name))


@pytest.mark.parametrize("edit, words", [
    (lambda m: setattr(node(m, "relu_a"), "op_type", "Sigmoid"), "node 'relu_a' has op 'Sigmoid'"),
    (lambda m: m.graph.node.insert(2, helper.make_node("Add", ["relu_a", "relu_a"], ["x2"], "plus")), "op 'Add'"),
    (lambda m: replace_init(m, "c1_w", np.full((6, 3, 3, 3), np.nan, np.float32)), "c1.*NaN"),
    (lambda m: set_attr(m, "c1", pads=[1, 1, 0, 0]), "asymmetric pads"),
    (lambda m: set_attr(m, "c1", auto_pad="SAME_UPPER"), "auto_pad SAME_UPPER"),
    (lambda m: set_attr(m, "c1", dilations=[2, 2]), "dilations"),
    (lambda m: set_attr(m, "norm_a", size=4), "size 4 must be odd"),
    (lambda m: set_attr(m, "fc1", transA=1), "transA=1"),
    (lambda m: set_attr(m, "cat", axis=2), "along channels"),
    (lambda m: set_attr(m, "f", axis=2), "only axis 1"),
    (lambda m: set_attr(m, "p1", pads=[0, 0, 2, 2]), "asymmetric pads"),
    (lambda m: replace_init(m, "c1_w", np.ones((6, 3, 3, 2), np.float32)), "kernel_shape"),
    (lambda m: replace_init(m, "fc1_B", np.ones((119, 7), np.float32)), "shape"),
    (lambda m: add_second_input(m), "2 inputs"),
    (lambda m: node(m, "fc1").input.__setitem__(1, "f"), "is not a constant"),
    (lambda m: setattr(node(m, "relu_b"), "domain", "com.microsoft"), "domain 'com.microsoft'"),
])
def test_unsupported_or_broken_graphs_are_refused(tmp_path, rng, edit, words):
    path = save_edited(tmp_path, rng, edit)
    with pytest.raises(ZFNetError, match=words) as e:
        convert(path)
    assert str(path) in str(e.value)


def test_reshape_that_is_not_a_flatten_is_refused(tmp_path):
    nodes = [helper.make_node("Constant", [], ["s"], value_ints=[0, 3, -1]),
             helper.make_node("Reshape", ["x", "s"], ["y"], "reshape")]
    graph = helper.make_graph(nodes, "r", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "r.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ZFNetError, match=r"Reshape 'reshape' to \[0, 3, -1\]"):
        convert(path)


def test_external_data_is_refused_with_a_fix(tmp_path, rng):
    model, _ = make_model(rng)
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="weights.bin")
    path = tmp_path / "ext.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ZFNetError, match="external data file.*save_as_external_data=False"):
        convert(path)


def test_empty_truncated_and_garbage_files(tmp_path, squeezenet_dir, rng):
    data = (squeezenet_dir / "squeezenet1_0.onnx").read_bytes()
    cases = {"empty.onnx": (b"", "empty"),
             "truncated.onnx": (data[: len(data) - 1000], "truncated"),
             "head.onnx": (data[:200], "truncated|no graph"),
             "garbage.onnx": (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not a readable|not ONNX|no graph")}
    for name, (content, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ZFNetError, match=words) as e:
            convert(path)
        assert str(path) in str(e.value)
    # A damaged weight: a raw_data length that does not match the dims.
    model, _ = make_model(rng)
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    path = tmp_path / "short_tensor.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ZFNetError, match=r"initializer 'c1_w' has 644 bytes.*648 expected"):
        convert(path)


def test_float16_and_float64_initializers_are_read(tmp_path, rng):
    for dtype in (np.float16, np.float64):
        model, w = make_model(rng)
        replace_init(model, "c1_w", w["c1_w"].astype(dtype))
        path = tmp_path / f"{np.dtype(dtype).name}.onnx"
        onnx.save(model, path)
        net = convert(path)
        np.testing.assert_array_equal(net.params["c1.weight"], w["c1_w"].astype(dtype).astype(np.float32))
