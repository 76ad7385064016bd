"""PyTorch ``.pth`` state dicts, read safely without PyTorch, mapped onto the built-in architectures.

    net = convert("squeezenet1_0.pth")                      # architecture recognised by its keys
    net = convert("alexnet-owt-7be5be79.pth", "alexnet")    # torchvision names -> conv1 ... fc8

The file. ``torch.save`` writes a zip archive (since PyTorch 1.6)::

    <archive>/data.pkl        a pickle of the state dict: {"features.0.weight": tensor, ...}
    <archive>/data/<key>      the raw bytes of each storage, in the byte order of <archive>/byteorder

and, before 1.6, one stream: pickled magic number, protocol version and system info, the pickle
of the dict, the pickled list of storage keys, then every storage as an int64 element count
followed by its bytes. In both, a tensor is pickled as a call
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`` and each
storage as a "persistent id" ``("storage", torch.FloatStorage, key, location, numel)``.

Safety. Unpickling can call any importable function, so a .pth from the internet is code. Ours is
a restricted unpickler: ``find_class`` resolves exactly the globals a state dict needs to our
own harmless stand-ins (``OrderedDict``, the tensor rebuild functions -> a numpy view, the storage
classes -> dtypes) and refuses every other global with an error naming the file and the global,
before anything is called. PyTorch is never imported.

Names. torchvision's keys are mapped to the built-in layer names by explicit tables, and every
shape is checked against the architecture::

    squeezenet1_0  features.0 -> conv1, features.{3,4,5,7,8,9,10,12}.{squeeze,expand1x1,expand3x3}
                   -> fire2..fire9/{squeeze1x1,expand1x1,expand3x3}, classifier.1 -> conv10
    alexnet        features.{0,3,6,8,10} -> conv1..conv5, classifier.{1,4,6} -> fc6, fc7, fc8
    vgg16          features.{0,2,5,7,10,12,14,17,19,21,24,26,28} -> conv1_1 ... conv5_3,
                   classifier.{0,3,6} -> fc6, fc7, fc8

A state dict already in zfnet's names (``conv1.weight`` ...) maps onto any built-in architecture.
Note: torchvision's own squeezenet1_0 has no padding in its final 1x1 convolution, the Caffe
original (and our built-in) has pad 1; torchvision-trained weights therefore give slightly
different scores here than in torchvision (see weights/squeezenet1_0 README).
"""
import collections
import io
import math
import pickle
import pickletools
import struct
import zipfile
import zlib

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.architectures import ARCHITECTURES, get_architecture
from zfnet.convert._common import _builtin, make_net, provenance, read_source

CONVERTER = "torch_pth"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# ---------------------------------------------------------------------------------------------
# torchvision key prefix -> built-in layer name
# ---------------------------------------------------------------------------------------------

def _squeezenet_map():
    m = {"features.0": "conv1", "classifier.1": "conv10"}
    for index, fire in zip((3, 4, 5, 7, 8, 9, 10, 12), range(2, 10)):
        m[f"features.{index}.squeeze"] = f"fire{fire}/squeeze1x1"
        m[f"features.{index}.expand1x1"] = f"fire{fire}/expand1x1"
        m[f"features.{index}.expand3x3"] = f"fire{fire}/expand3x3"
    return m


def _vgg16_map():
    m = {}
    convs = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))     # (block, convolutions in it)
    index = 0
    for block, n in convs:
        for i in range(1, n + 1):
            m[f"features.{index}"] = f"conv{block}_{i}"
            index += 2                                    # each conv is followed by a ReLU
        index += 1                                        # ... and each block by a max-pool
    m.update({"classifier.0": "fc6", "classifier.3": "fc7", "classifier.6": "fc8"})
    return m


NAME_MAPS = {
    "squeezenet1_0": _squeezenet_map(),
    "alexnet": {"features.0": "conv1", "features.3": "conv2", "features.6": "conv3",
                "features.8": "conv4", "features.10": "conv5",
                "classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8"},
    "vgg16": _vgg16_map(),
}


# ---------------------------------------------------------------------------------------------
# The restricted unpickler
# ---------------------------------------------------------------------------------------------

# torch storage class -> numpy dtype (bfloat16 is read as uint16 and widened to float32 later).
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StandIn:
    """Base of the unpickler's stand-ins: immutable to the pickle.

    A pickle can BUILD (set state on) any object it holds, including the globals it names; so the
    stand-ins are made afresh for every load, have no ``__dict__``, and refuse ``__setstate__``
    and attribute assignment: nothing a file does outlives its load.
    """
    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"the pickle tries to set state on {self!r}")

    def __setattr__(self, name, value):
        raise pickle.UnpicklingError(f"the pickle tries to set {name!r} on {self!r}")

    def _init(self, **fields):
        for k, v in fields.items():
            object.__setattr__(self, k, v)


