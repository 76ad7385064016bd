"""conv2d: a bank of learned filters slid over the input feature maps (Zeiler & Fergus, Sec. 2).

    y[n, f, i, j] = b[f] + sum_{c < C/G, u < KH, v < KW} w[f, c, u, v] * x_pad[n, g*C/G + c, i*sh + u, j*sw + v]

where g = f // (F/G) is the group of filter f, and x_pad is x with `padding` (ph, pw) zeros on
each side. With groups G, the C input feature maps and the F filters are split into G equal
groups; filter f only sees the feature maps of its own group.

Shapes:  x (N, C, H, W), w (F, C/G, KH, KW), b (F,) or None  ->  y (N, F, H', W') with

    H' = floor((H + 2*ph - KH) / sh) + 1,        W' = floor((W + 2*pw - KW) / sw) + 1.

The CPU path is im2col + GEMM. Every output unit's receptive field is unrolled into one column,

    cols[n, (c, u, v), (i, j)] = x_pad[n, c, i*sh + u, j*sw + v]            (N, C*KH*KW, H'*W')

and each image and group becomes one matrix product, y[n, g] = w[g] (F/G, C/G*KH*KW) @ cols[n, g].
A 1x1, stride-1, unpadded convolution needs no unrolling: it is the GEMM w (F, C) @ x[n] (C, H*W).
Wide 3x3, stride-1 layers take Winograd's F(4x4, 3x3) instead (kernels/_winograd.py). The paths
are named below (CPU_PATHS) and `cpu_path` picks one, reading as a table.

Batch invariance: each image's output depends only on that image. A BLAS GEMM gives a column
different last bits depending on how many columns the call has, so no GEMM here spans two images:
every one has a shape fixed by the layer and the image size, and the choice of path (and of folding
the bias into the GEMM) depends on those too, never on N. Where a path's choice does depend on N
(im2col_chunked or im2col_one_image), the two compute the same bits (tests/kernels/test_conv_paths.py).
"""
import numpy as np
from numba import njit, prange, uint64

from . import _threads  # noqa: F401  (picks Numba's thread pool before the first parallel kernel)
from . import _winograd
from ._backend import resolve
from ._checks import ZFNetError, check_array, non_negative_pair, positive_pair
from ._prepared import frozen, prepared
from ._scratch import work_buffer

# Shape legend: N batch, C input channels, F filters, G groups, (H, W) input, (H', W') output,
# (KH, KW) kernel, (sh, sw) stride, (ph, pw) padding, K = C*KH*KW rows of the unrolled input.
#
# The Numba kernels index flat views with uint64 indices: with signed indices Numba checks each one
# for Python's negative wraparound, which blocks vectorisation (benchmarks/RESULTS.md).

# im2col buffers are built for a chunk of images at a time, at most this many bytes (but always
# at least one image), so a batch of 128 does not allocate gigabytes.
COLS_BYTES = 64 * 2**20

# Outputs of at least this many positions are computed one image at a time: the GEMM then writes
# y[n] itself and the unrolled input stays in cache; smaller maps want the wider GEMMs of several
# images (timings: benchmarks/RESULTS.md, "Why the thresholds").
ONE_IMAGE_COLUMNS = 512


def conv2d_output_size(hw, kernel_size, stride, padding):
    """(H', W') of a convolution: H' = floor((H + 2*ph - KH) / sh) + 1, likewise W'.

    A ZFNetError if the kernel is larger than the padded input (H + 2*ph < KH), since then not a
    single window fits.
    """
    (h, w), (kh, kw) = hw, positive_pair(kernel_size, "kernel_size")
    sh, sw = positive_pair(stride, "stride")
    ph, pw = non_negative_pair(padding, "padding")
    if h < 1 or w < 1:
        raise ZFNetError(f"input size must be >= 1, got {h}x{w}")
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ZFNetError(
            f"kernel {kh}x{kw} (w) is larger than the padded input {h + 2 * ph}x{w + 2 * pw} "
            f"(input {h}x{w} + 2*padding {ph},{pw}); use a smaller kernel or more padding"
        )
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


# ----------------------------------------------------------------------------------------------
# NumPy reference: the equation, one output unit (i, j) at a time.
# ----------------------------------------------------------------------------------------------

