"""The blocked pass's batch split (zfnet/net/blocked.py): slices of the batch on threads of their
own up to the first fully connected layer, then the whole batch. It must give the same bits as the
whole pass (kept tensors, switches, the output), choose itself as the module says, leave nothing
of a slice in the caller's hands or in use in an arena, and work in a forked child."""
import multiprocessing
import threading

import numba
import numpy as np
import pytest

from zfnet import ZFNetError, kernels
from zfnet.net import Architecture, Conv, Flatten, Linear, MaxPool, Net, ReLU, Softmax, blocked, forward

from test_blocked_forward import _small, _x  # this folder is on sys.path (no __init__.py)

pytestmark = pytest.mark.skipif(numba.get_num_threads() < 2 or not kernels.concurrent_kernels(),
                                reason="the split needs 2 Numba threads and a thread-safe threading layer")


def _with_classifier():
    """Convs, a pool, then two fully connected layers: the split joins its slices before fc1."""
    layers = [Conv("conv1", "data", 3, 20, (3, 3), (1, 1), (1, 1)), ReLU("relu1", "conv1"),
              MaxPool("pool1", "relu1", (2, 2), (2, 2)),
              Conv("conv2", "pool1", 20, 40, (3, 3)), ReLU("relu2", "conv2"),
              Flatten("flatten", "relu2"), Linear("fc1", "flatten", 40 * 5 * 5, 33), ReLU("relu3", "fc1"),
              Linear("fc2", "relu3", 33, 10), Softmax("prob", "fc2")]
    return Net.random(Architecture("tiny", layers, (3, 14, 14)), seed=3)


NETS = {"squeezenet1_0": lambda: Net.random(_small("squeezenet1_0"), seed=2),
        "zfnet": lambda: Net.random(_small("zfnet"), seed=2), "with_classifier": _with_classifier}


@pytest.fixture(params=sorted(NETS))
def net(request):
    return NETS[request.param]()


def _pass(net, x, mode, monkeypatch, **kw):
    monkeypatch.setenv("ZFNET_BATCH_SPLIT", mode)
    return forward(net, x, layout="nchwc", **kw)


@pytest.mark.parametrize("batch", [2, 5])
def test_the_split_gives_the_whole_pass_bits(net, batch, monkeypatch):
    x = _x(net.arch, batch, seed=batch)
    whole = _pass(net, x, "never", monkeypatch, keep="all")
    split = _pass(net, x, "always", monkeypatch, keep="all")
    assert split.outputs.keys() == whole.outputs.keys() and split.switches.keys() == whole.switches.keys()
    for name, v in whole.outputs.items():
        np.testing.assert_array_equal(split.outputs[name], v, err_msg=name)
    for name, s in whole.switches.items():
        np.testing.assert_array_equal(split.switches[name], s, err_msg=name)
    assert split.outputs["data"] is x


def test_it_splits_where_the_fully_connected_layers_begin(monkeypatch):
    net = _with_classifier()
    seen = []
    real = blocked._walk

    def walk(steps, live, *args, **kwargs):
        seen.append((threading.current_thread().name, [s.name for s in steps]))
        return real(steps, live, *args, **kwargs)
    monkeypatch.setattr(blocked, "_walk", walk)
    _pass(net, _x(net.arch, 4), "always", monkeypatch, switches=False)
    slices = [steps for _, steps in seen[:-1]]
    assert len(slices) == 2 and slices[0] == slices[1] and slices[0][-1] == "flatten"
    assert seen[-1][1][0] == "fc1"                          # the whole batch from fc1 on
    assert {name for name, _ in seen[:-1]} != {seen[-1][0]}  # one slice ran on another thread


def test_when_it_splits(monkeypatch):
    monkeypatch.setenv("ZFNET_BATCH_SPLIT", "always")
    threads = numba.get_num_threads()
    assert blocked.batch_chunks(1) == []
    parts = blocked.batch_chunks(7)
    assert len(parts) == min(7, threads) and parts[0].start == 0 and parts[-1].stop == 7
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    with kernels.serial():                                  # one thread: nothing to split over
        assert blocked.batch_chunks(7) == []
    monkeypatch.setenv("ZFNET_BATCH_SPLIT", "never")
    assert blocked.batch_chunks(7) == []
    monkeypatch.setenv("ZFNET_BATCH_SPLIT", "auto")
    monkeypatch.setattr(blocked, "_cpu_share", 0.4)         # the last pass waited for its threads
    assert len(blocked.batch_chunks(7)) == min(7, threads)
    monkeypatch.setattr(blocked, "_cpu_share", 0.95)        # it had its cores
    assert blocked.batch_chunks(7) == []
    monkeypatch.setenv("ZFNET_BATCH_SPLIT", "sometimes")
    with pytest.raises(ZFNetError, match="ZFNET_BATCH_SPLIT='sometimes': choose one of auto, always, never"):
        blocked.batch_chunks(7)


def test_a_pass_records_the_share_of_its_threads_it_got(monkeypatch):
    net = _with_classifier()
    monkeypatch.setattr(blocked, "_cpu_share", -1.0)
    _pass(net, _x(net.arch, 1), "auto", monkeypatch)
    assert blocked._cpu_share == -1.0                       # batch 1: never split, not measured
    _pass(net, _x(net.arch, 4), "auto", monkeypatch)
    assert 0 < blocked._cpu_share <= 1.5


def test_slices_leave_nothing_in_an_arena(net, monkeypatch):
    first = _pass(net, _x(net.arch, 4, 1), "always", monkeypatch, keep="all")
    before = {name: v.copy() for name, v in first.outputs.items()}
    _pass(net, _x(net.arch, 4, 2), "always", monkeypatch, keep="all")     # reuses every arena
    kept = [b for _, arena in blocked._arenas for b in arena.free]
    for name, v in first.outputs.items():
        np.testing.assert_array_equal(v, before[name], err_msg=name)
        assert not any(np.may_share_memory(v, b) for b in kept), name
    assert all(not lock.locked() for lock, _ in blocked._arenas)


def _forward_in_child(queue):
    net = _with_classifier()
    queue.put(forward(net, _x(net.arch, 4), layout="nchwc").output)


def test_a_forked_child_runs_split_passes(monkeypatch):
    net = _with_classifier()
    x = _x(net.arch, 4)
    want = _pass(net, x, "always", monkeypatch).output      # the pool's threads exist in the parent
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_forward_in_child, args=(queue,))
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(got, want)


def test_ops_run_concurrently_on_a_threadsafe_layer():
    # two threads inside one op at the same time (the lock of kernels/_threads.py is for workqueue)
    meet = threading.Barrier(2, timeout=20)
    both = kernels.one_at_a_time(lambda: meet.wait())
    errors = []

    def run():
        try:
            both()
        except threading.BrokenBarrierError as e:
            errors.append(e)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
