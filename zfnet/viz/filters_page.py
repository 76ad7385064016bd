"""The ``zfnet filters`` report: the first-layer filter grid, the per-filter numbers and, given a
top-k scan of one filter, the patches that excite it most; as PNGs, filters.json and index.html.

Files in out (all written atomically):
    filters_<layer>.png            every filter, each normalised on its own (zfnet.viz.filters)
    filter<i>_top<k>.png           filter i beside its top-k patches (with a scan)
    inputs/img<n>.png              each image holding a kept patch, as the network saw it
    filters.json, index.html       the numbers, and the page with captions and links
"""
from pathlib import Path

from zfnet.atomic import save_png, write_json
from zfnet.viz import filters, grid
from zfnet.viz.html import Cell, Link, Page
from zfnet.viz.topk import layer_slug


def default_cell(w):
    """Pixels per filter (and patch) side: 6x the filter size, e.g. 42 for 7x7. w (F, C, KH, KW)."""
    return 6 * max(w.shape[2:])


def _grid_section(page, net, out, layer, w, cell, stats, report):
    """The filter grid, its caption facts and a link per filter to the numbers."""
    g, _ = filters.filter_grid(net, layer, cell=cell)
    save_png(Path(out) / report["grid"], g)
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
    page.figure(report["grid"], f"The {w.shape[0]} filters of {layer}, row-major from filter 0 at the top left "
                                f"({cols} per row).", links=links)


def _top_section(page, net, out, state, filter, w, cell, report):
    """Filter `filter` beside its top-k patches from `state` (a scan of that one filter)."""
    found = filters.top_patches(net, state, filter, cell=cell)
    fimg = filters.filter_images(w[filter:filter + 1], report["channel_order"])[0]
    block, origins = filters.filter_block(fimg, [c for _, c, _ in found], state.k, cell)
    top_png = f"filter{filter}_top{state.k}.png"
    save_png(Path(out) / top_png, block)
    top, links, rows = [], [], []
    for (u, _, shown), (y, x) in zip(found, origins):
        inp = f"inputs/img{u.image:06d}.png"
        save_png(Path(out) / inp, shown)
        top.append({"rank": u.rank, "image": u.path, "y": u.y, "x": u.x, "value": u.value, "box": list(u.box)})
        desc = f"rank {u.rank + 1}: {Path(u.path).name}, unit (y={u.y}, x={u.x}), value {u.value:.6g}"
        links.append(Link((y, y + cell, x, x + cell), inp, desc))
        rows.append([u.rank + 1, Cell(Path(u.path).name, inp, u.path), u.y, u.x, f"{u.value:.6g}",
                     f"{u.box[0]}:{u.box[1]}, {u.box[2]}:{u.box[3]}"])
    report.update({"filter": filter, "top": top, "top_png": top_png,
                   "images_scanned": len(state.images), "skipped": state.skipped})
    layer = report["layer"]
    page.heading(f"Filter {filter}: the {len(top)} patches that excite it most", 2)
    page.figure(top_png, f"Left: filter {filter} of {layer}. Right: the input patches (its receptive "
                         f"fields, {w.shape[2]}x{w.shape[3]} pixels of the network's view of each image) with "
                         f"the largest {layer} responses, one per image, strongest top-left, over "
                         f"{len(state.images)} images.", links=links)
    page.table(["rank", "image", "y", "x", "value", "box (rows, cols)"], rows)


def write_filters_report(net, out, layer=None, cell=None, state=None, filter=None, model=None):
    """Write the filters report into `out`; return its numbers (what filters.json holds).

    layer: a conv reading the image (default the first); cell: pixels per filter side (default
    default_cell); state, filter: a top-k scan of `layer` that kept `filter` (optional), whose
    patches are shown beside the filter; model: the name to report (default net.meta's).
    """
    layer, w = filters.first_layer_weights(net, layer)
    cell = cell or default_cell(w)
    stats = filters.filter_stats(net, layer)
    report = {"model": net.meta.get("model", model), "layer": layer, "weight_shape": list(w.shape),
              "channel_order": net.meta.get("channel_order", "RGB"), "grid": f"filters_{layer_slug(layer)}.png",
              **stats.to_dict()}
    page = Page(f"Filters of {layer} ({report['model']})", out)
    _grid_section(page, net, out, layer, w, cell, stats, report)
    if state is not None:
        _top_section(page, net, out, state, filter, w, cell, report)
    page.heading("Per-filter numbers", 2, anchor="stats")
    page.table(["filter", "RMS", "orientation", "angle (deg)", "colour blob", "dead"],
               [[f["filter"], f"{f['rms']:.4g}", f"{f['orientation']:.3f}", f"{f['angle_deg']:.0f}",
                 f"{f['colour_blob']:.3f}", "yes" if f["dead"] else ""] for f in report["filters"]])
    write_json(Path(out) / "filters.json", report)
    page.write(Path(out) / "index.html")
    return report
