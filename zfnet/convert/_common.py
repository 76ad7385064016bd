"""What every converter shares: reading the file, building the layer specs, matching the result
against the built-in architectures, and the Net's provenance metadata.

A converter walks a foreign graph and calls ``GraphBuilder.add(spec, weight=..., bias=...)`` once
per layer; the builder works out every output shape as it goes (so a wrong file fails at the
layer that is wrong, with the file named) and checks every tensor against the spec's
``param_shapes()``. ``finish`` then makes the graph end in a Softmax called ``prob`` (the
project-wide convention), drops layers that do not lead to it, and, when the graph equals a
built-in architecture up to Dropout layers and names, returns that built-in Architecture with the
tensors renamed to its layer names: so SqueezeNet converted from a .caffemodel, an .onnx, a .pth
or the Deep Compression file is one and the same Net.
"""
import dataclasses
import functools
import hashlib
from pathlib import Path

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.architectures import ARCHITECTURES, get_architecture
from zfnet.net.graph import INPUT, Architecture, Net
from zfnet.net.spec import Flatten, Softmax

CONVERTER_VERSION = "1"
OUTPUT_NAME = "prob"
# A bound on what a file can make us allocate: 1 GiB of float32, twice VGG-16's 138 M parameters.
MAX_PARAMETERS = 1 << 28


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def read_source(path, kind):
    """(Path, bytes) of a weight file; a clear ZFNetError if it is missing, a folder or empty."""
    path = Path(path)
    if not path.exists():
        raise ZFNetError(f"{path}: no such file (expected a {kind})")
    if not path.is_file():
        raise ZFNetError(f"{path}: is not a file (expected a {kind})")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ZFNetError(f"{path}: cannot be read: {e.strerror or e}") from None
    if not data:
        raise ZFNetError(f"{path}: the file is empty (0 bytes); download it again")
    return path, data


def provenance(path, data, converter, **extra):
    """The metadata every converted Net carries: where it came from and how it was made."""
    meta = {
        "source_file": Path(path).name,
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "converter": converter,
        "converter_version": CONVERTER_VERSION,
    }
    meta.update(extra)
    return meta


def float32_value(v):
    """A float stored as float32 in the file, as the shortest decimal that round-trips it.

    ONNX and Caffe store LRN's alpha = 1e-4 as the float32 0.0000999999974738...; writing the
    spec with 0.0001 keeps converted specs equal to the built-in ones and readable in JSON.
    """
    v = float(v)
    return float(str(np.float32(v))) if np.isfinite(v) else v


# ---------------------------------------------------------------------------------------------
# Building the specs
# ---------------------------------------------------------------------------------------------

