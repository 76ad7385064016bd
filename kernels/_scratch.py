"""Scratch arrays kept between calls, one set per thread: the im2col and Winograd work buffers;
and aligned_empty, the allocation of every array the blocked (NCHW16c) kernels read or write.

Allocating tens of MB afresh on every call costs more in page faults than the im2col itself, so
conv2d, conv_transpose2d and the Winograd path reuse these (grow-only) arrays.

A blocked array's pixel is 16 float32 = 64 bytes, one cache line and one AVX-512 register, when
the array starts on a 64-byte boundary. NumPy only promises 16 bytes (large arrays come from mmap
at a page + 16), so every 64-byte vector load or store of such an array would straddle two cache
lines; aligned_empty hands out arrays that start on a line.
"""
import threading

import numpy as np

_buffers = threading.local()
CACHE_LINE = 64                 # bytes


def aligned_empty(shape, dtype=np.float32):
    """np.empty(shape, dtype) whose data starts on a CACHE_LINE (64-byte) boundary: a view into a
    slightly larger array. Contents are garbage, as np.empty's."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    n = 1
    for d in shape:
        n *= d
    spare = CACHE_LINE // dtype.itemsize
    raw = np.empty(n + spare, dtype)
    first = (-raw.ctypes.data % CACHE_LINE) // dtype.itemsize
    return raw[first:first + n].reshape(shape)


def work_buffer(slot, size):
    """A float32 scratch array of `size` elements, reused by later calls in this thread (grow-only).

    Its contents are garbage; callers overwrite what they read. `slot` names independent buffers.
    """
    store = _buffers.__dict__
    buf = store.get(slot)
    if buf is None or buf.size < size:
        buf = store[slot] = aligned_empty(size)
    return buf[:size]
