"""The array work of the forward walk and the deconvnet outside the ops, on NumPy or device arrays.

forward.py and zfnet/deconv call these instead of NumPy where an array may live on the GPU
(backend="cuda"): each function looks at its array and does the NumPy thing (the twin, written
here) or calls the kernel of kernels/cuda/tensors.py. numba.cuda is imported only when a device
array shows up, so a CPU-only process never imports it.

Where results live: the walk runs where its input lives. forward() and project() with
backend="cuda" copy a NumPy input to the device once, run every step there, and hand back the
kept activations, switches and projections as NumPy arrays when the caller passed NumPy, as
device arrays when it passed a device array (``to_caller``).
"""
import numpy as np


def is_device(a):
    """True for a device array (numba's, or anything with __cuda_array_interface__)."""
    return not isinstance(a, np.ndarray) and (
        hasattr(a, "__cuda_array_interface__") or type(a).__name__ in ("DeviceNDArray", "FakeCUDAArray"))


def _cuda():
    from numba import cuda
    return cuda


def _k():
    from zfnet.kernels.cuda import tensors
    return tensors


def to_device(a):
    """a on the device (a device array is returned as it is, viewed as numba's)."""
    cuda = _cuda()
    if isinstance(a, np.ndarray):
        return cuda.to_device(np.ascontiguousarray(a))
    return a if type(a).__name__ in ("DeviceNDArray", "FakeCUDAArray") else cuda.as_cuda_array(a)


def to_host(a):
    return a.copy_to_host() if is_device(a) else a


def to_caller(a, host):
    """`a` as the caller's input was: NumPy if `host`, else where it is."""
    return to_host(a) if host else a


def empty(shape, like, dtype=np.float32):
    """An uninitialised array of `shape` where `like` lives."""
    return _cuda().device_array(tuple(shape), dtype) if is_device(like) else np.empty(shape, dtype)


def zeros(shape, like, dtype=np.float32):
    """Zeros of `shape` where `like` lives."""
    return _k().zeros(shape, dtype) if is_device(like) else np.zeros(shape, dtype)


def assign(dst, src):
    """dst[...] = src (4-D; a src of batch 1 repeats over dst's batch); returns dst."""
    if not is_device(dst):
        dst[...] = src
        return dst
    return _k().copy4(src, dst)


def contiguous(a):
    """A C-contiguous copy of a 4-D view (the array itself when it already is one)."""
    if not is_device(a):
        return np.ascontiguousarray(a)
    if a.is_c_contiguous():
        return a
    return assign(empty(a.shape, a, a.dtype), a)


def repeat(a, k):
    """(1, ...) -> (k, ...), C-contiguous (the array itself when its batch is already k)."""
    if a.shape[0] == k:
        return a
    if not is_device(a):
        return np.ascontiguousarray(np.broadcast_to(a, (k,) + a.shape[1:]))
    return assign(empty((k,) + tuple(a.shape[1:]), a, a.dtype), a)


def take(a, rows):
    """a[rows] along the batch axis (rows: a list of ints), C-contiguous (a C-contiguous)."""
    if not is_device(a):
        return a[np.asarray(rows, dtype=np.int64)]
    out = empty((len(rows),) + tuple(a.shape[1:]), a, a.dtype)
    L = a.size // a.shape[0]
    src, dst = a.reshape(a.shape[0], L, 1, 1), out.reshape(len(rows), L, 1, 1)     # rows as (N, L, 1, 1)
    for k, r in enumerate(rows):
        _k().copy4(src[r:r + 1], dst[k:k + 1])
    return out


def add(a, b):
    return _k().add(a, b) if is_device(a) else a + b


def mask_positive(g, x):
    """g where x > 0, else 0 (the forward mask of a ReLU); x of batch 1 or g's batch."""
    if not is_device(g):
        return np.where(x > 0, g, np.float32(0)).astype(np.float32, copy=False)
    return _k().mask_positive(g, x)


def gap(x):
    """Global average pool: (N, C, H, W) -> (N, C, 1, 1), the mean accumulated in float64."""
    if is_device(x):
        return _k().gap(x)
    return x.mean(axis=(2, 3), dtype=np.float64, keepdims=True).astype(np.float32)


def spread(g, hw):
    """The global average pool's adjoint: g (K, C, 1, 1) -> g / (H*W) at every position of (H, W)."""
    if is_device(g):
        return _k().spread(g, hw)
    return np.ascontiguousarray(np.broadcast_to(g / np.float32(hw[0] * hw[1]), tuple(g.shape[:2]) + tuple(hw)))


def flat(x):
    """(N, C, H, W) -> (N, C*H*W), C-contiguous."""
    x = contiguous(x)
    return x.reshape(x.shape[0], x.size // x.shape[0])


def matmul_wt(g, w, w_t):
    """g (K, O) @ w (O, I) -> (K, I). On the device: kernels.linear(g, w_t), w_t = w.T as (I, O)."""
    if not is_device(g):
        return np.matmul(g, w)
    from zfnet import kernels
    return kernels.linear(g, w_t, backend="cuda")
