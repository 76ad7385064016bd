"""``zfnet correspondence``: how consistently masking one part changes the features (Table 1)."""
import argparse
import textwrap
import time
from pathlib import Path

from zfnet.cli._common import (add_model_argument, add_output_arguments, check_limits, check_out_dir, layer_names,
                               print_result, read_each, run_facts)

EXAMPLE = """\
example:
  zfnet correspondence dog1.jpg dog2.jpg dog3.jpg --boxes parts.json --layers fire5/concat,fire9/concat --random 5
  with parts.json = {"left eye": [[120, 80, 150, 110], [x0, y0, x1, y1], [x0, y0, x1, y1]],
                     "nose":     [[...], [...], [...]]}
  (one box per image, in that image's own pixels, x1/y1 excluded)
  -> zfnet-correspondence/correspondence.png, .json (Delta per part and layer), .html

Delta_l = sum over image pairs i != j of the Hamming distance between sign(eps_i) and sign(eps_j),
eps = features(image) - features(masked image), divided by N(N-1) and by the feature length.
"""


def register(subparsers):
    p = subparsers.add_parser(
        "correspondence", help="correspondence of object parts across images (paper Table 1)",
        description=textwrap.fill(
            "Mask the same named part (a box per image, the model's mean colour) in every IMAGE and "
            "measure how consistently the features change: Table 1's Delta per layer, for each "
            "part and for randomly placed boxes.", 88),
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", metavar="IMAGE", nargs="+", help="two or more photographs of one kind of object")
    p.add_argument("--boxes", required=True, metavar="BOXES_JSON",
                   help='JSON file {"part name": [[x0, y0, x1, y1] per image], ...} in original image pixels')
    add_model_argument(p)
    p.add_argument("--layers", default=None,
                   help="comma-separated layers (default per architecture, e.g. fire5/concat,fire9/concat)")
    p.add_argument("--random", type=int, default=5, metavar="N",
                   help="random-box trials (default 5; 0 for none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random boxes (default 0)")
    p.add_argument("--crop", action="store_true",
                   help="use the model's centre crop (default: resize the whole image, so every box is seen)")
    add_output_arguments(p, "correspondence")
    p.set_defaults(func=run)


def run(args):
    from zfnet.image import load_image
    from zfnet.viz.correspondence import correspondence, load_boxes, write_correspondence
    from zfnet.weights import load_model

    check_limits(args, "--random")
    check_out_dir(args.out)
    t0 = time.perf_counter()
    parts = load_boxes(args.boxes)
    kept = read_each(args.images, load_image, need=2)
    images = [im for _, _, im in kept]                                        # [(H_i, W_i, 3) uint8]
    names = [Path(p).name for _, p, _ in kept]
    if len(kept) < len(args.images):          # drop the skipped images' boxes too
        idx = [i for i, _, _ in kept]
        parts = {part: ([boxes[i] for i in idx] if isinstance(boxes, list) and len(boxes) == len(args.images)
                        else boxes) for part, boxes in parts.items()}
    net = load_model(args.model)
    layers = layer_names(args.layers)
    result = correspondence(net, images, parts, layers, random=args.random, seed=args.seed, crop=args.crop,
                            names=names, progress=True)
    facts = run_facts(net, args.model, t0, boxes_file=Path(args.boxes).name, crop=bool(args.crop), seed=args.seed)
    paths = write_correspondence(args.out, result, images, names, facts)

    def table():
        random = result.random_summary()
        yield "part".ljust(24) + "".join(f"{l:>22}" for l in result.layers)
        for part in result.parts:
            yield part[:24].ljust(24) + "".join(f"{result.table[part][l]:>22.4f}" for l in result.layers)
        if random:
            yield (f"random ({len(result.random)})".ljust(24)
                   + "".join(f"{random[l][0]:>13.4f} +- {random[l][1]:.4f}" for l in result.layers))

    print_result(args.json, {**facts, **result.to_json(names)}, table(), paths)
    return 0
