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

The NumPy twin scans each window as written above. The Numba kernel gives the same bits another
way, so that it vectorises: it copies groups of planes into a polyphase scratch (padding = -inf)
and applies each window offset (u, v), in row-major order, to many outputs at once with a
branch-free update. The comment above the kernel explains the layout.
"""
import functools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

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


# --------------------------------------------------------------------------------------------
# Numba CPU kernel
#
# The twin's scan, one output at a time with `if v > best or v != v`, is a branch per input that
# LLVM cannot vectorise. Here the loops are turned inside out: for each window offset (u, v), in
# row-major order, ONE loop over many outputs q applies the same update to all of them,
#
#     take = (v > best[q]) | (v != v);  best[q] = take ? v : best[q];  tap[q] = take ? u*W + v : tap[q]
#
# branch-free, so it compiles to vector compares and masked stores. Each output still sees its
# window's inputs in row-major order, so the first maximum and the last NaN win exactly as above.
#
# For that loop to read its inputs contiguously, a group of g planes is first copied into a
# polyphase scratch: phase (psi, phi) holds the padded input's rows psi, psi+sh, ... and columns
# phi, phi+sw, ..., as an (hp, wp) plane per input plane,
#
#     s[psi, phi, p, r, m] = x[p, r*sh + psi - ph, m*sw + phi - pw]     (-inf in the padding)
#     hp = H' + (KH-1) // sh,   wp = W' + (KW-1) // sw
#
# Output (i, j) of plane p sits at q = (p*hp + i)*wp + j, and its input at window offset (u, v)
# at s[u % sh, v % sw] flat position q + (u // sh)*wp + v // sw: a fixed shift of q for every
# output of every plane. Positions with i >= H' or j >= W' compute junk and are never copied out.
# Padding (and a round-up window's overhang) holds -inf, which never wins, so every window can be
# scanned whole; only the initial switch, the window's first REAL input, differs at the border.
# Small planes are grouped (g > 1) so that the loops stay long; the work is split over threads
# by groups, and a small input runs on one thread (a parallel launch costs more than it saves).
# --------------------------------------------------------------------------------------------

GROUP_POSITIONS = 4096      # scratch positions per phase for one group of planes (fits L2)
SCAN_BLOCK = 512            # outputs updated by every window offset while they sit in L1
SERIAL_BELOW = 1 << 16      # inputs of fewer elements run on one thread


@njit(nogil=True, cache=True)
def _polyphase_padding(s, g, h, w, kh, kw, sh, sw, ph, pw, hp, wp, block):
    """-inf at every scratch position that is padding, or past the last phase plane (once per scratch)."""
    phases_w = min(sw, kw)
    for psi in range(min(sh, kh)):
        for phi in range(phases_w):
            base = (psi * phases_w + phi) * block
            for p in range(g):
                for r in range(hp):
                    hh = r * sh + psi - ph
                    for m in range(wp):
                        ww = m * sw + phi - pw
                        if hh < 0 or hh >= h or ww < 0 or ww >= w:
                            s[base + (p * hp + r) * wp + m] = -np.inf
    s[min(sh, kh) * phases_w * block:] = -np.inf


@njit(nogil=True, cache=True)
def _polyphase_fill(x, p0, g, s, kh, kw, sh, sw, ph, pw, hp, wp, block, rectify):
    """Copy the real inputs of planes p0 .. p0+g-1 (flat over N*C) into the polyphase scratch.

    rectify: copy relu(x) instead (max(v, 0), NaN kept, as kernels.relu): the ReLU below the pool.
    """
    n, c, h, w = x.shape
    xf = x.reshape(-1)
    phases_w = min(sw, kw)
    for psi in range(min(sh, kh)):
        # Phase rows r and columns m that land on the real input.
        r_a = min(max((ph - psi + sh - 1) // sh, 0), hp)
        r_b = max(min((h + ph - psi + sh - 1) // sh, hp), r_a)
        for phi in range(phases_w):
            m_a = min(max((pw - phi + sw - 1) // sw, 0), wp)
            m_b = max(min((w + pw - phi + sw - 1) // sw, wp), m_a)
            base = (psi * phases_w + phi) * block
            for p in range(g):
                for r in range(r_a, r_b):
                    dst = base + (p * hp + r) * wp
                    src = ((p0 + p) * h + r * sh + psi - ph) * w + phi - pw
                    # Unsigned indices: no negative-index wrap-around test, so the copy vectorises.
                    if rectify:
                        zero = np.float32(0)
                        for m in range(m_a, m_b):
                            v = xf[np.uint64(src + m * sw)]
                            s[np.uint64(dst + m)] = v if (v > 0 or v != v) else zero
                    elif sw == 2:
                        for m in range(m_a, m_b):
                            s[np.uint64(dst + m)] = xf[np.uint64(src + m * 2)]
                    else:
                        for m in range(m_a, m_b):
                            s[np.uint64(dst + m)] = xf[np.uint64(src + m * sw)]


@njit(nogil=True, cache=True)
def _scan_windows(s, best, tap, kh, kw, sh, sw, w, wp, block, count, track):
    """best, tap over q < count: every window offset (u, v) in row-major order, branch-free.

    track=False: the maxima alone (tap is not touched), for a pool whose switches nobody wants.
    """
    phases_w = min(sw, kw)
    for q0 in range(0, count, SCAN_BLOCK):
        n = min(SCAN_BLOCK, count - q0)
        for u in range(kh):
            for v in range(kw):
                src = ((u % sh) * phases_w + v % sw) * block + (u // sh) * wp + v // sw + q0
                offset = np.int32(u * w + v)
                if not track:
                    for q in range(n):
                        val = s[np.uint64(src + q)]
                        b = best[np.uint64(q0 + q)]
                        best[np.uint64(q0 + q)] = val if ((val > b) | (val != val)) else b
                    continue
                for q in range(n):
                    val = s[np.uint64(src + q)]
                    b = best[np.uint64(q0 + q)]
                    a = tap[np.uint64(q0 + q)]
                    take = (val > b) | (val != val)       # first maximum wins; NaN propagates
                    best[np.uint64(q0 + q)] = val if take else b
                    tap[np.uint64(q0 + q)] = offset if take else a


@njit(cache=True, nogil=True)
def _pool_groups(x, y, switches, g, first, last, kh, kw, sh, sw, ph, pw, rectify, record):
    """Groups first .. last-1 of g planes each (flat over N*C) into y and (if record) switches,
    both (N, C, H', W'). rectify: pool relu(x)."""
    n, c, h, w = x.shape
    planes = n * c
    ho, wo = y.shape[2:]
    yf, sf = y.reshape(-1), switches.reshape(-1)
    hp, wp = ho + (kh - 1) // sh, wo + (kw - 1) // sw
    block = g * hp * wp
    s = np.empty(min(sh, kh) * min(sw, kw) * block + ((kh - 1) // sh) * wp + (kw - 1) // sw,
                 dtype=np.float32)
    _polyphase_padding(s, g, h, w, kh, kw, sh, sw, ph, pw, hp, wp, block)
    best = np.empty(block, dtype=np.float32)
    tap = np.empty(block, dtype=np.int32)        # winning window offset u*W + v
    for group in range(first, last):
        p0 = group * g
        gg = min(g, planes - p0)
        count = gg * hp * wp
        _polyphase_fill(x, p0, gg, s, kh, kw, sh, sw, ph, pw, hp, wp, block, rectify)
        best[:count] = -np.inf
        tap[:count] = 0
        # A window clipped at the top or left starts its switch at its first real input.
        for p in range(gg):
            for i in range(hp):
                u0 = max(ph - i * sh, 0)
                for j in range(wp if u0 > 0 else min(wp, (pw + sw - 1) // sw)):
                    tap[(p * hp + i) * wp + j] = u0 * w + max(pw - j * sw, 0)
        _scan_windows(s, best, tap, kh, kw, sh, sw, w, wp, block, count, record)
        if not record:
            for p in range(gg):
                for i in range(ho):
                    src = (p * hp + i) * wp
                    dst = ((p0 + p) * ho + i) * wo
                    for j in range(wo):
                        yf[np.uint64(dst + j)] = best[np.uint64(src + j)]
            continue
        # switch = (window's top-left in unpadded coordinates) + winning offset.
        for p in range(gg):
            for i in range(ho):
                corner = (i * sh - ph) * w - pw
                src = (p * hp + i) * wp
                dst = ((p0 + p) * ho + i) * wo
                for j in range(wo):
                    yf[np.uint64(dst + j)] = best[np.uint64(src + j)]
                    sf[np.uint64(dst + j)] = corner + j * sw + tap[np.uint64(src + j)]


def _group_size(planes, kh, kw, sh, sw, ho, wo):
    """Planes per group: as many as fit GROUP_POSITIONS scratch positions per phase (at least 1)."""
    hp, wp = ho + (kh - 1) // sh, wo + (kw - 1) // sw
    return max(1, min(GROUP_POSITIONS // (hp * wp), planes))


# Threads for the parallel path: plain Python threads, each running _pool_groups (which releases
# the GIL) on its own run of groups. A Numba prange over the same calls measured the same speed
# but took 2.5-3.5 s more to compile on first use.
@functools.lru_cache(maxsize=1)
def _workers():
    """The threads that run all runs of groups but the first (Numba's thread count, less the caller)."""
    return ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                              thread_name_prefix="zfnet-maxpool")


