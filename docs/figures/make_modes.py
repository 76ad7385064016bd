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
import sys
import time
from pathlib import Path

from _common import default_images, squeezenet_on, strongest_unit

HERE = Path(__file__).resolve().parent
IMAGE = "skimage_chelsea.png"
LAYERS = ("fire3/concat", "fire6/concat", "fire9/concat", "prob")
MODES = ("deconvnet", "guided", "gradient")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=default_images(), help="folder of the shared photographs")
    ap.add_argument("--out", type=Path, default=HERE / "modes.png")
    args = ap.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zfnet.atomic import atomic_write
    from zfnet.deconv import cut, project, render

    t0 = time.perf_counter()
    net, labels, x, seen, fwd = squeezenet_on(args.images / IMAGE)                  # x (1, 3, 227, 227)

    rows = []
    for layer in LAYERS:
        unit, box = strongest_unit(net, x, fwd, layer)
        if layer == "prob":
            c = unit.channel
            label = f"prob: class {c}\n({labels[c]})"
        else:
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
