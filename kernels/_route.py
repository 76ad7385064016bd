"""One router for every public op: ``backend='cuda'`` goes to ``kernels/cuda/<op>.py``, the rest
to the CPU op module (kernels/<op>.py), which then sees 'reference' or 'cpu' only.

The CUDA functions take the same arguments (without ``backend``) and are imported on the first
CUDA call, so a CPU-only process never imports numba.cuda. A CPU call pays one comparison here
(the cropped deconvnet walk makes dozens of sub-millisecond calls).
"""
import functools
import importlib
import inspect

from . import _backend


def routed(op):
    """`op` (a public CPU-module function with a `backend` parameter) that also runs on 'cuda'."""
    signature = inspect.signature(op)
    position = list(signature.parameters).index("backend")
    cuda_module = f"{__package__}.cuda.{op.__module__.rsplit('.', 1)[1]}"

    @functools.wraps(op)
    def call(*args, **kwargs):
        backend = args[position] if len(args) > position else kwargs.get("backend")
        if (_backend.get_backend() if backend is None else backend) != "cuda":
            return op(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        _backend.choose(bound.arguments.pop("backend", None))     # the ZFNetError if no GPU
        return getattr(importlib.import_module(cuda_module), op.__name__)(**bound.arguments)
    return call
