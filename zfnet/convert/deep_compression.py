"""Deep Compression's ``compressed_SqueezeNet.net``: pruned, quantised SqueezeNet v1.0 -> a Net.

Song Han's release stores SqueezeNet's 26 convolutions (conv1; fire2..fire9 squeeze1x1,
expand1x1, expand3x3; conv10) in 660 KB. The layout (little-endian; documented in
shared/data/weights/squeezenet1_0/README.md):

    26 x uint32                n_l, the number of stored entries of layer l
    then for each layer l:
      256 x float32            the codebook (entry 0 is 0.0)
      O x float32              the bias
      n_l x uint8              codes: indices into the codebook
      ceil(n_l / 2) bytes      4-bit gaps, two per byte, low nibble first

Entry i sits at flat position p_i = p_(i-1) + gap_i + 1 (p_(-1) = -1) of the weight flattened
in (O, I, KH, KW) order, and takes the value codebook[code_i]; every other position is 0 (pruned).
A gap longer than 15 is bridged by filler entries with code 0 (value 0). So, for a layer:

    p = cumsum(gap + 1) - 1,    w.flat[p] = codebook[code],    w = 0 elsewhere

The file ends exactly after the last layer: leftover bytes, a short file or a position past the
end of a tensor mean it is damaged. The architecture is fixed: the built-in squeezenet1_0.
"""
import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.architectures import get_architecture
from zfnet.convert._common import make_net, provenance, read_source

CONVERTER = "deep_compression"
CODEBOOK_SIZE = 256


def layer_names():
    """The 26 convolutions in file order: conv1, fire2/squeeze1x1, ..., fire9/expand3x3, conv10."""
    names = ["conv1"]
    for fire in range(2, 10):
        names += [f"fire{fire}/squeeze1x1", f"fire{fire}/expand1x1", f"fire{fire}/expand3x3"]
    return names + ["conv10"]


def _layer_bytes(n, out_channels):
    """Bytes one layer takes: codebook, bias, codes, nibble-packed gaps."""
    return 4 * CODEBOOK_SIZE + 4 * out_channels + n + (n + 1) // 2


def looks_like(path):
    """True if the file's size is exactly what its 26 counts say (for format detection)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    names = layer_names()
    if len(data) < 4 * len(names):
        return False
    counts = np.frombuffer(data, dtype="<u4", count=len(names))
    shapes = get_architecture("squeezenet1_0").param_shapes()
    total = 4 * len(names) + sum(_layer_bytes(int(n), shapes[f"{l}.bias"][0]) for l, n in zip(names, counts))
    return total == len(data)


def decode_layer(codebook, codes, gaps, size):
    """The flat weight of one layer (see the module docstring). gaps: (n,) ints in 0..15."""
    positions = np.cumsum(gaps.astype(np.int64) + 1) - 1          # p_i = p_(i-1) + gap_i + 1
    w = np.zeros(size, dtype=np.float32)
    w[positions] = codebook[codes]
    return w


def unpack_nibbles(packed, n):
    """n 4-bit values from ceil(n/2) bytes, the low nibble of each byte first."""
    gaps = np.empty(2 * len(packed), dtype=np.uint8)
    gaps[0::2] = packed & 0x0F
    gaps[1::2] = packed >> 4
    return gaps[:n]


def convert(path):
    """The built-in squeezenet1_0 Net with the weights decoded from a Deep Compression file.

    meta: channel_order BGR, scale 255, mean [104, 117, 123], std [1, 1, 1] (the release's Caffe
    input convention).
    """
    path, data = read_source(path, "Deep Compression .net file")
    arch = get_architecture("squeezenet1_0")
    shapes = arch.param_shapes()
    names = layer_names()
    header = 4 * len(names)
    if len(data) < header:
        raise ZFNetError(f"{path}: truncated: {len(data)} bytes, not even the {header}-byte header "
                         f"of a Deep Compression SqueezeNet file")
    counts = np.frombuffer(data, dtype="<u4", count=len(names))
    params = {}
    pos = header
    for name, n in zip(names, counts):
        n = int(n)
        w_shape, (out_channels,) = shapes[f"{name}.weight"], shapes[f"{name}.bias"]
        size = int(np.prod(w_shape))
        need = _layer_bytes(n, out_channels)
        if pos + need > len(data):
            raise ZFNetError(f"{path}: truncated or damaged: layer {name} needs {need} bytes from "
                             f"byte {pos} ({n} entries), but the file ends at {len(data)}")
        # The layer's four parts, back to back.
        codebook = np.frombuffer(data, dtype="<f4", count=CODEBOOK_SIZE, offset=pos).astype(np.float32)
        pos += 4 * CODEBOOK_SIZE
        bias = np.frombuffer(data, dtype="<f4", count=out_channels, offset=pos).astype(np.float32)
        pos += 4 * out_channels
        codes = np.frombuffer(data, dtype=np.uint8, count=n, offset=pos)
        pos += n
        packed = np.frombuffer(data, dtype=np.uint8, count=(n + 1) // 2, offset=pos)
        pos += (n + 1) // 2
        if codebook[0] != 0.0:
            raise ZFNetError(f"{path}: damaged: layer {name}'s codebook entry 0 is {codebook[0]}, "
                             f"not 0.0 (filler entries would not be zero)")
        if not (np.all(np.isfinite(codebook)) and np.all(np.isfinite(bias))):
            raise ZFNetError(f"{path}: damaged: layer {name} has NaN or infinite values")
        gaps = unpack_nibbles(packed, n)
        last = int(gaps.astype(np.int64).sum()) + n - 1 if n else -1
        if last >= size:
            raise ZFNetError(f"{path}: damaged: layer {name} places an entry at position {last}, "
                             f"past the end of its {size} weights {w_shape}")
        params[f"{name}.weight"] = decode_layer(codebook, codes, gaps, size).reshape(w_shape)
        params[f"{name}.bias"] = bias
    if pos != len(data):
        raise ZFNetError(f"{path}: damaged: {len(data) - pos} bytes left over after the last layer "
                         f"(the file should end at byte {pos})")
    meta = provenance(path, data, CONVERTER, channel_order="BGR", scale=255.0,
                      mean=[104.0, 117.0, 123.0], std=[1.0, 1.0, 1.0])
    return make_net(path, arch, params, meta)
