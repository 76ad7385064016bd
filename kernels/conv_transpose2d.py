"""conv_transpose2d: the adjoint of conv2d, the deconvnet's "filtering" step (Zeiler & Fergus, Sec. 2.1).

The deconvnet projects a feature map back to the layer below with the *same* filters, transposed:
every unit y[n, f, i, j] paints its filter w[f], scaled by its activation, onto its receptive
field in the (padded) input plane,

    x_pad[n, g*C/G + c, i*sh + u, j*sw + v] += w[f, c, u, v] * y[n, f, i, j]

for every f, i, j and c < C/G, u < KH, v < KW (g = f // (F/G)), and x is x_pad with the `padding`
rows and columns cut off. Equivalently, as a gather for one input unit,

    x[n, g*C/G + c, h, w'] = sum_{f in group g, u, v, i, j : i*sh + u = h + ph, j*sw + v = w' + pw} w[f, c, u, v] * y[n, f, i, j].

This is exactly the adjoint of conv2d with the same w, stride, padding and groups:
<conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for all x and y. No bias.

Shapes:  y (N, F, H', W'), w (F, C/G, KH, KW)  ->  x (N, C, H, W).
Several (H, W) convolve down to the same (H', W') when the stride is > 1, so the size is given as
`output_size` = (H, W); it must satisfy conv2d_output_size((H, W)) == (H', W'). When None,

    H = (H' - 1)*sh - 2*ph + KH,        W = (W' - 1)*sw - 2*pw + KW       (the smallest; at least 1).

Same as torch.nn.functional.conv_transpose2d(y, w, stride, padding, output_padding=H - smallest H,
groups).

The CPU path is GEMM + col2im: for each image and group, cols[n, g] = w[g]^T (C/G*KH*KW, F/G) @
y[n, g] (F/G, H'*W'), then col2im adds every column back onto its receptive field, each output row
(n, c, h) summed by one thread (no two threads write the same element). Each image's output
depends only on that image: no GEMM spans two images (a BLAS GEMM's columns get different last bits
depending on how many columns the call has), and col2im sums in a fixed order.
"""
import numpy as np
from numba import njit, prange, uint64

from . import _threads  # noqa: F401  (picks Numba's thread pool before the first parallel kernel)
from ._backend import resolve
from ._checks import ZFNetError, check_array, non_negative_pair, pair, positive_pair
from .conv2d import COLS_BYTES, check_groups, conv2d_output_size, work_buffer

# Shape legend: N batch, C channels of x, F filters (channels of y), G groups, (H, W) output x,
# (H', W') input y, (KH, KW) kernel, (sh, sw) stride, (ph, pw) padding.


def transposed_output_size(hw_out, kernel_size, stride, padding, output_size=None):
    """(H, W) of conv_transpose2d: `output_size` checked against conv2d, or the smallest valid size.

    The smallest is H = (H' - 1)*sh - 2*ph + KH (raised to 1 if that is < 1 and 1 still convolves
    down to H'). Any (H, W) is valid iff conv2d_output_size((H, W)) == (H', W').
    """
    (Ho, Wo), (KH, KW) = hw_out, kernel_size
    (sh, sw), (ph, pw) = stride, padding
    if output_size is None:
        hw = (max(1, (Ho - 1) * sh - 2 * ph + KH), max(1, (Wo - 1) * sw - 2 * pw + KW))
    else:
        if isinstance(output_size, (tuple, list)) and len(output_size) == 4:
            output_size = tuple(output_size[2:])      # a full (N, C, H, W) shape: keep (H, W)
        hw = pair(output_size, "output_size")
        if hw[0] < 1 or hw[1] < 1:
            raise ZFNetError(f"output_size must be >= 1, got {output_size!r}")
    try:
        back = conv2d_output_size(hw, (KH, KW), stride, padding)
    except ZFNetError as e:
        raise ZFNetError(f"output_size {hw} is impossible for this kernel/stride/padding: {e}") from None
    if back != (Ho, Wo):
        lo_h, lo_w = (Ho - 1) * sh - 2 * ph + KH, (Wo - 1) * sw - 2 * pw + KW
        raise ZFNetError(
            f"output_size {hw} does not convolve down to y's {Ho}x{Wo} (it gives {back[0]}x{back[1]}) "
            f"with kernel {KH}x{KW}, stride {sh},{sw}, padding {ph},{pw}; "
            f"valid H are {max(1, lo_h)}..{lo_h + sh - 1}, valid W are {max(1, lo_w)}..{lo_w + sw - 1}"
        )
    return hw


