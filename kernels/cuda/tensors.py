"""The small device steps of the pipeline outside the ops: copies, sums, masks, pooling adjoints.

The forward walk and the deconvnet's rules do a few things besides calling the ops: a concat
copies its inputs into channel slices, a global average pool takes means, the deconvnet crops
and pastes boxes, adds the signals of two readers, masks a signal by the forward activation,
spreads a pooled signal back. zfnet/net/tensors.py holds each as one function over NumPy or
device arrays; its NumPy branch is the twin of the kernel here (tests/net/test_tensors_cuda.py).

Every kernel: one thread per output element, 128 threads a block over the flat output, no
shared memory (each is one read, or a small window of reads, per element).
"""
import numpy as np
from numba import cuda, float32, float64, int32

from ._device import THREADS_1D, blocks


@cuda.jit
def _copy4(src, dst):
    """dst[n, c, h, w] = src[n or 0, c, h, w]: any strides (views of boxes, channel slices);
    a src of batch 1 is repeated over dst's batch."""
    N, C, H, W = dst.shape
    q = cuda.grid(1)
    if q < N * C * H * W:
        w, h, c, n = q % W, (q // W) % H, (q // (W * H)) % C, q // (W * H * C)
        dst[n, c, h, w] = src[n if src.shape[0] > 1 else 0, c, h, w]


def copy4(src, dst):
    """dst[...] = src for 4-D device arrays of any strides; src (1 or N, C, H, W), dst (N, C, H, W)."""
    if dst.size:
        _copy4[blocks(dst.size), THREADS_1D](src, dst)
    return dst


@cuda.jit
def _add(a, b, y):
    q = cuda.grid(1)
    if q < y.size:
        y[q] = a[q] + b[q]


def add(a, b):
    """a + b, two C-contiguous float32 device arrays of one shape -> a new one."""
    y = cuda.device_array(a.shape, np.float32)
    _add[blocks(a.size), THREADS_1D](a.reshape(a.size), b.reshape(b.size), y.reshape(y.size))
    return y


@cuda.jit
def _mask(g, x, y):
    """y[k, l] = g[k, l] if x[k or 0, l] > 0 else 0 (g, y (K, L); x (1 or K, L))."""
    K, L = g.shape
    q = cuda.grid(1)
    if q < K * L:
        k, l = q // L, q % L
        y[k, l] = g[k, l] if x[k if x.shape[0] > 1 else 0, l] > 0 else float32(0.0)


def mask_positive(g, x):
    """g where x > 0, else 0. g (K, ...), x (1 or K, ...) of g's other dims, C-contiguous."""
    K, L = g.shape[0], g.size // g.shape[0]
    y = cuda.device_array(g.shape, np.float32)
    _mask[blocks(g.size), THREADS_1D](g.reshape(K, L), x.reshape(x.shape[0], L), y.reshape(K, L))
    return y


@cuda.jit
def _gap(x, y):
    """y[n, c, 0, 0] = mean of x[n, c] (float64 sum); one thread per (n, c)."""
    N, C, H, W = x.shape
    q = cuda.grid(1)
    if q < N * C:
        n, c = q // C, q % C
        s = float64(0.0)
        for h in range(H):
            for w in range(W):
                s += x[n, c, h, w]
        y[n, c, 0, 0] = float32(s / (H * W))


def gap(x):
    """Global average pool on the device: x (N, C, H, W) -> (N, C, 1, 1)."""
    N, C = x.shape[:2]
    y = cuda.device_array((N, C, 1, 1), np.float32)
    _gap[blocks(N * C), THREADS_1D](x, y)
    return y


@cuda.jit
def _spread(g, x):
    """x[k, c, h, w] = g[k, c, 0, 0] / (H*W) in float32: the adjoint of the global average pool."""
    K, C, H, W = x.shape
    q = cuda.grid(1)
    if q < x.size:
        c, k = (q // (W * H)) % C, q // (W * H * C)
        x[k, c, (q // W) % H, q % W] = g[k, c, 0, 0] / float32(H * W)


def spread(g, hw):
    """g (K, C, 1, 1) -> (K, C, H, W), every position g / (H*W)."""
    x = cuda.device_array(tuple(g.shape[:2]) + tuple(hw), np.float32)
    _spread[blocks(x.size), THREADS_1D](g, x)
    return x


@cuda.jit
def _avgpool_back(g, dx, geo):
    """dx[k, c, h, w] (input box) = sum over the outputs (i, j) of the output box whose window
    holds (y0 + h, x0 + w) of g[k, c, i - a, j - c] / D(i, j); one thread gathers each input."""
    KH, KW, sy, sx, py, px, H, W, a, c0, y0, x0, include_pad = geo
    K, C, h_, w_ = dx.shape
    q = cuda.grid(1)
    if q >= dx.size:
        return
    w, h, c, k = q % w_, (q // w_) % h_, (q // (w_ * h_)) % C, q // (w_ * h_ * C)
    Y, X = y0 + h, x0 + w                                    # full-plane coordinates
    acc = float32(0.0)
    for i in range(a, a + g.shape[2]):
        top = i * sy - py
        bottom = min(top + KH, H + py)
        if Y < top or Y >= bottom:
            continue
        for j in range(c0, c0 + g.shape[3]):
            left = j * sx - px
            right = min(left + KW, W + px)
            if X < left or X >= right:
                continue
            if include_pad:
                D = (bottom - top) * (right - left)
            else:
                D = (min(bottom, H) - max(top, 0)) * (min(right, W) - max(left, 0))
            acc += g[k, c, i - a, j - c0] / float32(D)
    dx[k, c, h, w] = acc


def avgpool_back(g, geo, in_box):
    """The adjoint of average pooling on the device. g (K, C, h', w') on the output box whose
    corner is (a, c) -> dx (K, C, h, w) on `in_box`. geo = (KH, KW, sy, sx, py, px, H, W, a, c,
    include_pad); see zfnet/deconv/backward.py avgpool_back for the rule."""
    y0, y1, x0, x1 = in_box
    dx = cuda.device_array((g.shape[0], g.shape[1], y1 - y0, x1 - x0), np.float32)
    *head, include_pad = geo
    _avgpool_back[blocks(dx.size), THREADS_1D](g, dx, (*head, y0, x0, int(include_pad)))
    return dx


@cuda.jit
def _local_switches(s, out, geo):
    """out = s - (s // W) * (W - Wb) - (y0*Wb + x0), int32 (crop.local_switches' arithmetic)."""
    in_w, wb, offset = geo
    q = cuda.grid(1)
    if q < s.size:
        v = int32(s[q])
        out[q] = v - (v // in_w) * int32(in_w - wb) - int32(offset)


def local_switches(switches, in_box, in_w):
    """crop.local_switches on the device: int64 flat plane indices -> int32 indices in `in_box`."""
    out = cuda.device_array(switches.shape, np.int32)
    wb = in_box[3] - in_box[2]
    _local_switches[blocks(switches.size), THREADS_1D](
        switches.reshape(switches.size), out.reshape(out.size), (in_w, wb, in_box[0] * wb + in_box[2]))
    return out


@cuda.jit
def _zero(a):
    q = cuda.grid(1)
    if q < a.size:
        a[q] = 0


def zeros(shape, dtype=np.float32):
    """A new device array of zeros (filled on the device: nothing crosses the bus)."""
    a = cuda.device_array(tuple(shape), dtype)
    if a.size:
        _zero[blocks(a.size), THREADS_1D](a.reshape(a.size))
    return a
