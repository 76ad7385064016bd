"""Scratch arrays kept between calls, one set per thread: the im2col and Winograd work buffers.

Allocating tens of MB afresh on every call costs more in page faults than the im2col itself, so
conv2d, conv_transpose2d and the Winograd path reuse these (grow-only) arrays.
"""
import threading

import numpy as np

_buffers = threading.local()


def work_buffer(slot, size):
    """A float32 scratch array of `size` elements, reused by later calls in this thread (grow-only).

    Its contents are garbage; callers overwrite what they read. `slot` names independent buffers.
    """
    store = _buffers.__dict__
    buf = store.get(slot)
    if buf is None or buf.size < size:
        buf = store[slot] = np.empty(size, np.float32)
    return buf[:size]
