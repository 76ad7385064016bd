"""relu on the GPU: y = max(x, 0), NaN kept (as kernels.relu; equation and twin in kernels/relu.py).

One thread: one element of the flat array (x of any shape, viewed as 1-D); 128 threads a block.
No shared memory.
"""
from numba import cuda, float32
import numpy as np

from .._checks import ZFNetError
from ._device import THREADS_1D, blocks, is_device_array, on_device, to_caller


@cuda.jit
def _relu(x, y):
    q = cuda.grid(1)
    if q < x.size:
        v = x[q]
        y[q] = v if (v > 0 or v != v) else float32(0.0)      # NaN passes through


def relu(x):
    """y = max(x, 0). x: float32 array of any shape (host or device, C-contiguous) -> y, same shape."""
    if not (isinstance(x, np.ndarray) or is_device_array(x)) or len(x.shape) < 1:
        raise ZFNetError(f"relu: x must be a numpy array with at least 1 dimension, got {x!r:.80}")
    x, host = on_device(x, "x", len(x.shape))
    y = cuda.device_array(x.shape, np.float32)
    _relu[blocks(x.size), THREADS_1D](x.reshape(x.size), y.reshape(x.size))
    return to_caller(y, host)