def conv2d_reference(x, w, b=None, stride=1, padding=0, groups=1):
    """Plain NumPy twin of `conv2d`. x (N, C, H, W), w (F, C/G, KH, KW), b (F,) -> y (N, F, H', W').

    Loops over groups and output positions; the sum over (c, u, v) and the batch are vectorised.
    Accumulates in float64, returns float32.
    """
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    # ints or pairs, as in the public function: the twin takes the same arguments
    (sh, sw), (ph, pw), G = positive_pair(stride, "stride"), non_negative_pair(padding, "padding"), groups
    Fg = F // G
    Ho, Wo = conv2d_output_size((H, W), (KH, KW), (sh, sw), (ph, pw))
    x_pad = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # (N, C, H+2ph, W+2pw)
    y = np.zeros((N, F, Ho, Wo), np.float64)                                      # (N, F, H', W')
    for g in range(G):
        w_g = w[g * Fg:(g + 1) * Fg].astype(np.float64)                           # (F/G, C/G, KH, KW)
        for i in range(Ho):
            for j in range(Wo):
                # the receptive field of unit (i, j) in the feature maps of group g
                window = x_pad[:, g * Cg:(g + 1) * Cg, i * sh:i * sh + KH, j * sw:j * sw + KW]
                y[:, g * Fg:(g + 1) * Fg, i, j] = np.einsum("ncuv,fcuv->nf", window, w_g)
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Numba CPU kernels: im2col (parallel over rows of cols) and the bias/layout pass after the GEMM.
# ----------------------------------------------------------------------------------------------

