"""``zfnet evolution``: the strongest projection of feature maps across training checkpoints (Fig. 4)."""
import argparse
import textwrap
import time
from pathlib import Path

from zfnet.cli._common import add_output_arguments, check_limits, check_out_dir, print_result, read_each
from zfnet.cli._scan import IMAGES_HELP, collect_args

EXAMPLE = """\
example:
  zfnet evolution epoch01.safetensors epoch05.safetensors epoch30.safetensors \\
      --images photos/ --layer fire4/concat --maps 3,17,40 --out evo/
  -> evo/evolution.png (rows: maps, columns: checkpoints), evo/evolution.json, evo/evolution.html

Checkpoints are weight files of one architecture, in any format zfnet reads
(converted .safetensors, .caffemodel, .onnx, ...): zfnet.weights.load_model(path).
"""

def register(subparsers):
    p = subparsers.add_parser(
        "evolution", help="feature evolution across training checkpoints (paper Fig. 4)",
        description=textwrap.fill(
            "For each feature map of LAYER, find its strongest unit over the images at every "
            "CHECKPOINT and project it with the deconvnet; one grid, checkpoints as columns.", 88),
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", metavar="CHECKPOINT", nargs="+",
                   help="weight files of one architecture, in training order")
    p.add_argument("--images", required=True, nargs="+", metavar="PATH", help=IMAGES_HELP)
    p.add_argument("--layer", required=True, help="layer whose feature maps are shown, e.g. fire4/concat")
    p.add_argument("--maps", default=None,
                   help="comma-separated map indices (default: the --count strongest at the last checkpoint)")
    p.add_argument("--count", type=int, default=8, help="maps shown when --maps is not given (default 8)")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N of the images (in --images order; a folder's sorted by path)")
    add_output_arguments(p, "evolution")
    p.set_defaults(func=run)


def run(args):
    import numpy as np

    from zfnet.errors import ZFNetError
    from zfnet.image import load_image, preprocess
    from zfnet.viz.evolution import feature_evolution, load_checkpoints, write_evolution

    check_limits(args, "--count", "--max-images")
    try:
        maps = [int(v) for v in args.maps.split(",") if v.strip()] if args.maps else None
    except ValueError:
        raise ZFNetError(f"--maps must be comma-separated integers, got {args.maps!r}") from None
    check_out_dir(args.out)
    t0 = time.perf_counter()
    files = collect_args(args.images)[:args.max_images]
    nets = load_checkpoints(args.checkpoints)
    kept = read_each(files, lambda p: preprocess(load_image(p), nets[0].meta))
    files = [p for _, p, _ in kept]
    x = np.stack([v for _, _, v in kept])                                     # (N, 3, H, W)
    labels = [Path(p).stem for p in args.checkpoints]
    result = feature_evolution(nets, x, args.layer, maps, args.count, labels, progress=True)
    names = [Path(p).name for p in files]
    facts = {"architecture": nets[0].arch.name, "images_folder": " ".join(args.images),
             "compute_seconds": round(time.perf_counter() - t0, 2)}
    paths = write_evolution(args.out, result, nets[0].meta, names, facts)
    summary = [f"{args.layer}: maps {', '.join(map(str, result.maps))} over {len(nets)} checkpoints, "
               f"{len(names)} images"]
    print_result(args.json, {**facts, **result.to_json(names)}, summary, paths)
    return 0
