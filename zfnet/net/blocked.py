"""The forward plan's steps on the channel-blocked layout NCHW16c (kernels/nchwc.py), without BLAS.

    forward(net, x, layout="nchwc")       # or "auto": LAYOUTS below, per architecture

The same plan (plan.py) as the NCHW walk, the same results to float32 rounding (the convolutions
sum in another order), and per image: every blocked kernel computes one image's outputs from that
image alone, in an order that does not depend on the batch, so an image's result does not depend
on its batch.

Where the layout changes (the one rule): only at convolutions. A convolution not listed in
IM2COL_LAYERS runs conv2d_nchwc (its path by choose_path; bias and ReLU fused) on its input
converted to NCHW16c if it is not already, except an NCHW input of at most 16 channels
(the image), which conv2d_nchwc_from_nchw reads where it lies (direct_nchw_*); a listed
one (or one with groups, which conv2d_nchwc lacks) converts its input back to NCHW and runs
kernels.conv2d (im2col + BLAS). Every other op runs in the layout its input is in:

    blocked rule (BLOCKED_RULES)        fallback, on NCHW (forward.apply_layer)
    maxpool   max_pool2d_nchwc          its input is NCHW
    lrn       lrn_nchwc                 within-channel LRN, or an NCHW input
    relu      kernels.relu (elementwise)
    gap       global_avg_pool_nchwc
    concat    its convs' blocks, in     "unaligned concat": an input (but the last) whose channels
              place (below), or         are not a multiple of 16, or an NCHW input
              np.concatenate of blocks
    dropout   passed on
    others (avgpool, flatten, linear, softmax): NCHW, always

A conv that the plan writes into its concat's channels (plan.Into) does so in the blocked walk too
when the concat is aligned: the first such conv allocates the concat's blocked output, each writes
its blocks there (conv2d_nchwc's out_block), and the concat step copies only its other inputs.

A tensor the result keeps, and the output, are converted back to NCHW (the walk keeps using the
blocked one); the max-pools' switches are max_pool2d's, (N, C, H', W') int64 h*W + w indices.

Memory (the Arena below): the blocked outputs of convolutions, concats, pools and LRNs come from an arena that
hands a buffer the walk has dropped to a later step that fits in it, and keeps the last pass's
buffers for the next one: a new array's pages are zeroed by the operating system on first write,
a cost on every pass (benchmarks/RESULTS.md, "The activation arena"). Arenas are kept per process,
one per walk running at once up to the number of Numba threads (a walk beyond that gets a private
one, dropped after); nothing the walk returns lives in them (results are NCHW copies). Between
passes they hold a pass's buffers (a higher peak RSS, in RESULTS.md); `release_arena()` frees them.

Threads: a pass runs each layer on every Numba thread (T of them), and every layer's parallel loop
waits for its slowest thread. On a machine whose other processes take a core for a time slice,
every layer pays for that wait, and the pass gets much less than its threads' CPU time. So a pass
that got less than CPU_SHARE of its threads' time makes the next ones split their batch (`batch_chunks`):
a batch of N >= 2 images runs as min(N, T) slices, each on a thread of its own with its kernels on
one core (kernels.serial) and no barrier between its layers, up to the first fully connected layer;
the slices' activations are then joined and the fully connected layers run on the whole batch with
every thread (a slice per thread would read their weights once per slice). A split pass that
gets its share back returns the process to whole passes: on a quiet machine split passes are the
slower (two streams of images share the caches less well than two threads on one image). The
measurements: benchmarks/RESULTS.md, "The batch split". An image's result does not depend on its
batch, so both give the same bits.
ZFNET_BATCH_SPLIT=always / never overrides the choice (default auto). The split needs a threading
layer that runs kernels from several threads at once (TBB, OpenMP: kernels.concurrent_kernels);
under workqueue, and inside kernels.serial(), the batch runs whole.
"""
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np

from zfnet import kernels
from zfnet.kernels import nchwc
from zfnet.kernels._backend import choose
from zfnet.kernels._prepared import prepared
from zfnet.kernels._scratch import aligned_empty
from zfnet.kernels.conv2d_nchwc import conv2d_nchwc, conv2d_nchwc_from_nchw, conv2d_nchwc_output_size
from zfnet.kernels.max_pool2d import pool_output_size
from zfnet.kernels.pool_nchwc import global_avg_pool_nchwc, lrn_nchwc, max_pool2d_nchwc, switches_from_nchwc
from zfnet.net.graph import INPUT

