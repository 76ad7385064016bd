"""Batch invariance: forward(net, x) gives image i the very bits of forward(net, x[i:i+1]), on every
built-in architecture, whatever is kept and whether switches are recorded (the kernels' contract:
each image's output depends only on that image; README, "Kernels").

Small random nets: each architecture's layers at a small input size, its fully connected layers
narrowed to at most 64 units; the real SqueezeNet once at its real size.
"""
import dataclasses

import numpy as np
import pytest

from zfnet.net import Net, forward, get_architecture
from zfnet.net.architectures import ARCHITECTURES
from zfnet.net.graph import INPUT, Architecture
from zfnet.net.spec import Linear

# the smallest-ish input each architecture accepts (pool5 a few units wide)
SMALL_INPUT = {"vgg16": 64, "squeezenet1_0": 99}


def _small_net(name):
    """The architecture's layers on a small input, each Linear taking what reaches it, <= 64 wide."""
    arch = get_architecture(name, num_classes=10)
    side = SMALL_INPUT.get(name, 99)
    shapes, layers = {INPUT: (3, side, side)}, []
    for layer in arch.layers:
        if isinstance(layer, Linear):
            size = int(np.prod(shapes[layer.inputs[0]]))
            layer = dataclasses.replace(layer, in_features=size, out_features=min(64, layer.out_features))
        shapes[layer.name] = tuple(layer.output_shape(*[shapes[i] for i in layer.inputs]))
        layers.append(layer)
    return Net.random(Architecture(arch.name, tuple(layers), (3, side, side)), seed=5)


def _images(net, n, seed=5):
    x = np.random.default_rng(seed).standard_normal((n, *net.arch.input_shape)) * 50
    return x.astype(np.float32)


def assert_batch_invariant(net, x, **kwargs):
    """forward on x equals forward image by image (and on a slice of 2), bit for bit, for every
    kept output and switch."""
    whole = forward(net, x, **kwargs)
    pieces = [forward(net, x[i:i + 1], **kwargs) for i in range(x.shape[0])]
    pair = forward(net, x[1:3], **kwargs)
    assert whole.outputs.keys() == pieces[0].outputs.keys()
    for name, y in whole.outputs.items():
        for i, one in enumerate(pieces):
            np.testing.assert_array_equal(y[i], one.outputs[name][0], err_msg=f"{name}, image {i}")
        np.testing.assert_array_equal(y[1:3], pair.outputs[name], err_msg=f"{name}, images 1:3")
    for name, sw in whole.switches.items():
        for i, one in enumerate(pieces):
            np.testing.assert_array_equal(sw[i], one.switches[name][0], err_msg=f"switches {name}, {i}")


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_is_batch_invariant(name):
    net = _small_net(name)
    assert_batch_invariant(net, _images(net, 5), switches=False)


@pytest.mark.parametrize("name", ["zfnet", "squeezenet1_0"])
def test_kept_layers_and_switches_are_batch_invariant(name):
    net = _small_net(name)
    assert_batch_invariant(net, _images(net, 4), keep="all", switches=True)


def test_real_squeezenet_is_batch_invariant(images_dir):
    from zfnet.weights import load_model
    net = load_model("squeezenet1_0")
    x = _images(net, 3, seed=9)
    x[2] = x[0]                                           # the same image twice: the same bits
    whole = forward(net, x, switches=False).output
    for i in range(3):
        np.testing.assert_array_equal(whole[i], forward(net, x[i:i + 1], switches=False).output[0])
    np.testing.assert_array_equal(whole[2], whole[0])
