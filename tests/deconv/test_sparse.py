"""The sparse walk (zfnet/deconv/sparse.py) gives the projection of the rules in backward.py.

project() walks single units of chain networks with the sparse walk. Here every unit is walked
three ways and compared: the sparse walk, the cropped walk by the rules of backward.py (the
sparse walk switched off) and the dense walk, and against PyTorch autograd; at the corners,
edges and centre of every spatial layer, in the deconvnet and guided modes, for each of the walk's filter
kernels forced in turn, for zero units and for switches shared by overlapping pooling windows.
"""
import importlib

import numpy as np
import pytest

from deconv_support import rel_err, torch_project, truncated
from zfnet.deconv import MODES, Unit, project, sparse
from zfnet.deconv.crop import unit_plan
from zfnet.net import (LRN, Architecture, Conv, Dropout, MaxPool, Net, ReLU, forward,
                       get_architecture)

conv_transpose_sparse_mod = importlib.import_module("zfnet.kernels.conv_transpose_sparse")

TOL = 1e-6          # against the other walks: float32 summation order only
TORCH_TOL = 2e-5    # as test_project_torch.py


def _positions(h, w):
    # four corners, two edges, the centre
    return sorted({(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, w // 2), (h // 2, w - 1),
                   (h // 2, w // 2)})


def _units(act, image):
    return [Unit(image, int(np.argmax(act[image, :, y, x])), y, x) for y, x in _positions(*act.shape[2:])]


def _rules_walk(monkeypatch, *args, **kwargs):
    """project() with the sparse walk switched off: the cropped walk of backward.py's rules."""
    with monkeypatch.context() as m:
        m.setattr(sparse, "supports", lambda *a: False)
        return project(*args, **kwargs)


FAST_MODES = ("deconvnet", "guided")


def _compare(monkeypatch, net, x, layers, modes=FAST_MODES, torch_check=True):
    fwd = forward(net, x, keep="all")
    image = x.shape[0] - 1
    for layer in layers:
        assert sparse.supports(net.arch, layer, "deconvnet", "identity")
        units = _units(fwd[layer], image)
        for mode in modes:
            fast = project(net, x, layer, units, mode=mode, forward_result=fwd)
            rules = _rules_walk(monkeypatch, net, x, layer, units, mode=mode, forward_result=fwd)
            dense = project(net, x, layer, units, mode=mode, crop=False, forward_result=fwd)
            for k, u in enumerate(units):
                assert rel_err(fast[k], rules[k]) <= TOL, (layer, mode, u, rel_err(fast[k], rules[k]))
                assert rel_err(fast[k], dense[k]) <= TOL, (layer, mode, u, rel_err(fast[k], dense[k]))
        if torch_check:
            refs, _ = torch_project(net, x, layer, units, fwd, modes)
            for mode in modes:
                fast = project(net, x, layer, units, mode=mode, forward_result=fwd)
                for k, u in enumerate(units):
                    assert rel_err(fast[k], refs[mode][k]) <= TORCH_TOL, (layer, mode, u)


def _zfnet_small(seed=1, hw=(83, 83)):
    net = Net.random(truncated(get_architecture("zfnet"), "pool5", hw), seed)
    x = np.random.default_rng(seed).standard_normal((2, 3, *hw)).astype(np.float32)
    return net, x


def test_which_walks_it_covers():
    zf, squeeze = get_architecture("zfnet"), get_architecture("squeezenet1_0")
    assert sparse.supports(zf, "conv5", "deconvnet", "identity") and sparse.supports(zf, "pool2", "guided", "identity")
    assert not sparse.supports(zf, "conv5", "deconvnet", "gradient")   # the LRN gradient: backward.py
    assert not sparse.supports(zf, "conv5", "gradient", "identity")    # the gradient mode: backward.py
    assert sparse.supports(get_architecture("caffenet"), "conv5", "deconvnet", "identity")
    assert sparse.supports(get_architecture("vgg16"), "pool5", "deconvnet", "identity")
    assert not sparse.supports(squeeze, "fire3/concat", "deconvnet", "identity")   # a branch, a concat
    assert sparse.supports(squeeze, "pool1", "deconvnet", "identity")               # below the first fire


def test_zfnet_every_layer_every_mode(monkeypatch):
    net, x = _zfnet_small()
    _compare(monkeypatch, net, x, ["conv1", "relu1", "pool1", "norm1", "conv2", "pool2", "conv3",
                                   "relu4", "conv5", "pool5"])


def test_caffenet_grouped(monkeypatch):
    net = Net.random(truncated(get_architecture("caffenet"), "pool5", (131, 131)), 3)
    x = np.random.default_rng(3).standard_normal((1, 3, 131, 131)).astype(np.float32)
    _compare(monkeypatch, net, x, ["conv2", "pool2", "conv4", "conv5"])


ONE_GROUP = ("by_position", "window_tiles", "filter_windows", "position_tiles")


@pytest.mark.parametrize("path", ["by_position", "window_tiles", "filter_windows", "position_tiles", "by_filter",
                                  "columns"])
def test_each_filter_kernel(monkeypatch, path):
    # force every filter step onto one kernel (the one-group kernels where one group allows it,
    # position_tiles where the channels below come in blocks of 64, else by_filter / by_position):
    # each must give the rules' projection alone
    net, x = _zfnet_small(seed=4)

    def forced(g, rectify, groups, unpooled, filter_bytes, out_channels):
        if path in ONE_GROUP and groups != 1:
            return "by_filter"
        return "by_position" if path == "position_tiles" and out_channels % 64 else path
    monkeypatch.setattr(conv_transpose_sparse_mod, "choose_path", forced)
    _compare(monkeypatch, net, x, ["conv2", "conv5", "pool5"], torch_check=False)


def test_zero_units_project_to_zeros(monkeypatch):
    net, x = _zfnet_small(seed=5)
    fwd = forward(net, x, keep="all")
    act = fwd["relu4"]
    n, c, y, xx = (int(i[0]) for i in np.nonzero(act == 0))
    u = Unit(n, c, y, xx)
    plan = unit_plan(net.arch, "relu4", y, xx)
    assert sparse.walk_unit(net, net.arch, plan, "relu4", fwd.outputs, fwd.switches, u, "deconvnet") is None
    for mode in MODES:
        assert not project(net, x, "relu4", [u], mode=mode, forward_result=fwd).any()
    # a zero unit next to nonzero ones: only its own projection is zero
    strong = Unit(n, c, *np.unravel_index(int(np.argmax(act[n, c])), act.shape[2:]))
    p = project(net, x, "relu4", [strong, u], forward_result=fwd)
    assert p[0].any() and not p[1].any()


def _one_bright_pixel_net():
    """A chain whose first pool's overlapping windows (3x3, stride 2) share their maxima.

    conv1 is the identity on channel 0 (and -identity on channel 1), so relu1 is the image; an
    image that is one bright pixel on a dim ramp makes up to four pooled units pick that pixel.
    """
    layers = [
        Conv("conv1", "data", 3, 4, 1, 1, 0),
        ReLU("relu1", "conv1"),
        MaxPool("pool1", "relu1", 3, 2, 0, ceil_mode=True),
        LRN("norm1", "pool1", 3, 1e-4, 0.75, 1.0),
        Conv("conv2", "norm1", 4, 6, 3, 1, 1),
        ReLU("relu2", "conv2"),
        Dropout("drop2", "relu2"),
        MaxPool("pool2", "drop2", 3, 2, 1),
        Conv("conv3", "pool2", 6, 5, 3, 2, 1),
    ]
    arch = Architecture("ties", layers, (3, 13, 13))
    net = Net.random(arch, 8)
    w = np.array(net.weight("conv1"))
    w[:] = 0
    w[0, 0] = 1.0
    w[1, 0] = -1.0
    w[2, 1] = w[3, 2] = 0.5
    net.params["conv1.weight"] = w
    net.params["conv1.bias"] = np.zeros(4, np.float32)
    net = Net(arch, dict(net.params))
    ramp = np.add.outer(np.arange(13), np.arange(13)).astype(np.float32) * 0.01
    x = np.stack([ramp, ramp.T, -ramp])[None].copy()
    x[0, 0, 6, 6] = x[0, 0, 2, 4] = 5.0              # both inside several windows
    return net, x


def test_shared_switches_add_before_the_rectification(monkeypatch):
    net, x = _one_bright_pixel_net()
    fwd = forward(net, x, keep="all")
    sw = fwd.switches["pool1"][0, 0]
    assert np.count_nonzero(sw == 6 * 13 + 6) == 4 and np.count_nonzero(sw == 2 * 13 + 4) >= 2
    _compare(monkeypatch, net, x, ["pool1", "norm1", "conv2", "pool2", "conv3"])


def test_full_size_zfnet_conv5_centre(monkeypatch):
    # the benchmark's unit: the centre of conv5 on a full-size image, against autograd
    net, _ = _zfnet_small(seed=6, hw=(224, 224))
    x = np.random.default_rng(6).standard_normal((1, 3, 224, 224)).astype(np.float32)
    fwd = forward(net, x, keep="all")
    act = fwd["conv5"]
    units = [Unit(0, int(np.argmax(act[0, :, 6, 6])), 6, 6), Unit(0, 3, 0, 12)]
    fast = project(net, x, "conv5", units, forward_result=fwd)
    rules = _rules_walk(monkeypatch, net, x, "conv5", units, forward_result=fwd)
    refs, _ = torch_project(net, x, "conv5", units, fwd)
    for k in range(len(units)):
        assert rel_err(fast[k], rules[k]) <= TOL
        assert rel_err(fast[k], refs["deconvnet"][k]) <= TORCH_TOL
