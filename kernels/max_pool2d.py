"""max_pool2d: placeholder until the kernel lands (being written now)."""
import math

from ._checks import non_negative_pair, positive_pair, ZFNetError


def pool_output_size(hw, kernel_size, stride, padding, ceil_mode=False):
    """Floor: H' = floor((H + 2p - k) / s) + 1. Caffe/ceil: H' = ceil((H + 2p - k) / s) + 1, then
    minus 1 if the last window would start at or past H + p (it must start inside image or left pad)."""
    out = []
    for n, k, s, p in zip(hw, positive_pair(kernel_size, "kernel_size"), positive_pair(stride, "stride"),
                          non_negative_pair(padding, "padding")):
        if n + 2 * p < k:
            raise ZFNetError(f"pool kernel {k} is larger than the padded input {n + 2 * p}")
        if ceil_mode:
            o = math.ceil((n + 2 * p - k) / s) + 1
            if (o - 1) * s >= n + p:
                o -= 1
        else:
            o = (n + 2 * p - k) // s + 1
        out.append(o)
    return tuple(out)


def max_pool2d(*args, **kwargs):
    raise NotImplementedError("max_pool2d is being written")
