"""Regression tests for the hostile and damaged files of issue 16, each rebuilt from its
description: every one must end in a ZFNetError that names the file (and, for weights, the layer),
without allocating what the file's headers claim and without changing anything beyond the load."""
import io
import resource
import struct
import zipfile
import zlib

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from zfnet import ZFNetError
from zfnet.convert import convert, guard
from zfnet.convert import torch_pth


# -- ONNX -----------------------------------------------------------------------------------------
def _onnx_model(conv_attrs=None, concat_axis=None, extra_nodes=(), weight=None):
    """conv -> relu -> (concat with itself) graph on a 3x8x8 input, written with onnx.helper."""
    w = weight if weight is not None else numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "conv1_w")
    attrs = {"kernel_shape": [3, 3]} if conv_attrs is None else conv_attrs
    conv = helper.make_node("Conv", ["data", "conv1_w"], ["c"], name="conv1")
    for k, v in attrs.items():
        conv.attribute.append(v if isinstance(v, onnx.AttributeProto) else helper.make_attribute(k, v))
    nodes = [conv, helper.make_node("Relu", ["c"], ["r"], name="relu1")]
    out = "r"
    if concat_axis is not None:
        cat = helper.make_node("Concat", ["r", "r"], ["cat"], name="cat")
        cat.attribute.append(concat_axis)
        nodes.append(cat)
        out = "cat"
    nodes += list(extra_nodes)
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _write_onnx(tmp_path, model, name="bad.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_valid_base_model_converts(tmp_path):
    net = convert(_write_onnx(tmp_path, _onnx_model()))
    assert net.arch.layers[0].name == "conv1"


def test_onnx_int_attribute_where_ints_are_expected(tmp_path):
    path = _write_onnx(tmp_path, _onnx_model({"kernel_shape": helper.make_attribute("kernel_shape", 3)}))
    with pytest.raises(ZFNetError, match=r"bad\.onnx.*'conv1'.*'kernel_shape' is of type INT.*INTS"):
        convert(path)


def test_onnx_string_axis(tmp_path):
    axis = helper.make_attribute("axis", "channels")
    with pytest.raises(ZFNetError, match=r"bad\.onnx.*'axis' is of type STRING.*INT"):
        convert(_write_onnx(tmp_path, _onnx_model(concat_axis=axis)))


def test_onnx_float_where_int_is_expected(tmp_path):
    path = _write_onnx(tmp_path, _onnx_model({"kernel_shape": [3, 3], "group": helper.make_attribute("group", 1.5)}))
    with pytest.raises(ZFNetError, match=r"bad\.onnx.*'group' is of type FLOAT"):
        convert(path)


def test_onnx_node_without_outputs(tmp_path):
    model = _onnx_model()
    del model.graph.node[1].output[:]
    with pytest.raises(ZFNetError, match=r"bad\.onnx: node 1 'relu1' \(Relu\) has no output"):
        convert(_write_onnx(tmp_path, model))


def test_onnx_tensor_of_more_than_64_dimensions(tmp_path):
    w = helper.make_tensor("conv1_w", TensorProto.FLOAT, [1] * 65, [1.0])
    with pytest.raises(ZFNetError, match=r"bad\.onnx: initializer 'conv1_w' has 65 dimensions"):
        convert(_write_onnx(tmp_path, _onnx_model(weight=w)))


def test_onnx_dimensions_whose_product_overflows_int64(tmp_path):
    w = TensorProto(name="conv1_w", data_type=TensorProto.FLOAT, dims=[2**32, 2**32, 1, 1])
    with pytest.raises(ZFNetError, match=r"bad\.onnx: initializer 'conv1_w' has 0 values"):
        convert(_write_onnx(tmp_path, _onnx_model(weight=w)))


@pytest.mark.parametrize("dims", [[10**9, 3, 3, 3], [2, 3, 2**62, 0]])
def test_onnx_constant_of_shape_cannot_allocate_without_bound(tmp_path, dims):
    shape = helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array(dims, np.int64)))
    cos = helper.make_node("ConstantOfShape", ["s"], ["big_w"], name="big")
    model = _onnx_model(extra_nodes=[shape, cos])
    model.graph.node.insert(0, model.graph.node.pop(2))      # the constants first
    model.graph.node.insert(1, model.graph.node.pop(3))
    with pytest.raises(ZFNetError, match=rf"bad\.onnx: ConstantOfShape node 'big' makes a \({', '.join(map(str, dims))}\)"):
        convert(_write_onnx(tmp_path, model))


