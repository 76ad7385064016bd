"""Converters: pretrained weights in foreign formats -> a zfnet ``Net`` (layer specs + tensors + meta).

    from zfnet.convert import convert
    net = convert("squeezenet1_0.caffemodel")                       # Caffe (binary NetParameter)
    net = convert("ZF.v2.caffemodel", prototxt="deploy.prototxt")     # Caffe, layers from a prototxt
    net = convert("zfnet512-9.onnx")                                 # ONNX
    net = convert("alexnet-owt-7be5be79.pth", architecture="alexnet") # torchvision state dict
    net = convert("compressed_SqueezeNet.net")                       # Deep Compression SqueezeNet

One module per format: ``caffe``, ``onnx``, ``torch_pth``, ``deep_compression``. None of them needs
Caffe, PyTorch, onnx or onnxruntime: protobuf files are read by a small wire-format reader of our
own (``_protobuf``), .pth files by a restricted unpickler that never runs pickled code.

Every converter returns a Net whose ``meta`` holds ``architecture``, ``input_size``,
``source_file``, ``source_sha256`` (of the file read), ``converter``, ``converter_version``, and
the input convention where the format implies one (Caffe: BGR, 0-255). When the file's graph
equals a built-in architecture up to Dropout layers, the Net uses that built-in Architecture
(its layer names), so one network converted from different files is the same Net.
Damaged, empty, truncated or mismatched files raise ``ZFNetError`` naming the file and the problem.
"""
import zipfile
from pathlib import Path

from zfnet.convert._guard import guard
from zfnet.errors import ZFNetError

FORMATS = {
    ".caffemodel": "caffe",
    ".onnx": "onnx",
    ".pth": "torch_pth", ".pt": "torch_pth", ".pkl": "torch_pth", ".tar": "torch_pth",
    ".net": "deep_compression",
}

__all__ = ["convert", "detect_format", "FORMATS", "guard"]


def detect_format(path):
    """'caffe' | 'onnx' | 'torch_pth' | 'deep_compression' for `path`, by extension then content."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix == ".prototxt":
        raise ZFNetError(f"{path}: a .prototxt holds no weights; convert the .caffemodel and pass "
                         f"this file as prototxt=")
    if suffix == ".safetensors":
        raise ZFNetError(f"{path}: is already in zfnet's format; load it with zfnet.weights.load_net")
    if not path.is_file():
        raise ZFNetError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise ZFNetError(f"{path}: the file is empty (0 bytes)")
    if zipfile.is_zipfile(path) or head[:2] == b"\x80\x02":
        return "torch_pth"                              # torch.save: zip archive or legacy pickle
    if head[:1] == b"\x08":                           # field 1 varint: ModelProto.ir_version
        return "onnx"
    if head[:1] in (b"\x0a", b"\x12") or head[:2] == b"\xa2\x06":   # NetParameter name/layers/layer
        return "caffe"
    from zfnet.convert import deep_compression
    if deep_compression.looks_like(path):
        return "deep_compression"
    raise ZFNetError(f"{path}: unknown weight format; use one of the extensions "
                     f"{', '.join(sorted(FORMATS))}")


def convert(path, *, prototxt=None, architecture=None, input_shape=None):
    """A Net from any supported file (see the module docstring).

    prototxt: Caffe only, the deploy prototxt defining the layers.
    architecture: the built-in architecture the file must be; required for state dicts whose
        naming does not identify it, optional (a check) for the other formats.
    input_shape: (C, H, W) for files that do not fix their input size.

    Whatever the file holds, the result is a Net or a ZFNetError naming the file: the converters
    validate what they read, and ``guard`` turns anything they did not foresee into one.
    """
    with guard(path, also=prototxt):
        fmt = detect_format(path)
        if prototxt is not None and fmt != "caffe":
            raise ZFNetError(f"{path}: prototxt= is only for Caffe .caffemodel files")
        if fmt == "caffe":
            from zfnet.convert import caffe
            return caffe.convert(path, prototxt, architecture=architecture, input_shape=input_shape)
        if fmt == "onnx":
            from zfnet.convert import onnx
            return onnx.convert(path, architecture=architecture, input_shape=input_shape)
        if fmt == "torch_pth":
            from zfnet.convert import torch_pth
            return torch_pth.convert(path, architecture)
        from zfnet.convert import deep_compression
        if architecture not in (None, "squeezenet1_0"):
            raise ZFNetError(f"{path}: a Deep Compression .net file is always squeezenet1_0, "
                             f"not {architecture!r}")
        return deep_compression.convert(path)
