"""The projection modes are data (zfnet/deconv/modes.py): two fields, read by every walk."""
import numpy as np
import pytest

from zfnet import ZFNetError
from zfnet.deconv import MODES, Unit, project
from zfnet.deconv.modes import DECONVNET, GRADIENT, GUIDED, Mode, as_mode
from zfnet.net import Architecture, Conv, MaxPool, Net, ReLU, forward


def test_the_three_modes():
    assert MODES == ("deconvnet", "guided", "gradient")
    assert [(m.rectify, m.mask) for m in (DECONVNET, GUIDED, GRADIENT)] == [(True, False), (True, True), (False, True)]
    assert as_mode("guided") is GUIDED and as_mode(GRADIENT) is GRADIENT
    with pytest.raises(ZFNetError, match="unknown projection mode 'saliency'; choose one of deconvnet, guided, gradient"):
        as_mode("saliency")


def test_every_walk_reads_the_fields_not_the_name():
    # a Mode made anew with the same two fields projects as the named one, on the sparse (a
    # chain), cropped and dense walks: nothing compares mode names
    layers = [Conv("conv1", "data", 3, 4, 3, 1, 1), ReLU("relu1", "conv1"), MaxPool("pool1", "relu1", 2, 2),
              Conv("conv2", "pool1", 4, 5, 3, 1, 1)]
    net = Net.random(Architecture("tiny", layers, (3, 9, 9)), 3)
    x = np.random.default_rng(3).standard_normal((1, 3, 9, 9)).astype(np.float32)
    fwd = forward(net, x, keep="all")
    units = [Unit(0, 2, 2, 2), Unit(0, 1)]
    for mode in (DECONVNET, GUIDED, GRADIENT):
        copy = Mode("mine", mode.rectify, mode.mask)
        for crop in (True, False):
            np.testing.assert_array_equal(project(net, x, "conv2", units, mode=copy, crop=crop, forward_result=fwd),
                                          project(net, x, "conv2", units, mode=mode.name, crop=crop, forward_result=fwd))
