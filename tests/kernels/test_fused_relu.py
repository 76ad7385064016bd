"""conv2d(relu=True) (the conv + ReLU fusion the forward pass uses) equals relu(conv2d(...)) exactly."""
import numpy as np
import pytest

from zfnet import kernels
from zfnet.net import Net, forward, get_architecture
from zfnet.net.plan import fused_relus


@pytest.mark.parametrize("shape,wshape,stride,padding,groups,bias", [
    ((1, 3, 17, 19), (8, 3, 7, 7), 2, 1, 1, True),        # im2col, one image
    ((3, 4, 9, 9), (6, 2, 3, 3), 1, 1, 2, True),          # im2col, a chunk of images, groups
    ((2, 5, 6, 7), (4, 5, 1, 1), 1, 0, 1, True),          # 1x1: the plain GEMM path
    ((2, 5, 6, 7), (4, 5, 1, 1), 1, 0, 1, False),         # no bias: the ReLU still applied
    ((3, 4, 8, 8), (6, 4, 3, 3), 1, 1, 1, False),
])
def test_conv2d_relu_equals_relu_of_conv2d(rng, shape, wshape, stride, padding, groups, bias):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(wshape).astype(np.float32)
    b = rng.standard_normal(wshape[0]).astype(np.float32) if bias else None
    x[0, 0, 0, 0] = np.nan                                  # NaN propagates like kernels.relu
    for backend in ("cpu", "reference"):
        plain = kernels.relu(kernels.conv2d(x, w, b, stride, padding, groups, backend=backend), backend=backend)
        fused = kernels.conv2d(x, w, b, stride, padding, groups, backend=backend, relu=True)
        np.testing.assert_array_equal(fused, plain)
        assert (fused[~np.isnan(fused)] >= 0).all() and np.isnan(fused).any()


def test_forward_fuses_only_unkept_convs_read_by_one_relu():
    arch = get_architecture("squeezenet1_0")
    fused = fused_relus(arch.layers, {arch.output})
    assert fused["conv1"] == "relu_conv1" and fused["fire2/expand3x3"] == "fire2/relu_expand3x3"
    assert "conv1" not in fused_relus(arch.layers, {"conv1", arch.output})   # kept: its pre-ReLU values are needed


@pytest.mark.parametrize("arch_name", ["zfnet", "squeezenet1_0"])
def test_fused_forward_equals_unfused(rng, arch_name):
    arch = get_architecture(arch_name)
    net = Net.random(arch, seed=0)
    x = rng.standard_normal((2, *arch.input_shape)).astype(np.float32)
    every = forward(net, x, keep="all")                     # keeps every conv: nothing fused
    fast = forward(net, x, keep=["pool1"])                  # fuses every conv + ReLU pair
    np.testing.assert_array_equal(fast.output, every.output)
    np.testing.assert_array_equal(fast["pool1"], every["pool1"])
    for name in every.switches:
        np.testing.assert_array_equal(fast.switches[name], every.switches[name])
