"""A worked example: deconvnet projections from conv1 up to the class score, as one strip.

    ZFNET_WEIGHTS=/path/to/shared/data/weights python docs/figures/make_strip.py [--images DIR]

writes docs/figures/strip.png from the real SqueezeNet (Deep Compression weights) and one shared
photograph (opencv_chicky_512.png, a dog). For every stage of the network (relu_conv1, each
fire module's concat, relu_conv10, prob) it takes the strongest feature map for this image and
its strongest unit (for prob: the top class's score), projects it to pixel space with the
deconvnet, and shows

    top row      the whole image the network saw, the unit's receptive field outlined
    middle row   the projection inside the receptive field
    bottom row   the image inside the receptive field

Each panel is rendered by zfnet.deconv.render (grey = 0, 99.5th percentile of the nonzero
magnitudes at full contrast). The receptive field grows from 7x7 pixels (conv1) to the whole
image. The same call for one unit, from the command line:

    zfnet project opencv_chicky_512.png --layer fire9/concat --map C --out proj/
"""
import argparse
import sys
import time
from pathlib import Path

from _common import default_images, squeezenet_on, strongest_unit

HERE = Path(__file__).resolve().parent
IMAGE = "opencv_chicky_512.png"
LAYERS = ("relu_conv1", "fire2/concat", "fire3/concat", "fire4/concat", "fire5/concat", "fire6/concat",
          "fire7/concat", "fire8/concat", "fire9/concat", "relu_conv10", "prob")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=default_images(), help="folder of the shared photographs")
    ap.add_argument("--out", type=Path, default=HERE / "strip.png")
    args = ap.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from zfnet.atomic import atomic_write
    from zfnet.deconv import cut, project, render

    t0 = time.perf_counter()
    net, labels, x, seen, fwd = squeezenet_on(args.images / IMAGE)                  # x (1, 3, 227, 227)

    panels = []
    for layer in LAYERS:
        unit, box = strongest_unit(net, x, fwd, layer)
        if layer == "prob":
            c = unit.channel
            title = f"prob\nclass {c}\n{labels[c][:18]}"
        else:
            title = f"{layer}\nmap {unit.channel} ({unit.y},{unit.x})\nRF {box[1] - box[0]}x{box[3] - box[2]}"
        p = project(net, x, layer, [unit], forward_result=fwd)[0]
        if not p.any():
            sys.exit(f"{layer}: the deconvnet projection is all zeros for {IMAGE}; pick another image")
        panels.append((title, render(p, net.meta, percentile=99.5), box))

    fig, axes = plt.subplots(3, len(panels), figsize=(1.55 * len(panels), 5.4))
    for k, (title, img, box) in enumerate(panels):
        top, middle, bottom = axes[:, k]
        top.imshow(seen, interpolation="nearest")
        y0, y1, x0, x1 = box
        top.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", lw=1.0))
        top.set_title(title, fontsize=6.5)
        middle.imshow(cut(img, box), interpolation="nearest")
        bottom.imshow(cut(seen, box), interpolation="nearest")
        for ax in (top, middle, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("receptive field", fontsize=8)
    axes[1, 0].set_ylabel("projection", fontsize=8)
    axes[2, 0].set_ylabel("image patch", fontsize=8)
    fig.suptitle(f"SqueezeNet v1.0 deconvnet, {IMAGE}: the strongest unit of the strongest map, layer by layer",
                 fontsize=8.5)
    fig.tight_layout()
    with atomic_write(args.out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    print(f"{args.out} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
