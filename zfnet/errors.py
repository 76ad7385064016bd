"""The project's one exception type (defined beside the kernels, which cannot import zfnet)."""
from zfnet.kernels._checks import ZFNetError

__all__ = ["ZFNetError"]
