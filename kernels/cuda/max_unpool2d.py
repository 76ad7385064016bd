"""max_unpool2d on the GPU: each pooled value added back at its switch (equation, twin and why it
SUMS in kernels/max_unpool2d.py).

Where 3x3 stride-2 windows overlap, several pooled values land on one input position. One thread
per pooled value adding into x would race (and float atomics would add in a varying order).
Here the values meeting at one position are added in ROUNDS, one per round, in row-major order:

    one block (128 threads): one (n, c) plane; a thread takes pooled values k = t, t+128, ...
    each round:  every value not yet added claims its switch s: claim[s] = min(claim[s], k)
                 (an integer atomic: the smallest k wins, whatever the timing)
                 the winner of each s adds y[k] to x[s]: one writer per position per round
                 the winners mark themselves done and reset claim[s]
    until no value is left (cuda.syncthreads_or); rounds = the most values meeting at one place
    (at most 4 for 3x3 stride-2 pools), plus one.

So each position sums its values in the CPU kernel's order (row-major over (i, j)), giving its bits
exactly, with no race and no knowledge of the pool's geometry. The other kernels, 128 threads a
block, one thread per element: _fill (x = 0, claims = "none", done = 0) and _switch_range (atomic
min/max of device switches, for the range check). The claims (int32, x's size) and done flags
(int8, y's size) are global memory; no shared memory.
"""
from numba import cuda
import numpy as np

from .._checks import ZFNetError, positive_pair
from ..max_unpool2d import SWITCH_DTYPES
from ._device import THREADS_1D, blocks, is_device_array, on_device, to_caller


NO_CLAIM = np.iinfo(np.int32).max


@cuda.jit
def _fill(a_flat, value):
    q = cuda.grid(1)
    if q < a_flat.size:
        a_flat[q] = value


@cuda.jit
def _unpool_rounds(y, switches, x, claim, done):
    """x (N*C, H*W) = sum of y (N*C, H'*W') at switches, in rounds; one block per plane p.

    claim (N*C, H*W) int32 filled with NO_CLAIM, done (N*C, H'*W') int8 zeros: scratch.
    """
    p, t, T = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    Q = y.shape[1]
    left, rounds = 1, 0
    # syncthreads_or: also the barrier after the resets. Every round adds at least one value, so
    # Q rounds always suffice; the bound only turns a broken claim table into wrong output, not a hang.
    while cuda.syncthreads_or(left) and rounds < Q:
        rounds += 1
        for k in range(t, Q, T):
            if done[p, k] == 0:
                cuda.atomic.min(claim, (p, switches[p, k]), k)
        cuda.syncthreads()
        left = 0
        for k in range(t, Q, T):
            if done[p, k] == 0:
                if claim[p, switches[p, k]] == k:     # the first open value at its switch
                    x[p, switches[p, k]] += y[p, k]
                    done[p, k] = 1
                else:
                    left = 1
        cuda.syncthreads()
        for k in range(t, Q, T):
            if done[p, k] == 1:                       # added this round: free the position
                claim[p, switches[p, k]] = NO_CLAIM
                done[p, k] = 2


@cuda.jit
def _switch_range(switches_flat, low_high):
    q = cuda.grid(1)
    if q < switches_flat.size:
        cuda.atomic.min(low_high, 0, switches_flat[q])
        cuda.atomic.max(low_high, 1, switches_flat[q])


def _bounds(switches):
    """(min, max) of the switches: on the host for a NumPy array, else by _switch_range."""
    if isinstance(switches, np.ndarray):
        return int(switches.min()), int(switches.max())
    flat = switches.reshape(switches.size)
    if flat.dtype != np.int64:
        wide = cuda.device_array(flat.size, np.int64)          # atomic min/max on one type
        _widen[blocks(flat.size), THREADS_1D](flat, wide)
        flat = wide
    low_high = cuda.to_device(np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64))
    _switch_range[blocks(flat.size), THREADS_1D](flat, low_high)
    low, high = low_high.copy_to_host()
    return int(low), int(high)


@cuda.jit
def _widen(src, dst):
    q = cuda.grid(1)
    if q < src.size:
        dst[q] = src[q]


def max_unpool2d(y, switches, output_size):
    """Unpool on the GPU: (N, C, H', W') values summed at their switches -> (N, C, H, W).

    Same arguments, checks and result as kernels.max_unpool2d; host or device arrays.
    """
    y, host = on_device(y, "y", 4)
    if min(y.shape) < 1:
        raise ZFNetError(f"max_unpool2d: y must have N, C, H', W' >= 1, got shape {tuple(y.shape)}")
    dtype = getattr(switches, "dtype", None)
    if not (isinstance(switches, np.ndarray) or is_device_array(switches)) or dtype not in SWITCH_DTYPES:
        got = dtype if dtype is not None else type(switches).__name__
        raise ZFNetError(
            f"max_unpool2d: switches must be an int64 (or int32) numpy array as returned by "
            f"max_pool2d, got {got}"
        )
    switches_given = switches
    switches, _ = on_device(switches, "switches", 4, dtype=switches.dtype)
    if tuple(switches.shape) != tuple(y.shape):
        raise ZFNetError(
            f"max_unpool2d: switches must have y's shape {tuple(y.shape)}, got {tuple(switches.shape)}; "
            f"pass the switches of the pooling that produced y"
        )
    h, w = positive_pair(output_size, "output_size")
    lo, hi = _bounds(switches_given if isinstance(switches_given, np.ndarray) else switches)
    if lo < 0 or hi >= h * w:
        raise ZFNetError(
            f"max_unpool2d: switches must lie in [0, {h * w}) for output_size {(h, w)}, "
            f"got values in [{lo}, {hi}]; is output_size the pooled input's (H, W)?"
        )
    N, C, Ho, Wo = y.shape
    planes = N * C
    x = cuda.device_array((planes, h * w), np.float32)                           # (N*C, H*W)
    claim = cuda.device_array((planes, h * w), np.int32)
    done = cuda.device_array((planes, Ho * Wo), np.int8)
    for a, value in ((x, 0.0), (claim, NO_CLAIM), (done, 0)):
        _fill[blocks(a.size), THREADS_1D](a.reshape(a.size), value)
    _unpool_rounds[planes, THREADS_1D](
        y.reshape(planes, Ho * Wo), switches.reshape(planes, Ho * Wo), x, claim, done)
    return to_caller(x.reshape(N, C, h, w), host)                                # (N, C, H, W)