class _StorageType(_StandIn):
    """Stands in for ``torch.FloatStorage`` etc.: only its dtype matters; calling it is refused."""
    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self._init(name=name, dtype=STORAGE_DTYPES[name])

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError(f"the pickle calls torch.{self.name} directly")

    def __repr__(self):
        return f"torch.{self.name}"


class _Function(_StandIn):
    """Stands in for one whitelisted function (a tensor rebuild, OrderedDict)."""
    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        self._init(name=name, fn=fn)

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self):
        return self.name


class _StorageRef(_StandIn):
    """A storage named in the pickle (its bytes are read afterwards): key, dtype, size, view."""
    __slots__ = ("key", "dtype", "numel", "view")

    def __init__(self, key, dtype, numel, view):
        self._init(key=key, dtype=dtype, numel=numel, view=view)

    def __repr__(self):
        return f"storage {self.key!r}"


class Tensor:
    """What the tensor rebuild functions return here: where the values are, nothing callable."""
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _StorageRef):
            raise pickle.UnpicklingError("a tensor that is not backed by a storage")
        try:
            self.offset = int(offset)
            self.size = tuple(int(n) for n in size)
            self.stride = tuple(int(n) for n in stride)
        except (TypeError, ValueError):
            raise pickle.UnpicklingError("a tensor with a malformed size or stride") from None
        self.storage = storage

    def __setstate__(self, state):
        raise pickle.UnpicklingError("the pickle tries to set state on a tensor")

    def materialize(self, storages, what):
        """The values as an owned, contiguous numpy array; offset/size/stride in elements."""
        values = storages[self.storage.key][self.storage.view]
        size, stride, offset = self.size, self.stride, self.offset
        if (len(size) != len(stride) or len(size) > MAX_RANK or offset < 0
                or min(size + stride, default=0) < 0):
            raise pickle.UnpicklingError(f"{what} has an invalid size {size} / stride {stride}")
        if math.prod(size) > len(values):
            # A state dict's tensor never has more values than its storage: no allocation of a
            # huge shape over a tiny storage.
            raise pickle.UnpicklingError(f"{what} has shape {size} ({math.prod(size)} values) over "
                                         f"a storage of {len(values)}")
        if 0 in size:
            return np.zeros(size, dtype=values.dtype)
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= len(values):
            raise pickle.UnpicklingError(
                f"{what} reaches element {last} of a storage of {len(values)} (truncated file?)")
        view = np.lib.stride_tricks.as_strided(values[offset:], shape=size, writeable=False,
                                               strides=tuple(st * values.itemsize for st in stride))
        return np.array(view)                               # a contiguous copy, owned


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, Tensor):
        raise pickle.UnpicklingError("a parameter without tensor data")
    return data


def _ordered_dict(*args):
    return collections.OrderedDict(*args)


# The only globals a state dict's pickle may name; everything else is refused. Each load gets
# its own stand-ins for them (safe_globals()).
SAFE_FUNCTIONS = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


def safe_globals():
    """{(module, name): a fresh, immutable stand-in} for one load."""
    out = {key: _Function(".".join(key), fn) for key, fn in SAFE_FUNCTIONS.items()}
    out.update({("torch", name): _StorageType(name) for name in STORAGE_DTYPES})
    return out


def check_memo(f):
    """Scan the pickle at f's position (then seek back): every memo index must be below the count
    of opcodes read so far; raises pickle.UnpicklingError (ValueError for a malformed stream).

    Python's own pickler numbers memo entries 0, 1, 2, ... as it writes them, but the C unpickler
    grows its memo table to whatever index a PUT names: ``LONG_BINPUT 2147484057`` in a 5 KB
    pickle made it allocate gigabytes (found by tests/fuzz). pickletools reads the opcodes
    without running or allocating anything the data does not hold.
    """
    start = f.tell()
    for count, (op, arg, _) in enumerate(pickletools.genops(f)):
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not (isinstance(arg, int) and 0 <= arg <= count):
            raise pickle.UnpicklingError(f"memo index {arg} at opcode {count} (a pickler never "
                                         f"writes one beyond the opcodes before it)")
    f.seek(start)


class _Checked(pickle.Unpickler):
    """An unpickler that scans the stream with check_memo before the C unpickler reads it."""

    def __init__(self, file, path):
        super().__init__(file)
        self.file, self.path = file, path

    def load(self):
        check_memo(self.file)
        return super().load()


