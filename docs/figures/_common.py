"""What make_modes.py and make_strip.py share: where the shared photographs are, SqueezeNet's
forward pass on one of them, and which unit a layer's panel projects.

    net, labels, x, seen, fwd = squeezenet_on(images / IMAGE)    # x (1, 3, 227, 227), seen (227, 227, 3)
    unit, box = strongest_unit(net, x, fwd, layer)               # box (y0, y1, x0, x1) in input pixels

Not a figure script itself (make_all.py runs only the make_*.py files).
"""
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent.parent


def default_images():
    """$ZFNET_TEST_DATA/images, else the checkout's sibling shared/data/images."""
    data = os.environ.get("ZFNET_TEST_DATA")
    return Path(data) / "images" if data else REPO.parent / "shared" / "data" / "images"


def squeezenet_on(path):
    """The real SqueezeNet v1.0, its class names, the preprocessed image x (1, 3, H, W), the image as
    the network sees it (H, W, 3) and the forward pass keeping every layer."""
    from zfnet.image import load_image, preprocess, to_display
    from zfnet.net import forward
    from zfnet.weights import class_names, load_model

    net = load_model("squeezenet1_0")
    x = preprocess(load_image(path), net.meta)[None]                                # (1, 3, 227, 227)
    return net, class_names(net), x, to_display(x[0], net.meta), forward(net, x, keep="all")


def strongest_unit(net, x, fwd, layer):
    """The unit a panel shows and its receptive field (y0, y1, x0, x1): for "prob" the top class's
    score over the whole image, else the strongest unit of the layer's strongest feature map."""
    from zfnet.deconv import Unit, top_maps
    from zfnet.net.receptive import unit_box

    if layer == "prob":
        h, w = x.shape[2:]
        return Unit(0, int(np.argmax(fwd.output[0]))), (0, h, 0, w)
    unit = top_maps(fwd[layer], 0, 1)[0]
    return unit, unit_box(net.arch, layer, unit.y, unit.x)
