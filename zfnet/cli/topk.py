"""``zfnet topk``: the paper's Fig. 2 on any image collection (scan, project, render)."""
import argparse
import json
import sys

EXAMPLE = """\
example:
  zfnet topk --images photos/ --layer fire9/concat --maps all --k 9 --out top9/
  -> top9/index.html (open in a browser), top9/topk_fire9_concat.png (the maps tiled),
     top9/maps/*.png (one block per map), top9/index.json, top9/topk_state.json (the scan)

  --maps all     every feature map of the layer
  --maps 16      the first 16 maps (0..15)
  --maps 3,17,40 those maps (ranges too: 0-7,42; one map: 5,)

The scan keeps, for every chosen map, the k images whose strongest unit in that map is largest
(one unit per image; ties: the first unit in row-major order, then the earlier image). It saves
its state in OUT after every batch: run the same command again to resume after a crash, or with
more images (a bigger folder, or a list of only the new ones) to extend the result without
rescanning. --restart discards the saved scan. Images that cannot be read are skipped and listed.
"""


def register(subparsers):
    from zfnet.deconv import LRN_RULES, MODES
    from zfnet.weights import DEFAULT_MODEL
    p = subparsers.add_parser(
        "topk", help="top-k activations of feature maps over an image collection (paper Fig. 2)",
        description="Scan an image collection once, keep the k strongest activations of every chosen feature "
                    "map of LAYER, then show each as its deconvnet projection beside its receptive-field patch.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, metavar="DIR_OR_LIST",
                   help="a folder of images (searched recursively), one image, or a text file listing image paths")
    p.add_argument("--layer", required=True, help="layer to scan, e.g. conv5 or fire9/concat")
    p.add_argument("--maps", default="16", help="all | N (the first N maps) | i,j,... (default 16)")
    p.add_argument("--k", type=int, default=9, help="units kept per map (default 9: a 3x3 grid)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or weights file (default {DEFAULT_MODEL})")
    p.add_argument("--out", default=None, help="output folder (default ./zfnet-topk-<layer>)")
    p.add_argument("--json", action="store_true",
                   help="print per map the kept entries {image, y, x, value}, strongest first, as JSON on stdout")
    p.add_argument("--batch", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--mode", default="deconvnet", choices=MODES, help="projection rule (default deconvnet)")
    p.add_argument("--lrn", default="identity", choices=LRN_RULES,
                   help="how projections pass LRN layers (default identity, as usual for the deconvnet)")
    p.add_argument("--cell", type=int, default=80, help="pixels per cell side in the figures (default 80)")
    p.add_argument("--percentile", type=float, default=99.5,
                   help="scale each projection so this percentile of its magnitudes is full contrast "
                        "(default 99.5; 100: its maximum)")
    p.add_argument("--no-crop", action="store_true",
                   help="resize whole images to the input size instead of the model's resize + centre crop")
    p.add_argument("--restart", action="store_true", help="discard a saved scan in OUT and scan from scratch")
    p.add_argument("--scan-only", action="store_true", help="scan (and save the state) but draw nothing")
    p.add_argument("--embed", action="store_true",
                   help="embed the figures in index.html as data: URIs (one file; large for many maps)")
    p.set_defaults(func=run)


def _bar(desc, unit):
    """A tqdm bar on stderr, made on the first report (when the total is known)."""
    from tqdm import tqdm
    state = {}

    def update(n, total=None):
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
        state["bar"].update(n)

    def close():
        if "bar" in state:
            state["bar"].close()
    return update, close


def run(args):
    from pathlib import Path

    from zfnet.errors import ZFNetError
    from zfnet.viz import topk
    from zfnet.weights import load_model

    if args.k < 1:
        raise ZFNetError(f"--k must be at least 1, got {args.k}")
    if args.batch < 1:
        raise ZFNetError(f"--batch must be at least 1, got {args.batch}")
    if not 50 <= args.percentile <= 100:
        raise ZFNetError(f"--percentile must be between 50 and 100, got {args.percentile}")
    if not 8 <= args.cell <= 512:
        raise ZFNetError(f"--cell must be between 8 and 512 pixels, got {args.cell}")
    images = topk.collect_images(args.images)
    net = load_model(args.model)
    topk.layer_maps(net, args.layer)                      # a clear error before any work
    out = Path(args.out or f"zfnet-topk-{topk.layer_slug(args.layer)}")
    if out.exists() and not out.is_dir():
        raise ZFNetError(f"--out {out} exists and is not a folder")

    update, close = _bar(f"scan {args.layer}", "img")
    try:
        res = topk.scan(net, images, args.layer, args.maps, k=args.k, state_path=out / topk.STATE_FILE,
                        batch_size=args.batch, restart=args.restart, crop=not args.no_crop, progress=update)
    finally:
        close()
    state = res.state
    note = f" (resumed; {res.not_in_collection} earlier images not in this collection)" if res.not_in_collection \
        else (" (resumed)" if res.resumed else "")
    print(f"scanned {res.scanned} new image(s) in {res.seconds:.1f} s ({res.images_per_s:.2f} images/s){note}; "
          f"{len(state.images)} scanned in all, {len(state.skipped)} skipped", file=sys.stderr)
    for s in res.skipped:
        print(f"  skipped {s['path']}: {s['reason']}", file=sys.stderr)
    if not state.images:
        raise ZFNetError(f"{args.images}: none of the {len(images)} image(s) could be read; nothing to show")

    if not args.scan_only:
        n_images = len(topk.units_by_image(state, net.arch))
        update, close = _bar("project + render", "img")
        try:
            update(0, n_images)
            topk.render_topk(net, state, out, mode=args.mode, lrn=args.lrn, cell=args.cell,
                             percentile=None if args.percentile == 100 else args.percentile,
                             progress=update, embed=args.embed)
        finally:
            close()
        print(f"wrote {out / 'index.html'}, {out / 'index.json'}, {out}/topk_{topk.layer_slug(args.layer)}*.png, "
              f"{out / 'maps'}/", file=sys.stderr)
    if args.json:
        json.dump(topk.topk_json(state), sys.stdout, indent=1)
        print()
    return 0
