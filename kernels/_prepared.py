"""Values derived from read-only weights, computed once and reused (`kernels.prepared`).

A fast path may want the weights in another form: Winograd's transformed filters U = G w G^T,
conv2d's filters with the bias as one more column, the deconvnet's sparse walk's filter taps.
Computing that can cost as much as a batch-1 convolution, so it is done once per array and kept,
but only for arrays that cannot change afterwards: a cached transform of an array that was later
modified in place would silently give wrong results. An array counts as
frozen when it is read-only and so is everything it views (a read-only ndarray base chain ending
in an immutable buffer). zfnet.net.Net freezes the weights it holds, so a network's filters are
transformed once per process; a writeable array is transformed on every call.

Entries are dropped when their array is garbage-collected (a weak reference per entry).
"""
import threading
import weakref

import numpy as np

_cache = {}                     # (id(w), kind) -> (weakref to w, prepared value)
_lock = threading.Lock()


def frozen(a):
    """True when neither `a` nor anything it views can be written (read-only all the way down)."""
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    if a is None or isinstance(a, bytes):
        return True
    try:
        return memoryview(a).readonly             # mmap opened read-only, a read-only buffer
    except TypeError:
        return False


def prepared(w, kind, make):
    """make(w), computed once per frozen array `w` and `kind` (a hashable tag), else every call."""
    if not frozen(w):
        return make(w)
    key = (id(w), kind)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0]() is w:
        return hit[1]
    value = make(w)

    def forget(_ref, key=key):
        with _lock:
            if _cache.get(key, (None,))[0] is _ref:
                del _cache[key]
    with _lock:
        _cache[key] = (weakref.ref(w, forget), value)
    return value
