"""The project's converted-weights file: safetensors tensors + the network's description.

A ``.safetensors`` file is an 8-byte little-endian header length, a JSON header (tensor names,
dtypes, shapes, byte offsets, and a free ``__metadata__`` dict of strings), then the raw tensor
bytes. zfnet writes

    tensors   "conv1.weight" (F, C/G, KH, KW) float32, "conv1.bias" (F,) float32, ...
              exactly ``Architecture.param_shapes()``
    metadata  "zfnet_format"   "1"
              "architecture"   Architecture.to_dict() as JSON (layer specs, input shape, name)
              every key of ``net.meta`` (model, input_size, channel_order, scale, mean, std,
              resize, classes, source_file, source_sha256, converter, converter_version, ...),
              each value JSON-encoded (so "BGR" is stored as "\\"BGR\\"", 255 as "255")

No pickle anywhere: loading a file never runs code from it. Files are read through
``safetensors.safe_open`` (memory-mapped) and written atomically (temp file, then rename), so a
crash never leaves a half-written weights file behind.

    save_net(net, "squeezenet1_0.safetensors")
    net = load_net("squeezenet1_0.safetensors")     # Net(arch, params, meta), validated
"""
import json
import struct
from pathlib import Path

import numpy as np

from zfnet import __version__
from zfnet.atomic import atomic_write
from zfnet.errors import ZFNetError
from zfnet.net.graph import Architecture, Net

FORMAT = "1"
# Header keys that are not entries of net.meta.
_RESERVED = ("zfnet_format", "zfnet_version", "architecture")
_META_ORDER = ("model", "architecture", "input_size", "channel_order", "scale", "mean", "std", "resize",
               "classes", "source_file", "source_sha256", "converter", "converter_version")
# A safetensors header is JSON of a few KB per tensor; anything near this is not a header.
_MAX_HEADER = 100 * 2**20


def save_net(net, path):
    """Write `net` (tensors + architecture + meta) to `path` (a ``.safetensors`` file), atomically.

    net.params: {"layer.weight": float32 array} exactly as ``net.arch.param_shapes()``.
    Returns the path written.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    metadata = {
        "zfnet_format": FORMAT,
        "zfnet_version": __version__,
        "architecture": json.dumps(net.arch.to_dict(), separators=(",", ":")),
    }
    for key, value in net.meta.items():
        if key in _RESERVED:
            continue  # the architecture's name is part of its description above
        try:
            metadata[key] = json.dumps(value)
        except TypeError:
            raise ZFNetError(
                f"cannot save {path}: meta[{key!r}] = {value!r} is not JSON-serialisable "
                f"(use plain numbers, strings and lists)"
            ) from None
    # safetensors wants C-contiguous arrays; Net already guarantees float32 C-contiguous.
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in net.params.items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _check_header(path):
    """Read the 8-byte header length and the JSON header ourselves, for errors a user can act on."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ZFNetError(f"{path}: not a safetensors file (only {size} bytes long)")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > _MAX_HEADER or 8 + n > size:
                raise ZFNetError(
                    f"{path}: not a safetensors file, or a truncated one (its first 8 bytes announce "
                    f"a {n}-byte header; the file has {size} bytes)"
                )
            header = f.read(n)
    except OSError as e:
        raise ZFNetError(f"cannot read weights file {path}: {e.strerror or e}") from None
    try:
        header = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ZFNetError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ZFNetError(f"{path}: not a safetensors file (its header is not a JSON object)")
    # The tensor data must reach as far as the header says.
    end = max((int(v["data_offsets"][1]) for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if 8 + n + end > size:
        raise ZFNetError(
            f"{path}: truncated: the header describes {8 + n + end} bytes, the file has {size} "
            f"(an interrupted copy or download?); re-create it with 'zfnet weights convert'"
        )
    return header


def _decode_meta(path, metadata):
    if not metadata or "architecture" not in metadata:
        raise ZFNetError(
            f"{path}: a safetensors file, but not a zfnet weights file (no 'architecture' "
            f"metadata); convert the original model with 'zfnet weights convert FILE'"
        )
    version = metadata.get("zfnet_format", FORMAT)
    if version != FORMAT:
        raise ZFNetError(
            f"{path}: zfnet weights format {version!r}; this zfnet ({__version__}) reads format "
            f"{FORMAT!r}. Upgrade zfnet, or re-convert the original model."
        )
    try:
        arch = Architecture.from_dict(json.loads(metadata["architecture"]))
        meta = {k: json.loads(v) for k, v in metadata.items() if k not in _RESERVED}
    except json.JSONDecodeError as e:
        raise ZFNetError(f"{path}: damaged metadata ({e})") from None
    except ZFNetError as e:
        raise ZFNetError(f"{path}: invalid architecture description: {e}") from None
    meta["architecture"] = arch.name
    # The header is unordered; give the keys a reading order (known ones first).
    rank = {k: i for i, k in enumerate(_META_ORDER)}
    return arch, dict(sorted(meta.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def load_net(path):
    """Read a file written by ``save_net``: -> Net(arch, params, meta).

    Every error a damaged or foreign file can cause is a ZFNetError naming the file: truncated or
    corrupt files, other formats, missing metadata, tensors that do not fit the architecture
    (missing, extra, mis-shaped, not float32), NaN or infinite values.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ZFNetError(f"weights file not found: {path}")
    _check_header(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            arch, meta = _decode_meta(path, f.metadata())
            params = {k: f.get_tensor(k) for k in f.keys()}
    except ZFNetError:
        raise
    except Exception as e:  # safetensors raises its own SafetensorError, or OSError
        raise ZFNetError(f"{path}: not a valid safetensors file ({e})") from None
    for k, a in params.items():
        if a.dtype != np.float32:
            raise ZFNetError(f"{path}: tensor {k!r} is {a.dtype}; zfnet weights files hold float32")
    # Net validates names, shapes and finiteness; let its messages name this file.
    try:
        net = Net(arch, params, {"source_file": str(path)})
    except ZFNetError as e:
        raise ZFNetError(f"{e} (file: {path})" if str(path) not in str(e) else str(e)) from None
    net.meta = meta
    return net


def read_meta(path):
    """The metadata of a weights file (no tensors read): -> (Architecture, meta dict)."""
    from safetensors import safe_open

    path = Path(path)
    _check_header(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            return _decode_meta(path, f.metadata())
    except ZFNetError:
        raise
    except Exception as e:
        raise ZFNetError(f"{path}: not a valid safetensors file ({e})") from None