# layout="auto": the layout each built-in architecture's forward pass runs in (benchmarks/RESULTS.md,
# "The blocked forward pass"); an architecture not listed runs in NCHW.
LAYOUTS = {
    "zfnet": "nchwc", "zf_caffe": "nchwc", "zfnet512": "nchwc", "alexnet": "nchwc", "vgg16": "nchwc",
    "squeezenet1_0": "nchwc",
    "caffenet": "nchw", "bvlc_alexnet": "nchw",     # grouped convs: conv2d_nchwc has no groups
}

# convolutions that stay on im2col + BLAS inside a blocked pass (layout="auto" only; "nchwc" blocks
# every one), where whole forward passes ran faster so (benchmarks/RESULTS.md, "The first
# convolution read in place, concats filled in place"). Empty since SqueezeNet's conv1 reads the
# image in place (direct_nchw_6x16) and its max-pool rectifies without switches: every conv of
# every built-in architecture then ran faster blocked, at batch 1 and 16 (SqueezeNet's conv1 and
# conv10 had been listed). An entry: {"architecture name": ("conv name", ...)}.
IM2COL_LAYERS = {}


class Blocked(NamedTuple):
    """An activation in NCHW16c: data (N, CB, H, W, 16), of which the first `channels` are real."""
    data: np.ndarray
    channels: int


class Arena:
    """Blocked activation buffers: `take` a buffer for a shape, `drop` one the walk no longer holds;
    `end_pass` keeps just the buffers this pass used, for the next pass.

    take: the buffer the previous pass's take of the same rank used, if it is free and large enough
    (a pass over inputs of the same shape then runs on exactly the last pass's buffers, none new),
    else the smallest free one that is large enough, else a new one; as a view of its first elements."""

    def __init__(self):
        self.free = []          # flat float32 buffers no step holds
        self.owned = {}         # id(view handed out) -> (view kept, so the id stays unique; its buffer)
        self.order = []         # the buffers handed out this pass, in order
        self.last = []          # ... and in the pass before

    def take(self, shape):
        shape = tuple(int(d) for d in shape)
        n = math.prod(shape)
        before = self.last[len(self.order)] if len(self.order) < len(self.last) else None
        fits = [i for i, b in enumerate(self.free) if b.size >= n]
        fits = [i for i in fits if self.free[i] is before] or fits
        buf = self.free.pop(min(fits, key=lambda i: self.free[i].size)) if fits else aligned_empty(n)
        view = buf[:n].reshape(shape)
        self.owned[id(view)] = (view, buf)
        self.order.append(buf)
        return view

    def drop(self, v, live):
        """v (just removed from `live`): its buffer goes back if it is ours and no live value holds it."""
        if not isinstance(v, Blocked) or id(v.data) not in self.owned:
            return
        if any(isinstance(o, Blocked) and np.may_share_memory(o.data, v.data) for o in live.values()):
            return                              # still held, itself or through a view (a conv's blocks of a concat)
        self.free.append(self.owned.pop(id(v.data))[1])

    def end_pass(self):
        self.free += [buf for _, buf in self.owned.values()]     # what the walk still held at its end
        used = {id(b) for b in self.order}
        self.free = [b for b in self.free if id(b) in used]
        self.owned, self.last, self.order = {}, self.order, []


_arenas, _arenas_lock, _current = [], threading.Lock(), threading.local()   # [(its lock, Arena)]


def release_arena():
    """Free the buffers the process's arenas keep between forward passes."""
    with _arenas_lock:
        for _, arena in _arenas:
            arena.free, arena.last = [], []


def _acquire_arena():
    """(lock or None, arena): a kept arena no walk is using (its lock now held), a new kept one while
    there are fewer than Numba's threads, else a private one (lock None)."""
    with _arenas_lock:
        for lock, arena in _arenas:
            if lock.acquire(blocking=False):
                return lock, arena
        if len(_arenas) >= max(1, numba.config.NUMBA_NUM_THREADS):
            return None, Arena()
        lock, arena = threading.Lock(), Arena()
        lock.acquire()
        _arenas.append((lock, arena))
        return lock, arena


