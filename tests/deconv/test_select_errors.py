"""Choosing units, zero and dead units, and errors a user can cause."""
import warnings

import numpy as np
import pytest

from deconv_support import kitchen_sink, rel_err, truncated
from zfnet import ZFNetError
from zfnet.deconv import (DeadMapWarning, Unit, is_dead_map, map_strengths, project, project_unit,
                          strongest_unit, top_maps, whole_map)
from zfnet.deconv.select import as_units
from zfnet.net import Net, forward, get_architecture
from zfnet.net.receptive import unit_box


@pytest.fixture(scope="module")
def small():
    net = Net.random(truncated(get_architecture("zfnet"), "pool5", (83, 83)), 0)
    x = np.random.default_rng(0).standard_normal((2, 3, 83, 83)).astype(np.float32)
    return net, x, forward(net, x, keep="all")


def test_strongest_unit_first_maximum_wins():
    act = np.zeros((2, 3, 4, 5), np.float32)
    act[1, 2, 1, 3] = act[1, 2, 3, 0] = 5.0          # a tie: row-major first is (1, 3)
    act[1, 2, 0, 0] = 4.0
    assert strongest_unit(act, 1, 2) == Unit(1, 2, 1, 3)
    assert strongest_unit(np.ones((1, 4), np.float32), 0, 3) == Unit(0, 3)     # flat layer: no position
    assert whole_map(1, 2) == Unit(1, 2) and not Unit(1, 2).is_position and Unit(0, 1, 2, 3).at == (2, 3)


def test_top_maps_by_strongest_activation():
    act = np.zeros((1, 4, 3, 3), np.float32)
    act[0, 0, 2, 2] = 1.0
    act[0, 1, 0, 1] = 3.0
    act[0, 3, 1, 1] = 3.0                               # tie with map 1: lower channel first
    assert map_strengths(act, 0).tolist() == [1.0, 3.0, 0.0, 3.0]
    assert top_maps(act, 0, 3) == [Unit(0, 1, 0, 1), Unit(0, 3, 1, 1), Unit(0, 0, 2, 2)]
    assert top_maps(act, 0, 2, whole=True) == [Unit(0, 1), Unit(0, 3)]
    assert top_maps(np.array([[0.1, 0.7, 0.2]], np.float32), 0, 2) == [Unit(0, 1), Unit(0, 2)]
    assert is_dead_map(act, 0, 2) and not is_dead_map(act, 0, 0)
    with pytest.raises(ZFNetError, match="1..4"):
        top_maps(act, 0, 5)


def test_units_from_tuples():
    assert as_units((0, 3, 1, 2)) == [Unit(0, 3, 1, 2)]
    assert as_units([(0, 3), Unit(1, 2, 0, 0)]) == [Unit(0, 3), Unit(1, 2, 0, 0)]
    for bad in ([], [(0,)], ["conv1"]):
        with pytest.raises(ZFNetError):
            as_units(bad)


def test_many_units_in_one_call_match_one_at_a_time(small):
    net, x, fwd = small
    units = [Unit(1, 3, 2, 2), Unit(0, 5), strongest_unit(fwd["conv5"], 0, 7), Unit(1, 0, 0, 0), Unit(0, 5)]
    together = project(net, x, "conv5", units, forward_result=fwd)
    # Equal to float32 rounding: a batch of units is one wider GEMM, whose summation order the
    # BLAS kernel may block differently than for one unit (bit-equal on some CPUs, not all).
    for k, u in enumerate(units):
        alone = project(net, x, "conv5", u, forward_result=fwd)[0]
        assert rel_err(together[k], alone) <= 1e-6, (u, rel_err(together[k], alone))
    # the same without a given forward pass: the same calls, so the same bits
    assert np.array_equal(together, project(net, x, "conv5", units))


def test_inputs_and_forward_pass_are_not_modified(small):
    net, x, fwd = small
    x0 = x.copy()
    saved = {k: v.copy() for k, v in fwd.outputs.items()}
    switches = {k: v.copy() for k, v in fwd.switches.items()}
    for mode in ("deconvnet", "guided", "gradient"):
        project(net, x, "pool5", [Unit(0, 1, 1, 1), Unit(1, 2)], mode=mode, lrn="gradient", forward_result=fwd)
    assert np.array_equal(x, x0)
    assert all(np.array_equal(fwd.outputs[k], v) for k, v in saved.items())
    assert all(np.array_equal(fwd.switches[k], v) for k, v in switches.items())


