"""The project's one exception type (defined beside the kernels, which cannot import zfnet)."""
from zfnet.kernels import ZFNetError

__all__ = ["ZFNetError"]