def _take(shape):
    """A buffer for a blocked output: from the running pass's arena, or new outside a pass."""
    arena = getattr(_current, "arena", None)
    return aligned_empty(shape) if arena is None else arena.take(shape)


def choose_layout(layout, arch_name, backend=None):
    """"nchw" or "nchwc" for forward(layout=...): "auto" looks the architecture up in LAYOUTS;
    the blocked kernels are Numba CPU kernels, so any other backend runs NCHW."""
    if layout not in ("auto", "nchw", "nchwc"):
        raise kernels.ZFNetError(f"layout must be 'auto', 'nchw' or 'nchwc', got {layout!r}")
    if choose(backend) != "cpu":
        return "nchw"
    return LAYOUTS.get(arch_name, "nchw") if layout == "auto" else layout


def as_nchw(v):
    """An activation in NCHW (N, C, H, W), converted if it is Blocked."""
    return nchwc.from_nchwc(v.data, v.channels) if isinstance(v, Blocked) else v


def _shape(v):
    """(N, C, H, W) of an activation in either layout."""
    return (v.data.shape[0], v.channels, *v.data.shape[2:4]) if isinstance(v, Blocked) else v.shape


def as_blocked(v):
    """An activation in NCHW16c, converted if it is an NCHW array."""
    return v if isinstance(v, Blocked) else Blocked(nchwc.to_nchwc(np.ascontiguousarray(v)), v.shape[1])


def _conv(step, inputs, net, switches, out=None, out_block=0):
    layer = step.layer
    w, b = net.weight(layer.name), net.bias(layer.name)
    w_b = prepared(w, "nchwc_filters", nchwc.filters_to_nchwc)                # (FB, CB, KH, KW, 16, 16)
    b_b = nchwc.bias_to_nchwc(b, w.shape[0])                                  # (FB*16,)
    x = inputs[0]
    if out is None:
        N, _, H, W = _shape(x)
        Ho, Wo = conv2d_nchwc_output_size((H, W), layer.kernel_size, layer.stride, layer.padding)
        out = _take((N, nchwc.blocks(w.shape[0]), Ho, Wo, nchwc.BLOCK))          # (N, FB, H', W', 16)
    if not isinstance(x, Blocked) and x.shape[1] <= nchwc.BLOCK:
        # an image (at most one block of channels): read where it lies, not padded to 16 channels
        y = conv2d_nchwc_from_nchw(np.ascontiguousarray(x), w_b, b_b, layer.stride, layer.padding, relu=step.relu,
                                   out=out, out_block=out_block)
        return Blocked(y, w.shape[0])
    x = as_blocked(x)
    y = conv2d_nchwc(x.data, w_b, b_b, layer.stride, layer.padding, relu=step.relu, channels=x.channels,
                     out=out, out_block=out_block)
    return Blocked(y, w.shape[0])


def concat_is_aligned(arch, concat):
    """True where every input of layer `concat` but the last has a multiple of 16 channels: each
    input then starts at a block boundary of the concat's blocked output."""
    inputs = arch.layer(concat).inputs
    return all(arch.shapes[name][0] % nchwc.BLOCK == 0 for name in inputs[:-1])


