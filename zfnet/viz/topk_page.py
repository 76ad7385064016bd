"""The page of a top-k render (zfnet.viz.topk): index.html with the facts of the scan, the tiled
sheets, per map its block (every cell linked to the image it came from) and its table, and the
images that were skipped."""
from pathlib import Path

from zfnet.viz.html import Cell, Link, Page


def _describe_preprocessing(pre):
    size = pre.get("input_size") or []
    crop = (f"short side resized to {pre.get('resize')}, centre crop {size[0]}x{size[1]}"
            if pre.get("crop", True) and pre.get("resize") and len(size) == 2
            else f"whole image resized to {'x'.join(str(s) for s in size)}")
    return (f"{crop}; RGB/255 x {pre.get('scale')} in {pre.get('channel_order')} order, minus mean "
            f"{pre.get('mean')}, divided by std {pre.get('std')}")


def write_topk_page(out_dir, index, embed=False):
    """out_dir/index.html from render_topk's index: the facts, the sheets, per map its figure
    (each cell linked to its image) and table, and the skipped images. embed: figures inline."""
    n, sk = index["images_scanned"], index["images_skipped"]
    title = f"Top-{index['k']} activations of {index['layer']} ({index['model']})"
    page = Page(title, out_dir, embed=embed)
    rf = index["receptive_field"]
    page.facts({
        "model": f"{index['model']} (architecture {index['architecture']}; weights sha256 "
                 f"{index['weights_sha256'][:16]}..., source file sha256 {index['source_sha256'][:16] or 'n/a'})",
        "layer": f"{index['layer']}, output {'x'.join(map(str, index['layer_shape']))} (maps x height x width)",
        "feature maps shown": f"{len(index['maps'])}: {_ranges(index['maps'])}",
        "k (units kept per map)": f"{index['k']}, one unit per image per map (each image's strongest unit "
                                  f"in the map; ties: first in row-major order, then the earlier image)",
        "images scanned": f"{n}" + (f" ({sk} skipped: see the list at the end)" if sk else ""),
        "projection": f"{index['projection']['mode']} (Zeiler & Fergus Sec. 2.1: unpool with switches, rectify, "
                      f"transposed filters; LRN layers: {index['projection']['lrn']}), each from one unit with "
                      f"every other activation of the layer set to zero",
        "preprocessing": _describe_preprocessing(index["preprocessing"]),
        "patches": f"the unit's receptive field, {rf['size'][0]}x{rf['size'][1]} input pixels at stride "
                   f"{rf['stride'][0]} (offset {rf['offset'][0]}), clipped at the image border; cells "
                   f"resized to {index['cell']} px",
        "rendering": "projection cut to the same box, shown centred on mid-grey (zero), scaled so that "
                     + (f"the {index['percentile']}th percentile of its magnitudes in the box is full contrast"
                        if index["percentile"] is not None else "its largest magnitude is full contrast")
                     + "; patch and projection both in the network's view of the image (after resize and crop)",
        "scan time": f"{index['scan_seconds']:.1f} s",
    })
    page.paragraph(
        "Each block: the projections of the map's top units into pixel space (left) and the image patches "
        "they came from (right), strongest top-left, row-major. Click a cell for the image it came from; "
        "hover for its unit and value.", cls="note")
    if index["sheets"]:
        page.heading("All maps", 2)
        for s in index["sheets"]:
            page.figure(s, f"{index['layer']}: {len(index['maps'])} maps tiled, each labelled with its index "
                           f"(sheet {s})", alt=f"top-{index['k']} sheet {s}")
    page.heading("Per map", 2)
    for e in index["results"]:
        links = []
        rows = []
        for c in e["cells"]:
            desc = (f"map {e['map']}, rank {c['rank'] + 1}: {Path(c['path']).name}, unit (y={c['y']}, x={c['x']}), "
                    f"value {c['value']:.6g}, box rows {c['box'][0]}:{c['box'][1]} cols {c['box'][2]}:{c['box'][3]}")
            for y, x, h, w in (c["projection_cell"], c["patch_cell"]):
                links.append(Link((y, y + h, x, x + w), c["input_png"], desc))
            rows.append([c["rank"] + 1, Cell(Path(c["path"]).name, c["input_png"], c["path"]), c["y"], c["x"],
                         f"{c['value']:.6g}", f"{c['box'][0]}:{c['box'][1]}, {c['box'][2]}:{c['box'][3]}"])
        kept = len(e["cells"])
        page.figure(e["png"], f"Map {e['map']} of {index['layer']}: its {kept} strongest units over {n} images "
                              f"(values {_value_range(e['cells'])}); left: {index['projection']['mode']} "
                              f"projections, right: receptive-field patches.",
                    links=links, anchor=f"map{e['map']}", alt=f"map {e['map']}")
        page.table(["rank", "image", "y", "x", "value", "box (rows, cols)"], rows)
    if index["skipped"]:
        page.heading("Skipped images", 2)
        page.table(["image", "reason"], [[s["path"], s["reason"]] for s in index["skipped"]])
    page.write(Path(out_dir) / "index.html")


def _value_range(cells):
    if not cells:
        return "none"
    return f"{cells[0]['value']:.4g} down to {cells[-1]['value']:.4g}"


def _ranges(maps):
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    out, start = [], None
    for a, b in zip(maps, maps[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            out.append(str(start) if start == a else f"{start}-{a}")
            start = None
    return ", ".join(out)


def write_layers_page(out_dir, layers, embed=False):
    """out_dir/index.html for a scan of several layers, as the paper's Fig. 2 shows them: the
    layers one after another, each with its sheets and a link to its own page.

    layers: [(subfolder name, render_topk's index of that layer)], in network order."""
    first = layers[0][1]
    page = Page(f"Top-{first['k']} activations of {len(layers)} layers ({first['model']})", out_dir, embed=embed)
    page.facts({
        "model": f"{first['model']} (architecture {first['architecture']})",
        "layers": ", ".join(index["layer"] for _, index in layers),
        "images scanned": f"{first['images_scanned']}" + (f" ({first['images_skipped']} skipped)"
                                                           if first["images_skipped"] else ""),
        "scan": "one forward pass per image serves every layer",
    })
    for sub, index in layers:
        page.heading(f"{index['layer']}: {len(index['maps'])} maps", 2, anchor=sub)
        page.table(["layer page", "output (maps x height x width)", "receptive field"],
                   [[Cell("index.html", f"{sub}/index.html", f"every map of {index['layer']}"),
                     "x".join(map(str, index["layer_shape"])), f"{index['receptive_field']['size'][0]} px"]])
        for s in index["sheets"]:
            page.figure(f"{sub}/{s}", f"{index['layer']}: top-{index['k']} of each map (sheet {s})",
                        alt=f"{index['layer']} sheet {s}")
    page.write(Path(out_dir) / "index.html")
