"""lrn: local response normalisation ("contrast normalisation" in Zeiler & Fergus), and its gradient.

Shapes: x (N, C, H, W) float32 -> y (N, C, H, W) float32; lrn_backward: x, dy -> dx, all alike.

Both forms divide each activation a by a power of the local energy around it:

    b = a / d^beta,    d = k + alpha/m * S,    S = sum of a'^2 over a window around a

Across channels (Caffe ACROSS_CHANNELS, torch ``local_response_norm``, ONNX ``LRN``), m = n = size:

    S[n, c, h, w] = sum_{c' = c - n//2}^{c + (n-1)//2} x[n, c', h, w]^2     (channels outside [0, C) count 0)

This is PyTorch's window; for odd n it is the centred window of Caffe and ONNX. For EVEN n ONNX
centres the other way (c - (n-1)//2 ... c + n//2), so an even-sized ONNX LRN is not this op.

Within channel (Caffe WITHIN_CHANNEL; PyTorch has no such layer), n odd, r = (n-1)/2, m = n*n:

    S[n, c, h, w] = sum_{u=-r}^{r} sum_{v=-r}^{r} x[n, c, h+u, w+v]^2       (zero padding outside the plane)

i.e. alpha * the mean over the zero-padded n x n window, always divided by n*n. Caffe fixes the
additive constant at 1 here; we use k, whose default is 1.

Gradient (lrn_backward), with the same d and the transposed window W^T (the set of outputs whose
window contains a given input: c - (n-1)//2 ... c + n//2 across channels, the same square within):

    dx = dy * d^-beta  -  (2 * alpha * beta / m) * x * sum_{W^T} (dy * x * d^(-beta-1))

All sums and powers are computed in float64 and the result rounded once to float32. (The CPU
kernel slides the across-channel sum down the channels, adding the entering square and
subtracting the leaving one; a float64 sum of exact squares can differ from the twin's in its last
bits, far below float32's resolution.)
We require k > 0 and alpha >= 0 so that d >= k > 0 and the power is always defined.
"""
import math
import numbers

import numpy as np
from numba import njit, prange

from ._backend import resolve
from ._checks import ZFNetError, check_array


# ---------------------------------------------------------------------------------------------
# NumPy reference twin
# ---------------------------------------------------------------------------------------------

def _channel_window_sum(a, before, after):
    """s[:, c] = sum_{c' = c - before}^{c + after} a[:, c'] over the channels that exist."""
    c_total = a.shape[1]
    s = np.empty_like(a)
    for c in range(c_total):
        lo, hi = max(c - before, 0), min(c + after, c_total - 1)
        s[:, c] = a[:, lo:hi + 1].sum(axis=1)
    return s


def _spatial_window_sum(a, r):
    """s[..., h, w] = sum_{|u|<=r, |v|<=r} a[..., h+u, w+v], zero outside the plane."""
    h, w = a.shape[-2:]
    padded = np.zeros(a.shape[:-2] + (h + 2 * r, w + 2 * r), dtype=a.dtype)
    padded[..., r:r + h, r:r + w] = a
    s = np.zeros_like(a)
    for u in range(2 * r + 1):
        for v in range(2 * r + 1):
            s += padded[..., u:u + h, v:v + w]
    return s


