"""An architecture (layer specs in topological order) and a network (architecture + tensors).

    arch = Architecture("tiny", layers=(Conv("conv1", "data", 3, 8, 3), ReLU("relu1", "conv1")),
                        input_shape=(3, 32, 32))
    net = Net(arch, params={"conv1.weight": w, "conv1.bias": b}, meta={...})

Parameter names are ``"<layer>.<tensor>"`` (``"conv1.weight"``); shapes come from the specs and
are checked when a Net is built, so a wrong file fails there with the layer and both shapes named.
"""
from dataclasses import dataclass, field

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.kernels import frozen, prepared
from zfnet.net.spec import layer_from_dict, layer_to_dict

INPUT = "data"


@dataclass(frozen=True)
class Architecture:
    """Layer specs in topological order; the input tensor is ``data`` of ``input_shape`` (C, H, W)."""
    name: str
    layers: tuple
    input_shape: tuple = (3, 224, 224)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        seen = {INPUT}
        for layer in self.layers:
            if layer.name in seen:
                raise ZFNetError(f"architecture {self.name!r}: layer name {layer.name!r} is used twice")
            for i in layer.inputs:
                if i not in seen:
                    raise ZFNetError(
                        f"architecture {self.name!r}: layer {layer.name!r} reads {i!r}, which is not "
                        f"defined before it (layers must be in topological order)"
                    )
            seen.add(layer.name)
        self.shapes  # validates every layer's shape once, at construction

    # -- lookup ---------------------------------------------------------------------------------
    @property
    def names(self):
        return [layer.name for layer in self.layers]

    def layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ZFNetError(f"architecture {self.name!r} has no layer {name!r}; {self._suggest(name)}")

    def _suggest(self, name):
        """"did you mean ..." with the closest names (a typo); the whole list only when none is close."""
        import difflib
        close = difflib.get_close_matches(str(name), self.names, n=3, cutoff=0.6)
        if close:
            return f"did you mean {' or '.join(repr(c) for c in close)}?"
        return f"its layers are: {', '.join(self.names)}"

    def index(self, name):
        return self.names.index(self.layer(name).name)

    @property
    def output(self):
        return self.layers[-1].name

    def consumers(self, name):
        """Layers that read tensor `name`."""
        return [layer for layer in self.layers if name in layer.inputs]

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def shapes(self):
        """{tensor name: shape without batch} for ``data`` and every layer's output."""
        cached = self.__dict__.get("_shapes")
        if cached is None:
            cached = {INPUT: self.input_shape}
            for layer in self.layers:
                cached[layer.name] = tuple(layer.output_shape(*[cached[i] for i in layer.inputs]))
            object.__setattr__(self, "_shapes", cached)
        return cached

    def param_shapes(self):
        """{"layer.tensor": shape} for every parameter, in layer order."""
        out = {}
        for layer in self.layers:
            for k, s in layer.param_shapes().items():
                out[f"{layer.name}.{k}"] = tuple(s)
        return out

    def with_input_shape(self, input_shape):
        """The same layers on another input size (e.g. a larger image); shapes re-checked."""
        return Architecture(self.name, self.layers, input_shape)

    # -- (de)serialisation, for weight-file metadata ---------------------------------------------
    def to_dict(self):
        return {"name": self.name, "input_shape": list(self.input_shape),
                "layers": [layer_to_dict(layer) for layer in self.layers]}

    @classmethod
    def from_dict(cls, d):
        try:
            return cls(d["name"], tuple(layer_from_dict(x) for x in d["layers"]), tuple(d["input_shape"]))
        except (KeyError, TypeError) as e:
            raise ZFNetError(f"malformed architecture description: {e}") from None


@dataclass
class Net:
    """An architecture with its tensors and metadata (preprocessing, classes, provenance).

    params: {"layer.tensor": float32 C-contiguous array}; exactly the architecture's
    ``param_shapes()``. meta: free-form dict; see zfnet.weights for the keys converters write.

    The Net takes its tensors over and makes them read-only (an array that owns its memory is
    frozen in place, a view of someone else's buffer is copied first), so that filters transformed
    for a fast convolution can be kept (kernels/_prepared.py). To change a weight, assign a new
    array: ``net.params["conv1.weight"] = net.params["conv1.weight"] * 0.5``.
    """
    arch: Architecture
    params: dict
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        want = self.arch.param_shapes()
        source = self.meta.get("source_file", "the given tensors")
        missing = [k for k in want if k not in self.params]
        extra = [k for k in self.params if k not in want]
        if missing or extra:
            raise ZFNetError(
                f"{source}: tensors do not match architecture {self.arch.name!r}: "
                + (f"missing {missing} " if missing else "")
                + (f"unexpected {extra}" if extra else "")
            )
        fixed = {}
        for k, shape in want.items():
            a = self.params[k]
            if tuple(a.shape) != shape:
                raise ZFNetError(
                    f"{source}: tensor {k!r} has shape {tuple(a.shape)}, architecture "
                    f"{self.arch.name!r} needs {shape} (is this file for another architecture?)"
                )
            a = np.ascontiguousarray(a, dtype=np.float32)
            if not np.all(np.isfinite(a)):
                raise ZFNetError(f"{source}: tensor {k!r} contains NaN or infinite values")
            if not frozen(a):
                if a.base is not None:
                    a = a.copy()                  # a view: whoever owns the buffer could write it
                a.setflags(write=False)
            fixed[k] = a
        self.params = fixed

    def weight(self, layer):
        return self.params[f"{layer}.weight"]

    def bias(self, layer):
        return self.params.get(f"{layer}.bias")

    def device_param(self, key, transposed=False):
        """params[key] ("conv1.weight") as a CUDA device array, uploaded once and kept while the
        array lives (kernels.prepared, keyed on the frozen array: a new array is uploaded anew).
        transposed=True: a 2-D weight's transpose, C-contiguous (the deconvnet's fc rule)."""
        from zfnet.net.tensors import to_device
        if transposed:
            return prepared(self.params[key], "cuda-transposed", lambda a: to_device(np.ascontiguousarray(a.T)))
        return prepared(self.params[key], "cuda", to_device)

    @classmethod
    def random(cls, arch, seed=0, meta=None):
        """Random weights (He-scaled normal, small positive biases), for tests and examples."""
        rng = np.random.default_rng(seed)
        params = {}
        for k, shape in arch.param_shapes().items():
            if k.endswith(".bias"):
                params[k] = rng.uniform(0.0, 0.1, size=shape).astype(np.float32)
            else:
                fan_in = int(np.prod(shape[1:]))
                w = rng.standard_normal(shape, dtype=np.float32)   # float32 directly: no float64 peak
                w *= np.float32(np.sqrt(2.0 / fan_in))
                params[k] = w
        return cls(arch, params, dict(meta or {}))