def test_the_parameters_a_file_can_make_us_allocate_are_bounded(tmp_path, monkeypatch):
    from zfnet.convert import _common
    monkeypatch.setattr(_common, "MAX_PARAMETERS", 53)          # the model has 2 * 3 * 3 * 3 = 54
    with pytest.raises(ZFNetError, match=r"bad\.onnx: layer 'conv1': the network would have 54 parameters, "
                                         r"more than the 53"):
        convert(_write_onnx(tmp_path, _onnx_model()))


def test_onnx_errors_from_the_layer_specs_name_the_file(tmp_path):
    """A kernel larger than its input: the spec's own error, which used to come without the file."""
    w = numpy_helper.from_array(np.ones((2, 3, 9, 9), np.float32), "conv1_w")
    with pytest.raises(ZFNetError, match=r"bad\.onnx"):
        convert(_write_onnx(tmp_path, _onnx_model({"kernel_shape": [9, 9]}, weight=w)))


def test_the_last_guard_names_the_file(tmp_path, monkeypatch):
    """Anything a converter did not foresee becomes a ZFNetError naming the file."""
    path = _write_onnx(tmp_path, _onnx_model())
    from zfnet.convert import onnx as onnx_convert

    def boom(*args, **kwargs):
        raise IndexError("list index out of range")
    monkeypatch.setattr(onnx_convert, "convert", boom)
    with pytest.raises(ZFNetError, match=r"bad\.onnx: damaged or not a valid weights file \(IndexError") as e:
        convert(path)
    assert e.value.unforeseen == "IndexError"
    with pytest.raises(ZFNetError, match=r"^x\.onnx: plain$"):
        with guard("x.onnx"):
            raise ZFNetError("plain")


# -- Caffe prototxt -------------------------------------------------------------------------------
@pytest.mark.parametrize("tail", ["input_dim: [1, 3", "input_dim: [1, 3,", "input_dim: ["])
def test_prototxt_unterminated_list(tmp_path, squeezenet_dir, tail):
    proto = tmp_path / "bad.prototxt"
    proto.write_text((squeezenet_dir / "deploy.prototxt").read_text() + "\n" + tail)
    with pytest.raises(ZFNetError, match=r"bad\.prototxt: cannot parse the prototxt: line \d+: unterminated list"):
        convert(squeezenet_dir / "squeezenet1_0.caffemodel", prototxt=proto)


def test_prototxt_nested_too_deeply(tmp_path, squeezenet_dir):
    proto = tmp_path / "deep.prototxt"
    proto.write_text("layer " + "{ a " * 5000)
    with pytest.raises(ZFNetError, match=r"deep\.prototxt: cannot parse the prototxt: blocks nested too deeply"):
        convert(squeezenet_dir / "squeezenet1_0.caffemodel", prototxt=proto)