def _max_pool2d_parallel(x, y, switches, kh, kw, sh, sw, ph, pw, g, chunks, rectify, record):
    """`chunks` contiguous runs of groups of g planes, one per thread (this one runs the first)."""
    n, c = x.shape[:2]
    groups = (n * c + g - 1) // g
    runs = [(t * groups // chunks, (t + 1) * groups // chunks) for t in range(chunks)]
    others = [_workers().submit(_pool_groups, x, y, switches, g, a, b, kh, kw, sh, sw, ph, pw, rectify, record)
              for a, b in runs[1:]]
    _pool_groups(x, y, switches, g, *runs[0], kh, kw, sh, sw, ph, pw, rectify, record)
    for f in others:
        f.result()


def _max_pool2d_serial(x, y, switches, kh, kw, sh, sw, ph, pw, g, rectify, record):
    """The same kernel on the calling thread alone, for inputs too small to pay for the threads."""
    n, c = x.shape[:2]
    _pool_groups(x, y, switches, g, 0, (n * c + g - 1) // g, kh, kw, sh, sw, ph, pw, rectify, record)


def max_pool2d_cpu(x, kh, kw, sh, sw, ph, pw, ho, wo, rectify=False, record=True):
    """CPU kernel: x (N, C, H, W) -> (y, switches) (N, C, H', W'), bit-identical to the twin.

    rectify: pool relu(x). record=False: no switches (returned as None), a faster scan.
    """
    n, c = x.shape[:2]
    y = np.empty((n, c, ho, wo), dtype=np.float32)                               # (N, C, H', W')
    switches = np.empty((n, c, ho, wo) if record else (1, 1, 1, 1), dtype=np.int64)
    g = _group_size(n * c, kh, kw, sh, sw, ho, wo)
    groups = -(-(n * c) // g)
    chunks = min(numba.get_num_threads(), groups)
    if x.size < SERIAL_BELOW or chunks == 1:
        _max_pool2d_serial(x, y, switches, kh, kw, sh, sw, ph, pw, g, rectify, record)
    else:
        _max_pool2d_parallel(x, y, switches, kh, kw, sh, sw, ph, pw, g, chunks, rectify, record)
    return y, (switches if record else None)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, backend=None,
               relu_input=False, return_switches=True):
    """Max pooling with switches. x: (N, C, H, W) float32 -> (y, switches), both (N, C, H', W').

    kernel_size, stride, padding: int or (h, w) pair; stride None = kernel_size. ceil_mode=True is
    Caffe's round-up rule. switches are int64 flat indices h*W + w into each input plane; ties go to
    the first maximum in row-major order, exactly as PyTorch's ``return_indices=True``.
    relu_input=True pools relu(x) (the ReLU below the pool, applied as x is read: exactly
    max_pool2d(kernels.relu(x)), switches included, without the rectified array).
    return_switches=False returns y alone and skips recording them (a faster pass).
    """
    k, s, p, out_hw = pool_geometry(x, kernel_size, stride, padding, ceil_mode)
    for flag, name in ((relu_input, "relu_input"), (return_switches, "return_switches")):
        if not isinstance(flag, (bool, np.bool_)):
            raise ZFNetError(f"max_pool2d: {name} must be True or False, got {flag!r}")
    if resolve(backend) == "reference":
        if relu_input:
            x = np.where((x > 0) | np.isnan(x), x, np.float32(0))       # kernels.relu's rule
        y, switches = max_pool2d_reference(x, k, s, p, out_hw)
    else:
        y, switches = max_pool2d_cpu(x, k[0], k[1], s[0], s[1], p[0], p[1], out_hw[0], out_hw[1],
                                     bool(relu_input), bool(return_switches))
    return (y, switches) if return_switches else y
