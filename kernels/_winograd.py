"""conv2d's fast path for 3x3, stride-1 filters: Winograd's minimal filtering F(4x4, 3x3).

The same convolution as conv2d (cross-correlation, `padding` zeros on each side, groups = 1),

    y[n, k, i, j] = b[k] + sum_{c, u < 3, v < 3} w[k, c, u, v] * x_pad[n, c, i + u, j + v],

computed with 2.25x fewer multiplications (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2016). The output is cut into 4x4 tiles; tile t of image n reads the 6x6 patch
d of x_pad whose top-left corner is (4*ty, 4*tx), and for every input channel c and filter k

    Y_t = A^T [ sum_c (G w[k, c] G^T) * (B^T d[c] B) ] A        (* is elementwise, 6x6)

with the constant matrices (interpolation points 0, 1, -1, 2, -2 and infinity; B_T, G and A_T below)

    B^T = [[4,  0, -5,  0, 1, 0],      G = [[ 1/4,     0,    0],      A^T = [[1, 1,  1, 1,  1, 0],
           [0, -4, -4,  1, 1, 0],           [-1/6,  -1/6, -1/6],             [0, 1, -1, 2, -2, 0],
           [0,  4, -4, -1, 1, 0],           [-1/6,   1/6, -1/6],             [0, 1,  1, 4,  4, 0],
           [0, -2, -1,  2, 1, 0],           [1/24,  1/12,  1/6],             [0, 1, -1, 8, -8, 1]]
           [0,  2, -1, -2, 1, 0],           [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]           [   0,     0,    1]]

The sum over c at each of the 36 positions e = (xi, nu) of the 6x6 grid is a matrix product, so
the work becomes 36 GEMMs over the T = th*tw tiles of each image n:

    V[n, e, t, c] = (B^T d_t[c] B)[e]   U[e, c, k] = (G w[k, c] G^T)[e]   M[n, e] = V[n, e] @ U[e]
    (N, 36, T, C)                        (36, C, K)                        (N, 36, T, K)

One image per GEMM keeps each image's output independent of the batch (a BLAS GEMM's rows get
different last bits depending on how many rows the call has).

36 products of C x K per tile where the direct method needs 9 per output, i.e. 144 per 4x4 tile:
4x fewer, or 2.25x counting the extra work of tiles that overhang the map's edge. The transforms
are additions and a few multiplications per element, vectorised over channels (c or k innermost).
U depends only on the filters: it is computed once per frozen filter array (kernels/_prepared.py)
in float64 and stored as float32.

Rounding: the transforms multiply values by up to 5 (B) and 8 (A) before the sums cancel, so the
float32 error is somewhat larger than the direct method's; tests/kernels/test_winograd.py bounds
it against the float64 reference twin, as conv2d's own tests do for im2col.
"""
import numpy as np
from numba import njit, prange

from ._prepared import prepared
from ._scratch import work_buffer

M_TILE, ALPHA = 4, 6           # output tile 4x4, input patch 6x6

# Images per GEMM batch: V and M together stay under this many bytes (at least one image).
WINO_BYTES = 24 * 2**20

# The constant matrices of the docstring. _input_transform and _output_transform are the products
# B^T d B and A^T M A written out by hand; tests/kernels/test_winograd.py checks them against these.
B_T = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], np.float64)                                  # (6, 6)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], np.float64)                                          # (6, 3)
A_T = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float64)                                # (4, 6)


