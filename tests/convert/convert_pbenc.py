"""A tiny protobuf *encoder* for the tests, written independently of zfnet's reader.

It writes the wire format from the spec (key = field << 3 | wire type; varints 7 bits at a time,
low first; negative ints as 10-byte two's complement), so files built here test the reader
instead of mirroring it. Used to write .caffemodel files (V1 and V2 layers) from scratch.
"""
import struct

import numpy as np


def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def f_varint(field, value):
    return key(field, 0) + varint(int(value))


def f_bytes(field, data):
    return key(field, 2) + varint(len(data)) + bytes(data)


def f_str(field, text):
    return f_bytes(field, text.encode())


def f_msg(field, *parts):
    return f_bytes(field, b"".join(parts))


def f_float(field, value):
    return key(field, 5) + struct.pack("<f", value)


def f_double(field, value):
    return key(field, 1) + struct.pack("<d", value)


def f_packed_floats(field, values):
    return f_bytes(field, np.asarray(values, dtype="<f4").tobytes())


def f_unpacked_floats(field, values):
    return b"".join(f_float(field, float(v)) for v in np.asarray(values, dtype=np.float32).ravel())


def f_packed_varints(field, values):
    return f_bytes(field, b"".join(varint(int(v)) for v in values))


# --- Caffe -----------------------------------------------------------------------------------

def blob_v2(a, packed=True):
    """BlobProto with shape {dim} (field 7) and data (field 5)."""
    a = np.asarray(a, dtype=np.float32)
    shape = f_msg(7, f_packed_varints(1, a.shape))
    data = f_packed_floats(5, a.ravel()) if packed else f_unpacked_floats(5, a.ravel())
    return shape + data


def blob_v1(a):
    """BlobProto with the legacy num/channels/height/width (fields 1-4), always 4-D."""
    a = np.asarray(a, dtype=np.float32)
    dims = (1,) * (4 - a.ndim) + a.shape
    return b"".join(f_varint(i + 1, d) for i, d in enumerate(dims)) + f_packed_floats(5, a.ravel())


V1_TYPES = {"Convolution": 4, "ReLU": 18, "Pooling": 17, "LRN": 15, "Concat": 3, "Dropout": 6,
            "InnerProduct": 14, "Softmax": 20, "Flatten": 8, "Data": 5, "SoftmaxWithLoss": 21,
            "Accuracy": 1, "Eltwise": 25, "Split": 22}

# Field numbers of the layer-specific params: (V2 LayerParameter, V1LayerParameter).
PARAM_FIELDS = {"convolution_param": (106, 10), "pooling_param": (121, 19), "lrn_param": (118, 18),
                "inner_product_param": (117, 17), "concat_param": (104, 9),
                "dropout_param": (108, 12), "softmax_param": (125, 39), "relu_param": (123, 30),
                "transform_param": (100, 36), "input_param": (143, None)}


def layer(name, type_, bottom=(), top=(), blobs=(), params=None, v1=False, include_phase=None):
    """One LayerParameter (v1=False) or V1LayerParameter (v1=True), as bytes.

    params: {"convolution_param": bytes of the sub-message, ...}.
    """
    params = params or {}
    if v1:
        parts = [f_str(4, name), f_varint(5, V1_TYPES[type_])]
        parts += [f_str(2, b) for b in bottom] + [f_str(3, t) for t in top]
        parts += [f_msg(6, blob_v1(b)) for b in blobs]
        if include_phase is not None:
            parts.append(f_msg(32, f_varint(1, include_phase)))
    else:
        parts = [f_str(1, name), f_str(2, type_)]
        parts += [f_str(3, b) for b in bottom] + [f_str(4, t) for t in top]
        parts += [f_msg(7, blob_v2(b)) for b in blobs]
        if include_phase is not None:
            parts.append(f_msg(8, f_varint(1, include_phase)))
        parts.append(f_varint(10, 1))                       # phase: TEST, as Caffe writes it
    for pname, data in params.items():
        field = PARAM_FIELDS[pname][1 if v1 else 0]
        parts.append(f_msg(field, data))
    return b"".join(parts)


def net(layers, v1=False, name="test", input_name=None, input_shape=None):
    """NetParameter bytes: optional deprecated input fields, then the layers (field 2 or 100)."""
    parts = [f_str(1, name)]
    if input_name is not None:
        parts.append(f_str(3, input_name))
        parts += [f_varint(4, d) for d in input_shape]          # input_dim, 4 values
    field = 2 if v1 else 100
    parts += [f_bytes(field, l) for l in layers]
    return b"".join(parts)
