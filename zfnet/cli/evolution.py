"""``zfnet evolution``: the strongest projection of feature maps across training checkpoints (Fig. 4)."""
import argparse
import textwrap
import time
from pathlib import Path

from zfnet.cli._common import add_output_arguments, check_out_dir, print_result

EXAMPLE = """\
example:
  zfnet evolution epoch01.safetensors epoch05.safetensors epoch30.safetensors \\
      --images photos/ --layer fire4/concat --maps 3,17,40 --out evo/
  -> evo/evolution.png (rows: maps, columns: checkpoints), evo/evolution.json, evo/evolution.html

Checkpoints are weight files of one architecture, in any format zfnet reads
(converted .safetensors, .caffemodel, .onnx, ...): zfnet.weights.load_model(path).
"""

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


def register(subparsers):
    p = subparsers.add_parser(
        "evolution", help="feature evolution across training checkpoints (paper Fig. 4)",
        description=textwrap.fill(
            "For each feature map of LAYER, find its strongest unit over the images at every "
            "CHECKPOINT and project it with the deconvnet; one grid, checkpoints as columns.", 88),
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", metavar="CHECKPOINT", nargs="+",
                   help="weight files of one architecture, in training order")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images to search (all of them)")
    p.add_argument("--layer", required=True, help="layer whose feature maps are shown, e.g. fire4/concat")
    p.add_argument("--maps", default=None,
                   help="comma-separated map indices (default: the --count strongest at the last checkpoint)")
    p.add_argument("--count", type=int, default=8, help="maps shown when --maps is not given (default 8)")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N images of DIR (sorted by name)")
    add_output_arguments(p, "evolution")
    p.set_defaults(func=run)


def _image_files(folder, limit):
    from zfnet.errors import ZFNetError
    d = Path(folder)
    if not d.is_dir():
        raise ZFNetError(f"--images {d}: not a folder")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ZFNetError(f"--images {d}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in it")
    return files[:limit] if limit else files


def run(args):
    from zfnet.errors import ZFNetError
    from zfnet.image import load_batch
    from zfnet.viz.evolution import feature_evolution, load_checkpoints, write_evolution

    if args.count < 1:
        raise ZFNetError(f"--count must be >= 1, got {args.count}")
    if args.max_images is not None and args.max_images < 1:
        raise ZFNetError(f"--max-images must be >= 1, got {args.max_images}")
    try:
        maps = [int(v) for v in args.maps.split(",") if v.strip()] if args.maps else None
    except ValueError:
        raise ZFNetError(f"--maps must be comma-separated integers, got {args.maps!r}") from None
    check_out_dir(args.out)
    t0 = time.perf_counter()
    files = _image_files(args.images, args.max_images)
    nets = load_checkpoints(args.checkpoints)
    x = load_batch(files, nets[0].meta)                                      # (N, 3, H, W)
    labels = [Path(p).stem for p in args.checkpoints]
    result = feature_evolution(nets, x, args.layer, maps, args.count, labels, progress=True)
    names = [p.name for p in files]
    facts = {"architecture": nets[0].arch.name, "images_folder": str(args.images),
             "compute_seconds": round(time.perf_counter() - t0, 2)}
    paths = write_evolution(args.out, result, nets[0].meta, names, facts)
    summary = [f"{args.layer}: maps {', '.join(map(str, result.maps))} over {len(nets)} checkpoints, "
               f"{len(names)} images"]
    print_result(args.json, {**facts, **result.to_json(names)}, summary, paths)
    return 0
