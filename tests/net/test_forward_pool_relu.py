"""forward(): the ReLU under a max-pool applied as the pool reads (relus_into_pools), and
forward(switches=False). Both must give the very same numbers as the plain layer-by-layer pass."""
import numpy as np
import pytest

from zfnet.net import Net, forward, get_architecture
from zfnet.net.plan import fused_relus, relus_into_pools


@pytest.fixture(scope="module", params=["zfnet", "squeezenet1_0", "zf_caffe"])
def net_and_x(request):
    arch = get_architecture(request.param)
    net = Net.random(arch, seed=3)
    x = (np.random.default_rng(3).standard_normal((2, *arch.input_shape)) * 50).astype(np.float32)
    return net, x


def test_which_relus_move_into_their_pools():
    arch = get_architecture("zfnet")
    layers = arch.layers
    keep = {arch.output}
    moved = relus_into_pools(layers, keep, fused_relus(layers, keep))
    assert moved == {"relu1": "pool1", "relu2": "pool2", "relu5": "pool5"}
    keep = {arch.output, "relu2"}
    moved = relus_into_pools(layers, keep, fused_relus(layers, keep))
    assert "relu2" not in moved and "relu1" in moved
    sq = get_architecture("squeezenet1_0")
    keep = {sq.output}
    assert relus_into_pools(sq.layers, keep, fused_relus(sq.layers, keep)) == {"relu_conv1": "pool1"}


def test_bit_identical_to_the_unfused_pass(net_and_x):
    net, x = net_and_x
    plain = forward(net, x, keep="all")                       # nothing is fused when all is kept
    fast = forward(net, x)
    np.testing.assert_array_equal(fast.output, plain.output)
    assert fast.switches.keys() == plain.switches.keys()
    for name, sw in plain.switches.items():
        np.testing.assert_array_equal(fast.switches[name], sw, err_msg=name)


def test_kept_relu_below_a_pool_is_the_rectified_array(net_and_x):
    net, x = net_and_x
    pools = [l for l in net.arch.layers if l.op == "maxpool"]
    relu = pools[0].inputs[0]
    plain = forward(net, x, keep="all")
    some = forward(net, x, keep=[relu, pools[0].name])
    np.testing.assert_array_equal(some[relu], plain[relu])
    assert (some[relu] >= 0).all()
    np.testing.assert_array_equal(some[pools[0].name], plain[pools[0].name])


def test_upto_the_pool_and_no_switches(net_and_x):
    net, x = net_and_x
    last_pool = [l for l in net.arch.layers if l.op == "maxpool"][-1].name
    plain = forward(net, x, keep="all")
    up = forward(net, x, upto=last_pool)
    np.testing.assert_array_equal(up.output, plain[last_pool])
    quiet = forward(net, x, switches=False)
    assert quiet.switches == {}
    np.testing.assert_array_equal(quiet.output, plain.output)
    quiet_up = forward(net, x, upto=last_pool, switches=False)
    np.testing.assert_array_equal(quiet_up.output, plain[last_pool])