class _Unpickler(_Checked):
    """Resolves only the safe globals (others: ZFNetError before anything runs); storages by
    reference."""

    def __init__(self, file, path):
        super().__init__(file, path)
        self.storages = {}                                  # key -> (dtype, numel)
        self.globals = safe_globals()

    def find_class(self, module, name):
        fn = self.globals.get((module, name))
        if fn is None:
            raise ZFNetError(
                f"{self.path}: refused to load: the pickle asks for {module}.{name}, which a "
                f"state dict never needs (a .pth can run code when unpickled; zfnet only reads "
                f"plain state dicts of tensors). If you trust the file, load it in PyTorch and "
                f"re-save model.state_dict() with torch.save")
        return fn

    def persistent_load(self, pid):
        # ("storage", storage type, key, location, numel[, legacy view (key, offset, size)])
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:60]!r}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"malformed storage reference {str(pid)[:60]!r}")
        known = self.storages.setdefault(key, (storage_type.dtype, numel))
        if known != (storage_type.dtype, numel):
            raise pickle.UnpicklingError(f"storage {key!r} is declared twice differently")
        view = slice(None)
        if len(pid) == 6 and pid[5] is not None:
            try:
                _, offset, size = pid[5]
                view = slice(int(offset), int(offset) + int(size))
            except (TypeError, ValueError):
                raise pickle.UnpicklingError("malformed storage view") from None
        return _StorageRef(key, storage_type.dtype, numel, view)


def _as_dtype(raw, dtype, numel, what, big_endian=False):
    """`numel` values of `dtype` from the bytes `raw`; bfloat16 widened to float32 exactly."""
    np_dtype = np.dtype(np.uint16 if dtype == "bfloat16" else dtype)
    if big_endian:
        np_dtype = np_dtype.newbyteorder(">")
    need = numel * np_dtype.itemsize
    if len(raw) != need:
        raise pickle.UnpicklingError(f"{what} has {len(raw)} bytes, {need} expected (truncated or "
                                     f"damaged file)")
    values = np.frombuffer(raw, dtype=np_dtype, count=numel)
    if dtype == "bfloat16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np_dtype.newbyteorder("="))


# What a damaged file makes the readers raise: zipfile raises NotImplementedError for unknown
# compression methods, RuntimeError for encrypted members, zlib.error for broken deflate streams.
_DAMAGE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError,
           struct.error, zipfile.BadZipFile, OSError, RecursionError, NotImplementedError,
           RuntimeError, zlib.error, OverflowError)


def _unpickle(path, f):
    """(state dict of Tensor records, {storage key: (dtype, numel)}) from the pickle in `f`."""
    unpickler = _Unpickler(f, path)
    try:
        obj = unpickler.load()
    except ZFNetError:
        raise
    except _DAMAGE as e:
        raise ZFNetError(f"{path}: damaged PyTorch file ({type(e).__name__}: {e}); download it "
                         f"again") from None
    state = _state_dict(obj, path)
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ZFNetError(f"{path}: entries {bad[:5]} are not tensors; zfnet reads state dicts "
                         f"({{name: tensor}})")
    return state, unpickler.storages


def _materialize(path, state, storages):
    try:
        return {k: t.materialize(storages, f"tensor {k!r}") for k, t in state.items()}
    except _DAMAGE as e:
        raise ZFNetError(f"{path}: damaged PyTorch file ({e}); download it again") from None


# ---------------------------------------------------------------------------------------------
# The two container formats
# ---------------------------------------------------------------------------------------------

MAX_PICKLE = 64 << 20          # a state dict's pickle is a few KB per tensor
MAX_RANK = 8
# torch.save stores members uncompressed; a re-zipped file may deflate them, but weights never
# shrink by more than this. A member claiming more is a deflate bomb and is refused unread.
MAX_DEFLATE_RATIO = 16


def _itemsize(dtype):
    return np.dtype(np.uint16 if dtype == "bfloat16" else dtype).itemsize