def winograd_reference(x, w, b, padding):
    """The matrix-form NumPy twin of conv3x3_winograd, in float64, one 4x4 output tile at a time:

        Y_t = A^T [ sum_c (G w[k, c] G^T) * (B^T d_t[c] B) ] A  (+ b[k])

    x (N, C, H, W), w (K, C, 3, 3), b (K,) or None, padding (ph, pw) -> y (N, K, H', W') float32.
    """
    N, C, H, W = x.shape
    K = w.shape[0]
    ph, pw = padding
    Ho, Wo = H + 2 * ph - 2, W + 2 * pw - 2
    th, tw = -(-Ho // M_TILE), -(-Wo // M_TILE)
    x_pad = np.zeros((N, C, 4 * th + 2, 4 * tw + 2))                       # zeros past the edges too
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    U = np.einsum("iu,kcuv,jv->kcij", G, w.astype(np.float64), G)           # (K, C, 6, 6) G w G^T
    y = np.zeros((N, K, 4 * th, 4 * tw))
    for ty in range(th):
        for tx in range(tw):
            d = x_pad[:, :, 4 * ty:4 * ty + 6, 4 * tx:4 * tx + 6]          # (N, C, 6, 6)
            V = np.einsum("ir,ncrs,js->ncij", B_T, d, B_T)                  # B^T d B
            M = np.einsum("kcij,ncij->nkij", U, V)                         # sum over c, elementwise
            y[:, :, 4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4] = np.einsum("ai,nkij,bj->nkab", A_T, M, A_T)
    y = y[:, :, :Ho, :Wo]
    if b is not None:
        y = y + b.astype(np.float64)[None, :, None, None]
    return y.astype(np.float32)


def filter_transform(w):
    """U[e, c, k] = (G w[k, c] G^T)[e] for w (K, C, 3, 3) -> U (36, C, K) float32, summed in float64."""
    K, C = w.shape[:2]
    U = np.einsum("iu,kcuv,jv->ijck", G, w.astype(np.float64), G)            # (6, 6, C, K)
    return np.ascontiguousarray(U.reshape(ALPHA * ALPHA, C, K), dtype=np.float32)


def transformed_filters(w):
    """filter_transform(w), once per frozen (read-only) filter array; see kernels/_prepared.py."""
    return prepared(w, "winograd_f4x4_3x3", filter_transform)


@njit(nogil=True, parallel=True, cache=True)
def _input_transform(x, ph, pw, th, tw, V):
    """V[n, (xi, nu), t, c] = (B^T d_t[c] B)[xi, nu]; x (N, C, H, W) -> V (N, 36, th*tw, C).

    d_t[c] is the 6x6 patch of x_pad[n] (zeros outside x) at (4*ty - ph, 4*tx - pw), tile
    t = ty*tw + tx. Parallel over (n, ty): each iteration owns its tiles' rows of V.
    The loops over c are innermost, so the transform vectorises over channels.
    """
    N, C, H, W = x.shape
    for nt in prange(N * th):
        n, ty = nt // th, nt % th
        d = np.empty((6, 6, C), np.float32)          # the patch, channels last
        q = np.empty((6, 6, C), np.float32)          # B^T d
        for tx in range(tw):
            t = ty * tw + tx
            h0, w0 = ty * 4 - ph, tx * 4 - pw
            for c in range(C):
                for r in range(6):
                    h = h0 + r
                    for s in range(6):
                        w = w0 + s
                        d[r, s, c] = x[n, c, h, w] if (0 <= h < H and 0 <= w < W) else np.float32(0)
            # rows: q = B^T d, one column s at a time
            for s in range(6):
                for c in range(C):
                    d0, d1, d2, d3, d4, d5 = d[0, s, c], d[1, s, c], d[2, s, c], d[3, s, c], d[4, s, c], d[5, s, c]
                    q[0, s, c] = 4 * d0 - 5 * d2 + d4
                    q[1, s, c] = -4 * (d1 + d2) + d3 + d4
                    q[2, s, c] = 4 * (d1 - d2) - d3 + d4
                    q[3, s, c] = 2 * (d3 - d1) - d2 + d4
                    q[4, s, c] = 2 * (d1 - d3) - d2 + d4
                    q[5, s, c] = 4 * d1 - 5 * d3 + d5
            # columns: V = q B, the same combinations along s
            for xi in range(6):
                e = xi * 6
                for c in range(C):
                    q0, q1, q2, q3, q4, q5 = q[xi, 0, c], q[xi, 1, c], q[xi, 2, c], q[xi, 3, c], q[xi, 4, c], q[xi, 5, c]
                    V[n, e + 0, t, c] = 4 * q0 - 5 * q2 + q4
                    V[n, e + 1, t, c] = -4 * (q1 + q2) + q3 + q4
                    V[n, e + 2, t, c] = 4 * (q1 - q2) - q3 + q4
                    V[n, e + 3, t, c] = 2 * (q3 - q1) - q2 + q4
                    V[n, e + 4, t, c] = 2 * (q1 - q3) - q2 + q4
                    V[n, e + 5, t, c] = 4 * q1 - 5 * q3 + q5


@njit(nogil=True, parallel=True, cache=True)
def _output_transform(M, b, relu, th, tw, y):
    """y[n, k, 4*ty + i, 4*tx + j] = (A^T M[n, :, t, k] A)[i, j] + b[k], t = ty*tw + tx;
    M (N, 36, th*tw, K) -> y (N, K, H', W').

    Outputs of the overhanging tiles beyond H' x W' are dropped. relu: then rectify (NaN kept).
    y may be a channel slice of a larger array. Parallel over (n, ty); vectorised over k.
    """
    N, K, Ho, Wo = y.shape
    zero = np.float32(0)
    for nt in prange(N * th):
        n, ty = nt // th, nt % th
        p = np.empty((4, 6, K), np.float32)          # A^T M
        o = np.empty((4, 4, K), np.float32)          # A^T M A + b, rectified
        for tx in range(tw):
            t = ty * tw + tx
            # rows: p = A^T M, one column nu at a time
            for nu in range(6):
                for k in range(K):
                    m0, m1, m2 = M[n, nu, t, k], M[n, 6 + nu, t, k], M[n, 12 + nu, t, k]
                    m3, m4, m5 = M[n, 18 + nu, t, k], M[n, 24 + nu, t, k], M[n, 30 + nu, t, k]
                    p[0, nu, k] = m0 + m1 + m2 + m3 + m4
                    p[1, nu, k] = m1 - m2 + 2 * (m3 - m4)
                    p[2, nu, k] = m1 + m2 + 4 * (m3 + m4)
                    p[3, nu, k] = m1 - m2 + 8 * (m3 - m4) + m5
            # columns: o = p A + b, rectified if asked
            for i in range(4):
                for k in range(K):
                    p0, p1, p2, p3, p4, p5 = p[i, 0, k], p[i, 1, k], p[i, 2, k], p[i, 3, k], p[i, 4, k], p[i, 5, k]
                    bk = b[k]
                    v0 = p0 + p1 + p2 + p3 + p4 + bk
                    v1 = p1 - p2 + 2 * (p3 - p4) + bk
                    v2 = p1 + p2 + 4 * (p3 + p4) + bk
                    v3 = p1 - p2 + 8 * (p3 - p4) + p5 + bk
                    o[i, 0, k] = v0 if (not relu or v0 > 0 or v0 != v0) else zero
                    o[i, 1, k] = v1 if (not relu or v1 > 0 or v1 != v1) else zero
                    o[i, 2, k] = v2 if (not relu or v2 > 0 or v2 != v2) else zero
                    o[i, 3, k] = v3 if (not relu or v3 > 0 or v3 != v3) else zero
            i_end, j_end = min(4, Ho - ty * 4), min(4, Wo - tx * 4)
            for k in range(K):
                for i in range(i_end):
                    for j in range(j_end):
                        y[n, k, ty * 4 + i, tx * 4 + j] = o[i, j, k]


def applies(w_shape, stride, padding, groups):
    """True when the Winograd path can compute this convolution: w_shape (K, C, 3, 3), stride 1,
    groups 1, padding at most 2 (a pad of 3 would make a whole 3x3 window padding)."""
    return (tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (1, 1) and groups == 1
            and max(padding) <= 2)


def conv3x3_winograd(x, w, b, padding, relu, y):
    """y (N, K, H', W') = conv2d(x, w, b, stride 1, padding) [rectified], via F(4x4, 3x3).

    x (N, C, H, W) float32 C-contiguous; w (K, C, 3, 3); b (K,) or None; y preallocated
    (N, K, H', W'), written in place (it may be a channel slice of a larger array).
    """
    N, C, H, W = x.shape
    K = w.shape[0]
    Ho, Wo = y.shape[2:]
    ph, pw = padding
    th, tw = -(-Ho // M_TILE), -(-Wo // M_TILE)
    U = transformed_filters(w)                                               # (36, C, K)
    bias = np.zeros(K, np.float32) if b is None else b
    per_image = ALPHA * ALPHA * th * tw * (C + K) * 4
    chunk = max(1, min(N, WINO_BYTES // per_image))
    T = th * tw                                                              # tiles per image
    for n0 in range(0, N, chunk):
        n = min(N, n0 + chunk) - n0
        V = work_buffer("winograd_V", n * ALPHA * ALPHA * T * C).reshape(n, ALPHA * ALPHA, T, C)
        M = work_buffer("winograd_M", n * ALPHA * ALPHA * T * K).reshape(n, ALPHA * ALPHA, T, K)
        _input_transform(x[n0:n0 + n], ph, pw, th, tw, V)                       # (n, 36, T, C)
        np.matmul(V, U, out=M)                                # one sgemm per (image, e): (n, 36, T, K)
        _output_transform(M, bias, relu, th, tw, y[n0:n0 + n])
    return y
