"""What an analysis measures when the user leaves it open: a pair of layers, and the class C.

    pool_and_penultimate(arch, pool=0)   -> (low, high)   layer names (invariance, correspondence)
    target_class(probs, target)          -> C             the given class, checked, else the top-1

Shapes: probs (K,) class probabilities of one image.
"""
import numpy as np

from zfnet.errors import ZFNetError


def pool_and_penultimate(arch, pool=0):
    """(low, high) layer names for an architecture with no table entry.

    low: the max-pool at index ``pool`` among the max-pools (0: the first, -1: the last), else the
    first ReLU. high: the input of the last layer with weights (the penultimate representation),
    or the last ReLU if that input is not above low (else low itself).
    """
    pools = [layer.name for layer in arch.layers if layer.op == "maxpool"]
    relus = [layer.name for layer in arch.layers if layer.op == "relu"]
    weighted = [layer for layer in arch.layers if layer.op in ("conv", "linear")]
    if not (pools or relus) or not weighted:
        raise ZFNetError(f"architecture {arch.name!r}: no default layers; pass layers explicitly")
    low = pools[pool] if pools else relus[0]
    high = weighted[-1].inputs[0]
    if high == "data" or arch.index(high) <= arch.index(low):
        high = relus[-1] if relus and arch.index(relus[-1]) > arch.index(low) else low
    return low, high


def target_class(probs, target=None):
    """The class C whose probability is followed: ``target`` checked against the K classes of
    probs (K,), or C = argmax_k probs[k] (ties: the lowest index) when it is None."""
    k = probs.shape[0]
    if target is None:
        return int(np.argmax(probs))
    if not 0 <= int(target) < k:
        raise ZFNetError(f"class index {target} is out of range: the model has classes 0..{k - 1}")
    return int(target)
