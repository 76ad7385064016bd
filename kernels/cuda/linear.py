"""linear on the GPU: y^T (O, N) = w (O, I) @ x^T (I, N) + b, on the tiled GEMM of gemm.py.

The equation, shapes and NumPy twin are in kernels/linear.py. Rows of the GEMM are output units
o (so a batch of one still spreads the O units over O/64 blocks), columns are the images n.

One block: a 64x64 tile of y^T (64 units x 64 images). One thread: a 4x4 sub-tile. Shared
memory: the 8x64 panels of w and of x^T for one slice of the I inputs (see gemm.py). The
epilogue adds b[o] and writes y[n, o] (the transpose is in the store, no extra pass).
"""
from numba import cuda, float32
import numpy as np

from .._checks import ZFNetError
from . import gemm
from ._device import on_device, to_caller

# geo = (has_bias,)


@cuda.jit(device=True)
def _load_w(w, geo, g, m, k, M, K):
    """A[o, i] = w[o, i]."""
    if m < M and k < K:
        return w[m, k]
    return float32(0.0)


@cuda.jit(device=True)
def _locate(geo, col, Ncols):
    """Column n of x^T -> (n, 0, 0)."""
    return (col, 0, 0) if col < Ncols else (-1, 0, 0)


@cuda.jit(device=True)
def _load_xT(x, geo, g, k, where, K):
    """B[i, n] = x[n, i]."""
    if k < K and where[0] >= 0:
        return x[where[0], k]
    return float32(0.0)


@cuda.jit(device=True)
def _store_y(y, b, geo, g, m, col, acc):
    """y[n, o] = acc + b[o]."""
    y[col, m] = acc + b[m] if geo[0] else acc


_linear_gemm = gemm.tiled_gemm(_load_w, _locate, _load_xT, _store_y)


def linear(x, w, b=None):
    """Fully connected layer on the GPU. x (N, I), w (O, I), b (O,) or None -> y (N, O).

    Same arguments, checks and result as kernels.linear; host or device arrays.
    """
    x, host = on_device(x, "x", 2)
    w, _ = on_device(w, "w", 2)
    N, I = x.shape
    O, Iw = w.shape
    if N < 1 or I < 1:
        raise ZFNetError(f"x must be non-empty (N, I), got shape {tuple(x.shape)}")
    if O < 1:
        raise ZFNetError(f"w must be non-empty (O, I), got shape {tuple(w.shape)}")
    if Iw != I:
        raise ZFNetError(
            f"size mismatch: x has I={I} inputs per row but w is {tuple(w.shape)} = (O, I={Iw}); "
            f"w must be (O, {I})"
        )
    if b is not None:
        b, _ = on_device(b, "b", 1)
        if tuple(b.shape) != (O,):
            raise ZFNetError(f"b must have shape (O,) = ({O},) to match w, got {tuple(b.shape)}")
    y = cuda.device_array((N, O), np.float32)                                    # (N, O)
    grid, block = gemm.launch_shape(O, N, 1)
    _linear_gemm[grid, block](w, x, y, w.reshape(O * I) if b is None else b, (int(b is not None),), O, N, I)
    return to_caller(y, host)
