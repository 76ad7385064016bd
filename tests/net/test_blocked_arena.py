"""The blocked walk's arena (zfnet/net/blocked.py): buffers reused within a pass and kept for the
next one never change a result, never reach the caller, follow the last pass's shapes, and a pass in
another thread at the same time gets its own. Whole passes here (ZFNET_BATCH_SPLIT=never): the
batch split's slices have their tests in test_batch_split.py."""
import threading

import numpy as np
import pytest

from zfnet.net import Net, blocked, forward, get_architecture

from test_blocked_forward import _assert_close, _small, _x  # this folder is on sys.path (no __init__.py)


@pytest.fixture(scope="module", params=["squeezenet1_0", "zfnet"])
def net(request):
    return Net.random(_small(request.param), seed=5)


@pytest.fixture(autouse=True)
def whole_passes(monkeypatch):
    monkeypatch.setenv("ZFNET_BATCH_SPLIT", "never")


def _kept():
    """The buffers the process's arenas keep for the next pass."""
    return [b for _, arena in blocked._arenas for b in arena.free]


def test_passes_in_a_row_equal_the_nchw_walk(net):
    """Each pass takes the buffers the one before left, full of that pass's values: a second and a
    third input, every output kept, must still come out as the NCHW walk computes them."""
    blocked.release_arena()
    for seed in (1, 2, 3):
        x = _x(net.arch, 2, seed)
        _assert_close(forward(net, x, keep="all", layout="nchwc"), forward(net, x, keep="all", layout="nchw"))
    assert _kept(), "nothing was kept for the next pass"


def test_results_do_not_live_in_the_arena(net):
    first = forward(net, _x(net.arch, 2, 7), keep="all", layout="nchwc")
    before = {name: v.copy() for name, v in first.outputs.items()}
    forward(net, _x(net.arch, 2, 8), keep="all", layout="nchwc")          # reuses every buffer
    for name, v in first.outputs.items():
        np.testing.assert_array_equal(v, before[name], err_msg=name)
        assert not any(np.may_share_memory(v, a) for a in _kept()), name


def test_the_arena_keeps_only_the_last_pass_buffers(net):
    blocked.release_arena()                 # no buffers of other tests' passes in the other arenas
    taken = []
    real_take = blocked.Arena.take

    def take(self, shape):
        v = real_take(self, shape)
        taken.append(self.order[-1])             # the flat buffer the view was cut from
        return v
    forward(net, _x(net.arch, 3), layout="nchwc")
    blocked.Arena.take = take
    try:
        forward(net, _x(net.arch, 1), layout="nchwc")
    finally:
        blocked.Arena.take = real_take
    ids = {id(b) for b in taken}
    assert _kept() and all(id(b) in ids for b in _kept())
    blocked.release_arena()
    assert _kept() == []


def test_within_a_pass_a_dropped_buffer_serves_a_later_step():
    arch = get_architecture("squeezenet1_0")
    net = Net.random(_small("squeezenet1_0"), seed=6)
    blocked.release_arena()
    taken = []
    real_take = blocked.Arena.take

    def take(self, shape):
        a = real_take(self, shape)
        taken.append(id(a))
        return a
    blocked.Arena.take = take
    try:
        forward(net, _x(net.arch, 1), layout="nchwc")
    finally:
        blocked.Arena.take = real_take
    assert arch.name == "squeezenet1_0" and len(set(taken)) < len(taken), "no buffer was used twice in a pass"


def test_passes_in_two_threads_at_once_are_both_right(net):
    xs = [_x(net.arch, 2, seed) for seed in (11, 12)]
    expected = [forward(net, x, layout="nchw").outputs[net.arch.names[-1]] for x in xs]
    got, errors = [None, None], []

    def run(i):
        try:
            for _ in range(3):
                got[i] = forward(net, xs[i], layout="nchwc").outputs[net.arch.names[-1]]
        except Exception as e:          # reported below, in the test's thread
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5 * max(float(np.abs(e).max()), 1e-3))


def test_arena_never_hands_out_a_held_buffer():
    arena = blocked.Arena()
    shape = (1, 2, 3, 3, 16)
    a, b = arena.take(shape), arena.take(shape)
    assert not np.may_share_memory(a, b)                 # two takes, two buffers, until one is dropped
    va = blocked.Blocked(a, 32)
    live = {"relu": va}                                  # the same value under another name (a fused ReLU)
    arena.drop(va, live)
    assert not np.may_share_memory(arena.take(shape), a)
    live = {"conv_in_concat": blocked.Blocked(a[:, 1:], 16)}   # a view of it (a conv's blocks of a concat)
    arena.drop(va, live)
    assert not any(np.may_share_memory(f, a) for f in arena.free)
    arena.drop(va, {})                                   # nothing holds it now
    smaller = arena.take((1, 1, 3, 3, 16))               # a smaller output fits in it
    assert np.may_share_memory(smaller, a) and smaller.shape == (1, 1, 3, 3, 16)
    arena.drop(blocked.Blocked(np.empty(shape, np.float32), 32), {})   # not ours: ignored
    assert arena.free == []


def test_end_of_a_pass_keeps_its_buffers_and_only_those():
    arena = blocked.Arena()
    arena.take((2, 1, 4, 4, 16))
    old = arena.order[-1]                                # the flat buffer that take cut its view from
    arena.end_pass()
    assert [id(b) for b in arena.free] == [id(old)]
    arena.take((4, 1, 4, 4, 16))                         # too big for the old one: a new buffer
    new = arena.order[-1]
    arena.end_pass()                                     # the old one was not used this pass: let go
    assert [id(b) for b in arena.free] == [id(new)]


def test_a_second_pass_allocates_no_activation(net, monkeypatch):
    """Every blocked output (convs, concats, pools, LRNs) comes from the arena: a pass over inputs
    of the last pass's shape takes that pass's buffers and allocates none (each new array's pages
    would be zeroed by the system on first write, on every pass: RESULTS.md, "Pools and LRNs in the
    arena")."""
    from zfnet.kernels import pool_nchwc
    x = _x(net.arch, 2, 4)
    forward(net, x, layout="nchwc", switches=False)
    made = []
    for module in (blocked, pool_nchwc):
        real = module.aligned_empty
        monkeypatch.setattr(module, "aligned_empty", lambda shape, *a, real=real: made.append(shape) or real(shape, *a))
    forward(net, x, layout="nchwc", switches=False)
    assert made == []