class GraphBuilder:
    """Collects layer specs and tensors in topological order, checking shapes as it goes.

    ``shapes`` maps every tensor (``data`` and each layer's output) to its shape without the batch
    dimension: (C, H, W) or (F,).
    """

    def __init__(self, path, input_shape):
        self.path = path
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ZFNetError(f"{path}: the input must be (N, C, H, W) with positive sizes, got "
                             f"(N, {', '.join(str(d) for d in self.input_shape)})")
        self.layers = []
        self.params = {}
        self.count = 0                                # parameters so far
        self.shapes = {INPUT: self.input_shape}

    def fail(self, message):
        return ZFNetError(f"{self.path}: {message}")

    def unique(self, name):
        """`name`, or `name_2`, `name_3`, ... if a tensor of that name exists already."""
        name = name or "layer"
        if name not in self.shapes:
            return name
        i = 2
        while f"{name}_{i}" in self.shapes:
            i += 1
        return f"{name}_{i}"

    def shape(self, tensor):
        return self.shapes[tensor]

    def add(self, spec, **tensors):
        """Append `spec`; `tensors` are its parameters ("weight", "bias") as float arrays."""
        if spec.name in self.shapes:
            raise self.fail(f"two layers are called {spec.name!r}")
        try:
            out = spec.output_shape(*[self.shapes[i] for i in spec.inputs])
        except ZFNetError as e:
            raise self.fail(f"layer {spec.name!r} ({spec.op}): {e}") from None
        want = spec.param_shapes()
        if set(want) != set(tensors):
            raise self.fail(f"layer {spec.name!r} needs tensors {sorted(want)}, the file gives "
                            f"{sorted(tensors)}")
        self.count += sum(int(np.size(tensors[key])) for key in want)
        if self.count > MAX_PARAMETERS:             # checked before the tensors are copied
            raise self.fail(f"layer {spec.name!r}: the network would have {self.count} parameters, "
                            f"more than the {MAX_PARAMETERS} any network here has (damaged file?)")
        for key, shape in want.items():
            a = np.ascontiguousarray(tensors[key], dtype=np.float32)
            if a.shape != tuple(shape):
                raise self.fail(f"layer {spec.name!r}: {key} has shape {a.shape}, expected "
                                f"{tuple(shape)} (is the file damaged or for another network?)")
            if not np.all(np.isfinite(a)):
                bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
                raise self.fail(f"layer {spec.name!r}: {key} contains {bad} NaN or infinite "
                                f"values (the weights are damaged)")
            self.params[f"{spec.name}.{key}"] = a
        self.layers.append(spec)
        self.shapes[spec.name] = tuple(out)
        return spec.name

    def flatten(self, tensor, name=None):
        """`tensor` as a flat (F,) vector, adding a Flatten layer if it is (C, H, W)."""
        if len(self.shapes[tensor]) == 1:
            return tensor
        for layer in self.layers:                     # reuse an existing flatten of it
            if layer.op == "flatten" and layer.inputs == (tensor,):
                return layer.name
        return self.add(Flatten(self.unique(name or f"{tensor}_flat"), (tensor,)))

    # -- finishing ------------------------------------------------------------------------------
    def finish(self, name, output):
        """The Architecture ending at tensor `output`, made to end in Softmax ``prob``.

        Layers that do not lead to `output` are dropped. Returns (arch, params, notes) where
        notes lists what was changed ("softmax_added", "renamed_output", "pruned": [...]).
        """
        if output == INPUT or output not in self.shapes:
            raise self.fail("the graph has no layers between its input and its output")
        notes = {}
        layers = {layer.name: layer for layer in self.layers}
        last = layers[output]
        if last.op != "softmax":
            # Class scores without a softmax (e.g. a torch export): add one, as every net here ends in prob.
            top = self.flatten(output) if self.shapes[output][1:] == (1, 1) else output
            out_name = OUTPUT_NAME if OUTPUT_NAME not in self.shapes else self.unique(OUTPUT_NAME)
            output = self.add(Softmax(out_name, (top,)))
            notes["softmax_added"] = True
        elif last.name != OUTPUT_NAME and OUTPUT_NAME not in self.shapes:
            notes["renamed_output"] = last.name
            self.layers[self.layers.index(last)] = dataclasses.replace(last, name=OUTPUT_NAME)
            self.shapes[OUTPUT_NAME] = self.shapes.pop(last.name)
            output = OUTPUT_NAME
        # Keep only the ancestors of the output, in order.
        needed, stack = set(), [output]
        by_name = {layer.name: layer for layer in self.layers}
        while stack:
            n = stack.pop()
            if n in needed or n == INPUT:
                continue
            needed.add(n)
            stack.extend(by_name[n].inputs)
        kept = [layer for layer in self.layers if layer.name in needed]
        pruned = [layer.name for layer in self.layers if layer.name not in needed]
        if pruned:
            notes["pruned"] = pruned
        params = {k: v for k, v in self.params.items() if k.rsplit(".", 1)[0] in needed}
        # Move the output last (it is already, unless pruned layers came after it).
        kept = [layer for layer in kept if layer.name != output] + [by_name[output]]
        try:
            arch = Architecture(name, tuple(kept), self.input_shape)
        except ZFNetError as e:
            raise self.fail(str(e)) from None
        return arch, params, notes


# ---------------------------------------------------------------------------------------------
# Matching a converted graph against the built-in architectures
# ---------------------------------------------------------------------------------------------

def _canonical(value):
    if isinstance(value, float):
        return float32_value(value)
    if isinstance(value, (tuple, list)):
        return tuple(_canonical(v) for v in value)
    return value


def _hyper(layer):
    """A layer's hyper-parameters as a hashable key (floats compared at float32 precision)."""
    return tuple(sorted((k, _canonical(v)) for k, v in layer.describe().items()))


def _canonical_ids(arch, table):
    """{tensor name: id} where equal ids mean equal computations (same op, hyper-parameters and
    inputs, recursively); Dropout layers are looked through (identity at inference)."""
    alias = {}
    ids = {INPUT: table.setdefault(("data", arch.input_shape[0]), len(table))}
    for layer in arch.layers:
        inputs = [alias.get(i, i) for i in layer.inputs]
        if layer.op == "dropout":
            alias[layer.name] = inputs[0]
            continue
        key = (layer.op, _hyper(layer), tuple(ids[i] for i in inputs))
        ids[layer.name] = table.setdefault(key, len(table))
    return ids, alias


