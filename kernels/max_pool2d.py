"""max_pool2d: max pooling that records where each maximum came from (the switches).

Shapes: x (N, C, H, W) -> y (N, C, H', W') float32 and switches (N, C, H', W') int64.

    y[n, c, i, j]        = max   x[n, c, i*sh - ph + u, j*sw - pw + v]
                          0<=u<KH, 0<=v<KW
    switches[n, c, i, j] = h*W + w   of that maximum, a flat index into the (unpadded) input plane

Output size, floor rule (PyTorch's default):

    H' = floor((H + 2*ph - KH) / sh) + 1

round-up rule (Caffe; PyTorch ``ceil_mode=True``):

    H' = ceil((H + 2*ph - KH) / sh) + 1,  minus 1 if (H' - 1)*sh >= H + ph

(the last window must start inside the image or its left/top padding). W' likewise.

Rules, all identical to ``torch.nn.functional.max_pool2d(..., return_indices=True)`` on CPU:

- Padding is -inf: a padded position never wins. PyTorch requires ph <= KH // 2 (so every window
  holds at least one real input) and so do we.
- Ties: the FIRST maximum in row-major window order wins (a later value must be strictly larger).
  On a constant plane every switch points at its window's top-left real input.
- NaN propagates: a window holding a NaN outputs NaN, and its switch is the LAST NaN in row-major
  window order (PyTorch's test is ``val > best or isnan(val)``).
- A window whose real inputs are all -inf outputs -inf with the switch at its first real input.

Switches are int64, as PyTorch's indices are, so they can be compared with them directly; the
deconvnet's ``max_unpool2d`` reads them back (it also accepts int32).
"""
import numpy as np
from numba import njit, prange

from ._backend import resolve
from ._checks import ZFNetError, check_array, non_negative_pair, positive_pair

SWITCH_DTYPE = np.int64