def _read_member(path, archive, name, size, limit, what=None):
    """The bytes of zip member `name`, its sizes checked before anything is decompressed:
    `size` (if given) exactly, at most `limit`, and no more than MAX_DEFLATE_RATIO times its
    compressed size."""
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        raise ZFNetError(f"{path}: member {name!r} is encrypted; torch.save never encrypts (damaged "
                         f"file?)")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ZFNetError(f"{path}: member {name!r} uses compression method {info.compress_type}; "
                         f"torch.save files are stored or deflated (damaged file?)")
    if size is not None and info.file_size != size:
        raise ZFNetError(f"{path}: {what or 'member ' + repr(name)} has {info.file_size} bytes, "
                         f"{size} expected (truncated or damaged file)")
    if info.file_size > limit:
        raise ZFNetError(f"{path}: member {name!r} claims {info.file_size} bytes, more than the "
                         f"{limit} it can hold (damaged file)")
    if info.compress_type != zipfile.ZIP_STORED and \
            info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 4096:
        raise ZFNetError(f"{path}: member {name!r} would expand {info.compress_size} compressed "
                         f"bytes to {info.file_size} (a compression bomb?); refused")
    with archive.open(info) as f:
        raw = f.read(info.file_size + 1)
    if len(raw) != info.file_size:
        raise ZFNetError(f"{path}: member {name!r} has {len(raw)} bytes, its header says "
                         f"{info.file_size} (damaged file)")
    return raw


