"""The projection equals PyTorch autograd with the deconvnet's ReLU rule (deconv_support.py).

For every built-in network family (random weights; truncated and at smaller inputs where the
full size is slow, and at full size once) and for the real SqueezeNet, at layers of every kind
(convolution, ReLU, max-pool, LRN, concat, fully connected, class scores), in all three modes
and with both LRN rules: zfnet's projection, cropped and dense, matches autograd's to
TOL relative to the largest value (float32 summation order is all that differs).
"""
import numpy as np
import pytest

from deconv_support import (decisions_disagree, gap_sink, kitchen_sink, real_squeezenet, rel_err,
                            torch_project, truncated)
from zfnet.deconv import MODES, Unit, project, strongest_unit
from zfnet.net import Net, forward, get_architecture

TOL = 2e-5


def _units(act, image=0, channel=None):
    """The strongest unit, a whole map, a corner unit, an edge unit of the last image."""
    if act.ndim == 2:
        c = int(np.argmax(act[image])) if channel is None else channel
        return [Unit(image, c), Unit(act.shape[0] - 1, (c + 7) % act.shape[1])]
    C, H, W = act.shape[1:]
    c = int(np.argmax(act[image].reshape(C, -1).max(axis=1))) if channel is None else channel
    return [strongest_unit(act, image, c), Unit(image, c), Unit(image, (c + 1) % C, 0, 0),
            Unit(act.shape[0] - 1, (c + 2) % C, H - 1, W // 2)]


def _check(net, x, fwd, layer, modes=MODES, lrns=("identity",), units=None, nonzero=True, crops=(True,)):
    """Compare zfnet with torch autograd; returns the largest error seen.

    crops=(True,): single units on the cropped walk, whole maps and flat units dense (both paths
    run); (True, False) also runs every single unit dense (test_crop.py compares the two paths
    everywhere).
    """
    spec = net.arch.layer(layer)
    start = spec.inputs[0] if spec.op == "softmax" else layer
    units = units or _units(fwd.outputs[start])
    worst = 0.0
    for lrn in lrns:
        refs, own = torch_project(net, x, layer, units, fwd, modes, lrn)
        for mode in modes:
            ref = refs[mode]
            if nonzero:
                assert np.abs(ref[0]).max() > 0, (layer, mode, lrn)
            for crop in crops:
                ours = project(net, x, layer, units, mode=mode, lrn=lrn, crop=crop, forward_result=fwd)
                assert ours.shape == ref.shape and ours.dtype == np.float32
                for k, u in enumerate(units):
                    e = rel_err(ours[k], ref[k])
                    assert e <= TOL, (layer, mode, lrn, crop, u, e)
                    worst = max(worst, e)
    relu_flips, pool_flips = decisions_disagree(own, fwd)
    assert relu_flips + pool_flips <= 4, (relu_flips, pool_flips)
    return worst


def _small(name, last, hw, seed=0, n=2):
    arch = truncated(get_architecture(name), last, hw)
    net = Net.random(arch, seed)
    x = np.random.default_rng(seed).standard_normal((n, 3, *hw)).astype(np.float32)
    return net, x, forward(net, x, keep="all")


@pytest.mark.parametrize("layer", ["relu1", "pool1", "norm1", "conv2", "pool2", "conv3", "relu4", "conv5", "pool5"])
def test_zfnet_small(layer):
    net, x, fwd = _small("zfnet", "pool5", (83, 83))
    _check(net, x, fwd, layer, lrns=("identity", "gradient"), crops=(True, False))


@pytest.mark.parametrize("layer", ["norm1", "pool1", "norm2", "conv4", "pool5"])
def test_zf_caffe_small_within_channel_lrn(layer):
    net, x, fwd = _small("zf_caffe", "pool5", (83, 91))
    _check(net, x, fwd, layer, lrns=("identity", "gradient"))


@pytest.mark.parametrize("layer", ["conv2", "pool2", "relu4", "conv5", "pool5"])
def test_caffenet_small_grouped_convolutions(layer):
    net, x, fwd = _small("caffenet", "pool5", (131, 131))
    _check(net, x, fwd, layer, lrns=("identity", "gradient"))


@pytest.mark.parametrize("layer", ["fire2/squeeze1x1", "fire2/concat", "fire3/relu_expand3x3", "pool4",
                                   "fire6/expand1x1", "fire9/concat", "relu_conv10", "pool10", "prob"])
def test_squeezenet_small(layer):
    net, x, fwd = _small("squeezenet1_0", "prob", (83, 83))
    _check(net, x, fwd, layer)


@pytest.mark.parametrize("layer", ["conv1", "relu1", "norm1", "pool1", "relu2", "norm2", "apool", "squeeze",
                                   "relu_squeeze", "concat", "apool2", "drop", "flatten", "fc1", "relu_fc1",
                                   "fc2", "prob"])
def test_every_layer_type(layer):
    net = Net.random(kitchen_sink(), 5)
    x = np.random.default_rng(5).standard_normal((2, 3, 31, 25)).astype(np.float32)
    _check(net, x, forward(net, x, keep="all"), layer, lrns=("identity", "gradient"))


@pytest.mark.parametrize("layer", ["relu10", "gap", "prob"])
def test_global_average_pool_tail(layer):
    net = Net.random(gap_sink(), 2)
    x = np.random.default_rng(2).standard_normal((2, 3, 20, 17)).astype(np.float32)
    _check(net, x, forward(net, x, keep="all"), layer)


def test_lrn_rules_really_differ():
    # strong LRNs: the exact gradient is far from the identity, and each matches its torch twin
    net = Net.random(kitchen_sink(), 5)
    x = np.random.default_rng(6).standard_normal((1, 3, 31, 25)).astype(np.float32)
    fwd = forward(net, x, keep="all")
    units = [strongest_unit(fwd["apool"], 0, 3)]
    a = project(net, x, "apool", units, lrn="identity", forward_result=fwd)
    b = project(net, x, "apool", units, lrn="gradient", forward_result=fwd)
    assert rel_err(a, b) > 1e-2


@pytest.mark.slow
def test_zfnet_full_size_down_from_the_class_scores():
    net = Net.random(get_architecture("zfnet"), 7)
    x = np.random.default_rng(7).standard_normal((1, 3, 224, 224)).astype(np.float32)
    fwd = forward(net, x, keep="all")
    act = fwd["conv5"]
    c = int(np.argmax(act[0].reshape(act.shape[1], -1).max(axis=1)))
    _check(net, x, fwd, "conv5", lrns=("identity", "gradient"), units=[strongest_unit(act, 0, c), Unit(0, c, 0, 12)],
           crops=(True, False))
    for layer in ("fc6", "relu7", "prob"):
        start = net.arch.layer(layer).inputs[0] if layer == "prob" else layer
        _check(net, x, fwd, layer, units=[Unit(0, int(np.argmax(fwd.outputs[start][0])))])


@pytest.mark.slow
def test_squeezenet_full_size_random():
    net = Net.random(get_architecture("squeezenet1_0"), 8)
    x = np.random.default_rng(8).standard_normal((1, 3, 227, 227)).astype(np.float32)
    fwd = forward(net, x, keep="all")
    _check(net, x, fwd, "fire8/relu_squeeze1x1", units=_units(fwd["fire8/relu_squeeze1x1"])[:2])


@pytest.mark.slow
def test_real_squeezenet(squeezenet_dir, reference_outputs):
    net = real_squeezenet(squeezenet_dir)
    x = np.ascontiguousarray(reference_outputs["data"][:2])
    fwd = forward(net, x, keep="all")
    # the loader is right: onnxruntime's probabilities
    assert np.abs(fwd.output - reference_outputs["prob"][:2]).max() < 1e-5
    for layer in ("relu_conv1", "fire2/concat", "fire5/relu_expand3x3", "fire9/concat", "relu_conv10"):
        act = fwd[layer]
        _check(net, x, fwd, layer, units=[strongest_unit(act, 1, 3), Unit(0, 5, 0, act.shape[3] - 1)])
    # class scores (Egyptian cat and espresso, the top classes): guided and gradient are nonzero;
    # the deconvnet's rectified signal dies out on the way down for these two (torch agrees)
    top = [Unit(0, 285), Unit(1, 967)]
    _check(net, x, fwd, "prob", modes=("guided", "gradient"), units=top)
    _check(net, x, fwd, "prob", modes=("deconvnet",), units=top, nonzero=False)
