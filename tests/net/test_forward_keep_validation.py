"""forward()'s keep/upto contract and Net's validation of its tensors (on real SqueezeNet shapes)."""
import numpy as np
import pytest

from zfnet import ZFNetError
from zfnet.net import INPUT, Net, forward, get_architecture


@pytest.fixture(scope="module")
def net():
    return Net.random(get_architecture("squeezenet1_0"), seed=1)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((2, 3, 227, 227)).astype(np.float32)


@pytest.fixture(scope="module")
def everything(net, x):
    return forward(net, x, keep="all")


def test_keep_all_has_every_layer_and_the_input(net, x, everything):
    assert set(everything.outputs) == {INPUT, *net.arch.names}
    assert everything.outputs[INPUT] is x
    for name, a in everything.outputs.items():
        assert a.shape == (2, *net.arch.shapes[name]), name
        assert a.dtype == np.float32
    assert everything.output_name == "prob"
    np.testing.assert_allclose(everything.output.sum(axis=1), 1.0, rtol=1e-5)


def test_default_keeps_only_the_output_but_always_all_switches(net, x, everything):
    r = forward(net, x)
    assert set(r.outputs) == {"prob"}
    np.testing.assert_array_equal(r.output, everything.output)
    assert set(r.switches) == {"pool1", "pool4", "pool8"}
    for name, s in r.switches.items():
        assert s.shape == (2, *net.arch.shapes[name]) and s.dtype == np.int64  # as torch indices
        np.testing.assert_array_equal(s, everything.switches[name])
    with pytest.raises(ZFNetError, match="was not kept"):
        r["pool1"]


def test_keep_names_keeps_those_and_the_output(net, x, everything):
    r = forward(net, x, keep=["pool1", "fire5/concat"])
    assert set(r.outputs) == {"pool1", "fire5/concat", "prob"}
    np.testing.assert_array_equal(r["fire5/concat"], everything["fire5/concat"])
    r = forward(net, x, keep="conv1")  # one name as a string
    assert set(r.outputs) == {"conv1", "prob"}


def test_keep_unknown_layer_names_the_valid_ones(net, x):
    with pytest.raises(ZFNetError, match="no layer 'conv99'; did you mean 'conv1'"):
        forward(net, x, keep=["conv99"])
    with pytest.raises(ZFNetError, match="no layer 'zzz'; its layers are: .*fire2/squeeze1x1"):
        forward(net, x, keep=["zzz"])


def test_upto_stops_there_and_matches_the_full_pass(net, x, everything):
    r = forward(net, x, upto="fire3/concat", keep="all")
    assert r.output_name == "fire3/concat"
    np.testing.assert_array_equal(r.output, everything["fire3/concat"])
    assert "fire4/squeeze1x1" not in r.outputs and "prob" not in r.outputs
    assert set(r.switches) == {"pool1"}  # pools above the stop never ran
    with pytest.raises(ZFNetError, match="no layer"):
        forward(net, x, upto="nope")


def test_input_checks(net, x):
    with pytest.raises(ZFNetError, match="float32"):
        forward(net, x.astype(np.float64))
    with pytest.raises(ZFNetError, match="3-channel"):
        forward(net, np.zeros((1, 4, 227, 227), np.float32))
    with pytest.raises(ZFNetError, match="C-contiguous"):
        forward(net, x[:, :, ::2, ::2])
    with pytest.raises(ZFNetError, match="4 dimensions"):
        forward(net, x[0])


def test_other_input_sizes_run_on_the_same_layers(net):
    y = forward(net, np.zeros((1, 3, 259, 243), np.float32), keep=["pool10"])
    assert y["pool10"].shape == (1, 1000, 1, 1)


# -- Net validation --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def arch():
    return get_architecture("squeezenet1_0")


@pytest.fixture
def params(net):
    return {k: v.copy() for k, v in net.params.items()}


def test_missing_tensor(arch, params):
    del params["fire4/expand3x3.bias"]
    with pytest.raises(ZFNetError, match=r"missing \['fire4/expand3x3.bias'\]"):
        Net(arch, params, {"source_file": "x.onnx"})


def test_extra_tensor(arch, params):
    params["conv11.weight"] = np.zeros((1,), np.float32)
    with pytest.raises(ZFNetError, match=r"unexpected \['conv11.weight'\]"):
        Net(arch, params)


def test_misshaped_tensor_names_both_shapes(arch, params):
    params["conv10.weight"] = params["conv10.weight"][:999].copy()
    with pytest.raises(ZFNetError, match=r"x\.pth: tensor 'conv10.weight' has shape \(999, 512, 1, 1\).*\(1000, 512, 1, 1\)"):
        Net(arch, params, {"source_file": "x.pth"})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(arch, params, bad):
    params["fire9/squeeze1x1.weight"][3, 7, 0, 0] = bad
    with pytest.raises(ZFNetError, match="fire9/squeeze1x1.weight.*NaN or infinite"):
        Net(arch, params)


def test_tensors_become_float32_c_contiguous(arch, params):
    params["conv1.weight"] = np.asfortranarray(params["conv1.weight"].astype(np.float64))
    net = Net(arch, params)
    w = net.params["conv1.weight"]
    assert w.dtype == np.float32 and w.flags.c_contiguous
