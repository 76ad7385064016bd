"""forward() lets the convs feeding a concat write their channels of its output (concat_slices):
the same numbers bit for bit, and kept activations stay C-contiguous arrays of their own."""
import numpy as np
import pytest

from zfnet.net import Net, forward, get_architecture
from zfnet.net.plan import concat_slices, fused_relus


@pytest.fixture(scope="module")
def squeezenet():
    arch = get_architecture("squeezenet1_0")
    return Net.random(arch, seed=0)


def test_fire_expand_convs_write_into_their_concat():
    arch = get_architecture("squeezenet1_0")
    keep = {arch.output}
    slices = concat_slices(arch, arch.layers, keep, fused_relus(arch.layers, keep))
    assert slices["fire2/expand1x1"] == ("fire2/concat", 0)
    assert slices["fire2/expand3x3"] == ("fire2/concat", 64)
    assert len(slices) == 16                                   # both expands of fire2..fire9
    # a kept ReLU output (or its conv) must stay an array of its own: no slice for it
    keep = {arch.output, "fire3/relu_expand1x1", "fire4/expand3x3"}
    slices = concat_slices(arch, arch.layers, keep, fused_relus(arch.layers, keep))
    assert "fire3/expand1x1" not in slices and "fire4/expand3x3" not in slices
    assert "fire3/expand3x3" in slices and "fire4/expand1x1" in slices


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("keep", [None, "all", ["fire2/concat", "fire3/relu_expand3x3", "fire5/expand1x1",
                                                "fire9/relu_expand1x1", "pool8"]])
def test_concat_in_place_is_bit_identical(rng, squeezenet, batch, keep):
    x = rng.standard_normal((batch, *squeezenet.arch.input_shape)).astype(np.float32)
    fast = forward(squeezenet, x, keep=keep)
    plain = forward(squeezenet, x, keep=keep, fuse=False)                   # every concat copies
    assert fast.outputs.keys() == plain.outputs.keys()
    for name, a in plain.outputs.items():
        np.testing.assert_array_equal(fast.outputs[name], a, err_msg=name)
        assert fast.outputs[name].flags.c_contiguous, name
    # kept arrays share memory exactly where they did before (dropout passes its input on), no more
    names = list(plain.outputs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (np.may_share_memory(fast[a], fast[b]) == np.may_share_memory(plain[a], plain[b])), (a, b)
    for name, s in plain.switches.items():
        np.testing.assert_array_equal(fast.switches[name], s, err_msg=name)


def test_kept_activations_do_not_share_memory(rng, squeezenet):
    x = rng.standard_normal((2, *squeezenet.arch.input_shape)).astype(np.float32)
    names = ["fire2/relu_expand1x1", "fire2/concat", "fire3/relu_expand3x3", "fire3/concat"]
    r = forward(squeezenet, x, keep=names)
    for i, a in enumerate(names):
        assert r[a].flags.c_contiguous
        for b in names[i + 1:]:
            assert not np.shares_memory(r[a], r[b]), (a, b)


def test_upto_a_conv_that_feeds_a_concat(rng, squeezenet):
    # the concat is not run, so the conv must return an array of its own
    x = rng.standard_normal((1, *squeezenet.arch.input_shape)).astype(np.float32)
    r = forward(squeezenet, x, upto="fire2/relu_expand3x3")
    assert r.output.flags.c_contiguous and r.output.shape == (1, 64, 55, 55)
    full = forward(squeezenet, x, keep="fire2/concat")
    np.testing.assert_array_equal(r.output, full["fire2/concat"][:, 64:])
