"""linear: a fully connected layer (fc6, fc7, fc8 of ZFNet).

    y[n, o] = b[o] + sum_i w[o, i] * x[n, i]            i.e.  y = x @ w^T + b

Shapes:  x (N, I), w (O, I), b (O,) or None  ->  y (N, O).
A (N, C, H, W) feature map is flattened to (N, C*H*W) by the caller (the Flatten layer) first.

The CPU path is a Numba kernel that streams 4 weight rows at a time and dots them with each
input row, every dot in 16 lanes summed in an order written out in the code. Each image's
output depends only on that image: every y[n, o] is summed in one fixed order that depends only
on I, never on the batch N (a BLAS sgemm gives a column different last bits depending on how
many columns the call has, so the BLAS call was dropped; benchmarks/RESULTS.md, "Batch
invariance").
"""
import numpy as np
from numba import njit, prange, uint64

from ._backend import resolve
from ._checks import ZFNetError, check_array
from ._registers import call_vectorized, stack_tile


# ----------------------------------------------------------------------------------------------
# NumPy reference: one output unit o at a time.
# ----------------------------------------------------------------------------------------------

def linear_reference(x, w, b=None):
    """Plain NumPy twin of `linear`. x (N, I), w (O, I), b (O,) -> y (N, O).

    Loops over output units o; the sum over i and the batch are vectorised. Float64 accumulation.
    """
    N, I = x.shape
    O = w.shape[0]
    x64 = x.astype(np.float64)
    y = np.zeros((N, O), np.float64)                                              # (N, O)
    for o in range(O):
        # unit o: the dot product of its weight row with every input vector
        y[:, o] = x64 @ w[o].astype(np.float64)
        if b is not None:
            y[:, o] += b[o]
    return y.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# CPU: one Numba kernel, batch-invariant by construction.
# ----------------------------------------------------------------------------------------------

# Every dot product w[o] . x[n] is summed in one order, written out, that depends on I alone:
#   lane j (0..15) sums w[o, i] * x[n, i] for i = j, j+16, j+32, ... below the last full block,
#   the 16 lanes are added in a fixed tree (8+8, 4+4, 2+2, 1+1), then the last I % 16 products
#   one by one, then b[o].
# No fastmath reassociation, so LLVM may not reorder any of it; it vectorises ACROSS the 16
# lanes (one 16-wide or two 8-wide registers per dot), which changes nothing in any one lane's
# sum. Output units are taken 4 at a time (4 weight rows streamed together, each input value
# loaded once for 4 dots) and the last O % 4 one at a time; images 4 at a time (each weight
# value loaded once for 4 images) and the last N % 4 one at a time. Every (image, unit) pair
# keeps its own 16 lanes in every case, with the same per-lane arithmetic: row n gives the same
# bits alone or in any batch. fastmath "contract" only: s + w*x may become one FMA, the same
# pattern in every loop here. (The lanes are stack arrays, kept in registers.)
LANES = 16
UNITS = 4
IMAGES = 4      # images per group (see _linear_lanes)
GROUP_LANES = IMAGES * UNITS * LANES    # a group's accumulators
SLOT_LANES = UNITS * LANES              # a single image's


@njit(nogil=True, cache=True, inline="always", fastmath={"contract"})
def _dot_finish(acc, a0, w_flat, x_flat, wo, xo, body, I):
    """The fixed tree over the 16 lanes acc[a0:a0+16], then the tail products i = body..I-1 in order."""
    for half in (8, 4, 2, 1):
        for j in range(half):
            acc[a0 + j] += acc[a0 + j + half]
    s = acc[a0]
    for i in range(body, I):
        s += w_flat[uint64(wo + i)] * x_flat[uint64(xo + i)]
    return s


