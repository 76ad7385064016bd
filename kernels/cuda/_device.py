"""Arrays in and out of the CUDA kernels, and the launch arithmetic they share.

Every CUDA op takes NumPy arrays or device arrays: numba's, or any object with
``__cuda_array_interface__`` (a CuPy array, a PyTorch CUDA tensor), viewed without a copy. NumPy
in gives NumPy out (copied up, computed, copied back); device in gives device out. The checks
and messages are the CPU path's (``check_array``); a device array gets the same words.
"""
import numpy as np
from numba import cuda
from numba.cuda.cudadrv import devicearray

from .._checks import ZFNetError, check_array

THREADS_1D = 128          # threads per block of the one-thread-per-output kernels


def blocks(count, per_block=THREADS_1D):
    """Blocks of `per_block` threads that cover `count` outputs (the last one partly idle)."""
    return max(1, -(-count // per_block))


def is_device_array(a):
    return devicearray.is_cuda_ndarray(a) or hasattr(a, "__cuda_array_interface__")


def on_device(a, name, ndim, dtype=np.float32):
    """(a as a numba device array, True if it came from the host). Checked like check_array."""
    if isinstance(a, np.ndarray):
        check_array(a, name, ndim, dtype)
        return cuda.to_device(a), True
    if not devicearray.is_cuda_ndarray(a):
        if not hasattr(a, "__cuda_array_interface__"):
            raise ZFNetError(
                f"{name} must be a numpy array or a CUDA device array (numba's, or any object with "
                f"__cuda_array_interface__), got {type(a).__name__}"
            )
        a = cuda.as_cuda_array(a)                       # a view of the same memory, no copy
    check_device_array(a, name, ndim, dtype)
    return a, False


def check_device_array(a, name, ndim, dtype=np.float32):
    """check_array's rules and words for a device array: `ndim` dimensions, `dtype`, C-contiguous."""
    ndim = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in ndim:
        want = " or ".join(str(d) for d in ndim)
        raise ZFNetError(f"{name} must have {want} dimensions, got shape {tuple(a.shape)}")
    if a.dtype != dtype:
        raise ZFNetError(
            f"{name} must be {np.dtype(dtype).name}, got {a.dtype}; convert it on the device "
            f"(e.g. a torch tensor's .float(), a cupy array's .astype(cupy.{np.dtype(dtype).name}))"
        )
    if not a.is_c_contiguous():
        raise ZFNetError(
            f"{name} must be C-contiguous (got a strided view of shape {tuple(a.shape)}); "
            f"pass a contiguous copy"
        )
    return a


def to_caller(d, host):
    """The result as the caller gave its input: a NumPy copy if `host`, else the device array."""
    return d.copy_to_host() if host else d


def shape_stand_in(a):
    """A read-only C-contiguous NumPy array of `a`'s shape and dtype over ONE element of memory,
    for the CPU path's checks that look at shapes only (pool_geometry, _check_lrn_args). Its
    elements must never be read: it exists so those checks run unchanged on device arrays."""
    shape = tuple(a.shape)
    itemsize = np.dtype(a.dtype).itemsize
    strides = tuple(int(np.prod(shape[d + 1:], dtype=np.int64)) * itemsize for d in range(len(shape)))
    return np.lib.stride_tricks.as_strided(np.zeros(1, a.dtype), shape=shape, strides=strides,
                                           writeable=False)


def memory_span(a):
    """[first byte, last byte + 1) of a device array (a simulator array: of its host buffer)."""
    interface = getattr(a, "__cuda_array_interface__", None) or a.__array_interface__
    start = interface["data"][0]
    itemsize = np.dtype(a.dtype).itemsize
    strides = a.strides
    low = sum(min(0, (n - 1) * s) for n, s in zip(a.shape, strides))
    high = sum(max(0, (n - 1) * s) for n, s in zip(a.shape, strides))
    return start + low, start + high + itemsize


def overlaps(a, b):
    (a0, a1), (b0, b1) = memory_span(a), memory_span(b)
    return a0 < b1 and b0 < a1
