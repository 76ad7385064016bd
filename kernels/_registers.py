"""Register tiles for Numba kernels: how the NCHWc micro-kernels keep a tile of outputs in registers.

A micro-kernel accumulates a small tile of outputs (6 output pixels x 16 output channels = 96
floats, twelve 8-wide AVX2 registers; 12 x 32 = 384 floats, twenty-four 16-wide AVX-512 registers)
over a long reduction. Two things stop LLVM from keeping
such a tile in registers when it is written as plain Numba:

1. Aliasing. A tile held in a NumPy array (np.empty) lives on the heap, and LLVM cannot prove
   that it does not overlap the input or the filters, so every update goes through memory.
   `stack_tile(n)` gives a float32 array of n elements on the stack of the calling function (an
   LLVM alloca): nothing else can point there, so LLVM promotes its elements to registers.
2. Vectorisation. Once the tile's small loops are fully unrolled, only LLVM's SLP (straight-line)
   vectoriser can pack them into SIMD instructions, and Numba turns it off by default
   (NUMBA_SLP_VECTORIZE=0). `slp_vectorized()` turns it on while a kernel is compiled (Numba
   reads the setting when it optimises each new function), and leaves it as it was afterwards.

With both, LLVM emits the micro-kernel of ONNX Runtime's MLAS by itself: per input channel, two
loads of 16 filter weights, one broadcast per output pixel, and 12 FMAs into registers (on AVX-512,
with _codegen.py's features: two loads of a block each, 12 broadcasts and 24 FMAs).
"""
import contextlib
import threading

import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


def _stack_array(dtype):
    """An intrinsic `f(size)`: a 1-D array of `dtype` with `size` elements (a compile-time constant)
    on the caller's stack. Its contents start as garbage, and it lives as long as the calling
    function's frame: never return it or store it anywhere."""
    array_type = types.Array(dtype, 1, "C")

    @intrinsic
    def stack_array(typingctx, size):
        if not isinstance(size, types.IntegerLiteral):
            return None
        n = size.literal_value

        def codegen(context, builder, signature, args):
            data = cgutils.alloca_once(builder, context.get_data_type(dtype), size=n)
            array = make_array(array_type)(context, builder)
            itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(dtype)))
            populate_array(array, data=data, shape=[context.get_constant(types.intp, n)],
                           strides=[itemsize], itemsize=itemsize, meminfo=None)
            return array._getvalue()

        return array_type(size), codegen

    return stack_array


stack_tile = _stack_array(types.float32)        # a tile of float32 accumulators
stack_offsets = _stack_array(types.uint64)      # a few flat offsets (uint64: see conv2d_nchwc.py)
stack_sums = _stack_array(types.float64)        # a few float64 running sums


_slp_lock = threading.Lock()


@contextlib.contextmanager
def slp_vectorized():
    """Compile the kernels first called inside this block with LLVM's SLP vectoriser on."""
    with _slp_lock:
        before = numba.config.SLP_VECTORIZE
        numba.config.SLP_VECTORIZE = 1
        try:
            yield
        finally:
            numba.config.SLP_VECTORIZE = before


def call_vectorized(kernel, *args):
    """kernel(*args); its first call (the compile, or the load from Numba's cache) with SLP on.

    (`kernel.overloads`, a dict, not `kernel.signatures`, which builds a list of hashed types on
    every call: RESULTS.md.)"""
    if kernel.overloads:
        return kernel(*args)
    with slp_vectorized():
        return kernel(*args)
