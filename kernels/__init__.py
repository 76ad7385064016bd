"""zfnet's kernel layer: every op of the forward pass and the deconvnet, as one small interface.

Installed as ``zfnet.kernels`` (``from zfnet import kernels``); the folder stays ``kernels/`` in
the repository. One file per op; each holds the equation and shapes, a plain NumPy reference
twin and the Numba CPU kernel. All arrays are float32, NCHW, C-contiguous.

Shape legend: N = batch, C = input channels, F = output channels (filters), H, W = input height
and width, H', W' = output height and width, KH, KW = kernel size, G = groups.

    conv2d(x, w, b=None, stride=1, padding=0, groups=1, relu=False, out=None)  (N,C,H,W) -> (N,F,H',W')
    conv_transpose2d(y, w, stride=1, padding=0, groups=1, output_size=None)  (N,F,H',W') -> (N,C,H,W)
    relu(x)                                                              same shape
    max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, relu_input=False,
               return_switches=True)                                 -> (y, switches), or y
    max_unpool2d(y, switches, output_size)                               (N,C,H',W') -> (N,C,H,W)
    avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True)
    lrn(x, size, alpha=1e-4, beta=0.75, k=1.0, within_channel=False)     same shape
    lrn_backward(x, dy, size, alpha, beta, k, within_channel)            dx, same shape as x
    linear(x, w, b=None)                                                 (N,I) -> (N,O)
    softmax(x, axis=-1)                                                  same shape

Every function also takes ``backend=`` ('reference', 'cpu' or 'cuda'); the default is the
process-wide choice (``set_backend``, ``use_backend``, or the ZFNET_BACKEND environment variable).
On 'cuda' (kernels/cuda/, one file per op) the functions take and return device arrays (numba's,
or anything with ``__cuda_array_interface__``); NumPy arrays in give NumPy arrays out.

Helpers the layers above use (net, deconv, viz):

    check_array(a, name, ndim)      a C-contiguous float32 ndarray of ndim dimensions, else ZFNetError
    positive_pair(v, name), non_negative_pair(v, name)   an int or pair of ints -> (a, b), checked
    frozen(a)                       True when neither a nor anything it views can be written
    prepared(w, kind, make)         make(w), computed once per frozen array w and kind (a cache)
    serial()                        ``with serial():`` kernels called from this thread use one core
    codegen_status()                how Numba's code generator was tuned for this CPU (_codegen.py)
"""
from ._codegen import codegen_status, tune_codegen

tune_codegen()      # before anything here is compiled: see _codegen.py (AVX-512 hosts)

from ._backend import BACKENDS, get_backend, set_backend, use_backend
from ._checks import ZFNetError, check_array, non_negative_pair, positive_pair
from ._prepared import frozen, prepared
from .conv2d import conv2d, conv2d_output_size
from .conv_transpose2d import conv_transpose2d
from .linear import linear
from .lrn import lrn, lrn_backward
from .max_pool2d import max_pool2d, pool_output_size
from .avg_pool2d import avg_pool2d
from .max_unpool2d import max_unpool2d
from .relu import relu
from .softmax import softmax
from ._route import routed
from ._threads import concurrent_kernels, one_at_a_time, serial

# backend="cuda" routed to kernels/cuda/; safe to call from several Python threads (one op at a
# time under workqueue: see _threads.py).
conv2d, conv_transpose2d, linear, lrn, lrn_backward, max_pool2d, avg_pool2d, max_unpool2d, relu, softmax = map(
    lambda op: one_at_a_time(routed(op)),
    (conv2d, conv_transpose2d, linear, lrn, lrn_backward, max_pool2d, avg_pool2d, max_unpool2d, relu, softmax),
)

__all__ = [
    "BACKENDS", "ZFNetError", "get_backend", "set_backend", "use_backend",
    "conv2d", "conv2d_output_size", "conv_transpose2d", "relu", "max_pool2d", "pool_output_size",
    "max_unpool2d", "avg_pool2d", "lrn", "lrn_backward", "linear", "softmax",
    "check_array", "positive_pair", "non_negative_pair", "frozen", "prepared", "serial", "concurrent_kernels",
    "codegen_status",
]
