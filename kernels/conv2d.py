"""conv2d: placeholder until the kernel lands (being written now)."""
from ._checks import non_negative_pair, positive_pair, ZFNetError


def conv2d_output_size(hw, kernel_size, stride, padding):
    """H' = floor((H + 2*pad - KH) / stride) + 1 (likewise W'); a ZFNetError if < 1."""
    (h, w), (kh, kw) = hw, positive_pair(kernel_size, "kernel_size")
    sh, sw = positive_pair(stride, "stride")
    ph, pw = non_negative_pair(padding, "padding")
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise ZFNetError(f"kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{w + 2 * pw}")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def conv2d(*args, **kwargs):
    raise NotImplementedError("conv2d is being written")
