"""``zfnet topk``: the paper's Fig. 2 on any image collection (scan, project, render)."""
import argparse
import json
import sys

from zfnet.cli._common import add_model_argument, check_limits, check_out_dir
from zfnet.cli._scan import (MAPS_HELP, add_scan_arguments, cluster_client, collect_args, note_k, parse_maps,
                             print_scan, progress_bar)

EXAMPLE = """\
example:
  zfnet topk --images photos/ --layer fire9/concat --maps all --k 9 --out top9/
  -> top9/index.html (open in a browser), top9/topk_fire9_concat.png (the maps tiled),
     top9/maps/*.png (one block per map), top9/index.json, top9/topk_state.json (the scan)

""" + MAPS_HELP + """
The scan keeps, for every chosen map, the k images whose strongest unit in that map is largest
(one unit per image; ties: the first unit in row-major order, then the image whose file has the
smaller sha256, then the smaller path, so the order of the images does not matter). It saves its
state in OUT after every batch: run the same command again to resume after a crash, or with more
images (a bigger folder, or a list of only the new ones) to extend the result without
rescanning. --restart discards the saved scan. Images that cannot be read are skipped and listed.

Several layers from one forward pass per image:
  zfnet topk --images photos/ --layer conv1,fire5/concat,fire9/concat --out top9/
  zfnet topk --images photos/ --layer stages --out top9/      (the last layer of each stage)
  -> top9/index.html shows the layers one after another; top9/<layer>/ holds each layer's page

On a Dask cluster (pip install 'zfnet[dask]'; every worker must see the images at the same paths):
  zfnet topk --images photos/ --layer stages --workers 2            (a local cluster of 2 processes)
  zfnet topk --images /shared/imgs/ --layer conv5 --scheduler tcp://10.0.0.5:8786
  Each shard of --shard-size images is one task; finished shards are saved, so Ctrl-C or a
  crash loses only the shards in flight.
"""


def register(subparsers):
    from zfnet.deconv import LRN_RULES, MODES
    p = subparsers.add_parser(
        "topk", help="top-k activations of feature maps over an image collection (paper Fig. 2)",
        description="Scan an image collection once, keep the k strongest activations of every chosen feature "
                    "map of LAYER, then show each as its deconvnet projection beside its receptive-field patch.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scan_arguments(p, images_required=True, restart_help="discard a saved scan in OUT and scan from scratch")
    p.add_argument("--layer", required=True,
                   help="layer(s) to scan: conv5, a list conv1,fire9/concat, or 'stages' (the last layer of each stage)")
    p.add_argument("--maps", default="16", help="all | N (the first N maps) | i,j,... (default 16)")
    p.add_argument("--k", type=int, default=9, help="units kept per map (default 9: a 3x3 grid)")
    add_model_argument(p)
    p.add_argument("--out", default=None, help="output folder (default ./zfnet-topk-<layer>)")
    p.add_argument("--json", action="store_true",
                   help="print per map the kept entries {image, y, x, value}, strongest first, as JSON on stdout")
    p.add_argument("--mode", default="deconvnet", choices=MODES, help="projection rule (default deconvnet)")
    p.add_argument("--lrn", default="identity", choices=LRN_RULES,
                   help="how projections pass LRN layers (default identity, as usual for the deconvnet)")
    p.add_argument("--cell", type=int, default=80, help="pixels per cell side in the figures (default 80)")
    p.add_argument("--percentile", type=float, default=99.5,
                   help="scale each projection so this percentile of its magnitudes is full contrast "
                        "(default 99.5; 100: its maximum)")
    p.add_argument("--no-crop", action="store_true",
                   help="resize whole images to the input size instead of the model's resize + centre crop")
    p.add_argument("--scan-only", action="store_true", help="scan (and save the state) but draw nothing")
    p.add_argument("--embed", action="store_true",
                   help="embed the figures in index.html as data: URIs (one file; large for many maps)")
    p.set_defaults(func=run)


def _check_args(args):
    check_limits(args, "--k", "--batch", "--percentile", "--cell")


def _render(net, state, out, args, client):
    from zfnet.viz import topk
    update, close = progress_bar(f"project + render {state.layer}", "img")
    try:
        update(0, len(topk.units_by_image(state, net.arch)))
        index = topk.render_topk(net, state, out, mode=args.mode, lrn=args.lrn, cell=args.cell,
                                 percentile=None if args.percentile == 100 else args.percentile,
                                 progress=update, embed=args.embed, client=client)
    finally:
        close()
    print(f"wrote {out / 'index.html'}, {out / 'index.json'}, {out}/topk_{topk.layer_slug(state.layer)}*.png, "
          f"{out / 'maps'}/", file=sys.stderr)
    return index


def _scan(net, images, wanted, dirs, args, client):
    from zfnet.viz.scan import scan_layers
    from zfnet.viz.scan_state import STATE_FILE
    update, close = progress_bar(f"scan {', '.join(wanted)}", "img")
    try:
        return scan_layers(net, images, wanted, k=args.k, state_paths={layer: dirs[layer] / STATE_FILE for layer in wanted},
                           batch_size=args.batch, restart=args.restart, crop=not args.no_crop, progress=update,
                           client=client, shard_size=args.shard_size, on_shard=update.shards)
    finally:
        close()


def run(args):
    from zfnet.errors import ZFNetError
    from zfnet.viz import topk
    from zfnet.viz.layer_sets import resolve_layers
    from zfnet.viz.shard import layer_maps
    from zfnet.viz.topk_page import write_layers_page
    from zfnet.weights import load_model

    _check_args(args)
    out = check_out_dir(args.out or f"zfnet-topk-{topk.layer_slug(args.layer)}")
    images = collect_args(args.images)
    net = load_model(args.model)
    layers = resolve_layers(net.arch, args.layer)
    wanted = {layer: parse_maps(args.maps, layer_maps(net, layer)[0]) for layer in layers}   # errors before work
    dirs = {layer: out if len(layers) == 1 else out / topk.layer_slug(layer) for layer in layers}
    with cluster_client(args) as client:
        results = _scan(net, images, wanted, dirs, args, client)
        print_scan(results[layers[0]])
        if not results[layers[0]].state.images:
            raise ZFNetError(f"--images {' '.join(args.images)}: none of the {len(images)} image(s) could be read; "
                             f"nothing to show")
        note_k(args.k, len(results[layers[0]].state.images))
        if not args.scan_only:
            indexes = [(dirs[layer].name, _render(net, results[layer].state, dirs[layer], args, client))
                       for layer in layers]
            if len(layers) > 1:
                write_layers_page(out, indexes, args.embed)
                print(f"wrote {out / 'index.html'} (the {len(layers)} layers one after another)", file=sys.stderr)
    if args.json:
        printed = [topk.topk_json(results[layer].state) for layer in layers]
        json.dump(printed[0] if len(layers) == 1 else {"layers": printed}, sys.stdout, indent=1)
        print()
    return 0
