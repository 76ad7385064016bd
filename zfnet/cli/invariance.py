"""``zfnet invariance``: feature distances and class probability under translation, scale and rotation (Fig. 5)."""
import argparse
import textwrap
import time
from pathlib import Path

from zfnet.cli._common import (add_model_argument, add_output_arguments, check_limits, check_out_dir, layer_names, load_classifier,
                               print_result, read_each, run_facts)

EXAMPLE = """\
example:
  zfnet invariance cat.jpg --class 285 --out inv/
  zfnet invariance cat.jpg dog.jpg --layers pool1,fire9/concat
  -> inv/invariance.png (3x3 curves), inv/invariance.json, inv/invariance.html

Sweeps (the paper's ranges): vertical translation -60..60 px step 5, scale 1.0..1.8 step 0.1,
rotation 0..360 degrees step 10, applied to the preprocessed input (borders: mean colour).
"""


def register(subparsers):
    p = subparsers.add_parser(
        "invariance", help="invariance to translation, scale and rotation (paper Fig. 5)",
        description=textwrap.fill(
            "Transform each IMAGE (vertical translation, scale, rotation) and plot, against the "
            "amount, the Euclidean distance between the original's and the transformed image's "
            "feature vectors at a low and a high layer, and the probability of class C.", 88),
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", metavar="IMAGE", nargs="+", help="one or more photographs (one curve each)")
    add_model_argument(p)
    p.add_argument("--class", dest="cls", metavar="C", default=None,
                   help="class index or name (default: each image's own top-1 class)")
    p.add_argument("--layers", default=None,
                   help="comma-separated layers for the distance curves (default per architecture, "
                        "e.g. pool1,fire9/concat for SqueezeNet)")
    p.add_argument("--batch", type=int, default=16, help="transformed images per forward pass (default 16)")
    add_output_arguments(p, "invariance")
    p.set_defaults(func=run)


def run(args):
    from zfnet.image import load_image, preprocess
    from zfnet.viz.invariance import example_strip, invariance_curves, write_invariance

    check_limits(args, "--batch")
    check_out_dir(args.out)
    t0 = time.perf_counter()
    net, labels, target = load_classifier(args.model, args.cls)
    layers = layer_names(args.layers)
    kept = read_each(args.images, lambda p: preprocess(load_image(p), net.meta))
    xs = [x for _, _, x in kept]                                              # [(3, H, W)]
    results = [invariance_curves(net, x, layers, target, batch_size=args.batch, progress=True) for x in xs]
    names = [Path(p).name for _, p, _ in kept]
    facts = run_facts(net, args.model, t0, images=", ".join(names))
    paths = write_invariance(args.out, results, names, labels, facts, examples=example_strip(xs[0], net.meta))

    def summary():
        for n, r in zip(names, results):
            rot = r.sweeps.get("rotation")
            worst = f", lowest P under rotation {rot.probability.min():.3f}" if rot is not None else ""
            yield f"{n}: class {r.target} ({labels[r.target]}) p={r.base_probability:.3f}{worst}"

    numbers = {**facts, "images": [{"image": n, **r.to_json(labels)} for n, r in zip(names, results)]}
    print_result(args.json, numbers, summary(), paths)
    return 0
