"""The tiled GEMM that conv2d, conv_transpose2d and linear run on: C (M, Ncols) = A (M, K) @ B (K, Ncols).

One block: a BM x BN = 64x64 tile of C (blockIdx.y: rows, blockIdx.x: columns, blockIdx.z: the
group g of a grouped convolution, an independent GEMM). One thread (256 per block, a 16x16
grid): a TM x TN = 4x4 sub-tile of that tile, rows ty, ty+16, ty+32, ty+48 and columns tx, tx+16,
... (strided, so that neighbouring threads read neighbouring shared-memory columns and write
neighbouring outputs). Shared memory: the BK x BM = 8x64 panel of A and the 8x64 panel of B for
the current k-slice; every thread loads 2 elements of each, the block syncs, then each thread does
8 rank-1 updates of its 4x4 accumulators from registers (16 FMAs per 8 shared-memory reads).

A and B are never stored: each op passes four device functions, so the matrices are read
straight from its own arrays ("implicit GEMM"):

    load_a(a, geo, g, m, k, M, K)          -> A[m, k] of group g, 0 outside (M, K)
    locate(geo, col, Ncols)                -> `where`, a tuple of 3 ints: column col of B decoded
                                              once (e.g. image n and window corner), (-1, 0, 0) past Ncols
    load_b(b, geo, g, k, where, K)         -> B[k, col] of group g, 0 outside
    store(out, bias, geo, g, m, col, acc)  writes C[m, col] (+ bias, ReLU: the op's epilogue)

A thread loads B from one column in every k-slice (THREADS is a multiple of BN), so `locate`
runs once per thread, and only the row k is decoded inside the loop.

`geo` is a tuple of ints with the op's geometry (shapes, stride, padding). Tiles at the right and
bottom edges are partial: loads there give 0 and stores are skipped, so any M, K, Ncols work.
"""
import math

from numba import cuda, float32

BM, BN, BK = 64, 64, 8          # the block's tile of C, and the depth of one k-slice
TM, TN = 4, 4                   # one thread's sub-tile
A_ROW = BM + 4                  # A panel rows 68 words apart: a warp's 8 k's land in 8 banks
TY, TX = BM // TM, BN // TN     # 16 x 16 threads
THREADS = TY * TX
assert THREADS % BN == 0        # so that e % BN == t % BN in every B load of thread t


def launch_shape(M, Ncols, G):
    """(grid, block) covering every tile of a (M, Ncols) output, for each of G groups."""
    return (math.ceil(Ncols / BN), math.ceil(M / BM), G), THREADS


def tiled_gemm(load_a, locate, load_b, store):
    """The kernel gemm[grid, block](a, b, out, bias, geo, M, Ncols, K) for one op's four functions."""

    @cuda.jit
    def gemm(a, b, out, bias, geo, M, Ncols, K):
        a_panel = cuda.shared.array((BK, A_ROW), float32)  # A[m0:m0+BM, k0:k0+BK], transposed
        b_panel = cuda.shared.array((BK, BN), float32)   # B[k0:k0+BK, n0:n0+BN]
        acc = cuda.local.array((TM, TN), float32)
        a_reg = cuda.local.array(TM, float32)
        b_reg = cuda.local.array(TN, float32)
        t = cuda.threadIdx.x
        tx, ty = t % TX, t // TX
        g, m0, n0 = cuda.blockIdx.z, cuda.blockIdx.y * BM, cuda.blockIdx.x * BN
        for i in range(TM):
            for j in range(TN):
                acc[i, j] = 0.0
        where = locate(geo, n0 + t % BN, Ncols)           # this thread's column of B, every slice
        for k0 in range(0, K, BK):
            # the block loads both panels together: consecutive threads, consecutive k (A) or columns (B)
            for e in range(t, BK * BM, THREADS):
                a_panel[e % BK, e // BK] = load_a(a, geo, g, m0 + e // BK, k0 + e % BK, M, K)
            for e in range(t, BK * BN, THREADS):
                b_panel[e // BN, t % BN] = load_b(b, geo, g, k0 + e // BN, where, K)
            cuda.syncthreads()
            for kk in range(BK):
                # acc += A[rows, kk] (x) B[kk, cols]: one rank-1 update from registers
                for i in range(TM):
                    a_reg[i] = a_panel[kk, ty + i * TY]
                for j in range(TN):
                    b_reg[j] = b_panel[kk, tx + j * TX]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += a_reg[i] * b_reg[j]
            cuda.syncthreads()                            # the panels are overwritten next slice
        for i in range(TM):
            m = m0 + ty + i * TY
            for j in range(TN):
                col = n0 + tx + j * TX
                if m < M and col < Ncols:
                    store(out, bias, geo, g, m, col, acc[i, j])
    return gemm
