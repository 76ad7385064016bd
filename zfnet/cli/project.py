"""``zfnet project``: one unit of one layer projected back to pixel space with the deconvnet."""
import argparse
import re
import sys
from pathlib import Path

from zfnet.cli._common import add_model_argument, check_limits, check_out_dir, check_out_file

EXAMPLE = """\
examples:
  zfnet project cat.jpg --layer fire9/concat --map 40 --out proj/
      the strongest unit of feature map 40 of fire9/concat
  zfnet project cat.jpg --layer relu_conv1 --map 12 --at 30,41 --mode guided --npz unit.npz
  zfnet project cat.jpg --layer prob --map 285          # the class score of 'Egyptian cat'

writes, in --out (names start with the layer, map, position and mode):
  ..._projection.png   the projection, centred on grey (zero), the model's channel order undone
                       (see --percentile for the contrast)
  ..._projection_rf.png the same, cut to the unit's receptive field
  ..._patch.png        the receptive-field patch of the image the network saw
  ..._input.png        the whole image the network saw (after resize and crop)
  ..._summary.json     layer, map, position, activation, receptive field, mode, model
--npz FILE also saves: input (1,3,H,W), projection (1,3,H,W) float32, layer, map, at, activation.
"""


def register(subparsers):
    p = subparsers.add_parser(
        "project", help="project one unit back to pixel space (deconvnet)",
        description="Run IMAGE through the network, keep one activation of LAYER (map C at Y,X, or "
                    "the strongest unit of map C), zero the rest, and carry it down to the pixels "
                    "with the deconvnet (unpool with the switches, rectify, transposed filters).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", metavar="IMAGE", help="a photograph (JPEG, PNG, ...)")
    add_model_argument(p)
    p.add_argument("--layer", required=True, help="layer name, e.g. conv5, fire9/concat, fc8, prob")
    p.add_argument("--map", required=True, type=int, metavar="C",
                   help="feature map (channel) of LAYER; in a flat layer (fc, prob) the unit or class index")
    p.add_argument("--at", default=None, metavar="Y,X",
                   help="position of the unit in the map (default: the map's strongest unit)")
    p.add_argument("--mode", default="deconvnet", choices=("deconvnet", "guided", "gradient"),
                   help="deconvnet: rectify (the paper); guided: rectify and mask; gradient: mask (saliency)")
    p.add_argument("--lrn", default="identity", choices=("identity", "gradient"),
                   help="LRN layers on the way down: passed through (default) or their exact gradient")
    p.add_argument("--no-crop", action="store_true",
                   help="resize the whole image to the input size instead of the centre crop")
    p.add_argument("--dense", action="store_true",
                   help="walk whole feature maps instead of the unit's receptive field (same result, slower)")
    p.add_argument("--percentile", default=99.5, type=float, metavar="P",
                   help="render: scale so the P-th percentile of the nonzero magnitudes is full contrast, "
                        "stronger pixels saturate (default 99.5; 100 = the maximum)")
    p.add_argument("--out", default="zfnet-project", metavar="DIR", help="output folder (default ./zfnet-project)")
    p.add_argument("--npz", default=None, metavar="FILE", help="also save the arrays to FILE (.npz)")
    p.set_defaults(func=run)


def parse_at(text):
    """'Y,X' -> (Y, X) ints; anything else is a ZFNetError naming the expected form."""
    from zfnet.errors import ZFNetError
    m = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*", text or "")
    if not m:
        raise ZFNetError(f"--at must be two non-negative integers Y,X (row, column), e.g. --at 6,7; got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _stem(layer, unit, mode):
    where = f"_{unit.y}x{unit.x}" if unit.y is not None else ""
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '-', layer)}_map{unit.channel}{where}_{mode}"


def run(args):
    import numpy as np

    from zfnet.atomic import atomic_write, save_png, write_json
    from zfnet.deconv import cut, project_unit, render
    from zfnet.image import load_image, preprocess, to_display
    from zfnet.weights import load_model

    at = parse_at(args.at) if args.at is not None else None
    check_limits(args, "--percentile")
    out = check_out_dir(args.out)
    if args.npz:
        check_out_file(args.npz, "--npz")
    net = load_model(args.model)
    x = preprocess(load_image(args.image), net.meta, crop=not args.no_crop)[None]      # (1, 3, H, W)
    r = project_unit(net, x, args.layer, args.map, at=at, mode=args.mode, lrn=args.lrn, crop=not args.dense)

    seen = to_display(x[0], net.meta)                                                # (H, W, 3)
    picture = render(r.projection, net.meta, percentile=args.percentile)             # (H, W, 3)
    stem = _stem(args.layer, r.unit, args.mode)
    files = {
        "projection": out / f"{stem}_projection.png",
        "projection_rf": out / f"{stem}_projection_rf.png",
        "patch": out / f"{stem}_patch.png",
        "input": out / f"{stem}_input.png",
        "summary": out / f"{stem}_summary.json",
    }
    save_png(files["projection"], picture)
    save_png(files["projection_rf"], cut(picture, r.box))
    save_png(files["patch"], cut(seen, r.box))
    save_png(files["input"], seen)
    summary = {
        "model": net.meta.get("model", args.model), "image": str(args.image), "layer": args.layer,
        "map": r.unit.channel, "at": list(r.unit.at) if r.unit.at else None, "activation": r.activation,
        "receptive_field": {"y0": r.box[0], "y1": r.box[1], "x0": r.box[2], "x1": r.box[3]},
        "mode": args.mode, "lrn": args.lrn, "max_abs_projection": float(np.abs(r.projection).max()),
        "files": {k: v.name for k, v in files.items() if k != "summary"},
    }
    write_json(files["summary"], summary)
    if args.npz:
        with atomic_write(args.npz) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, input=x, projection=r.projection[None], layer=np.array(args.layer),
                         map=np.array(r.unit.channel), at=np.array(r.unit.at if r.unit.at else (-1, -1)),
                         activation=np.array(r.activation, np.float32), box=np.array(r.box))
        files["npz"] = Path(args.npz)

    where = f" at ({r.unit.y}, {r.unit.x})" if r.unit.at else ""
    print(f"{Path(args.image).name}: {args.layer} map {r.unit.channel}{where}, activation {r.activation:.4g}, "
          f"receptive field rows {r.box[0]}..{r.box[1] - 1}, columns {r.box[2]}..{r.box[3] - 1} ({args.mode})")
    if not np.any(r.projection):
        flat = len(net.arch.shapes[net.arch.layer(args.layer).name]) == 1
        why = ("the deconvnet rule rectifies a class score's signal away on its way down" if flat and args.mode == "deconvnet"
               else "the unit's activation is zero, or the rectified signal died out on the way down")
        print(f"note: the projection is all zeros, so {files['projection'].name} is plain grey ({why}); "
              f"try --mode guided", file=sys.stderr)
    for path in files.values():
        print(path)
    return 0