def _depth(arch):
    return sum(layer.op != "dropout" for layer in arch.layers)


@functools.lru_cache(maxsize=None)
def _builtin(name):
    """A built-in architecture, built once (Architecture is immutable)."""
    return get_architecture(name)


def _rename(arch, params, target):
    """If `arch` computes exactly what `target` computes, `params` renamed to target's layers."""
    if arch.input_shape[0] != target.input_shape[0] or _depth(arch) != _depth(target):
        return None                                   # cheap tests first: most files differ here
    table = {}
    tid, talias = _canonical_ids(target, table)
    aid, aalias = _canonical_ids(arch, table)
    t_out, a_out = talias.get(target.output, target.output), aalias.get(arch.output, arch.output)
    if tid[t_out] != aid[a_out] or len(tid) != len(aid):
        return None
    by_id = {v: k for k, v in tid.items()}
    if len(by_id) != len(tid):                        # two identical layers: ambiguous
        return None
    renamed = {}
    for key, a in params.items():
        layer, tensor = key.rsplit(".", 1)
        renamed[f"{by_id[aid[layer]]}.{tensor}"] = a
    if set(renamed) != set(target.param_shapes()):
        return None
    return renamed


def adopt_builtin(arch, params, required=None, path=None):
    """(arch, params, matched name or None): the built-in architecture `arch` equals, if any.

    `required`: the name of the built-in the file must be; a clear ZFNetError naming the first
    difference otherwise.
    """
    names = [required] if required else list(ARCHITECTURES)
    for name in names:
        target = _builtin(name)
        renamed = _rename(arch, params, target)
        if renamed is not None:
            if target.input_shape != arch.input_shape:
                target = target.with_input_shape(arch.input_shape)
            return target, renamed, name
    if required:
        raise ZFNetError(f"{path}: the file's network is not {required!r}: "
                         f"{describe_difference(arch, get_architecture(required))}")
    return arch, params, None


def describe_difference(arch, target):
    """Words for the first place where two architectures differ (Dropout layers ignored)."""
    mine = [layer for layer in arch.layers if layer.op != "dropout"]
    theirs = [layer for layer in target.layers if layer.op != "dropout"]
    if arch.input_shape[0] != target.input_shape[0]:
        return f"it takes {arch.input_shape[0]} input channels, {target.name} takes {target.input_shape[0]}"
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if a.op != b.op or _hyper(a) != _hyper(b):
            return (f"its layer {i + 1} {a.name!r} is {a.op} {dict(_hyper(a))}, where {target.name} "
                    f"has {b.name!r}: {b.op} {dict(_hyper(b))}")
    if len(mine) != len(theirs):
        return f"it has {len(mine)} layers (not counting dropout), {target.name} has {len(theirs)}"
    return "its layers are connected differently"


# No trained weight of these networks comes near this (the largest in SqueezeNet is 4.7); a file
# holding one is damaged, and would make the forward pass overflow to inf and NaN.
MAX_ABS_WEIGHT = 1e5


def check_values(path, params):
    """A ZFNetError naming the layer whose tensor holds NaN, infinity or an absurd magnitude."""
    for key, a in params.items():
        a = np.asarray(a)
        if a.size == 0 or a.dtype.kind != "f":
            continue
        peak = float(np.max(np.abs(a)))
        if not np.isfinite(peak):
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ZFNetError(f"{path}: layer {key.rsplit('.', 1)[0]!r}: {key} holds {bad} NaN or "
                             f"infinite values (the weights are damaged)")
        if peak > MAX_ABS_WEIGHT:
            raise ZFNetError(f"{path}: layer {key.rsplit('.', 1)[0]!r}: {key} holds a value of "
                             f"magnitude {peak:.3g}, beyond any trained weight (> {MAX_ABS_WEIGHT:g}); "
                             f"the weights are damaged")


def make_net(path, arch, params, meta):
    """The Net, with ``architecture`` and ``input_size`` added to `meta`; every tensor is checked
    by ``check_values``."""
    check_values(path, params)
    meta = dict(meta)
    meta["architecture"] = arch.name
    meta["input_size"] = [int(arch.input_shape[1]), int(arch.input_shape[2])]
    try:
        return Net(arch, params, meta)
    except ZFNetError as e:
        raise ZFNetError(f"{path}: {e}") from None
