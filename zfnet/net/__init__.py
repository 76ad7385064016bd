"""Networks as data: layer specs, architectures, the forward pass."""
from zfnet.net.architectures import ARCHITECTURES, get_architecture
from zfnet.net.forward import ForwardResult, forward
from zfnet.net.graph import INPUT, Architecture, Net
from zfnet.net.spec import (LAYER_TYPES, LRN, AvgPool, Concat, Conv, Dropout, Flatten, GlobalAvgPool,
                            Layer, Linear, MaxPool, ReLU, Softmax)

__all__ = [
    "ARCHITECTURES", "get_architecture", "forward", "ForwardResult", "INPUT", "Architecture", "Net",
    "LAYER_TYPES", "Layer", "Conv", "ReLU", "MaxPool", "AvgPool", "GlobalAvgPool", "LRN", "Concat",
    "Dropout", "Flatten", "Linear", "Softmax",
]
