"""One router for every public op: ``backend='cuda'`` goes to ``kernels/cuda/<op>.py``, the rest
to the CPU op module (kernels/<op>.py), which then sees 'reference' or 'cpu' only.

The CUDA functions take the same arguments (without ``backend``) and are imported on the first
CUDA call, so a CPU-only process never imports numba.cuda.
"""
import functools
import importlib
import inspect

from ._backend import choose


def routed(op):
    """`op` (a public CPU-module function with a `backend` parameter) that also runs on 'cuda'."""
    signature = inspect.signature(op)

    @functools.wraps(op)
    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        name = choose(bound.arguments.pop("backend", None))
        if name == "cuda":
            module = importlib.import_module(f"{__package__}.cuda.{op.__module__.rsplit('.', 1)[1]}")
            return getattr(module, op.__name__)(**bound.arguments)
        bound.arguments["backend"] = name
        return op(*bound.args, **bound.kwargs)
    return call
