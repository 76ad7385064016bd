"""The forward plan (zfnet/net/plan.py): fused and unfused walks give the same bits on every
built-in architecture, for keep/upto/switches variants; the plan is cached and prints its steps."""
import numpy as np
import pytest

from zfnet import ZFNetError
from zfnet.net import ARCHITECTURES, INPUT, Architecture, Net, forward, get_architecture
from zfnet.net.plan import plan


def _small(name):
    """`name`'s layers up to its classifier (the head has no fusion), on the smallest input they take."""
    arch = get_architecture(name)
    names = arch.names
    last = names.index("flatten") - 1 if "flatten" in names else len(names) - 1
    for hw in range(31, 120, 2):                  # odd sizes: the pools' ceil/floor rounding shows
        try:
            return Architecture(name, arch.layers[: last + 1], (3, hw, hw))
        except ZFNetError:
            continue
    raise AssertionError(f"no small input for {name}")


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def small_net(request):
    arch = _small(request.param)
    return Net.random(arch, seed=2)


def _assert_same(fused, plain):
    assert fused.output_name == plain.output_name
    assert fused.outputs.keys() == plain.outputs.keys()
    for name, a in plain.outputs.items():
        np.testing.assert_array_equal(fused.outputs[name], a, err_msg=name)
        assert fused.outputs[name].flags.c_contiguous, name
    assert fused.switches.keys() == plain.switches.keys()
    for name, s in plain.switches.items():
        np.testing.assert_array_equal(fused.switches[name], s, err_msg=name)


def _variants(arch):
    """(keep, upto, switches): the defaults, everything, a few kept names, a stop in the middle."""
    names = arch.names
    some = [names[i] for i in range(0, len(names), 3)]
    middle = names[len(names) // 2]
    return [(None, None, True), (None, None, False), ("all", None, True), (some, None, True),
            ([INPUT, names[1]], middle, True), (None, middle, False), (names[0], names[2], True)]


@pytest.mark.parametrize("batch", [1, 2])
def test_fused_and_unfused_plans_give_the_same_bits(small_net, batch):
    arch = small_net.arch
    x = (np.random.default_rng(batch).standard_normal((batch, *arch.input_shape)) * 20).astype(np.float32)
    for keep, upto, switches in _variants(arch):
        fused = forward(small_net, x, keep=keep, upto=upto, switches=switches)
        plain = forward(small_net, x, keep=keep, upto=upto, switches=switches, fuse=False)
        _assert_same(fused, plain)
        pools = {l.name for l in arch.layers[: arch.index(fused.output_name) + 1] if l.op == "maxpool"}
        assert fused.switches.keys() == (pools if switches else set())


def test_the_unfused_plan_runs_every_layer_plainly():
    p = plan(get_architecture("squeezenet1_0"), fuse=False)
    assert len(p.steps) == len(get_architecture("squeezenet1_0").layers)
    assert not any(s.relu or s.relu_input or s.applied_by or s.into or s.filled for s in p.steps)


def test_plans_are_cached_per_arguments():
    arch = get_architecture("zfnet")
    assert plan(arch, (3, 224, 224), ["conv1", "pool2"]) is plan(arch, None, ["conv1", "pool2"])
    assert plan(arch, keep="all") is not plan(arch, keep="all", fuse=False)
    sq = get_architecture("squeezenet1_0")
    assert plan(sq, (3, 259, 259)).input_shape == (3, 259, 259) and sq.input_shape == (3, 227, 227)
    with pytest.raises(ZFNetError, match="no layer 'conv9'"):
        plan(arch, keep=["conv9"])


def test_printed_plan_one_line_a_step():
    arch = get_architecture("zfnet")
    text = str(plan(arch, upto="conv3", keep="relu2"))
    lines = text.splitlines()
    assert lines[0] == "forward plan: zfnet on (3, 224, 224), 9 steps, fused, switches recorded"
    assert lines[1:] == [
        "  conv1 = conv(data)  drop data",
        "  relu1 = conv1  (the ReLU is applied by pool1)  drop conv1",
        "  pool1 = maxpool(relu(relu1))  drop relu1",
        "  norm1 = lrn(pool1)  drop pool1",
        "  conv2 = conv(norm1) +relu  drop norm1",
        "  relu2 = conv2  (the ReLU is applied by conv2)  keep  drop conv2",
        "  pool2 = maxpool(relu2)  drop relu2",
        "  norm2 = lrn(pool2)  drop pool2",
        "  conv3 = conv(norm2)  keep  drop norm2",
    ]
    sq = str(plan(get_architecture("squeezenet1_0"), keep="fire2/relu_expand1x1")).splitlines()
    assert "  fire2/expand3x3 = conv(fire2/relu_squeeze1x1) +relu -> fire2/concat[:, 64:128]  drop fire2/relu_squeeze1x1" in sq
    assert ("  fire2/concat = concat(fire2/relu_expand1x1, fire2/relu_expand3x3*)  "
            "drop fire2/relu_expand1x1, fire2/relu_expand3x3") in sq
