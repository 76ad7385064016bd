"""``zfnet filters``: the first-layer filters as a grid; with --images, what excites one filter most."""
import argparse
import json
import sys

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
    from zfnet.weights import DEFAULT_MODEL
    p = subparsers.add_parser(
        "filters", help="first-layer filters as images; the patches that excite one most (paper Fig. 2, layer 1)",
        description="Draw the filters of the convolution that reads the image (each normalised to the full "
                    "display range, in RGB order). With --images and --filter i: scan the images and show the "
                    "k patches that give filter i its largest responses.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or weights file (default {DEFAULT_MODEL})")
    p.add_argument("--layer", default=None, help="a conv layer that reads the image (default: the first, e.g. conv1)")
    p.add_argument("--images", default=None, metavar="DIR_OR_LIST",
                   help="a folder of images (recursive), one image, or a text file listing image paths")
    p.add_argument("--filter", type=int, default=None, metavar="I", help="the filter whose top patches to find")
    p.add_argument("--k", type=int, default=9, help="patches to keep (default 9), one per image")
    p.add_argument("--cell", type=int, default=None,
                   help="pixels per filter in the grid, and per patch (default 6x the filter size)")
    p.add_argument("--out", default="zfnet-filters", help="output folder (default ./zfnet-filters)")
    p.add_argument("--batch", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--restart", action="store_true", help="discard a saved scan for this filter and rescan")
    p.add_argument("--json", action="store_true", help="print the per-filter numbers (and top patches) as JSON")
    p.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from zfnet.atomic import save_png, write_json
    from zfnet.errors import ZFNetError
    from zfnet.viz import filters, grid, topk
    from zfnet.viz.html import Cell, Link, Page
    from zfnet.weights import load_model

    if (args.images is None) != (args.filter is None):
        raise ZFNetError("--images and --filter go together: give both to find the patches that excite filter I most")
    if args.k < 1 or args.batch < 1:
        raise ZFNetError(f"--k and --batch must be at least 1, got {args.k} and {args.batch}")
    if args.cell is not None and not 4 <= args.cell <= 512:
        raise ZFNetError(f"--cell must be between 4 and 512 pixels, got {args.cell}")
    images = topk.collect_images(args.images) if args.images else None
    net = load_model(args.model)
    layer, w = filters.first_layer_weights(net, args.layer)
    if args.filter is not None and not 0 <= args.filter < w.shape[0]:
        raise ZFNetError(f"--filter {args.filter}: {layer} has {w.shape[0]} filters (0..{w.shape[0] - 1})")
    out = Path(args.out)
    cell = args.cell or 6 * max(w.shape[2:])

    # the grid of every filter
    g, _ = filters.filter_grid(net, layer, cell=cell)
    grid_png = f"filters_{topk.layer_slug(layer)}.png"
    save_png(out / grid_png, g)
    stats = filters.filter_stats(net, layer)
    report = {"model": net.meta.get("model", args.model), "layer": layer, "weight_shape": list(w.shape),
              "channel_order": net.meta.get("channel_order", "RGB"), "grid": grid_png, **stats.to_dict()}

    page = Page(f"Filters of {layer} ({report['model']})", out)
    page.facts({"model": report["model"], "layer": f"{layer}: {w.shape[0]} filters of {w.shape[1]}x{w.shape[2]}x{w.shape[3]}",
                "display": f"each filter normalised on its own to 0-255 (min to max over its channels), shown in RGB "
                           f"order (the network reads {report['channel_order']}), enlarged to {cell} px by nearest neighbour",
                "orientation": "selectivity |sum P e^(2i theta)| / sum P over the filter's power spectrum: 1 = one "
                               "orientation, ~0.1 for random filters"})
    rows, cols = grid.grid_shape(w.shape[0])
    links = []
    for i in range(w.shape[0]):
        y, x = grid.cell_origin(i, (cell, cell), cols, 1)
        links.append(Link((y, y + cell, x, x + cell), "#stats",
                          f"filter {i}: RMS {stats.rms[i]:.3g}, orientation {stats.orientation[i]:.2f} at "
                          f"{stats.angle_deg[i]:.0f} deg, colour blob {stats.colour_blob[i]:.2f}"))
    page.figure(grid_png, f"The {w.shape[0]} filters of {layer}, row-major from filter 0 at the top left "
                          f"({cols} per row).", links=links)

    if args.images is not None:
        state_path = out / f"filter{args.filter}_{topk.STATE_FILE}"
        res = topk.scan(net, images, layer, [args.filter], k=args.k, state_path=state_path,
                        batch_size=args.batch, restart=args.restart)
        for s in res.skipped:
            print(f"  skipped {s['path']}: {s['reason']}", file=sys.stderr)
        print(f"scanned {res.scanned} new image(s) in {res.seconds:.1f} s ({res.images_per_s:.2f} images/s); "
              f"{len(res.state.images)} in all, {len(res.state.skipped)} skipped", file=sys.stderr)
        if not res.state.images:
            raise ZFNetError(f"{args.images}: none of the images could be read")
        found = filters.top_patches(net, res.state, cell=cell)
        fimg = filters.filter_images(w[args.filter:args.filter + 1], report["channel_order"])[0]
        block, origins = filters.filter_block(fimg, [c for _, c, _ in found], args.k, cell)
        top_png = f"filter{args.filter}_top{args.k}.png"
        save_png(out / top_png, block)
        top, links, rows_ = [], [], []
        for (u, _, shown), (y, x) in zip(found, origins):
            inp = f"inputs/img{u.image:06d}.png"
            save_png(out / inp, shown)
            top.append({"rank": u.rank, "image": u.path, "y": u.y, "x": u.x, "value": u.value, "box": list(u.box)})
            desc = f"rank {u.rank + 1}: {Path(u.path).name}, unit (y={u.y}, x={u.x}), value {u.value:.6g}"
            links.append(Link((y, y + cell, x, x + cell), inp, desc))
            rows_.append([u.rank + 1, Cell(Path(u.path).name, inp, u.path), u.y, u.x, f"{u.value:.6g}",
                          f"{u.box[0]}:{u.box[1]}, {u.box[2]}:{u.box[3]}"])
        report.update({"filter": args.filter, "top": top, "top_png": top_png,
                       "images_scanned": len(res.state.images), "skipped": res.state.skipped})
        page.heading(f"Filter {args.filter}: the {len(top)} patches that excite it most", 2)
        page.figure(top_png, f"Left: filter {args.filter} of {layer}. Right: the input patches (its receptive "
                             f"fields, {w.shape[2]}x{w.shape[3]} pixels of the network's view of each image) with "
                             f"the largest {layer} responses, one per image, strongest top-left, over "
                             f"{len(res.state.images)} images.", links=links)
        page.table(["rank", "image", "y", "x", "value", "box (rows, cols)"], rows_)
    page.heading("Per-filter numbers", 2, anchor="stats")
    page.table(["filter", "RMS", "orientation", "angle (deg)", "colour blob", "dead"],
               [[f["filter"], f"{f['rms']:.4g}", f"{f['orientation']:.3f}", f"{f['angle_deg']:.0f}",
                 f"{f['colour_blob']:.3f}", "yes" if f["dead"] else ""] for f in report["filters"]])
    write_json(out / "filters.json", report)
    page.write(out / "index.html")
    print(f"wrote {out / grid_png}, {out / 'filters.json'}, {out / 'index.html'}", file=sys.stderr)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    return 0