def _conv_into_concat(step, inputs, net, live):
    """A conv writing its channels [first, stop) of an aligned concat's blocked output in place."""
    concat, first, _, (C, H, W) = step.into
    if concat not in live:
        live[concat] = Blocked(_take((_shape(inputs[0])[0], nchwc.blocks(C), H, W, nchwc.BLOCK)), C)
    return _conv(step, inputs, net, None, out=live[concat].data, out_block=first // nchwc.BLOCK)


def _fill_concat(inputs, out):
    """The concat into `out` (its Blocked output, allocated by a conv writing in place): copy the
    blocks of each input not already there."""
    first = 0
    for v in inputs:
        channels = v.channels if isinstance(v, Blocked) else v.shape[1]
        if not (isinstance(v, Blocked) and np.may_share_memory(v.data, out.data)):
            block = first // nchwc.BLOCK
            out.data[:, block:block + nchwc.blocks(channels)] = as_blocked(v).data
        first += channels
    return out


def _maxpool(step, inputs, net, switches):
    layer, x = step.layer, inputs[0]
    N, CB, H, W, _ = x.data.shape
    Ho, Wo = pool_output_size((H, W), layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode)
    y = max_pool2d_nchwc(x.data, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
                         relu_input=step.relu_input, return_switches=switches is not None,
                         out=_take((N, CB, Ho, Wo, nchwc.BLOCK)))
    if switches is None:
        return Blocked(y, x.channels)
    switches[layer.name] = switches_from_nchwc(y[1], x.channels)               # (N, C, H', W') int64
    return Blocked(y[0], x.channels)


def _lrn(step, inputs, net, switches):
    layer, x = step.layer, inputs[0]
    return Blocked(lrn_nchwc(x.data, layer.size, layer.alpha, layer.beta, layer.k, out=_take(x.data.shape)),
                   x.channels)


def _relu(step, inputs, net, switches):
    return Blocked(kernels.relu(inputs[0].data), inputs[0].channels)


def _gap(step, inputs, net, switches):
    x = inputs[0]
    return Blocked(global_avg_pool_nchwc(x.data, out=_take(x.data.shape[:2] + (1, 1, nchwc.BLOCK))), x.channels)


def _concat(step, inputs, net, switches):
    # blocks of aligned inputs follow each other: channel c of input k is channel first_k + c
    data = np.concatenate([v.data for v in inputs], axis=1)                   # (N, sum CB, H, W, 16)
    return Blocked(data, sum(v.channels for v in inputs))


def _dropout(step, inputs, net, switches):
    return inputs[0]


BLOCKED_RULES = {"conv": _conv, "maxpool": _maxpool, "lrn": _lrn, "relu": _relu, "gap": _gap,
                 "concat": _concat, "dropout": _dropout}


def runs_blocked(step, inputs, im2col):
    """True where `step` runs its blocked rule on `inputs` (see the module docstring's table)."""
    layer, op = step.layer, step.layer.op
    if op == "conv":
        return layer.groups == 1 and layer.name not in im2col
    all_blocked = op in BLOCKED_RULES and all(isinstance(v, Blocked) for v in inputs)
    if op == "lrn":
        return all_blocked and not layer.within_channel
    if op == "concat":
        return all_blocked and all(v.channels % nchwc.BLOCK == 0 for v in inputs[:-1])
    return all_blocked


def run_step_blocked(step, live, net, switches, im2col):
    """One plan step on `live` ({name: NCHW array or Blocked}); returns its output, either layout."""
    if step.applied_by is not None:
        return live[step.inputs[0]]             # a ReLU its conv or its pool applies
    inputs = [live[n] for n in step.inputs]
    op = step.layer.op
    if op == "concat" and isinstance(live.get(step.name), Blocked):
        return _fill_concat(inputs, live[step.name])
    if runs_blocked(step, inputs, im2col):
        if op == "conv" and step.into is not None and concat_is_aligned(net.arch, step.into.concat):
            return _conv_into_concat(step, inputs, net, live)
        return BLOCKED_RULES[op](step, inputs, net, switches)
    from zfnet.net.forward import apply_layer   # the NCHW rules (forward imports this module)
    return apply_layer(step.layer, [as_nchw(v) for v in inputs], net, switches, "cpu", relu=step.relu,
                       relu_input=step.relu_input)


def forward_blocked(p, net, x, result, im2col=()):
    """Walk plan `p` on NCHW16c; fills and returns `result` (a ForwardResult), NCHW throughout.

    im2col: the conv names run on im2col + BLAS instead (IM2COL_LAYERS for layout="auto"). A batch
    that batch_chunks splits walks its slices on threads up to the first fully connected layer.
    """
    if p.keep_input:
        result.outputs[INPUT] = x
    switches = result.switches if p.switches else None
    threads, chunks = numba.get_num_threads(), batch_chunks(x.shape[0])
    k = split_at(p.steps) if chunks else 0
    wall, cpu = time.perf_counter(), time.process_time()
    live = _walk_chunks(p.steps[:k], net, x, result, switches is not None, im2col, chunks) if k else {INPUT: x}
    _walk(p.steps[k:], live, net, switches, im2col, result.outputs)
    if x.shape[0] >= 2 and threads >= 2:
        global _cpu_share
        _cpu_share = (time.process_time() - cpu) / max((time.perf_counter() - wall) * threads, 1e-9)
    return result


def _walk(steps, live, net, switches, im2col, outputs, detach=False):
    """Run `steps` on `live` ({name: activation}, updated) in an arena; kept tensors into `outputs`.
    detach: copy the blocked activations still live at the end out of the arena (they outlive it)."""
    lock, arena = _acquire_arena()
    outer, _current.arena = getattr(_current, "arena", None), arena
    try:
        for step in steps:
            y = live[step.name] = run_step_blocked(step, live, net, switches, im2col)
            if step.keep:
                outputs[step.name] = as_nchw(y)
            for name in step.drop:
                arena.drop(live.pop(name, None), live)
        if detach:
            for name, v in live.items():
                if isinstance(v, Blocked):
                    live[name] = Blocked(_copy_aligned(v.data), v.channels)
        arena.end_pass()
    finally:
        _current.arena = outer
        if lock is not None:
            lock.release()


# A pass of at least 2 images on at least 2 threads that got less than this share of its threads'
# CPU time (process time / (wall time x threads)) makes the next passes split their batch.
CPU_SHARE = 0.75
SPLIT_MODES = ("auto", "always", "never")
_cpu_share = 1.0        # the last such pass's share (this process)


def split_mode():
    """ZFNET_BATCH_SPLIT: "auto" (default), "always" or "never"."""
    mode = os.environ.get("ZFNET_BATCH_SPLIT", "auto")
    if mode not in SPLIT_MODES:
        raise kernels.ZFNetError(f"ZFNET_BATCH_SPLIT={mode!r}: choose one of {', '.join(SPLIT_MODES)}")
    return mode


def batch_chunks(n):
    """The batch split for a batch of n: slices of the batch, one per thread, or [] (the batch
    runs whole). A split needs n >= 2, this thread's Numba threads T >= 2 (not inside
    kernels.serial()), a threading layer that runs kernels from several threads at once, and
    ZFNET_BATCH_SPLIT=always, or auto with the last pass short of CPU_SHARE of its threads' time.
    min(n, T) slices, as equal as can be."""
    threads, mode = numba.get_num_threads(), split_mode()
    if n < 2 or threads < 2 or mode == "never" or (mode == "auto" and _cpu_share >= CPU_SHARE):
        return []
    if not kernels.concurrent_kernels():
        return []
    parts = min(n, threads)
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def split_at(steps):
    """Where the batch's slices join: the first fully connected layer's step (else the end)."""
    return next((i for i, step in enumerate(steps) if step.layer.op == "linear"), len(steps))


def _walk_chunks(steps, net, x, result, keep_switches, im2col, chunks):
    """`steps` on each slice of x, the first in this thread, the others on the pool's threads, each
    on one core; joins the slices' kept outputs and switches into `result` and returns the joined
    live activations."""
    def one(part):
        with kernels.serial():
            live, outputs, switches = {INPUT: x[part]}, {}, ({} if keep_switches else None)
            _walk(steps, live, net, switches, im2col, outputs, detach=True)
            return live, outputs, switches

    futures = [_executor(len(chunks) - 1).submit(one, part) for part in chunks[1:]]
    try:
        parts = [one(chunks[0])]
    finally:
        parts += [f.result() for f in futures]          # every slice done before anything returns
    result.outputs.update({n: np.concatenate([o[n] for _, o, _ in parts]) for n in parts[0][1]})
    if keep_switches:
        result.switches.update({n: np.concatenate([s[n] for _, _, s in parts]) for n in parts[0][2]})
    return {n: x if n == INPUT else _join([live[n] for live, _, _ in parts]) for n in parts[0][0]}


def _join(values):
    """The slices' activations of one tensor as one batch, in its layout (blocked: aligned)."""
    if not isinstance(values[0], Blocked):
        return np.concatenate(values)
    out = aligned_empty((sum(v.data.shape[0] for v in values),) + values[0].data.shape[1:])
    np.concatenate([v.data for v in values], out=out)
    return Blocked(out, values[0].channels)


def _copy_aligned(a):
    out = aligned_empty(a.shape)
    out[...] = a
    return out


_pool, _pool_workers, _pool_lock = None, 0, threading.Lock()


def _executor(workers):
    """The batch split's thread pool, with at least `workers` threads."""
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zfnet-batch"), workers
        return _pool


def _forget_pool():
    """In a forked child: the pool's threads did not come along; start a new pool when needed."""
    global _pool, _pool_workers, _pool_lock
    _pool, _pool_workers, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)
