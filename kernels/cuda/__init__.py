"""The CUDA backend: every public op of zfnet.kernels as hand-written numba.cuda kernels.

One file per op, parallel to kernels/<op>.py (which keeps the equation, shapes and NumPy twin);
each file opens with which block and thread computes what. Reached through the public functions
(``zfnet.kernels.conv2d(..., backend='cuda')``, or ``ZFNET_BACKEND=cuda``); importing this package
imports numba.cuda. The functions take NumPy arrays (NumPy out) or device arrays (numba's, or
anything with ``__cuda_array_interface__``, viewed without a copy; device out).

    gemm.py              tiled GEMM: a 64x64 tile of C per block, a 4x4 sub-tile per thread, 8x64
                         panels of A and B in shared memory; the op supplies A/B loaders and a store
    conv2d.py            implicit GEMM on gemm.py (im2col read on the fly from x), bias + ReLU fused
    conv_transpose2d.py  implicit GEMM gather on gemm.py (one thread sums each output: no race)
    linear.py            GEMM y^T = w @ x^T on gemm.py, bias in the store
    relu.py              one thread per element
    max_pool2d.py        one thread per output, row-major window scan (the CPU's ties and switches)
    max_unpool2d.py      one block per plane, overlapping values added in rounds (no race; the CPU's bits)
    avg_pool2d.py        one thread per output, float64 window sum
    lrn.py               one thread per element, float64 window sums; backward in two passes
    softmax.py           one thread per vector along the axis
    tensors.py           the pipeline's small steps between the ops (copies of boxes and channel slices,
                         sums, ReLU masks, global pool and its adjoint, the average pool's adjoint,
                         switches re-expressed in a box): one thread per output, twins in
                         zfnet/net/tensors.py
    _device.py           host/device arrays in and out, checks, launch arithmetic
"""
