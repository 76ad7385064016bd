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
import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np

from zfnet import __version__
from zfnet.atomic import atomic_write
from zfnet.convert._common import check_values
from zfnet.convert._guard import guard
from zfnet.errors import ZFNetError
from zfnet.net.graph import Architecture, Net

FORMAT = "1"
# Header keys that are not entries of net.meta.
_RESERVED = ("zfnet_format", "zfnet_version", "architecture", "tensors_sha256")
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
    metadata["tensors_sha256"] = tensors_sha256(tensors)
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def tensors_sha256(params):
    """sha256 of the tensors: each name (UTF-8), a zero byte, its float32 little-endian bytes,
    in name order. Stored by save_net and checked by load_net, so a changed byte is noticed."""
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(name.encode("utf-8") + b"\0")
        h.update(np.ascontiguousarray(params[name], dtype="<f4").data)
    return h.hexdigest()


def _check_tensors(path, metadata, params):
    want = metadata.get("tensors_sha256")
    if want is not None and tensors_sha256(params) != want:
        raise ZFNetError(f"{path}: its tensors have changed since the file was written (their sha256 "
                         f"differs from the one recorded in it): the file is damaged; re-create it "
                         f"with 'zfnet weights convert'")


def has_tensors_sha256(path):
    """Does the weights file record the sha256 of its tensors (files of zfnet >= 0.1 do)?"""
    return "tensors_sha256" in (_header_metadata(path) or {})


def _header_metadata(path):
    header = _check_header(Path(path))
    meta = header.get("__metadata__")
    return meta if isinstance(meta, dict) else None


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
    end = 0
    for name, entry in header.items():
        if name != "__metadata__":
            end = max(end, _check_entry(path, name, entry))
    # The tensor data must reach as far as the header says.
    if 8 + n + end > size:
        raise ZFNetError(
            f"{path}: truncated: the header describes {8 + n + end} bytes, the file has {size} "
            f"(an interrupted copy or download?); re-create it with 'zfnet weights convert'"
        )
    return header


_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
_MAX_RANK = 8


def _check_entry(path, name, entry):
    """One tensor's header entry, checked before safetensors sees it: -> the end of its bytes."""
    def bad(what):
        return ZFNetError(f"{path}: damaged header: tensor {str(name)[:80]!r} {what}; re-create the "
                          f"file with 'zfnet weights convert'")
    if not isinstance(entry, dict):
        raise bad("is not described by a JSON object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _ITEMSIZE:
        raise bad(f"has an unknown dtype {str(dtype)[:20]!r}")
    if not (isinstance(shape, list) and len(shape) <= _MAX_RANK
            and all(type(d) is int and d >= 0 for d in shape)):
        raise bad(f"has a malformed shape {str(shape)[:60]} (a list of at most {_MAX_RANK} sizes)")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(o) is int and o >= 0 for o in offsets) and offsets[0] <= offsets[1]):
        raise bad(f"has malformed data_offsets {str(offsets)[:60]} (two byte offsets, begin <= end)")
    count = 1
    for d in shape:
        count *= d
    if offsets[1] - offsets[0] != count * _ITEMSIZE[dtype]:
        raise bad(f"spans {offsets[1] - offsets[0]} bytes, its shape {shape} of {dtype} needs "
                  f"{count * _ITEMSIZE[dtype]}")
    return offsets[1]


def _is_number(v, positive=False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (v > 0 if positive else True)


# What the metadata keys the rest of zfnet reads must hold (others are kept as they are).
_META_CHECKS = {
    "input_size": ("[H, W], two positive ints", lambda v: isinstance(v, list) and len(v) == 2
                   and all(type(d) is int and 0 < d <= 1 << 16 for d in v)),
    "resize": ("a positive int or null", lambda v: v is None or (type(v) is int and 0 < v <= 1 << 16)),
    "channel_order": ("'BGR' or 'RGB'", lambda v: v in ("BGR", "RGB")),
    "scale": ("a positive number", lambda v: _is_number(v, positive=True)),
    "mean": ("a list of 3 finite numbers", lambda v: isinstance(v, list) and len(v) == 3
             and all(_is_number(x) for x in v)),
    "std": ("a list of 3 positive numbers", lambda v: isinstance(v, list) and len(v) == 3
            and all(_is_number(x, positive=True) for x in v)),
    "classes": ("a class-list name or null", lambda v: v is None or isinstance(v, str)),
    **{k: ("a string", lambda v: isinstance(v, str))
       for k in ("model", "source_file", "source_sha256", "converter", "converter_version")},
}


def _check_meta(path, meta):
    for key, (want, ok) in _META_CHECKS.items():
        if key in meta and not ok(meta[key]):
            raise ZFNetError(f"{path}: damaged metadata: {key} is {str(meta[key])[:60]}, not {want}; "
                             f"re-create the file with 'zfnet weights convert'")


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
    except (json.JSONDecodeError, RecursionError) as e:
        raise ZFNetError(f"{path}: damaged metadata ({type(e).__name__}: {str(e)[:100]})") from None
    except ZFNetError as e:
        raise ZFNetError(f"{path}: invalid architecture description: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise ZFNetError(f"{path}: invalid architecture description ({type(e).__name__}: "
                         f"{str(e)[:100]})") from None
    _check_meta(path, meta)
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
    path = Path(path)
    if not path.is_file():
        raise ZFNetError(f"weights file not found: {path}")
    with guard(path, "zfnet weights file"):
        return _load_net(path)


def _load_net(path):
    from safetensors import safe_open

    _check_header(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata()
            arch, meta = _decode_meta(path, metadata)
            params = {k: f.get_tensor(k) for k in f.keys()}
    except ZFNetError:
        raise
    except Exception as e:  # safetensors raises its own SafetensorError, or OSError
        raise ZFNetError(f"{path}: not a valid safetensors file ({e})") from None
    for k, a in params.items():
        if a.dtype != np.float32:
            raise ZFNetError(f"{path}: tensor {k!r} is {a.dtype}; zfnet weights files hold float32")
    check_values(path, params)
    # Net validates names, shapes and finiteness; let its messages name this file.
    try:
        net = Net(arch, params, {"source_file": str(path)})
    except ZFNetError as e:
        raise ZFNetError(f"{e} (file: {path})" if str(path) not in str(e) else str(e)) from None
    _check_tensors(path, metadata, params)            # last: the errors above say more
    net.meta = meta
    return net


def read_meta(path):
    """The metadata of a weights file (no tensors read): -> (Architecture, meta dict)."""
    path = Path(path)
    with guard(path, "zfnet weights file"):
        return _read_meta(path)


def _read_meta(path):
    from safetensors import safe_open

    _check_header(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            return _decode_meta(path, f.metadata())
    except ZFNetError:
        raise
    except Exception as e:
        raise ZFNetError(f"{path}: not a valid safetensors file ({e})") from None