@njit(nogil=True, parallel=True, cache=True)
def _im2col(x, KH, KW, sh, sw, ph, pw, Ho, Wo, cols, Kg, spacing):
    """cols[n, (c, u, v), (i, j)] = x_pad[n, c, i*sh + u, j*sw + v]; x (N, C, H, W) -> cols (N*R, H'*W').

    Each image's R = cols.shape[0] / N rows are one block. Groups of Kg = C/G*KH*KW rows start
    `spacing` rows apart in it (spacing = Kg + 1 leaves a row after each group for the bias, see
    _filters_with_bias). Each parallel iteration owns one row (c, u, v) of every image's block, so
    no two threads write the same element.
    """
    N, C, H, W = x.shape
    x_flat, cols_flat = x.ravel(), cols.ravel()
    HWo, R = Ho * Wo, cols.shape[0] // N
    for r in prange(C * KH * KW):
        c, u, v = r // (KH * KW), (r // KW) % KH, r % KW
        row = r + (r // Kg) * (spacing - Kg)                     # its row in cols
        # output columns j whose tap v lands inside the image (0 <= j*sw - pw + v < W); the rest is padding
        j_lo = min(Wo, max(0, (pw - v + sw - 1) // sw))
        j_hi = max(j_lo, min(Wo, (W - 1 + pw - v) // sw + 1))
        for n in range(N):
            for i in range(Ho):
                out = (n * R + row) * HWo + i * Wo               # cols[n, row, (i, 0)]
                h = i * sh - ph + u
                if h < 0 or h >= H:                              # the whole row of taps is padding
                    for j in range(Wo):
                        cols_flat[uint64(out + j)] = 0.0
                    continue
                src = ((n * C + c) * H + h) * W + v - pw         # x[n, c, h, j*sw - pw + v] at j = 0
                for j in range(j_lo):
                    cols_flat[uint64(out + j)] = 0.0
                for j in range(j_lo, j_hi):
                    cols_flat[uint64(out + j)] = x_flat[uint64(src + j * sw)]
                for j in range(j_hi, Wo):
                    cols_flat[uint64(out + j)] = 0.0


# The bias pass: y[n, f, p] += b[f], then max(., 0) (NaN kept, as kernels.relu) if relu, in place
# after a GEMM that wrote y. y is flat; an image's rows are P apart and images are y_n apart, so y
# may be a channel slice of a larger array (conv2d's `out`, a concat's channels).

@njit(nogil=True, cache=True)
def _bias_row_in_place(y, d, P, bf, relu):
    """y[d:d+P] += bf, rectified if relu."""
    zero = np.float32(0)
    if relu:
        for p in range(P):
            v = y[uint64(d + p)] + bf
            y[uint64(d + p)] = v if (v > 0 or v != v) else zero
    else:
        for p in range(P):
            y[uint64(d + p)] += bf


@njit(nogil=True, parallel=True, cache=True)
def _bias_parallel(y, y_n, N, F, P, b, relu):
    """The bias pass, one (n, f) row per parallel iteration: no two write the same element."""
    for nf in prange(N * F):
        n, f = nf // F, nf % F
        _bias_row_in_place(y, n * y_n + f * P, P, b[f], relu)


@njit(nogil=True, cache=True)
def _bias_serial(y, y_n, N, F, P, b, relu):
    """The bias pass on the calling thread alone."""
    for nf in range(N * F):
        n, f = nf // F, nf % F
        _bias_row_in_place(y, n * y_n + f * P, P, b[f], relu)


# Below this many output elements the bias pass runs on one thread: waking Numba's workers right
# after a GEMM, while OpenBLAS's threads still spin, costs more than the pass (benchmarks/RESULTS.md).
SERIAL_BIAS_BELOW = 1 << 20


def _bias_pass(y, y_n, N, F, P, b, relu):
    """y[n, f, p] += b[f] (then rectified) in place; y flat, images y_n apart (elementwise: the same
    bits serial or parallel)."""
    kernel = _bias_serial if N * F * P < SERIAL_BIAS_BELOW else _bias_parallel
    kernel(y, y_n, N, F, P, b, relu)


def _flat_images(y):
    """y (N, F, H', W'), each y[n] one C-contiguous block -> (flat, n_stride):

    y[n, f, i, j] = flat[n*n_stride + (f*H' + i)*W' + j], flat the 1-D run of memory from y's first
    element to its last (n_stride = F*H'*W' for a y of its own, more for a channel slice).
    """
    N, size = y.shape[0], y[0].size
    n_stride = y.strides[0] // y.itemsize if N > 1 else size
    flat = np.lib.stride_tricks.as_strided(y, shape=((N - 1) * n_stride + size,), strides=(y.itemsize,))
    return flat, n_stride


def _filters_with_bias(w, b, G):
    """[w[g] | b[g]] (G, F/G, C/G*KH*KW + 1): each group's filter matrix with its biases as one
    more column, so that the GEMM with a row of ones under the unrolled input adds the bias.

    Built once per frozen w and b (kernels.prepared: a Net's tensors are read-only) and kept with
    a reference to b, so id(b) in the key cannot be reused by another array while it is kept.
    """
    F = w.shape[0]

    def make(w):
        w_b = np.empty((G, F // G, w[0].size + 1), np.float32)
        w_b[:, :, :-1] = w.reshape(G, F // G, -1)
        w_b[:, :, -1] = b.reshape(G, F // G)
        return b, w_b
    if not frozen(b):
        return make(w)[1]
    return prepared(w, ("filters_with_bias", id(b)), make)[1]


# ----------------------------------------------------------------------------------------------
# The CPU paths. Each computes y (N, F, H', W') = conv2d(x, w, b, stride, padding, G), rectified if
# relu, into the preallocated y (which may be a channel slice of a larger array), all with the
# same signature; `cpu_path` below says which one runs.
# ----------------------------------------------------------------------------------------------

def _unroll_and_multiply(x, w_g, kernel, stride, padding, cols, y, spacing, fold):
    """y[k, g*F/G:(g+1)*F/G] = w_g[g] @ cols[k, g] for every image k and group g, after cols = im2col(x).

    x (n, C, H, W); w_g (G, F/G, Kg), or with fold (G, F/G, Kg + 1) and a row of ones after each
    group's rows of cols, so that the GEMM adds the bias column. cols (n*G*spacing, P); y (n, F, H', W').
    One GEMM per image and group, (F/G, spacing) @ (spacing, P), whatever n is: each image's bits
    depend on that image alone.
    """
    (KH, KW), (sh, sw), (ph, pw) = kernel, stride, padding
    n, (G, Fg) = x.shape[0], w_g.shape[:2]
    P, Kg = y.shape[2] * y.shape[3], x.shape[1] // G * KH * KW
    _im2col(x, KH, KW, sh, sw, ph, pw, *y.shape[2:], cols, Kg, spacing)        # (n*G*spacing, P)
    if fold:
        cols[Kg::spacing] = 1.0                                                   # each group's row of ones
    # numpy's stacked matmul calls one sgemm per (image, group)
    np.matmul(w_g, cols.reshape(n, G, spacing, P), out=np.reshape(y, (n, G, Fg, P), copy=False))


def images_per_chunk(N, C, KH, KW, P):
    """Images per im2col call: one where an image alone makes a wide GEMM (P >= ONE_IMAGE_COLUMNS),
    else all of them unless the unrolled input (N, C*KH*KW, P) would pass COLS_BYTES (at least one)."""
    if P >= ONE_IMAGE_COLUMNS:
        return 1
    return max(1, min(N, COLS_BYTES // (C * KH * KW * P * 4)))


def _bias_or_zeros(b, F):
    """b, or F zeros where there is none (the bias pass always adds one)."""
    return np.zeros(F, np.float32) if b is None else b


def conv_winograd(x, w, b, stride, padding, G, relu, y):
    """3x3, stride 1, groups 1: Winograd F(4x4, 3x3), 36 GEMMs per image over its tiles (kernels/_winograd.py)."""
    return _winograd.conv3x3_winograd(x, w, b, padding, relu, y)


def conv_gemm_1x1(x, w, b, stride, padding, G, relu, y):
    """1x1, stride 1, no padding: y[n, g] = w[g] @ x[n, g], x itself the unrolled input; then the bias pass."""
    N, C, H, W = x.shape
    F, P = w.shape[0], H * W
    y_flat, n_stride = _flat_images(y)
    np.matmul(w.reshape(G, F // G, C // G), x.reshape(N, G, C // G, P),
              out=np.reshape(y, (N, G, F // G, P), copy=False))                   # (N, G, F/G, P)
    if b is not None or relu:
        _bias_pass(y_flat, n_stride, N, F, P, _bias_or_zeros(b, F), relu)
    return y


def _im2col_gemm(x, w, b, stride, padding, G, relu, y, fold, chunk):
    """im2col of `chunk` images at a time, one GEMM per image and group writing y[n]; with fold,
    [w | b] @ [cols; 1] adds the bias, else (or for relu) the bias pass over the chunk in place."""
    N = x.shape[0]
    F, Cg, KH, KW = w.shape
    P, Kg = y.shape[2] * y.shape[3], Cg * KH * KW
    spacing = Kg + 1 if fold else Kg                                              # rows per group in cols
    w_g = _filters_with_bias(w, b, G) if fold else w.reshape(G, F // G, Kg)       # (G, F/G, spacing)
    y_flat, n_stride = _flat_images(y)
    cols_buf = work_buffer("cols", chunk * G * spacing * P)
    bias = _bias_or_zeros(None if fold else b, F)                                 # the ReLU alone where folded
    for n0 in range(0, N, chunk):
        n1 = min(N, n0 + chunk)
        cols = cols_buf[:(n1 - n0) * G * spacing * P].reshape((n1 - n0) * G * spacing, P)
        _unroll_and_multiply(x[n0:n1], w_g, (KH, KW), stride, padding, cols, y[n0:n1], spacing, fold)
        if relu or (b is not None and not fold):
            _bias_pass(y_flat[n0 * n_stride:], n_stride, n1 - n0, F, P, bias, relu)     # (n, F, P)
    return y


def conv_im2col_chunked(x, w, b, stride, padding, G, relu, y):
    """Small maps (P < ONE_IMAGE_COLUMNS): im2col of several images in one call, a GEMM per image into
    y[n], then the bias pass; the same bits as im2col_one_image, with fewer parallel launches."""
    N, C, KH, KW = x.shape[0], x.shape[1], *w.shape[2:]
    chunk = images_per_chunk(N, C, KH, KW, y.shape[2] * y.shape[3])
    return _im2col_gemm(x, w, b, stride, padding, G, relu, y, False, chunk)


def conv_im2col_one_image(x, w, b, stride, padding, G, relu, y):
    """Wide maps (P >= ONE_IMAGE_COLUMNS) or a batch over COLS_BYTES: im2col + GEMM per image, written
    into y[n] itself, then the bias (and ReLU) pass over y[n] in place."""
    return _im2col_gemm(x, w, b, stride, padding, G, relu, y, False, 1)


def conv_im2col_bias_folded(x, w, b, stride, padding, G, relu, y):
    """Where b is given and the filter matrix is smaller than an image's output (Kg < P): im2col +
    GEMM per image, the bias riding in it as one more filter column against a row of ones."""
    N, C, KH, KW = x.shape[0], x.shape[1], *w.shape[2:]
    chunk = images_per_chunk(N, C, KH, KW, y.shape[2] * y.shape[3])
    return _im2col_gemm(x, w, b, stride, padding, G, relu, y, True, chunk)


CPU_PATHS = {
    "winograd": conv_winograd,
    "gemm_1x1": conv_gemm_1x1,
    "im2col_chunked": conv_im2col_chunked,
    "im2col_bias_folded": conv_im2col_bias_folded,
    "im2col_one_image": conv_im2col_one_image,
}

# Winograd pays only with at least this many input channels (per group) and 4x4 output tiles per
# image: with few channels its 36 GEMMs have too short a sum, with few tiles too few rows
# (timings: benchmarks/RESULTS.md, "Why the thresholds" and "Batch invariance").
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_TILES = 128


def cpu_path(x_shape, w_shape, out_hw, stride, padding, G, has_bias, winograd=True):
    """The name (a key of CPU_PATHS) of the path that computes this convolution: the first row that holds.

    x_shape (N, C, H, W), w_shape (F, C/G, KH, KW), out_hw (H', W'); stride and padding pairs.
    winograd=False skips the first row (the fallback for outputs Winograd made non-finite).
    Only the last two rows look at N, and those two paths compute the same bits.
    """
    N, C = x_shape[:2]
    _, Cg, KH, KW = w_shape
    (Ho, Wo), P, Kg = out_hw, out_hw[0] * out_hw[1], Cg * KH * KW
    tiles = -(-Ho // 4) * -(-Wo // 4)                                             # per image
    if (winograd and Cg >= WINOGRAD_MIN_CHANNELS and tiles >= WINOGRAD_MIN_TILES
            and _winograd.applies(w_shape, stride, padding, G)):
        return "winograd"
    if (KH, KW, *stride, *padding) == (1, 1, 1, 1, 0, 0):
        return "gemm_1x1"
    if has_bias and Kg < P:
        return "im2col_bias_folded"
    if images_per_chunk(N, C, KH, KW, P) > 1:
        return "im2col_chunked"
    return "im2col_one_image"


def _conv2d_cpu(x, w, b, stride, padding, groups, relu=False, out=None):
    """y (N, F, H', W') by the CPU path `cpu_path` picks; y is `out` where given (checked by conv2d).

    relu: rectify in the pass that adds the bias (no separate pass over y, no second array).
    """
    N, F = x.shape[0], w.shape[0]
    Ho, Wo = conv2d_output_size(x.shape[2:], w.shape[2:], stride, padding)
    y = np.empty((N, F, Ho, Wo), np.float32) if out is None else out            # (N, F, H', W')
    path = cpu_path(x.shape, w.shape, (Ho, Wo), stride, padding, groups, b is not None)
    CPU_PATHS[path](x, w, b, stride, padding, groups, relu, y)
    if path == "winograd":
        # Winograd's transforms spread an inf or NaN over its whole 4x4 tile (inf times the
        # transform's 0 is NaN); im2col keeps it to the outputs whose windows hold it. Image by
        # image, so the others keep their Winograd bits.
        for n in np.flatnonzero(~np.isfinite(y).reshape(N, -1).all(axis=1)):
            one = x[n:n + 1]
            path = cpu_path(one.shape, w.shape, (Ho, Wo), stride, padding, groups, b is not None,
                            winograd=False)
            CPU_PATHS[path](one, w, b, stride, padding, groups, relu, y[n:n + 1])
    return y


# ----------------------------------------------------------------------------------------------
# Public function: check once, dispatch.
# ----------------------------------------------------------------------------------------------

def check_groups(groups, C, F, w_channels, what="x"):
    """Check `groups` against C input channels and F filters; returns the int G.

    Shared with conv_transpose2d, where the channels come from w and y instead.
    """
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ZFNetError(f"groups must be an int >= 1, got {groups!r}")
    G = int(groups)
    if F % G:
        raise ZFNetError(f"groups={G} must divide the number of filters F={F} (w.shape[0])")
    if C % G:
        raise ZFNetError(f"groups={G} must divide the number of channels C={C} of {what}")
    if w_channels * G != C:
        raise ZFNetError(
            f"channel mismatch: {what} has C={C} channels but w has {w_channels} per group "
            f"x groups={G} = {w_channels * G}; w must be (F, C/groups, KH, KW)"
        )
    return G


def conv2d(x, w, b=None, stride=1, padding=0, groups=1, backend=None, relu=False, out=None):
    """2-D convolution (cross-correlation, as in Caffe and PyTorch) of x with a bank of filters w.

    x (N, C, H, W), w (F, C/G, KH, KW), b (F,) or None -> y (N, F, H', W'),
    H' = floor((H + 2*ph - KH) / sh) + 1, W' = floor((W + 2*pw - KW) / sw) + 1.
    `stride` and `padding` are ints or (h, w) pairs. All arrays float32, C-contiguous; x is not
    modified. `backend`: 'reference' (NumPy twin) or 'cpu' (one of CPU_PATHS, chosen by cpu_path:
    im2col + BLAS, a plain 1x1 GEMM or Winograd F(4x4, 3x3)); None = process default.
    Each image's output depends only on that image: y[n] is bit-identical whatever else is in the
    batch (no GEMM spans two images and no path choice depends on N; module docstring).
    relu=True returns relu(conv2d(...)) (the conv layer and the ReLU after it, fused: one pass and
    one array fewer; exactly equal to applying kernels.relu afterwards).
    out: write y into this float32 array of shape (N, F, H', W') and return it. Each out[n] must be
    one C-contiguous block, so a channel slice big[:, f0:f0 + F] of a (N, F_total, H', W') array
    works: a concat of conv outputs then needs no copy.
    """
    check_array(x, "x", 4)
    check_array(w, "w", 4)
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    if min(x.shape) < 1:
        raise ZFNetError(f"x must be non-empty (N, C, H, W), got shape {x.shape}")
    if min(w.shape) < 1:
        raise ZFNetError(f"w must be non-empty (F, C/G, KH, KW), got shape {w.shape}")
    if b is not None:
        check_array(b, "b", 1)
        if b.shape != (F,):
            raise ZFNetError(f"b must have shape (F,) = ({F},) to match w, got {b.shape}")
    stride = positive_pair(stride, "stride")
    padding = non_negative_pair(padding, "padding")
    G = check_groups(groups, C, F, Cg, "x")
    Ho, Wo = conv2d_output_size((H, W), (KH, KW), stride, padding)
    if out is not None:
        check_out(out, (N, F, Ho, Wo), x)
    if resolve(backend) == "reference":
        y = conv2d_reference(x, w, b, stride, padding, G)
        y = np.maximum(y, np.float32(0)) if relu else y
        if out is None:
            return y
        out[...] = y
        return out
    return _conv2d_cpu(x, w, b, stride, padding, G, bool(relu), out)


def check_out(out, shape, x):
    """`out` must be a writeable float32 array of `shape` (N, F, H', W') whose images out[n] are
    each one C-contiguous block, sharing no memory with the input x."""
    if not isinstance(out, np.ndarray):
        raise ZFNetError(f"out must be a numpy array, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise ZFNetError(f"out must be float32, got {out.dtype}")
    if out.shape != shape:
        raise ZFNetError(f"out must have the output's shape (N, F, H', W') = {shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ZFNetError("out is read-only; pass a writeable array")
    image = out[0]
    if not image.flags.c_contiguous or (shape[0] > 1 and out.strides[0] < image.nbytes):
        raise ZFNetError(
            f"each out[n] must be one C-contiguous block (a channel slice big[:, f0:f0 + F] of a "
            f"C-contiguous (N, F_total, H', W') array works), got strides {out.strides}"
        )
    if np.may_share_memory(out, x):
        raise ZFNetError("out must not overlap the input x")