@njit(nogil=True, parallel=True, cache=True, fastmath={"contract"})
def _linear_lanes(x, w, b, y):
    """y[n, o] = b[o] + sum_i w[o, i] * x[n, i]; x (N, I), w (O, I), b (O,) -> y (N, O).

    Parallel over blocks of 4 output units x slots of images. A full slot is a group of 4 images:
    for each 16 inputs, the 4 weight rows' 16 values and the 4 images' 16 values are loaded once
    and give 16 lane updates, acc[(m*4 + k)*16 + j] += w[o + k, i + j] * x[n0 + m, i + j]
    (16 registers), so the weight rows are read once per 4 images instead of once per image. The
    last N % 4 images take a slot each, with 4 lanes of 16 (at batch 1 the layer only reads its
    weights, 4 memory streams in flight, so that is its speed). Each (image, unit) keeps its own 16
    lanes in either slot, so every y[n, o] is the same sum as alone. The last O % 4 units go one at
    a time, one image at a time, with the same lanes.
    """
    N, I = x.shape
    O = w.shape[0]
    body = I - I % LANES
    w_flat, x_flat = w.ravel(), x.ravel()
    blocks = O // UNITS
    groups = N // IMAGES
    slots = groups + N % IMAGES
    for job in prange(blocks * slots + O % UNITS):
        if job < blocks * slots:
            o, slot = (job // slots) * UNITS, job % slots
            w0, w1, w2, w3 = o * I, (o + 1) * I, (o + 2) * I, (o + 3) * I
            if slot < groups:                               # images n0 .. n0 + 3 together
                n0 = slot * IMAGES
                acc = stack_tile(GROUP_LANES)
                for k in range(GROUP_LANES):
                    acc[k] = np.float32(0)
                for i in range(0, body, LANES):
                    for m in range(IMAGES):
                        a, xm = uint64(m * UNITS * LANES), uint64((n0 + m) * I + i)
                        for j in range(LANES):
                            xi = x_flat[xm + uint64(j)]
                            acc[a + uint64(j)] += w_flat[uint64(w0 + i + j)] * xi
                            acc[a + uint64(LANES + j)] += w_flat[uint64(w1 + i + j)] * xi
                            acc[a + uint64(2 * LANES + j)] += w_flat[uint64(w2 + i + j)] * xi
                            acc[a + uint64(3 * LANES + j)] += w_flat[uint64(w3 + i + j)] * xi
                for m in range(IMAGES):
                    n = n0 + m
                    for k in range(UNITS):
                        y[n, o + k] = _dot_finish(acc, (m * UNITS + k) * LANES, w_flat, x_flat,
                                                  (o + k) * I, n * I, body, I) + b[o + k]
            else:                                           # one of the last N % 4 images
                n = groups * IMAGES + (slot - groups)
                acc = stack_tile(SLOT_LANES)
                for k in range(SLOT_LANES):
                    acc[k] = np.float32(0)
                xn = n * I
                for i in range(0, body, LANES):
                    for j in range(LANES):
                        xi = x_flat[uint64(xn + i + j)]
                        acc[uint64(j)] += w_flat[uint64(w0 + i + j)] * xi
                        acc[uint64(LANES + j)] += w_flat[uint64(w1 + i + j)] * xi
                        acc[uint64(2 * LANES + j)] += w_flat[uint64(w2 + i + j)] * xi
                        acc[uint64(3 * LANES + j)] += w_flat[uint64(w3 + i + j)] * xi
                for k in range(UNITS):
                    y[n, o + k] = _dot_finish(acc, k * LANES, w_flat, x_flat, (o + k) * I, xn, body, I) + b[o + k]
        else:                                                   # one of the last O % 4 units
            o = blocks * UNITS + (job - blocks * slots)
            wo = o * I
            for n in range(N):
                a = stack_tile(16)
                for j in range(LANES):
                    a[j] = np.float32(0)
                xn = n * I
                for i in range(0, body, LANES):
                    for j in range(LANES):
                        a[j] += w_flat[uint64(wo + i + j)] * x_flat[uint64(xn + i + j)]
                y[n, o] = _dot_finish(a, 0, w_flat, x_flat, wo, xn, body, I) + b[o]


def _linear_cpu(x, w, b):
    """y (N, O) by _linear_lanes (without a bias, zeros are added)."""
    N, O = x.shape[0], w.shape[0]
    y = np.empty((N, O), np.float32)                                             # (N, O)
    call_vectorized(_linear_lanes, x, w, np.zeros(O, np.float32) if b is None else b, y)
    return y


def linear(x, w, b=None, backend=None):
    """Fully connected layer y = x @ w^T + b. x (N, I), w (O, I), b (O,) or None -> y (N, O).

    All arrays float32, C-contiguous; x is not modified. `backend`: 'reference' or 'cpu'.
    Each image's output depends only on that image: row y[n] is bit-identical whatever else is in
    the batch (the 'cpu' kernel sums each y[n, o] in an order fixed by I alone).
    """
    check_array(x, "x", 2)
    check_array(w, "w", 2)
    N, I = x.shape
    O, Iw = w.shape
    if N < 1 or I < 1:
        raise ZFNetError(f"x must be non-empty (N, I), got shape {x.shape}")
    if O < 1:
        raise ZFNetError(f"w must be non-empty (O, I), got shape {w.shape}")
    if Iw != I:
        raise ZFNetError(
            f"size mismatch: x has I={I} inputs per row but w is {w.shape} = (O, I={Iw}); "
            f"w must be (O, {I})"
        )
    if b is not None:
        check_array(b, "b", 1)
        if b.shape != (O,):
            raise ZFNetError(f"b must have shape (O,) = ({O},) to match w, got {b.shape}")
    if resolve(backend) == "reference":
        return linear_reference(x, w, b)
    return _linear_cpu(x, w, b)
