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


def _compress16(positive):
    """An intrinsic `f(src, s, vals, chans, d, first)`: of the 16 floats src[s : s+16], those that
    are > 0 (positive=True) or != 0, stored one after another at vals[d:], their numbers
    first + lane (int32) at chans[d:]; returns how many (int64). One AVX-512 vcompressps per array
    (LLVM's llvm.masked.compressstore; on other CPUs LLVM expands it to a loop of the same effect).
    The caller keeps s + 16 <= len(src) and d + 16 <= len(vals), len(chans)."""
    from llvmlite import ir

    @intrinsic
    def compress16(typingctx, src, s, vals, chans, d, first):
        if not (isinstance(src, types.Array) and src.dtype == types.float32 and
                isinstance(vals, types.Array) and vals.dtype == types.float32 and
                isinstance(chans, types.Array) and chans.dtype == types.int32):
            return None

        def codegen(context, builder, signature, args):
            src_v, s_v, vals_v, chans_v, d_v, first_v = args
            f32, i32, i1 = ir.FloatType(), ir.IntType(32), ir.IntType(1)
            fvec, ivec, mvec = ir.VectorType(f32, 16), ir.VectorType(i32, 16), ir.VectorType(i1, 16)
            src_ptr = cgutils.gep(builder, make_array(signature.args[0])(context, builder, src_v).data, s_v)
            vals_ptr = cgutils.gep(builder, make_array(signature.args[2])(context, builder, vals_v).data, d_v)
            chans_ptr = cgutils.gep(builder, make_array(signature.args[3])(context, builder, chans_v).data, d_v)
            v = builder.load(builder.bitcast(src_ptr, fvec.as_pointer()), align=4)
            zero = ir.Constant(fvec, None)
            mask = builder.fcmp_ordered(">", v, zero) if positive else builder.fcmp_unordered("!=", v, zero)
            module = builder.module
            store_f = cgutils.get_or_insert_function(
                module, ir.FunctionType(ir.VoidType(), [fvec, vals_ptr.type, mvec]), "llvm.masked.compressstore.v16f32")
            store_i = cgutils.get_or_insert_function(
                module, ir.FunctionType(ir.VoidType(), [ivec, chans_ptr.type, mvec]), "llvm.masked.compressstore.v16i32")
            builder.call(store_f, [v, vals_ptr, mask])
            base = builder.trunc(first_v, i32) if first_v.type.width > 32 else first_v
            lanes = builder.add(ir.Constant(ivec, list(range(16))),
                                builder.shuffle_vector(builder.insert_element(ir.Constant(ivec, None), base, ir.Constant(i32, 0)),
                                                      ir.Constant(ivec, None), ir.Constant(ivec, [0] * 16)))
            builder.call(store_i, [lanes, chans_ptr, mask])
            bits = builder.bitcast(mask, ir.IntType(16))
            ctpop = cgutils.get_or_insert_function(module, ir.FunctionType(ir.IntType(16), [ir.IntType(16)]), "llvm.ctpop.i16")
            return builder.zext(builder.call(ctpop, [bits]), ir.IntType(64))

        return types.int64(src, s, vals, chans, d, first), codegen

    return compress16


compress_positive16 = _compress16(True)     # the values > 0 of 16 floats, packed
compress_nonzero16 = _compress16(False)     # the values != 0 of 16 floats, packed