def pool_output_size(hw, kernel_size, stride, padding, ceil_mode=False):
    """(H, W) -> (H', W') for a pooling window; see the module docstring for both rounding rules.

    Floor: H' = floor((H + 2p - k) / s) + 1. Caffe/ceil: H' = ceil((H + 2p - k) / s) + 1, then
    minus 1 if the last window would start at or past H + p (it must start inside image or left pad).
    Integer arithmetic throughout, identical to PyTorch's ``pooling_output_shape``.
    """
    out = []
    for n, k, s, p in zip(hw, positive_pair(kernel_size, "kernel_size"), positive_pair(stride, "stride"),
                          non_negative_pair(padding, "padding")):
        if n + 2 * p < k:
            raise ZFNetError(f"pool kernel {k} is larger than the padded input {n + 2 * p}")
        if ceil_mode:
            o = -(-(n + 2 * p - k) // s) + 1      # ceil division on integers
            if (o - 1) * s >= n + p:
                o -= 1
        else:
            o = (n + 2 * p - k) // s + 1
        out.append(o)
    return tuple(out)


def pool_geometry(x, kernel_size, stride, padding, ceil_mode, op="max_pool2d"):
    """Validate a pooling call once; returns ((KH, KW), (sh, sw), (ph, pw), (H', W')).

    Shared by max_pool2d and avg_pool2d: x must be (N, C, H, W) float32 C-contiguous with every
    dimension >= 1, stride None means stride = kernel_size, and PyTorch's rule pad <= kernel // 2.
    """
    check_array(x, "x", 4)
    if min(x.shape) < 1:
        raise ZFNetError(f"{op}: x must have N, C, H, W >= 1, got shape {x.shape}")
    kh, kw = positive_pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else positive_pair(stride, "stride")
    ph, pw = non_negative_pair(padding, "padding")
    if ph > kh // 2 or pw > kw // 2:
        raise ZFNetError(
            f"{op}: padding {(ph, pw)} must be at most half the kernel {(kh, kw)} "
            f"(padding <= kernel_size // 2, as in PyTorch), so that every window holds a real input"
        )
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise ZFNetError(f"{op}: ceil_mode must be True or False, got {ceil_mode!r}")
    h, w = x.shape[2:]
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ZFNetError(
            f"{op}: kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{w + 2 * pw} "
            f"(x of shape {x.shape}, padding {(ph, pw)})"
        )
    out_hw = pool_output_size((h, w), (kh, kw), (sh, sw), (ph, pw), bool(ceil_mode))
    return (kh, kw), (sh, sw), (ph, pw), out_hw


def max_pool2d_reference(x, kernel_size, stride, padding, out_hw):
    """NumPy twin: loop over output positions and window offsets, vectorised over (N, C) only.

    x (N, C, H, W); kernel_size, stride, padding, out_hw: pairs. Returns (y, switches).
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = kernel_size, stride, padding, out_hw
    y = np.empty((n, c, ho, wo), dtype=np.float32)                  # (N, C, H', W')
    switches = np.empty((n, c, ho, wo), dtype=SWITCH_DTYPE)         # (N, C, H', W')
    for i in range(ho):
        for j in range(wo):
            # The window clipped to the real input: padded positions (-inf) never win.
            h0, w0 = max(i * sh - ph, 0), max(j * sw - pw, 0)
            h1, w1 = min(i * sh - ph + kh, h), min(j * sw - pw + kw, w)
            best = np.full((n, c), -np.inf, dtype=np.float32)
            arg = np.full((n, c), h0 * w + w0, dtype=SWITCH_DTYPE)
            # Row-major scan; strictly greater keeps the first maximum, a NaN always takes over.
            for hh in range(h0, h1):
                for ww in range(w0, w1):
                    v = x[:, :, hh, ww]
                    wins = (v > best) | np.isnan(v)
                    best = np.where(wins, v, best)
                    arg = np.where(wins, hh * w + ww, arg)
            y[:, :, i, j] = best
            switches[:, :, i, j] = arg
    return y, switches


@njit(cache=True, parallel=True)
def max_pool2d_cpu(x, kh, kw, sh, sw, ph, pw, ho, wo):
    """Numba kernel: one (n, c) plane per parallel iteration; same scan order as the twin."""
    n, c, h, w = x.shape
    y = np.empty((n, c, ho, wo), dtype=np.float32)                  # (N, C, H', W')
    switches = np.empty((n, c, ho, wo), dtype=np.int64)             # (N, C, H', W')
    for p in prange(n * c):
        b, ch = p // c, p % c
        plane = x[b, ch]
        for i in range(ho):
            h0 = max(i * sh - ph, 0)
            h1 = min(i * sh - ph + kh, h)
            for j in range(wo):
                w0 = max(j * sw - pw, 0)
                w1 = min(j * sw - pw + kw, w)
                best = np.float32(-np.inf)
                arg = h0 * w + w0
                for hh in range(h0, h1):
                    for ww in range(w0, w1):
                        v = plane[hh, ww]
                        if v > best or v != v:      # first maximum wins; NaN propagates
                            best = v
                            arg = hh * w + ww
                y[b, ch, i, j] = best
                switches[b, ch, i, j] = arg
    return y, switches


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, backend=None):
    """Max pooling with switches. x: (N, C, H, W) float32 -> (y, switches), both (N, C, H', W').

    kernel_size, stride, padding: int or (h, w) pair; stride None = kernel_size. ceil_mode=True is
    Caffe's round-up rule. switches are int64 flat indices h*W + w into each input plane; ties go to
    the first maximum in row-major order, exactly as PyTorch's ``return_indices=True``.
    """
    k, s, p, out_hw = pool_geometry(x, kernel_size, stride, padding, ceil_mode)
    if resolve(backend) == "reference":
        return max_pool2d_reference(x, k, s, p, out_hw)
    return max_pool2d_cpu(x, k[0], k[1], s[0], s[1], p[0], p[1], out_hw[0], out_hw[1])
