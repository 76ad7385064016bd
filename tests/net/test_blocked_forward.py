"""The forward pass on NCHW16c (zfnet/net/blocked.py): the same outputs as the NCHW walk to float32
rounding and the same switches, on every built-in architecture (small random nets, every op the
blocked walk has a rule for and its fallbacks), per image (batch-invariant), and the layout rule."""
import numpy as np
import pytest

from zfnet import ZFNetError, kernels
from zfnet.net import ARCHITECTURES, INPUT, Architecture, Net, forward, get_architecture
from zfnet.net import blocked
from zfnet.net.plan import plan


def _small(name):
    """`name` whole (classifier included) on its smallest odd input that fits, else up to flatten."""
    arch = get_architecture(name)
    names = arch.names
    last = names.index("flatten") - 1 if "flatten" in names else len(names) - 1
    for hw in range(31, 120, 2):
        try:
            return Architecture(name, arch.layers[: last + 1], (3, hw, hw))
        except ZFNetError:
            continue
    raise AssertionError(f"no small input for {name}")


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def small_net(request):
    return Net.random(_small(request.param), seed=4)


def _x(arch, batch, seed=1):
    return (np.random.default_rng(seed).standard_normal((batch, *arch.input_shape)) * 20).astype(np.float32)


def _assert_close(a, b):
    assert a.output_name == b.output_name
    assert a.outputs.keys() == b.outputs.keys()
    for name, v in b.outputs.items():
        assert a.outputs[name].shape == v.shape and a.outputs[name].flags.c_contiguous, name
        scale = max(float(np.abs(v).max()), 1e-3)
        np.testing.assert_allclose(a.outputs[name], v, rtol=1e-4, atol=1e-5 * scale, err_msg=name)
    assert a.switches.keys() == b.switches.keys()
    for name, s in b.switches.items():
        # the pools' inputs differ by rounding, so a near-tie may go the other way, rarely
        assert a.switches[name].shape == s.shape and (a.switches[name] != s).mean() < 0.005, name


def _assert_switches_are_max_pool2d(net, result):
    """Each pool's switches are exactly kernels.max_pool2d's on the pool's own (kept) input."""
    for layer in net.arch.layers:
        if layer.op == "maxpool" and layer.name in result.switches:
            _, expected = kernels.max_pool2d(result.outputs[layer.inputs[0]], layer.kernel_size, layer.stride,
                                             layer.padding, layer.ceil_mode)
            np.testing.assert_array_equal(result.switches[layer.name], expected, err_msg=layer.name)


@pytest.mark.parametrize("keep, switches", [("all", True), (None, False)])
def test_blocked_forward_equals_the_nchw_forward(small_net, keep, switches):
    x = _x(small_net.arch, 2)
    nchw = forward(small_net, x, keep=keep, switches=switches, layout="nchw")
    for layout in ("nchwc", "auto"):
        result = forward(small_net, x, keep=keep, switches=switches, layout=layout)
        _assert_close(result, nchw)
        if keep == "all":
            _assert_switches_are_max_pool2d(small_net, result)


def test_blocked_forward_upto_and_kept_names(small_net):
    arch = small_net.arch
    names = arch.names
    middle = names[len(names) // 2]
    x = _x(arch, 1, seed=3)
    for keep, upto in (([INPUT, names[1]], middle), (names[0], names[2]), (names[::3], None)):
        _assert_close(forward(small_net, x, keep=keep, upto=upto, layout="nchwc"),
                      forward(small_net, x, keep=keep, upto=upto, layout="nchw"))


# every conv blocked (grouped convs fall back to im2col + BLAS, whose batch invariance is conv2d's)
UNGROUPED = sorted(n for n in ARCHITECTURES if all(l.groups == 1 for l in get_architecture(n).layers if l.op == "conv"))


@pytest.mark.parametrize("name", UNGROUPED)
def test_blocked_forward_is_batch_invariant(name):
    small_net = Net.random(_small(name), seed=4)
    x = _x(small_net.arch, 3, seed=5)
    whole = forward(small_net, x, keep="all", layout="nchwc")
    for n in range(3):
        alone = forward(small_net, x[n:n + 1], keep="all", layout="nchwc")
        for name, v in alone.outputs.items():
            np.testing.assert_array_equal(whole.outputs[name][n:n + 1], v, err_msg=name)
        for name, s in alone.switches.items():
            np.testing.assert_array_equal(whole.switches[name][n:n + 1], s, err_msg=name)


def test_the_layout_rule():
    assert blocked.choose_layout("auto", "zfnet") == "nchwc"
    assert blocked.choose_layout("auto", "caffenet") == "nchw"          # grouped convolutions
    assert blocked.choose_layout("auto", "my own net") == "nchw"
    assert blocked.choose_layout("nchwc", "caffenet") == "nchwc"
    assert blocked.choose_layout("nchwc", "zfnet", backend="reference") == "nchw"
    assert set(blocked.LAYOUTS) == set(ARCHITECTURES)
    with pytest.raises(ZFNetError, match="layout must be"):
        blocked.choose_layout("NCHW", "zfnet")


def _layouts(arch, net, im2col):
    live, layouts = {INPUT: _x(arch, 1)}, {}
    for step in plan(arch).steps:
        y = live[step.name] = blocked.run_step_blocked(step, live, net, None, im2col)
        layouts[step.name] = isinstance(y, blocked.Blocked)
    return layouts


def test_which_steps_run_blocked():
    """SqueezeNet with conv1 and conv10 listed for im2col: those two and pool1 on NCHW, the fires
    blocked from their first conv on, their concats block-aligned; the layers after conv10 on
    NCHW. With nothing listed every conv runs blocked, conv1 reading the image in place."""
    arch = _small("squeezenet1_0")
    net = Net.random(arch, seed=1)
    layouts = _layouts(arch, net, ("conv1", "conv10"))
    assert not layouts["conv1"] and not layouts["pool1"]
    assert layouts["fire2/squeeze1x1"] and layouts["fire2/concat"] and layouts["fire9/concat"]
    assert not layouts["conv10"] and not layouts[arch.output]
    layouts = _layouts(arch, net, ())
    assert layouts["conv1"] and layouts["pool1"] and layouts["conv10"] and layouts["pool10"]