def test_zero_unit_projects_to_zero_and_dead_map_warns(small):
    net, x, fwd = small
    act = fwd["relu3"]
    C = act.shape[1]
    live = [c for c in range(C) if act[0, c].any() and not act[0, c].all()]
    c = live[0]
    y, xx = np.argwhere(act[0, c] == 0)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # a zero unit of a live map: no warning
        p = project(net, x, "relu3", [Unit(0, c, int(y), int(xx))], forward_result=fwd)
    assert p.shape == (1, 3, 83, 83) and not p.any()
    # a dead map: zeros and a warning that says so
    a = fwd["relu3"].copy()
    a[0, c] = 0
    fwd_dead = forward(net, x, keep="all")
    fwd_dead.outputs["relu3"] = a
    with pytest.warns(DeadMapWarning, match=f"map {c} of layer 'relu3' is all zeros for image 0"):
        p = project(net, x, "relu3", [Unit(0, c)], forward_result=fwd_dead)
    assert not p.any()


def test_project_unit(small):
    net, x, fwd = small
    r = project_unit(net, x, "conv4", 11, image=1)
    u = strongest_unit(fwd["conv4"], 1, 11)
    assert r.unit == u and r.activation == float(fwd["conv4"][1, 11, u.y, u.x])
    assert r.box == unit_box(net.arch, "conv4", u.y, u.x, (83, 83))
    assert np.array_equal(r.projection, project(net, x, "conv4", [u])[0])
    r = project_unit(net, x, "conv4", 11, at=(0, 3), mode="gradient")
    assert r.unit == Unit(0, 11, 0, 3) and r.mode == "gradient"
    # a dead map is an error here, naming the strongest maps
    net2 = Net(net.arch, {**net.params, "conv1.bias": np.full(96, -1e3, np.float32)})
    with pytest.raises(ZFNetError, match="all zeros for this image .* strongest maps"):
        project_unit(net2, x, "relu1", 4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(layer="conv7"), "has no layer 'conv7'; did you mean 'conv"),
    (dict(layer="data"), "input image; project from one of the layers"),
    (dict(units=[Unit(0, 384, 0, 0)]), "has 384 maps (0..383)"),
    (dict(units=[Unit(2, 0, 0, 0)]), "batch holds 2 image"),
    (dict(units=[Unit(0, 0, 4, 0)]), "y must be in 0..3"),
    (dict(units=[Unit(0, 0, 0, -1)]), "x in 0..3"),
    (dict(units=[Unit(0, 0, 1, None)]), "both y and x"),
    (dict(mode="saliency"), "choose one of deconvnet, guided, gradient"),
    (dict(lrn="none"), "choose one of identity, gradient"),
])
def test_bad_arguments_say_what_is_valid(small, kwargs, message):
    net, x, fwd = small
    args = dict(layer="conv3", units=[Unit(0, 1, 1, 1)])
    args.update(kwargs)
    layer, units = args.pop("layer"), args.pop("units")
    with pytest.raises(ZFNetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        project(net, x, layer, units, **args)


def test_bad_inputs(small):
    net, x, fwd = small
    with pytest.raises(ZFNetError, match="float32"):
        project(net, x.astype(np.float64), "conv3", [Unit(0, 1, 1, 1)])
    with pytest.raises(ZFNetError, match="3-channel"):
        project(net, x[:, :2].copy(), "conv3", [Unit(0, 1, 1, 1)])
    with pytest.raises(ZFNetError, match="forward_result does not hold"):
        project(net, x[:1].copy(), "conv3", [Unit(0, 1, 1, 1)], forward_result=fwd)
    flat = Net.random(kitchen_sink(), 0)
    xf = np.zeros((1, 3, 31, 25), np.float32)
    with pytest.raises(ZFNetError, match="flat .* by its index alone, without a position"):
        project(flat, xf, "fc1", [Unit(0, 1, 0, 0)])
    with pytest.raises(ZFNetError, match="has 10 units"):
        project(flat, xf, "prob", [Unit(0, 10)])
