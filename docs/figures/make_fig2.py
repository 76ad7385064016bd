"""Regenerate the README's Fig. 2 figures from the real SqueezeNet and the shared photographs.

    ZFNET_WEIGHTS=../shared/data/weights python docs/figures/make_fig2.py [IMAGES_DIR]

writes, into docs/figures/:
    filters_conv1.png         the 96 conv1 filters, each normalised on its own (Fig. 2, layer 1)
    topk_fire9_concat.png     Fig. 2 for SqueezeNet's last fire module: for each of a few feature
                              maps, the deconvnet projections of its 9 strongest units over the
                              photographs (left) beside their receptive-field patches (right)

Which maps: the scan keeps the top 9 of every map of fire9/concat (512 maps); the figure shows the
MAPS maps with the largest 9th-strongest value, i.e. the maps that respond most strongly in at
least 9 different photographs (a rule, so the figure is reproducible; any map can be drawn with
``zfnet topk --maps``). Images default to ../shared/data/images beside the checkout.
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHARED = REPO.parent / "shared" / "data"
LAYER = "fire9/concat"
MAPS = 4


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("ZFNET_WEIGHTS", str(SHARED / "weights"))
    images = Path(argv[0]) if argv else SHARED / "images"

    import numpy as np
    from tqdm import tqdm

    from zfnet.atomic import atomic_write, save_png
    from zfnet.viz import filters, topk
    from zfnet.viz.collect import collect_images
    from zfnet.viz.scan import scan
    from zfnet.viz.summary import TopK
    from zfnet.weights import load_model

    net = load_model("squeezenet1_0")
    grid_img, layer = filters.filter_grid(net, "conv1", cell=42, gap=2)
    save_png(HERE / "filters_conv1.png", grid_img)
    print(f"wrote {HERE / 'filters_conv1.png'}")

    paths = collect_images(images)
    with tqdm(total=len(paths), desc=f"scan {LAYER}", unit="img", file=sys.stderr) as bar:
        res = scan(net, paths, LAYER, "all", k=9, batch_size=12, progress=lambda n, total: bar.update(n))
    state = res.state
    ninth = state.topk.value[:, -1]                                   # (512,) the 9th-strongest values
    chosen = np.sort(np.argsort(-ninth, kind="stable")[:MAPS])
    state.topk = TopK(state.topk.maps[chosen], state.k, state.topk.value[chosen], state.topk.image[chosen],
                    state.topk.y[chosen], state.topk.x[chosen])
    with tempfile.TemporaryDirectory() as tmp:
        index = topk.render_topk(net, state, tmp, cell=72, maps_per_sheet=MAPS, sheet_columns=2)
        with atomic_write(HERE / f"topk_{topk.layer_slug(LAYER)}.png") as part:
            shutil.copyfile(Path(tmp) / index["sheets"][0], part)
    print(f"wrote {HERE / f'topk_{topk.layer_slug(LAYER)}.png'}: maps {state.maps.tolist()} of {LAYER}, "
          f"{len(state.images)} images, scan {res.seconds:.1f} s ({res.images_per_s:.1f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
