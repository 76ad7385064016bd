"""``zfnet filters``: the first-layer filters as a grid; with --images, what excites one filter most."""
import argparse
import json
import sys

from zfnet.cli._common import add_model_argument, check_limits, check_out_dir
from zfnet.cli._scan import add_scan_arguments, cluster_client, collect_args, note_k, print_scan, progress_bar

EXAMPLE = """\
example:
  zfnet filters --out filters/
  -> filters/filters_conv1.png (every filter, each normalised on its own), filters/index.html,
     filters/filters.json (per filter: RMS, orientation selectivity and angle, colour-blob share)

  zfnet filters --images photos/ --filter 17 --k 9 --out filters/
  -> also filters/filter17_top9.png: filter 17 beside the 9 image patches (its 7x7 receptive
     fields) that excite it most, one per image (a top-k scan of conv1, map 17; resumable)
"""


def register(subparsers):
    p = subparsers.add_parser(
        "filters", help="first-layer filters as images; the patches that excite one most (paper Fig. 2, layer 1)",
        description="Draw the filters of the convolution that reads the image (each normalised to the full "
                    "display range, in RGB order). With --images and --filter i: scan the images and show the "
                    "k patches that give filter i its largest responses.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_argument(p)
    p.add_argument("--layer", default=None, help="a conv layer that reads the image (default: the first, e.g. conv1)")
    add_scan_arguments(p, images_required=False, restart_help="discard a saved scan for this filter and rescan")
    p.add_argument("--filter", type=int, default=None, metavar="I", help="the filter whose top patches to find")
    p.add_argument("--k", type=int, default=9, help="patches to keep (default 9), one per image")
    p.add_argument("--cell", type=int, default=None,
                   help="pixels per filter in the grid, and per patch (default 6x the filter size)")
    p.add_argument("--out", default="zfnet-filters", help="output folder (default ./zfnet-filters)")
    p.add_argument("--json", action="store_true", help="print the per-filter numbers (and top patches) as JSON")
    p.set_defaults(func=run)


def _check_args(args):
    from zfnet.errors import ZFNetError
    if (args.images is None) != (args.filter is None):
        raise ZFNetError("--images and --filter go together: give both to find the patches that excite filter I most")
    check_limits(args, "--k", "--batch", "--cell")


def _scan_filter(net, images, layer, out, args):
    """The top-k scan of one filter (resumable: its state is saved in out)."""
    from zfnet.errors import ZFNetError
    from zfnet.viz.scan import scan
    from zfnet.viz.scan_state import STATE_FILE
    update, close = progress_bar(f"scan {layer} filter {args.filter}", "img")
    try:
        with cluster_client(args) as client:       # --workers / --scheduler: the scan runs on Dask
            res = scan(net, images, layer, [args.filter], k=args.k,
                       state_path=out / f"filter{args.filter}_{STATE_FILE}", batch_size=args.batch,
                       restart=args.restart, progress=update, client=client, shard_size=args.shard_size,
                       on_shard=update.shards)
    finally:
        close()
    print_scan(res)
    if not res.state.images:
        raise ZFNetError(f"--images {' '.join(args.images)}: none of the images could be read")
    note_k(args.k, len(res.state.images))
    return res.state


def run(args):
    from zfnet.errors import ZFNetError
    from zfnet.viz.filters import first_layer_weights
    from zfnet.viz.filters_page import default_cell, write_filters_report
    from zfnet.weights import load_model

    _check_args(args)
    out = check_out_dir(args.out)
    images = collect_args(args.images) if args.images else None
    net = load_model(args.model)
    layer, w = first_layer_weights(net, args.layer)
    if args.filter is not None and not 0 <= args.filter < w.shape[0]:
        raise ZFNetError(f"--filter {args.filter}: {layer} has {w.shape[0]} filters (0..{w.shape[0] - 1})")
    state = _scan_filter(net, images, layer, out, args) if images is not None else None
    report = write_filters_report(net, out, layer, args.cell or default_cell(w), state, args.filter, args.model)
    print(f"wrote {out / report['grid']}, {out / 'filters.json'}, {out / 'index.html'}", file=sys.stderr)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    return 0