# ----------------------------------------------------------------------------------------------
# NumPy reference: every unit of y paints its filter onto its receptive field (the scatter form).
# ----------------------------------------------------------------------------------------------

def conv_transpose2d_reference(y, w, stride=1, padding=0, groups=1, output_size=None):
    """Plain NumPy twin of `conv_transpose2d`. y (N, F, H', W'), w (F, C/G, KH, KW) -> x (N, C, H, W).

    Loops over groups and units (i, j) of y; the batch and the filters of a group are vectorised.
    Accumulates in float64, returns float32.
    """
    N, F, Ho, Wo = y.shape
    _, Cg, KH, KW = w.shape
    # ints or pairs, as in the public function: the twin takes the same arguments
    (sh, sw), (ph, pw), G = positive_pair(stride, "stride"), non_negative_pair(padding, "padding"), groups
    Fg = F // G
    H, W = transposed_output_size((Ho, Wo), (KH, KW), (sh, sw), (ph, pw), output_size)
    x_pad = np.zeros((N, Cg * G, H + 2 * ph, W + 2 * pw), np.float64)             # (N, C, H+2ph, W+2pw)
    for g in range(G):
        w_g = w[g * Fg:(g + 1) * Fg].astype(np.float64)                            # (F/G, C/G, KH, KW)
        for i in range(Ho):
            for j in range(Wo):
                # unit (i, j) of every filter f in group g adds y[n, f, i, j] * w[f] to its receptive field
                y_ij = y[:, g * Fg:(g + 1) * Fg, i, j].astype(np.float64)         # (N, F/G)
                x_pad[:, g * Cg:(g + 1) * Cg, i * sh:i * sh + KH, j * sw:j * sw + KW] += np.einsum(
                    "nf,fcuv->ncuv", y_ij, w_g)
    # drop the padding: it was never part of x
    return x_pad[:, :, ph:ph + H, pw:pw + W].astype(np.float32)                  # (N, C, H, W)


# ----------------------------------------------------------------------------------------------
# Numba CPU kernel: col2im (a per-row accumulation).
# ----------------------------------------------------------------------------------------------

