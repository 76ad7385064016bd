"""``zfnet occlusion``: slide a grey square over an image (Zeiler & Fergus Fig. 7)."""
import argparse
import textwrap
import time
from pathlib import Path

from zfnet.cli._common import (add_model_argument, add_output_arguments, check_limits, check_out_dir, load_classifier,
                               print_result, run_facts)

EXAMPLE = """\
example:
  zfnet occlusion cat.jpg --class "Egyptian cat" --size 48 --stride 8 --out occ/
  -> occ/occlusion.png (panels b-e), occ/occlusion.json (every number), occ/occlusion.html

The square is the model's mean colour, applied in the preprocessed input (where it is exactly 0).
Its top-left corner runs over multiples of --stride, wholly inside the network's input.
"""


def register(subparsers):
    p = subparsers.add_parser(
        "occlusion", help="occlusion sensitivity maps (paper Fig. 7)",
        description=textwrap.fill(
            "Slide a square of the model's mean colour over IMAGE and map, per square position, "
            "(b) the total activation of the strongest feature map of LAYER, (d) the probability "
            "of class C and (e) the most probable class; (c) projects the strongest map's top unit "
            "with the deconvnet for the unoccluded image and three square positions.", 88),
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", help="a photograph (JPEG, PNG, ...)")
    add_model_argument(p)
    p.add_argument("--class", dest="cls", metavar="C", default=None,
                   help="class index or name whose probability is mapped (default: top-1 of the unoccluded image)")
    p.add_argument("--layer", default=None, help="layer whose strongest map is tracked (default: the last conv layer's ReLU)")
    p.add_argument("--size", type=int, default=48, help="side of the square in input pixels (default 48)")
    p.add_argument("--stride", type=int, default=8, help="step between square positions in input pixels (default 8)")
    p.add_argument("--batch", type=int, default=16, help="square positions per forward pass (default 16)")
    add_output_arguments(p, "occlusion")
    p.set_defaults(func=run)


def run(args):
    from zfnet.image import load_image, preprocess, to_display
    from zfnet.viz.occlusion import occlusion_maps, projection_panels, write_occlusion

    check_limits(args, "--batch")
    check_out_dir(args.out)
    t0 = time.perf_counter()
    net, labels, target = load_classifier(args.model, args.cls)
    x = preprocess(load_image(args.image), net.meta)                          # (3, H, W)
    result = occlusion_maps(net, x, args.layer, target, args.size, args.stride, args.batch, progress=True)
    rendered, boxes = projection_panels(net, x, result)
    facts = run_facts(net, args.model, t0, image=Path(args.image).name)
    paths = write_occlusion(args.out, result, to_display(x, net.meta), rendered, labels, facts, boxes)

    def summary():
        p0 = result.base_probabilities
        yield (f"{Path(args.image).name}: class {result.target} ({labels[result.target]}) p={p0[result.target]:.3f}, "
               f"p in [{result.probability.min():.3f}, {result.probability.max():.3f}] over "
               f"{result.grid[0]}x{result.grid[1]} squares; {result.layer} map {result.feature_map}")

    print_result(args.json, {**facts, **result.to_json(labels)}, summary(), paths)
    return 0
