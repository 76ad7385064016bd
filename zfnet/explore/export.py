"""The static export: the browsing part of the explorer (model, maps, top-k cells in the chosen
modes) as plain files that any web server, or a plain file:// open, can show.

    export_site(Explorer(net, scans=["top9/"]), "site/", modes=("deconvnet", "guided"))

SITE/index.html is the live page with one more script, data.js, which sets window.ZFNET_DATA to
the answers the API would give (the same JSON), with image URLs pointing at files under img/.
No fetch() is needed (browsers refuse it from file://), so the page works from a disk, a USB key or
any static host. Every file is written atomically.
"""
import json
import re
from pathlib import Path

from zfnet.atomic import write_bytes, write_text
from zfnet.explore.app import STATIC
from zfnet.explore.units import check_mode


def _slug(i, layer):
    return f"{i}_" + re.sub(r"[^A-Za-z0-9_.-]", "_", layer)


def _export_layer(ex, out, i, layer, modes, progress):
    """Write one scanned layer's pictures; return its (maps answer, {map: {mode: topk answer}})."""
    s = ex.scan(layer)
    d = f"img/{_slug(i, layer)}"
    maps, topk = [], {}
    for m in ex.layer_maps(layer):
        thumb = f"{d}/map{m['map']:05d}.png"
        write_bytes(out / thumb, ex.thumb_png(layer, m["map"]))
        maps.append({**m, "thumb": thumb})
        topk[m["map"]] = {}
        for mode in modes:
            cells = []
            for c in ex.topk(layer, m["map"], mode):
                stem = f"{d}/map{m['map']:05d}_r{c['rank']}"
                proj, patch = f"{stem}_{mode}.png", f"{stem}_patch.png"
                write_bytes(out / proj, ex.cell_png(layer, m["map"], c["rank"], mode, "projection"))
                write_bytes(out / patch, ex.cell_png(layer, m["map"], c["rank"], mode, "patch"))
                cells.append({k: v for k, v in c.items() if k != "input_png"} | {"projection": proj, "patch": patch})
            topk[m["map"]][mode] = {"layer": layer, "map": m["map"], "mode": mode, "cells": cells}
        if progress is not None:
            progress(1)
    return {"layer": layer, "mode": s.mode, "k": s.k, "maps": maps}, topk


def export_site(ex, out_dir, modes=None, progress=None):
    """Write the site into out_dir; modes: the projection modes to include (default: each scan's own).

    progress: called with 1 after each map. Returns the path of index.html.
    """
    out = Path(out_dir)
    model = {**ex.model(), "filters": None, "static": True}
    if ex.has_filters():
        write_bytes(out / "img/filters.png", ex.filters_png())
        model["filters"] = "img/filters.png"
    data = {"model": model, "maps": {}, "topk": {}}
    for i, layer in enumerate(ex.scans):
        layer_modes = [check_mode(m) for m in (modes or [ex.scans[layer].mode])]
        data["maps"][layer], data["topk"][layer] = _export_layer(ex, out, i, layer, layer_modes, progress)
    write_text(out / "data.js", "window.ZFNET_DATA = " + json.dumps(data) + ";\n")
    for name in ("app.js", "style.css"):
        write_text(out / "static" / name, (STATIC / name).read_text())
    page = (STATIC / "index.html").read_text().replace("<!--ZFNET-DATA-->", '<script src="data.js"></script>')
    write_text(out / "index.html", page)
    return out / "index.html"