def _load_zip(path, data):
    """torch >= 1.6: <root>/data.pkl and <root>/data/<key> in a zip archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ZFNetError(f"{path}: a zip archive without one <name>/data.pkl; not a torch.save file")
        root = pkls[0][: -len("data.pkl")]
        big = (root + "byteorder" in names
               and _read_member(path, archive, root + "byteorder", None, 16).strip() == b"big")
        state, wanted = _unpickle(path, io.BytesIO(_read_member(path, archive, pkls[0], None, MAX_PICKLE)))
        storages = {}
        for key, (dtype, numel) in wanted.items():
            member = f"{root}data/{key}"
            if member not in names:
                raise ZFNetError(f"{path}: storage {key!r} is missing from the archive (damaged file)")
            need = numel * _itemsize(dtype)
            raw = _read_member(path, archive, member, need, need, f"storage {key!r}")
            storages[key] = _as_dtype(raw, dtype, numel, f"storage {key!r}", big)
    except ZFNetError:
        raise
    except _DAMAGE as e:
        raise ZFNetError(f"{path}: damaged zip archive ({type(e).__name__}: {e}); download the "
                         f"file again") from None
    return _materialize(path, state, storages)


class _PlainUnpickler(_Checked):
    """For the legacy header pickles: plain values only, no globals at all."""

    def find_class(self, module, name):
        raise ZFNetError(f"{self.path}: refused to load: the file's header asks for {module}.{name}")


def _load_legacy(path, data):
    """PyTorch < 1.6: magic, protocol, sys info, the dict, the storage keys, then the storages
    (each an int64 element count and the raw values)."""
    f = io.BytesIO(data)
    try:
        if _PlainUnpickler(f, path).load() != LEGACY_MAGIC:
            raise ZFNetError(f"{path}: not a PyTorch file (a pickle without torch's magic number)")
        version = _PlainUnpickler(f, path).load()
        if version != 1001:
            raise ZFNetError(f"{path}: legacy PyTorch format version {version} is not supported; "
                             f"re-save the file with torch >= 1.6")
        sys_info = _PlainUnpickler(f, path).load()
        big = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
        state, wanted = _unpickle(path, f)
        keys = _PlainUnpickler(f, path).load()
        if not isinstance(keys, list) or set(map(str, keys)) != set(wanted):
            raise pickle.UnpicklingError("the list of storages does not match the tensors")
        storages = {}
        for key in map(str, keys):
            dtype, numel = wanted[key]
            (count,) = struct.unpack(">q" if big else "<q", f.read(8))
            if count != numel:
                raise pickle.UnpicklingError(f"storage {key!r} has {count} values, {numel} expected")
            size = np.dtype(np.uint16 if dtype == "bfloat16" else dtype).itemsize
            storages[key] = _as_dtype(f.read(count * size), dtype, count, f"storage {key!r}", big)
        if f.read(1):
            raise pickle.UnpicklingError("bytes left over after the last storage")
    except ZFNetError:
        raise
    except _DAMAGE as e:
        raise ZFNetError(f"{path}: damaged PyTorch file ({type(e).__name__}: {e}); download it "
                         f"again") from None
    return _materialize(path, state, storages)


def _state_dict(obj, path):
    """The {name: tensor} dict inside what was pickled (a state dict or a checkpoint holding one)."""
    if isinstance(obj, dict):
        if not any(isinstance(v, Tensor) for v in obj.values()):
            for key in ("state_dict", "model", "model_state_dict"):
                inner = obj.get(key)
                if isinstance(inner, dict) and inner:
                    obj = inner
                    break
        if obj and all(isinstance(k, str) for k in obj):
            return collections.OrderedDict(
                (k[len("module."):] if k.startswith("module.") else k, v) for k, v in obj.items())
    raise ZFNetError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors; save "
                     f"model.state_dict() with torch.save")


def load_state_dict(path):
    """({key: numpy array}, file bytes) of a .pth state dict, read with the restricted unpickler.

    Raises ZFNetError for damaged files, non-state-dict pickles and any pickle that asks for a
    global outside the state-dict whitelist (nothing from the file is executed).
    """
    path, data = read_source(path, "PyTorch .pth state dict")
    if data[:4] == b"PK\x03\x04":
        state = _load_zip(path, data)
    elif data[:3] == b"\x80\x02\x8a":
        state = _load_legacy(path, data)
    elif data[:1] == b"\x80":
        raise ZFNetError(f"{path}: a pickle that is not a PyTorch save file; zfnet reads files "
                         f"written by torch.save(model.state_dict(), path)")
    elif len(data) > 262 and data[257:262] == b"ustar":
        raise ZFNetError(f"{path}: the tar-based PyTorch format (before 0.4) is not supported; "
                         f"load it in PyTorch and re-save it with torch >= 1.6")
    else:
        raise ZFNetError(f"{path}: not a PyTorch .pth file (neither a zip archive nor a legacy "
                         f"torch.save stream)")
    return state, data


# ---------------------------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------------------------

def _name_map(architecture, keys):
    """{file key: built-in param key} for `architecture`, or None if the keys do not fit."""
    arch = _builtin(architecture)
    want = set(arch.param_shapes())
    if set(keys) == want:
        return {k: k for k in keys}                       # already zfnet's names
    table = NAME_MAPS.get(architecture)
    if table is None:
        return None
    mapping = {}
    for key in keys:
        prefix, _, tensor = key.rpartition(".")
        if prefix in table:
            mapping[key] = f"{table[prefix]}.{tensor}"
    if set(mapping) == set(keys) and set(mapping.values()) == want:
        return mapping
    return None


def detect_architecture(keys):
    """The built-in architecture whose torchvision or zfnet names are exactly `keys`, or None."""
    for name in ARCHITECTURES:
        if _name_map(name, keys) is not None:
            return name
    return None


def convert(path, architecture=None):
    """A Net from a PyTorch state dict saved with torch.save (zip or legacy format).

    architecture: a built-in name; None recognises it from the keys (torchvision's or zfnet's).
    Every tensor's shape is checked; missing or unexpected keys are a ZFNetError listing them.
    """
    state, data = load_state_dict(path)
    keys = list(state)
    if architecture is None:
        architecture = detect_architecture(keys)
        if architecture is None:
            raise ZFNetError(
                f"{path}: its keys ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}) match "
                f"none of the known name maps ({', '.join(NAME_MAPS)} in torchvision's names, or any "
                f"built-in architecture in zfnet's); pass architecture=")
    arch = get_architecture(architecture)
    mapping = _name_map(architecture, keys)
    if mapping is None:
        _explain_mismatch(path, architecture, arch, keys)
    params = {}
    shapes = arch.param_shapes()
    for key, target in mapping.items():
        a = state[key]
        if tuple(a.shape) != shapes[target]:
            raise ZFNetError(f"{path}: {key} ({target}) has shape {tuple(a.shape)}, {architecture} "
                             f"needs {shapes[target]} (is the file for another architecture?)")
        if a.dtype.kind != "f":
            raise ZFNetError(f"{path}: {key} holds {a.dtype} values, not floats")
        if not np.all(np.isfinite(a)):
            raise ZFNetError(f"{path}: {key} ({target}) contains NaN or infinite values (the "
                             f"weights are damaged)")
        params[target] = np.ascontiguousarray(a, dtype=np.float32)
    meta = provenance(path, data, CONVERTER)
    return make_net(path, arch, params, meta)


def _explain_mismatch(path, architecture, arch, keys):
    table = NAME_MAPS.get(architecture, {})
    known = {f"{p}.{t}" for p in table for t in ("weight", "bias")} | set(arch.param_shapes())
    unexpected = [k for k in keys if k not in known]
    mapped = {f"{table[k.rpartition('.')[0]]}.{k.rpartition('.')[2]}" for k in keys
              if k.rpartition(".")[0] in table}
    mapped |= {k for k in keys if k in arch.param_shapes()}
    missing = [k for k in arch.param_shapes() if k not in mapped]
    guess = detect_architecture(keys)
    hint = f" It looks like {guess!r}." if guess else ""
    raise ZFNetError(
        f"{path}: is not a state dict for {architecture}: "
        + (f"unexpected keys {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}; " if unexpected else "")
        + (f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}" if missing else "")
        + hint)
