"""Layer specs: a network is data.

A network is an ordered tuple of layer specs (a small DAG: each spec names its inputs), read by
the forward pass, the deconvnet, the converters and the receptive-field arithmetic alike.
The graph's input tensor is called ``data``. Every spec knows

- ``output_shape(*input_shapes)``: (C, H, W) or (F,) per example, batch dimension left out;
- ``param_shapes()``: the tensors it owns, e.g. ``{"weight": (F, C/G, KH, KW), "bias": (F,)}``;
- ``rf`` (spatial layers only): its kernel, stride and padding for receptive-field arithmetic.

Shapes here never include the batch dimension N.
"""
from dataclasses import dataclass, fields
from typing import ClassVar

from zfnet.errors import ZFNetError
from zfnet.kernels import conv2d_output_size, non_negative_pair, pool_output_size, positive_pair


def _freeze_window(spec):
    """Normalise a spatial layer's kernel_size and stride (positive) and padding (>= 0) to int pairs."""
    for n, check in (("kernel_size", positive_pair), ("stride", positive_pair), ("padding", non_negative_pair)):
        object.__setattr__(spec, n, check(getattr(spec, n), f"{spec.name}.{n}"))


@dataclass(frozen=True)
class Layer:
    """Base of every spec: a unique ``name`` and the names of its ``inputs``."""
    name: str
    inputs: tuple
    op: ClassVar[str] = "layer"

    def __post_init__(self):
        if isinstance(self.inputs, str):
            object.__setattr__(self, "inputs", (self.inputs,))
        else:
            object.__setattr__(self, "inputs", tuple(self.inputs))
        if not self.name or not isinstance(self.name, str):
            raise ZFNetError(f"every layer needs a non-empty string name, got {self.name!r}")

    def param_shapes(self):
        return {}

    def output_shape(self, *input_shapes):
        (s,) = input_shapes
        return s

    @property
    def rf(self):
        """(kernel, stride, padding) as pairs, for layers that move spatially; identity else."""
        return (1, 1), (1, 1), (0, 0)

    def describe(self):
        """Hyper-parameters as a plain dict (no name/inputs), for JSON and metadata."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("name", "inputs")}

    def _one_input(self, shapes):
        if len(shapes) != 1:
            raise ZFNetError(f"layer {self.name!r} ({self.op}) takes one input, got {len(shapes)}")
        return shapes[0]


@dataclass(frozen=True)
class Conv(Layer):
    """y = conv2d(x, w, b): w (F, C/G, KH, KW), b (F,); see kernels/conv2d.py."""
    in_channels: int = 0
    out_channels: int = 0
    kernel_size: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    groups: int = 1
    bias: bool = True
    op: ClassVar[str] = "conv"

    def __post_init__(self):
        super().__post_init__()
        _freeze_window(self)
        g = self.groups
        if g < 1 or self.in_channels % g or self.out_channels % g or self.in_channels < 1 or self.out_channels < 1:
            raise ZFNetError(
                f"conv {self.name!r}: in_channels {self.in_channels} and out_channels "
                f"{self.out_channels} must be positive multiples of groups {g}"
            )

    def param_shapes(self):
        kh, kw = self.kernel_size
        p = {"weight": (self.out_channels, self.in_channels // self.groups, kh, kw)}
        if self.bias:
            p["bias"] = (self.out_channels,)
        return p

    def output_shape(self, *shapes):
        c, h, w = self._one_input(shapes)
        if c != self.in_channels:
            raise ZFNetError(f"conv {self.name!r} expects {self.in_channels} input channels, gets {c}")
        ho, wo = conv2d_output_size((h, w), self.kernel_size, self.stride, self.padding)
        return (self.out_channels, ho, wo)

    @property
    def rf(self):
        return self.kernel_size, self.stride, self.padding


@dataclass(frozen=True)
class ReLU(Layer):
    op: ClassVar[str] = "relu"


@dataclass(frozen=True)
class _Pool(Layer):
    """What max and average pooling share: a window over each feature map, ``ceil_mode`` being
    Caffe's round-up rule for the output size (kernels/max_pool2d.py, avg_pool2d.py)."""
    kernel_size: tuple = (2, 2)
    stride: tuple = (2, 2)
    padding: tuple = (0, 0)
    ceil_mode: bool = False

    def __post_init__(self):
        super().__post_init__()
        _freeze_window(self)

    def output_shape(self, *shapes):
        c, h, w = self._one_input(shapes)
        return (c, *pool_output_size((h, w), self.kernel_size, self.stride, self.padding, self.ceil_mode))

    @property
    def rf(self):
        return self.kernel_size, self.stride, self.padding


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling that records switches; ``ceil_mode`` is Caffe's round-up rule."""
    op: ClassVar[str] = "maxpool"


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling (ONNX AveragePool); ``count_include_pad`` as in ONNX/PyTorch."""
    count_include_pad: bool = False
    op: ClassVar[str] = "avgpool"


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """(C, H, W) -> (C, 1, 1): the mean of every feature map."""
    op: ClassVar[str] = "gap"

    def output_shape(self, *shapes):
        c, h, w = self._one_input(shapes)
        return (c, 1, 1)


@dataclass(frozen=True)
class LRN(Layer):
    """Local response normalisation, across channels or (Caffe) within channel; see kernels/lrn.py."""
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    within_channel: bool = False
    op: ClassVar[str] = "lrn"

    def __post_init__(self):
        super().__post_init__()
        if self.size < 1:
            raise ZFNetError(f"lrn {self.name!r}: size must be >= 1, got {self.size}")


@dataclass(frozen=True)
class Concat(Layer):
    """Channel concatenation of several inputs (SqueezeNet's fire modules)."""
    op: ClassVar[str] = "concat"

    def output_shape(self, *shapes):
        if len(shapes) < 1:
            raise ZFNetError(f"concat {self.name!r} needs at least one input")
        hw = {s[1:] for s in shapes}
        if len(hw) != 1:
            raise ZFNetError(f"concat {self.name!r}: inputs differ in spatial size: {shapes}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])


@dataclass(frozen=True)
class Dropout(Layer):
    """Identity at inference (the scale is folded in at training time, as in Caffe and PyTorch)."""
    p: float = 0.5
    op: ClassVar[str] = "dropout"


@dataclass(frozen=True)
class Flatten(Layer):
    """(C, H, W) -> (C*H*W,) in C, H, W order."""
    op: ClassVar[str] = "flatten"

    def output_shape(self, *shapes):
        s = self._one_input(shapes)
        n = 1
        for d in s:
            n *= d
        return (n,)


@dataclass(frozen=True)
class Linear(Layer):
    """y = x w^T + b: w (O, I), b (O,)."""
    in_features: int = 0
    out_features: int = 0
    bias: bool = True
    op: ClassVar[str] = "linear"

    def param_shapes(self):
        p = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            p["bias"] = (self.out_features,)
        return p

    def output_shape(self, *shapes):
        s = self._one_input(shapes)
        if s != (self.in_features,):
            raise ZFNetError(
                f"linear {self.name!r} expects a flat input of {self.in_features} features, gets "
                f"shape {s} (add a Flatten layer, or fix in_features)"
            )
        return (self.out_features,)


@dataclass(frozen=True)
class Softmax(Layer):
    """Class probabilities from scores, over the feature axis."""
    op: ClassVar[str] = "softmax"


LAYER_TYPES = {cls.op: cls for cls in (Conv, ReLU, MaxPool, AvgPool, GlobalAvgPool, LRN, Concat,
                                       Dropout, Flatten, Linear, Softmax)}


def layer_from_dict(d):
    """Inverse of ``layer_to_dict`` (used for the metadata of converted weight files)."""
    d = dict(d)
    op = d.pop("op", None)
    if op not in LAYER_TYPES:
        raise ZFNetError(f"unknown layer op {op!r}; known: {', '.join(sorted(LAYER_TYPES))}")
    for k, v in d.items():
        if isinstance(v, list):
            d[k] = tuple(v)
    return LAYER_TYPES[op](**d)


def layer_to_dict(layer):
    d = {"op": layer.op, "name": layer.name, "inputs": list(layer.inputs)}
    for k, v in layer.describe().items():
        d[k] = list(v) if isinstance(v, tuple) else v
    return d
