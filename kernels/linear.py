"""linear: a fully connected layer (fc6, fc7, fc8 of ZFNet).

    y[n, o] = b[o] + sum_i w[o, i] * x[n, i]            i.e.  y = x @ w^T + b

Shapes:  x (N, I), w (O, I), b (O,) or None  ->  y (N, O).
A (N, C, H, W) feature map is flattened to (N, C*H*W) by the caller (the Flatten layer) first.

The CPU path is a Numba kernel that streams each weight row w[o] once and dots it with every
input row. Each image's output depends only on that image: every y[n, o] is summed in one fixed
order that depends only on I, never on the batch N (a BLAS sgemm gives a column different last
bits depending on how many columns the call has, so the BLAS call was dropped;
benchmarks/RESULTS.md, "Batch invariance").
"""
import numpy as np
from numba import njit, prange, uint64

from ._backend import resolve
from ._checks import ZFNetError, check_array


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
# CPU: one Numba kernel, batch-invariant.
# ----------------------------------------------------------------------------------------------

# Inputs dotted with one weight row per pass: w[o] is loaded once for ROWS dots (4 sums in flight).
ROWS = 4


@njit(parallel=True, fastmath={"reassoc"}, cache=True)
def _linear_rows(x, w, b, y):
    """y[n, o] = b[o] + sum_i w[o, i] * x[n, i]; x (N, I), w (O, I), b (O,) -> y (N, O). Parallel over o.

    Rows n0..n0+3 share one pass over w[o]; past the batch's end the last row is repeated (its
    sums are dropped), so every dot runs in this one loop, which LLVM vectorises over i with
    'reassoc' (lanes of partial sums, then a fixed tree): the order of the sum depends on I alone.
    """
    N, I = x.shape
    w_flat, x_flat = w.ravel(), x.ravel()
    for o in prange(w.shape[0]):
        wo = o * I
        for n0 in range(0, N, ROWS):
            x0, x1 = min(n0, N - 1) * I, min(n0 + 1, N - 1) * I
            x2, x3 = min(n0 + 2, N - 1) * I, min(n0 + 3, N - 1) * I
            s0 = s1 = s2 = s3 = np.float32(0)
            for i in range(I):
                wi = w_flat[uint64(wo + i)]
                s0 += wi * x_flat[uint64(x0 + i)]
                s1 += wi * x_flat[uint64(x1 + i)]
                s2 += wi * x_flat[uint64(x2 + i)]
                s3 += wi * x_flat[uint64(x3 + i)]
            sums = (s0, s1, s2, s3)
            for k in range(min(ROWS, N - n0)):
                y[n0 + k, o] = sums[k] + b[o]


def _linear_cpu(x, w, b):
    """y (N, O) by _linear_rows (without a bias, zeros are added)."""
    N, O = x.shape[0], w.shape[0]
    y = np.empty((N, O), np.float32)                                             # (N, O)
    _linear_rows(x, w, np.zeros(O, np.float32) if b is None else b, y)
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
