"""linear: a fully connected layer (fc6, fc7, fc8 of ZFNet).

    y[n, o] = b[o] + sum_i w[o, i] * x[n, i]            i.e.  y = x @ w^T + b

Shapes:  x (N, I), w (O, I), b (O,) or None  ->  y (N, O).
A (N, C, H, W) feature map is flattened to (N, C*H*W) by the caller (the Flatten layer) first.

The CPU path is one BLAS sgemm computing y^T = w @ x^T (O, N), and a parallel Numba pass that
transposes it into y and adds the bias. Computing y = x @ w^T directly is the same product, but
OpenBLAS runs that short-and-wide form 2-10x slower for a batch (measured on ZFNet's fc6,
N = 16: 280 ms against 62 ms); for N = 1 y^T already has y's memory layout and no copy is made.
"""
import numpy as np
from numba import njit, prange

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
# CPU: BLAS for the product, Numba for the bias.
# ----------------------------------------------------------------------------------------------

@njit(parallel=True, cache=True)
def _add_bias_rows(y, b):
    """y[n, o] += b[o] in place; y (N, O). Parallel over n."""
    N, O = y.shape
    for n in prange(N):
        for o in range(O):
            y[n, o] += b[o]


@njit(parallel=True, cache=True)
def _transpose_add_bias(yT, b, y):
    """y[n, o] = yT[o, n] + b[o]; yT (O, N) -> y (N, O). Parallel over n."""
    O, N = yT.shape
    for n in prange(N):
        for o in range(O):
            y[n, o] = yT[o, n] + b[o]


def _linear_cpu(x, w, b):
    N, O = x.shape[0], w.shape[0]
    yT = np.matmul(w, x.T)                                                       # (O, N)
    if N == 1:
        # (O, 1) and (1, O) are the same memory
        y = yT.reshape(1, O)                                                     # (N, O)
        if b is not None:
            _add_bias_rows(y, b)
        return y
    y = np.empty((N, O), np.float32)                                             # (N, O)
    _transpose_add_bias(yT, np.zeros(O, np.float32) if b is None else b, y)
    return y


def linear(x, w, b=None, backend=None):
    """Fully connected layer y = x @ w^T + b. x (N, I), w (O, I), b (O,) or None -> y (N, O).

    All arrays float32, C-contiguous; x is not modified. `backend`: 'reference' or 'cpu'.
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