def _denominator_reference(x, size, alpha, k, within_channel):
    """d = k + alpha/m * S, in float64, for x (N, C, H, W)."""
    sq = x.astype(np.float64) ** 2
    if within_channel:
        return k + alpha / (size * size) * _spatial_window_sum(sq, (size - 1) // 2)
    return k + alpha / size * _channel_window_sum(sq, size // 2, (size - 1) // 2)


def lrn_reference(x, size, alpha, beta, k, within_channel):
    """NumPy twin of lrn: b = a / d^beta. x (N, C, H, W) -> y (N, C, H, W)."""
    d = _denominator_reference(x, size, alpha, k, within_channel)
    return (x * d ** -beta).astype(np.float32)


def lrn_backward_reference(x, dy, size, alpha, beta, k, within_channel):
    """NumPy twin of lrn_backward: dx = dy d^-b - 2ab/m x W^T(dy x d^(-b-1)). All (N, C, H, W)."""
    d = _denominator_reference(x, size, alpha, k, within_channel)
    xd, dyd = x.astype(np.float64), dy.astype(np.float64)
    t = dyd * xd * d ** (-beta - 1)
    # Gather t over the transposed window: every output whose window holds this input.
    if within_channel:
        m, g = size * size, _spatial_window_sum(t, (size - 1) // 2)
    else:
        m, g = size, _channel_window_sum(t, (size - 1) // 2, size // 2)
    dx = dyd * d ** -beta - (2.0 * alpha * beta / m) * xd * g
    return dx.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Numba CPU kernels: one (n, c) plane per parallel iteration, float64 accumulators per plane
# ---------------------------------------------------------------------------------------------

@njit(nogil=True, cache=True)
def neg_power(d, beta):
    """d^-beta for d > 0. beta = 0.75 (Caffe's, ZF's, ONNX's usual value) costs two square roots
    instead of a log and an exp: d^-3/4 = 1 / sqrt(d * sqrt(d))."""
    if beta == 0.75:
        return 1.0 / math.sqrt(d * math.sqrt(d))
    return math.exp(-beta * math.log(d))


@njit(nogil=True, cache=True)
def _channel_window_sum_plane(a, b, c, before, after, square, out):
    """out = sum of a[b, c'] (squared if `square`) over c' in [c - before, c + after] within [0, C).

    a: (N, C, H*W) float32 or float64; out: (H*W,) float64.
    """
    out[:] = 0.0
    for cc in range(max(c - before, 0), min(c + after, a.shape[1] - 1) + 1):
        src = a[b, cc]
        if square:
            for q in range(out.size):
                v = np.float64(src[q])
                out[q] += v * v
        else:
            for q in range(out.size):
                out[q] += src[q]


@njit(nogil=True, cache=True)
def _box_sum_plane(a, h, w, r, cols, out):
    """out = (2r+1) x (2r+1) box sum of the flat (H*W,) plane a, zero outside; cols: scratch.

    Separable, each pass an add of whole contiguous rows: first down the columns, then along rows.
    """
    cols[:] = 0.0
    for i in range(h):
        for u in range(max(i - r, 0), min(i + r, h - 1) + 1):
            for j in range(w):
                cols[i * w + j] += a[u * w + j]
    out[:] = 0.0
    for i in range(h):
        for v in range(-r, r + 1):
            for j in range(max(-v, 0), min(w - v, w)):
                out[i * w + j] += cols[i * w + j + v]


@njit(nogil=True, cache=True)
def _energy(x, b, c, size, within_channel, out, scratch1, scratch2):
    """out = S for plane (b, c): the sum of squares over its window (see the module docstring)."""
    h, w = x.shape[2], x.shape[3]
    if within_channel:
        plane = x[b, c].reshape(h * w)
        for q in range(h * w):
            v = np.float64(plane[q])
            scratch1[q] = v * v
        _box_sum_plane(scratch1, h, w, (size - 1) // 2, scratch2, out)
    else:
        flat = x.reshape((x.shape[0], x.shape[1], h * w))           # (N, C, H*W)
        _channel_window_sum_plane(flat, b, c, size // 2, (size - 1) // 2, True, out)


@njit(nogil=True, cache=True, parallel=True)
def _lrn_within_cpu(x, size, alpha, beta, k):
    """Numba kernel for the within-channel lrn: y = x * d^-beta, one plane per parallel iteration."""
    n, c, h, w = x.shape
    scale = alpha / (size * size)
    y = np.empty((n, c, h, w), dtype=np.float32)                    # (N, C, H, W)
    for p in prange(n * c):
        b, ch = p // c, p % c
        s = np.empty(h * w, dtype=np.float64)
        scratch1 = np.empty(h * w, dtype=np.float64)
        scratch2 = np.empty(h * w, dtype=np.float64)
        _energy(x, b, ch, size, True, s, scratch1, scratch2)
        xp, yp = x[b, ch].reshape(h * w), y[b, ch].reshape(h * w)
        for q in range(h * w):
            yp[q] = xp[q] * neg_power(k + scale * s[q], beta)
    return y


@njit(nogil=True, cache=True)
def _slide(xf, b, enter, leave, q0, m, s):
    """s += x[b, enter]^2 - x[b, leave]^2 over pixels q0 .. q0+m-1 (channels outside [0, C) add
    nothing). Takes the whole (N, C, H*W) array and indices, not views: LLVM vectorises that."""
    c = xf.shape[1]
    if enter < c:
        for q in range(m):
            v = np.float64(xf[b, enter, q0 + q])
            s[q] += v * v
    if leave >= 0:
        for q in range(m):
            v = np.float64(xf[b, leave, q0 + q])
            s[q] -= v * v


# Pixels per parallel iteration of the across-channel kernel: a block's running sums stay in L1
# while the kernel walks down the channels, and a 55x55 batch-1 map still splits 12 ways.
ACROSS_BLOCK = 256


@njit(nogil=True, cache=True)
def _block_peak(a, q0, m):
    """max |a[:, q0:q0+m]| over the channels of one image, inf if any value is inf or NaN
    (a running sum must never take those in: inf - inf is NaN). Elementwise maxima down the
    channels first, so the loops vectorise; a * 0 is 0 for finite values, NaN otherwise."""
    col = np.zeros(m, dtype=np.float32)
    bad = np.zeros(m, dtype=np.float32)
    for ch in range(a.shape[0]):
        for q in range(m):
            v = a[ch, q0 + q]
            av = abs(v)
            col[q] = av if av > col[q] else col[q]
            bad[q] += v * np.float32(0)
    top = np.float32(0)
    for q in range(m):
        if bad[q] != bad[q]:
            return np.float32(np.inf)
        top = col[q] if col[q] > top else top
    return top


@njit(nogil=True, cache=True, parallel=True)
def _lrn_across_cpu(x, size, alpha, beta, k):
    """Numba kernel for the across-channel lrn, one block of pixels per parallel iteration.

    Walking down the channels, the window's energy slides: S(c+1) = S(c) + x[c + after + 1]^2 -
    x[c - before]^2, two terms per output instead of `size`. The squares of float32 values are
    exact in float64 and the running sum is float64, so its rounding error is about
    C * eps64 * (largest square in the block). Blocks where that could reach 1e-9 of d >= k (far
    below float32's 6e-8; at ZF's alpha = 1e-4, k = 1 that takes |x| > ~7e4) sum every window
    afresh instead. Written as one function with the loops inline: split into helpers taking
    array views, LLVM no longer vectorised them (2x slower).
    """
    n, c, h, w = x.shape
    hw = h * w
    blocks = (hw + ACROSS_BLOCK - 1) // ACROSS_BLOCK
    before, after = size // 2, (size - 1) // 2
    scale = alpha / size
    sqrt_path = beta == 0.75                                        # see neg_power
    y = np.empty((n, c, h, w), dtype=np.float32)                    # (N, C, H, W)
    xf, yf = x.reshape((n, c, hw)), y.reshape((n, c, hw))
    for t in prange(n * blocks):
        b, q0 = t // blocks, (t % blocks) * ACROSS_BLOCK
        m = min(hw, q0 + ACROSS_BLOCK) - q0
        top = np.float64(_block_peak(xf[b], q0, m))
        slide = scale * top * top * c * 2.3e-16 <= 1e-9 * k
        s = np.zeros(m, dtype=np.float64)                           # S of the current channel
        for cc in range(min(after, c - 1) + 1):
            for q in range(m):
                v = np.float64(xf[b, cc, q0 + q])
                s[q] += v * v
        if slide and sqrt_path:
            # the common case (ZF, AlexNet, Caffe: beta = 0.75), with no tests inside the loops
            for ch in range(c):
                for q in range(m):
                    d = k + scale * s[q]
                    yf[b, ch, q0 + q] = xf[b, ch, q0 + q] * (1.0 / math.sqrt(d * math.sqrt(d)))
                _slide(xf, b, ch + after + 1, ch - before, q0, m, s)
            continue
        for ch in range(c):
            if not slide and ch > 0:
                s[:] = 0.0
                for cc in range(max(ch - before, 0), min(ch + after, c - 1) + 1):
                    for q in range(m):
                        v = np.float64(xf[b, cc, q0 + q])
                        s[q] += v * v
            if sqrt_path:
                for q in range(m):
                    d = k + scale * s[q]
                    yf[b, ch, q0 + q] = xf[b, ch, q0 + q] * (1.0 / math.sqrt(d * math.sqrt(d)))
            else:
                for q in range(m):
                    yf[b, ch, q0 + q] = xf[b, ch, q0 + q] * math.exp(-beta * math.log(k + scale * s[q]))
            if slide:
                _slide(xf, b, ch + after + 1, ch - before, q0, m, s)
    return y


def lrn_cpu(x, size, alpha, beta, k, within_channel):
    """CPU kernel for lrn: y = x * d^-beta (see the module docstring)."""
    if within_channel:
        return _lrn_within_cpu(x, size, alpha, beta, k)
    return _lrn_across_cpu(x, size, alpha, beta, k)


@njit(nogil=True, cache=True, parallel=True)
def lrn_backward_cpu(x, dy, size, alpha, beta, k, within_channel):
    """Numba kernel for lrn_backward (see the module docstring for the equation)."""
    n, c, h, w = x.shape
    m = size * size if within_channel else size
    scale = alpha / m
    # Pass 1, per plane: p = d^-beta and t = dy * x * d^(-beta-1) = dy * x * p / d.
    pw = np.empty((n, c, h * w), dtype=np.float64)
    t = np.empty((n, c, h * w), dtype=np.float64)
    for p in prange(n * c):
        b, ch = p // c, p % c
        s = np.empty(h * w, dtype=np.float64)
        scratch1 = np.empty(h * w, dtype=np.float64)
        scratch2 = np.empty(h * w, dtype=np.float64)
        _energy(x, b, ch, size, within_channel, s, scratch1, scratch2)
        xp, dyp = x[b, ch].reshape(h * w), dy[b, ch].reshape(h * w)
        for q in range(h * w):
            d = k + scale * s[q]
            pw[b, ch, q] = neg_power(d, beta)
            t[b, ch, q] = np.float64(dyp[q]) * xp[q] * pw[b, ch, q] / d
    # Pass 2, per plane: gather t over the transposed window (needs pass 1 done for all planes).
    coef = 2.0 * alpha * beta / m
    dx = np.empty((n, c, h, w), dtype=np.float32)                   # (N, C, H, W)
    for p in prange(n * c):
        b, ch = p // c, p % c
        g = np.empty(h * w, dtype=np.float64)
        if within_channel:
            cols = np.empty(h * w, dtype=np.float64)
            _box_sum_plane(t[b, ch], h, w, (size - 1) // 2, cols, g)
        else:
            _channel_window_sum_plane(t, b, ch, (size - 1) // 2, size // 2, False, g)
        xp, dyp, dxp = x[b, ch].reshape(h * w), dy[b, ch].reshape(h * w), dx[b, ch].reshape(h * w)
        for q in range(h * w):
            dxp[q] = dyp[q] * pw[b, ch, q] - coef * xp[q] * g[q]
    return dx


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------

def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ZFNetError(f"lrn: {name} must be a finite real number, got {value!r}")
    return float(value)


def _check_lrn_args(x, size, alpha, beta, k, within_channel):
    check_array(x, "x", 4)
    if min(x.shape) < 1:
        raise ZFNetError(f"lrn: x must have N, C, H, W >= 1, got shape {x.shape}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ZFNetError(f"lrn: size must be an int >= 1, got {size!r}")
    if not isinstance(within_channel, (bool, np.bool_)):
        raise ZFNetError(f"lrn: within_channel must be True or False, got {within_channel!r}")
    if within_channel and size % 2 == 0:
        raise ZFNetError(
            f"lrn: within-channel LRN needs an odd size (a centred n x n window, as Caffe requires), "
            f"got size={size}"
        )
    alpha, beta, k = _real(alpha, "alpha"), _real(beta, "beta"), _real(k, "k")
    if alpha < 0:
        raise ZFNetError(f"lrn: alpha must be >= 0, got {alpha}")
    if k <= 0:
        raise ZFNetError(f"lrn: k must be > 0 (so that k + alpha/n * sum is never 0), got {k}")
    return int(size), alpha, beta, k, bool(within_channel)


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0, within_channel=False, backend=None):
    """Local response normalisation. x: (N, C, H, W) float32 -> y: (N, C, H, W) float32.

    b = a / (k + alpha/m * sum_window a'^2)^beta: across `size` channels (m = size, PyTorch's
    window c - size//2 ... c + (size-1)//2) or, with within_channel=True, over a zero-padded
    size x size spatial window (m = size*size, size odd). Matches torch's local_response_norm.
    """
    size, alpha, beta, k, within_channel = _check_lrn_args(x, size, alpha, beta, k, within_channel)
    if resolve(backend) == "reference":
        return lrn_reference(x, size, alpha, beta, k, within_channel)
    return lrn_cpu(x, size, alpha, beta, k, within_channel)


def lrn_backward(x, dy, size, alpha=1e-4, beta=0.75, k=1.0, within_channel=False, backend=None):
    """The exact gradient of lrn w.r.t. its input. x, dy: (N, C, H, W) float32 -> dx: same shape.

    dx = d/dx sum(lrn(x) * dy), with the same arguments as ``lrn``.
    """
    size, alpha, beta, k, within_channel = _check_lrn_args(x, size, alpha, beta, k, within_channel)
    check_array(dy, "dy", 4)
    if dy.shape != x.shape:
        raise ZFNetError(f"lrn_backward: dy must have x's shape {x.shape}, got {dy.shape}")
    if resolve(backend) == "reference":
        return lrn_backward_reference(x, dy, size, alpha, beta, k, within_channel)
    return lrn_backward_cpu(x, dy, size, alpha, beta, k, within_channel)
