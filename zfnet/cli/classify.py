"""``zfnet classify``: the top-5 classes of each image, with probabilities."""
import argparse
import json
import sys
from pathlib import Path

from zfnet.cli._common import add_model_argument, check_limits, check_out_dir

EXAMPLE = """\
examples:
  zfnet classify cat.jpg dog.png
  zfnet classify photos/*.jpg --model zfnet512 --json > predictions.json
  zfnet classify cat.jpg --no-crop          # whole image resized, no centre crop

--json prints a list with one entry per image, in the order given:
  {"image": "cat.jpg", "top5": [{"index": 285, "label": "Egyptian cat", "prob": 0.815}, ...]}
An image that cannot be read is reported on stderr (and as {"image": ..., "error": ...});
the others are still classified, and the exit status is 1.
"""


def register(subparsers):
    p = subparsers.add_parser(
        "classify", help="top-5 ImageNet classes of images",
        description="Classify each IMAGE with a pretrained network: the 5 most probable classes "
                    "and their probabilities. Images are prepared as the model card says (short side "
                    "resized, centre crop, channel order, mean, std).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (JPEG, PNG, ...)")
    add_model_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-crop", action="store_true",
                   help="resize the whole image to the network's input size instead of a centre crop")
    p.add_argument("--batch-size", "--batch", type=int, default=16, metavar="N", help="images per forward pass (default 16)")
    p.add_argument("--out", default=None, metavar="DIR", help="also write DIR/classify.json")
    p.set_defaults(func=run)


def _chunks(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def run(args):
    import numpy as np
    from tqdm import tqdm

    from zfnet.atomic import write_json
    from zfnet.classify import classify
    from zfnet.errors import ZFNetError
    from zfnet.image import load_image, preprocess
    from zfnet.weights import load_model

    check_limits(args, "--batch-size")
    if args.out:
        check_out_dir(args.out)
    net = load_model(args.model)
    crop = not args.no_crop
    results, failed = [], 0
    chunks = list(_chunks(args.images, args.batch_size))
    for chunk in tqdm(chunks, desc="classify", unit="batch", file=sys.stderr, disable=None if len(chunks) > 1 else True):
        good, inputs = [], []
        entries = []
        for path in chunk:
            entry = {"image": path}
            entries.append(entry)
            try:
                inputs.append(preprocess(load_image(path), net.meta, crop=crop))  # (3, H, W)
                good.append(entry)
            except ZFNetError as e:
                failed += 1
                entry["error"] = str(e)
                print(f"zfnet: error: {e}", file=sys.stderr)
        if inputs:
            for entry, preds in zip(good, classify(net, np.stack(inputs), k=5, batch_size=args.batch_size)):
                entry["top5"] = [p.to_dict() for p in preds]
        results.extend(entries)
        if not args.json:
            for entry in entries:
                if "top5" in entry:
                    print(entry["image"])
                    for p in entry["top5"]:
                        print(f"  {100 * p['prob']:6.2f}%  {p['label']}  ({p['index']})")
            sys.stdout.flush()
    if args.json:
        print(json.dumps(results, indent=2, allow_nan=False))  # NaN is not JSON
    if args.out:
        write_json(Path(args.out) / "classify.json",
                   {"model": net.meta.get("model"), "crop": crop, "results": results})
    return 1 if failed else 0