# -- .pth -----------------------------------------------------------------------------------------
def _small_pth():
    buf = io.BytesIO()
    torch.save({"features.0.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)}, buf)
    return buf.getvalue()


def _patch_headers(data, member_suffix, offsets_values):
    """Set fields of the local and central headers of the member ending in `member_suffix`:
    offsets_values = {(local offset, central offset, width): value}."""
    b = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    central = next(i for i in range(len(data)) if data[i:i + 4] == b"PK\x01\x02"
                   and data[i + 46:i + 46 + len(info.filename)] == info.filename.encode())
    for (loc, cen, width), v in offsets_values.items():
        b[info.header_offset + loc:info.header_offset + loc + width] = v.to_bytes(width, "little")
        b[central + cen:central + cen + width] = v.to_bytes(width, "little")
    return bytes(b)


def _rezip(data, compression, change=None):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", compression) as dst:
        for info in src.infolist():
            payload = src.read(info)
            dst.writestr(info.filename, change(info.filename, payload) if change else payload)
    return out.getvalue()


def test_pth_small_file_loads_to_a_state_dict(tmp_path):
    path = tmp_path / "ok.pth"
    path.write_bytes(_rezip(_small_pth(), zipfile.ZIP_DEFLATED))
    state, _ = torch_pth.load_state_dict(path)
    np.testing.assert_array_equal(state["features.0.weight"].ravel(), np.arange(24))


@pytest.mark.parametrize("method", [99, 14, 12])      # unknown, LZMA and bzip2 over stored bytes
def test_pth_unknown_compression_method(tmp_path, method):
    path = tmp_path / "method.pth"
    path.write_bytes(_patch_headers(_small_pth(), "data/0", {(8, 10, 2): method}))
    with pytest.raises(ZFNetError, match=rf"method\.pth: member 'archive/data/0' uses compression method "
                                         rf"{method}; torch\.save files are stored or deflated"):
        convert(path)


@pytest.mark.parametrize("flags", [1, 0x41])
def test_pth_encryption_flag(tmp_path, flags):
    path = tmp_path / "encrypted.pth"
    path.write_bytes(_patch_headers(_small_pth(), "data.pkl", {(6, 8, 2): flags}))
    with pytest.raises(ZFNetError, match=r"encrypted\.pth: member 'archive/data\.pkl' is encrypted"):
        convert(path)


def test_pth_broken_deflate_stream_with_valid_crc(tmp_path):
    data = bytearray(_rezip(_small_pth(), zipfile.ZIP_DEFLATED))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start:start + 3] = b"\xff\xff\xff"                    # an invalid block type
    path = tmp_path / "deflate.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(ZFNetError, match=r"deflate\.pth: damaged zip archive \(error"):
        convert(path)


def _tensor_pickle(numel, size, stride):
    """A data.pkl for {"features.0.weight": tensor over storage '0' of `numel` floats}."""
    def uni(s):
        return b"X" + struct.pack("<I", len(s)) + s.encode()

    def ints(values):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"
    return (b"\x80\x02}" + uni("features.0.weight") + b"ctorch._utils\n_rebuild_tensor_v2\n("
            + b"(" + uni("storage") + b"ctorch\nFloatStorage\n" + uni("0") + uni("cpu")
            + b"J" + struct.pack("<i", numel) + b"tQ" + b"K\x00" + ints(size) + ints(stride)
            + b"\x89N" + b"tRs.")                        # requires_grad False, no hooks


def _pth_with(pickle_bytes, storage=None, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        if storage is not None:
            z.writestr(zipfile.ZipInfo("archive/data/0"), storage, compress_type=compression)
    return out.getvalue()


def test_pth_huge_shape_over_a_one_element_storage_is_refused_before_allocation(tmp_path):
    path = tmp_path / "expand.pth"
    path.write_bytes(_pth_with(_tensor_pickle(1, (20000, 20000), (0, 0)), b"\0" * 4))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ZFNetError, match=r"expand\.pth: .*shape \(20000, 20000\) \(400000000 values\) "
                                         r"over a storage of 1"):
        convert(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024   # KiB: no 1.6 GB


def test_pth_deflate_bomb_message(tmp_path):
    numel = 16 << 20
    path = tmp_path / "bomb.pth"
    path.write_bytes(_pth_with(_tensor_pickle(numel, (numel,), (1,)), bytes(4 * numel), zipfile.ZIP_DEFLATED))
    with pytest.raises(ZFNetError, match=r"bomb\.pth: member 'archive/data/0' would expand \d+ compressed "
                                         r"bytes to 67108864 \(a compression bomb\?\)"):
        convert(path)


def test_pth_build_on_the_storage_stand_in_does_not_outlive_the_load(tmp_path, squeezenet_dir):
    # GLOBAL torch.FloatStorage, {"dtype": "bad"}, BUILD: sets state on the stand-in itself.
    hostile = (b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x03\x00\x00\x00badsb.")
    path = tmp_path / "build.pth"
    path.write_bytes(_pth_with(hostile))
    with pytest.raises(ZFNetError, match=r"build\.pth: damaged PyTorch file \(UnpicklingError: the pickle "
                                         r"tries to set state on torch\.FloatStorage"):
        convert(path)
    # ... and BUILD through the slots path, on the functions too
    for target in (b"ctorch\nFloatStorage\n", b"ccollections\nOrderedDict\n"):
        path.write_bytes(_pth_with(b"\x80\x02" + target + b"N}X\x04\x00\x00\x00nameK\x01s\x86b."))
        with pytest.raises(ZFNetError, match=r"build\.pth: damaged PyTorch file"):
            convert(path)
    net = convert(squeezenet_dir / "squeezenet1_0.pth")              # the genuine file still loads
    assert net.arch.name == "squeezenet1_0"
    assert torch_pth.safe_globals()[("torch", "FloatStorage")].dtype == np.float32


def test_pth_stand_ins_are_fresh_per_load():
    a, b = torch_pth.safe_globals(), torch_pth.safe_globals()
    assert all(a[k] is not b[k] for k in a)
    with pytest.raises(Exception):
        a[("torch", "FloatStorage")].dtype = np.float64


# -- absurd values ----------------------------------------------------------------------------------
def test_finite_but_absurd_weights_are_refused_by_layer(tmp_path):
    w = np.ones((2, 3, 3, 3), np.float32)
    w[1, 0, 0, 0] = 3e38
    path = _write_onnx(tmp_path, _onnx_model(weight=numpy_helper.from_array(w, "conv1_w")))
    with pytest.raises(ZFNetError, match=r"bad\.onnx: layer 'conv1': conv1\.weight holds a value of magnitude 3e\+38"):
        convert(path)


def test_deep_compression_absurd_codebook_entry_names_the_layer(tmp_path, squeezenet_dir):
    data = bytearray((squeezenet_dir / "compressed_SqueezeNet.net").read_bytes())
    data[104 + 4:104 + 8] = struct.pack("<f", 3e38)                   # conv1's codebook entry 1
    path = tmp_path / "absurd.net"
    path.write_bytes(bytes(data))
    with pytest.raises(ZFNetError, match=r"absurd\.net: layer 'conv1': conv1\.weight holds a value of magnitude"):
        convert(path)


def test_onnx_matmul_bias_before_its_matmul(tmp_path):
    """Found by the fuzz run: the Add fused with a MatMul, placed before the MatMul."""
    flat = helper.make_node("Flatten", ["r"], ["flat"], name="flat")
    add = helper.make_node("Add", ["mm", "fc_b"], ["fc"], name="fc_bias")
    matmul = helper.make_node("MatMul", ["flat", "fc_w"], ["mm"], name="fc")
    model = _onnx_model(extra_nodes=[flat, add, matmul])
    model.graph.initializer.extend([numpy_helper.from_array(np.ones((72, 4), np.float32), "fc_w"),
                                    numpy_helper.from_array(np.ones(4, np.float32), "fc_b")])
    model.graph.output[0].name = "fc"
    with pytest.raises(ZFNetError, match=r"bad\.onnx: node 'fc_bias' reads 'mm', which is not computed before it"):
        convert(_write_onnx(tmp_path, model))
    model.graph.node.insert(3, model.graph.node.pop(4))              # in order, it converts
    net = convert(_write_onnx(tmp_path, model, "good.onnx"))
    assert [layer.op for layer in net.arch.layers][-2:] == ["linear", "softmax"]
