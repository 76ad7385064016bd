"""The three projection modes side by side: deconvnet, guided back-propagation, gradient.

    ZFNET_WEIGHTS=/path/to/shared/data/weights python docs/figures/make_modes.py [--images DIR]

writes docs/figures/modes.png from the real SqueezeNet (Deep Compression weights) and one shared
photograph (skimage_chelsea.png, a cat). Rows: the strongest unit of the strongest feature map
of fire3/concat, fire6/concat and fire9/concat, then the class score of the top class (prob).
Columns: the receptive-field patch of the image, then the unit's projection in each mode, cut
to the same patch (the whole image for the class score). The modes differ only at ReLUs:

    deconvnet  rectify the signal coming down (the paper)      g -> max(g, 0)
    guided     rectify it and keep the forward ReLU's mask     g -> max(g, 0) * [x > 0]
    gradient   only the forward mask (plain back-propagation)  g -> g * [x > 0]

Each panel is rendered by zfnet.deconv.render (grey = 0, the 99.5th percentile of the nonzero
magnitudes at full contrast). The running time is printed.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
IMAGE = "skimage_chelsea.png"
LAYERS = ("fire3/concat", "fire6/concat", "fire9/concat", "prob")
MODES = ("deconvnet", "guided", "gradient")


def default_images():
    data = os.environ.get("ZFNET_TEST_DATA")
    return Path(data) / "images" if data else REPO.parent / "shared" / "data" / "images"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=default_images(), help="folder of the shared photographs")
    ap.add_argument("--out", type=Path, default=HERE / "modes.png")
    args = ap.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zfnet.atomic import atomic_write
    from zfnet.deconv import Unit, cut, project, render, top_maps
    from zfnet.image import load_image, preprocess, to_display
    from zfnet.net import forward
    from zfnet.net.receptive import unit_box
    from zfnet.weights import class_names, load_model

    t0 = time.perf_counter()
    net = load_model("squeezenet1_0")
    labels = class_names(net)
    x = preprocess(load_image(args.images / IMAGE), net.meta)[None]                  # (1, 3, 227, 227)
    seen = to_display(x[0], net.meta)
    fwd = forward(net, x, keep="all")

    rows = []
    for layer in LAYERS:
        if layer == "prob":
            c = int(np.argmax(fwd.output[0]))
            unit, box = Unit(0, c), (0, x.shape[2], 0, x.shape[3])
            label = f"prob: class {c}\n({labels[c]})"
        else:
            unit = top_maps(fwd[layer], 0, 1)[0]
            box = unit_box(net.arch, layer, unit.y, unit.x)
            label = f"{layer}\nmap {unit.channel} at ({unit.y}, {unit.x})"
        panels = [cut(seen, box)]
        for mode in MODES:
            p = project(net, x, layer, [unit], mode=mode, forward_result=fwd)[0]
            panels.append(cut(render(p, net.meta, percentile=99.5), box))
            if not p.any():
                print(f"{layer} {mode}: the projection is all zeros (the rectified signal dies out)")
        rows.append((label, panels))

    fig, axes = plt.subplots(len(rows), 1 + len(MODES), figsize=(2.3 * (1 + len(MODES)), 2.35 * len(rows)))
    for r, (label, panels) in enumerate(rows):
        for c, img in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(("receptive field", *MODES)[c], fontsize=10)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"SqueezeNet v1.0, {IMAGE}: one unit per row, three ways down", fontsize=10)
    fig.tight_layout()
    with atomic_write(args.out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    print(f"{args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
