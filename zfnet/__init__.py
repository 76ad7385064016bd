"""zfnet: see what a convolutional network has learned, with Zeiler & Fergus's deconvnet.

Numba kernels (``zfnet.kernels``), networks as data (``zfnet.net``), converted pretrained
weights (``zfnet.weights``, ``zfnet.convert``), the deconvnet (``zfnet.deconv``) and the paper's
experiments (``zfnet.viz``). The library never imports a deep-learning framework.
"""
from zfnet.errors import ZFNetError

__version__ = "0.1.0"
__all__ = ["ZFNetError", "__version__"]
