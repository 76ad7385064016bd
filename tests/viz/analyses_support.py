"""Shared helpers for the analyses tests (occlusion, invariance, correspondence, evolution)."""
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def squeezenet():
    """The real SqueezeNet v1.0 (from $ZFNET_WEIGHTS, set by tests/conftest.py), loaded once per session."""
    from zfnet.weights import load_model
    return load_model("squeezenet1_0")


@lru_cache(maxsize=8)
def photo(images_dir, name):
    """A shared photograph as (H, W, 3) uint8 RGB."""
    from zfnet.image import load_image
    return load_image(images_dir / name)


def preprocessed(images_dir, name):
    """A shared photograph as the network's (3, H, W) float32 input (centre crop)."""
    from zfnet.image import preprocess
    return preprocess(photo(images_dir, name), squeezenet().meta)


def run_cli(argv, capsys):
    """Run ``zfnet ARGV`` in-process -> (exit code, stdout, stderr)."""
    from zfnet.cli import main
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def features(net, x, layers, with_output=False):
    """One image x (3, H, W) through the net -> {layer: its activations flattened, float64}
    (and the output vector when with_output)."""
    from zfnet.net import forward
    r = forward(net, np.ascontiguousarray(x[None]), keep=list(layers))
    f = {l: r[l][0].ravel().astype(np.float64) for l in layers}
    return (f, r.output[0]) if with_output else f