@njit(nogil=True, parallel=True, cache=True)
def _col2im(cols, N, KH, KW, sh, sw, ph, pw, Ho, Wo, x):
    """x[n, c, h, w'] = sum of cols[n, (c, u, v), (i, j)] over i*sh + u = h + ph, j*sw + v = w' + pw.

    cols (N*C*KH*KW, H'*W'), each image's rows one block -> x (N, C, H, W). Each parallel iteration
    owns one row x[n, c, h, :] and adds into it alone, so overlapping windows never race.
    """
    _, C, H, W = x.shape
    cols_flat, x_flat = cols.ravel(), x.ravel()
    HWo, R = Ho * Wo, cols.shape[0] // N
    for nch in prange(N * C * H):
        n, c, h = nch // (C * H), (nch // H) % C, nch % H
        dst = nch * W                                            # x[n, c, h, 0]
        for q in range(W):
            x_flat[uint64(dst + q)] = 0.0
        for u in range(KH):
            # the row i of y whose tap u lands on h: i*sh + u = h + ph
            t = h + ph - u
            if t < 0 or t % sh != 0 or t // sh >= Ho:
                continue
            i = t // sh
            for v in range(KW):
                src = (c * KH + u) * KW + v                       # row (c, u, v) of cols
                src = (n * R + src) * HWo + i * Wo                # cols[n, (c, u, v), (i, 0)]
                # columns j whose tap v lands inside the image: 0 <= j*sw - pw + v < W
                j_lo = min(Wo, max(0, (pw - v + sw - 1) // sw))
                j_hi = min(Wo, (W - 1 + pw - v) // sw + 1)
                out = dst + v - pw                                # x[n, c, h, j*sw - pw + v] at j = 0
                for j in range(j_lo, j_hi):
                    x_flat[uint64(out + j * sw)] += cols_flat[uint64(src + j)]


def _conv_transpose2d_cpu(y, w, stride, padding, groups, hw):
    """One GEMM per image and group then col2im, on a chunk of images; 1x1/stride-1/no-pad is a plain GEMM."""
    N, F, Ho, Wo = y.shape
    _, Cg, KH, KW = w.shape
    (sh, sw), (ph, pw), G = stride, padding, groups
    Fg, Kg, C = F // G, Cg * KH * KW, Cg * G
    H, W = hw
    P = Ho * Wo
    x = np.empty((N, C, H, W), np.float32)                                        # (N, C, H, W)
    # w[g]^T: (C/G*KH*KW, F/G), a transposed view; BLAS reads it as is
    w_gT = w.reshape(G, Fg, Kg).transpose(0, 2, 1)                                # (G, Kg, F/G)

    if KH == 1 and KW == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0:
        # 1x1 conv: x[n, g] = w[g]^T @ y[n, g], straight into x
        np.matmul(w_gT, y.reshape(N, G, Fg, P), out=x.reshape(N, G, Cg, P))      # (N, G, C/G, P)
        return x

    per_image = max(C * KH * KW, F) * P * 4
    chunk = max(1, min(N, COLS_BYTES // per_image))
    cols_buf = work_buffer("cols", C * KH * KW * chunk * P)
    for n0 in range(0, N, chunk):
        n = min(N, n0 + chunk) - n0
        cols = cols_buf[:n * C * KH * KW * P].reshape(n * C * KH * KW, P)
        # (Kg, F/G) @ (F/G, P) per image and group: every unit's filter, scaled, as one column per unit
        np.matmul(w_gT, y[n0:n0 + n].reshape(n, G, Fg, P), out=cols.reshape(n, G, Kg, P))
        # add every column back onto its receptive field
        _col2im(cols, n, KH, KW, sh, sw, ph, pw, Ho, Wo, x[n0:n0 + n])             # (n, C, H, W)
    return x


# ----------------------------------------------------------------------------------------------
# Public function: check once, dispatch.
# ----------------------------------------------------------------------------------------------

def conv_transpose2d(y, w, stride=1, padding=0, groups=1, output_size=None, backend=None):
    """Transposed convolution: the exact adjoint of conv2d(., w, stride, padding, groups).

    y (N, F, H', W'), w (F, C/G, KH, KW) -> x (N, C, H, W). `output_size` (H, W) picks among the
    sizes that convolve down to (H', W') (a full (N, C, H, W) shape is accepted too); default the
    smallest, H = (H' - 1)*sh - 2*ph + KH. No bias. All arrays float32, C-contiguous; y is not
    modified. `backend`: 'reference' (NumPy twin) or 'cpu' (BLAS + col2im); None = process default.
    """
    check_array(y, "y", 4)
    check_array(w, "w", 4)
    N, F, Ho, Wo = y.shape
    Fw, Cg, KH, KW = w.shape
    if min(y.shape) < 1:
        raise ZFNetError(f"y must be non-empty (N, F, H', W'), got shape {y.shape}")
    if min(w.shape) < 1:
        raise ZFNetError(f"w must be non-empty (F, C/G, KH, KW), got shape {w.shape}")
    if Fw != F:
        raise ZFNetError(
            f"channel mismatch: y has F={F} feature maps but w has {Fw} filters; "
            f"w must be the (F, C/G, KH, KW) filters of the conv2d that produced y"
        )
    stride = positive_pair(stride, "stride")
    padding = non_negative_pair(padding, "padding")
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ZFNetError(f"groups must be an int >= 1, got {groups!r}")
    G = check_groups(groups, Cg * int(groups), F, Cg, "w")
    hw = transposed_output_size((Ho, Wo), (KH, KW), stride, padding, output_size)
    if resolve(backend) == "reference":
        return conv_transpose2d_reference(y, w, stride, padding, G, hw)
    return _conv_transpose2d_cpu(y, w, stride, padding, G, hw)
