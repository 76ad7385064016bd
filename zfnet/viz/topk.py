"""Fig. 2 of Zeiler & Fergus on any image collection: the top-k activations of feature maps,
each as its deconvnet projection beside the image patch it came from.

Shape legend: M = chosen feature maps, k = units kept per map, H, W = the network's input size,
(h, w) = a unit's receptive-field box clipped to the input.

This module renders what a scan found (zfnet.viz.scan: stream the collection once, keep per map
the k strongest units, one per image; the rules are in zfnet.viz.summary). Two steps, each
usable on its own:

1. ``project_topk``: for each kept unit, its deconvnet projection (3, H, W) and its
   receptive-field box; images are visited one at a time and every unit of that image is
   projected from one forward pass (grouping by image), so the cost is one forward per image
   holding a kept unit plus one cropped walk down per unit;
2. ``render_topk``: the paper's layout. Per map a block [k projections | k patches], each a
   sqrt(k) x sqrt(k) grid (3x3 for k = 9), the strongest top-left, row-major; the blocks tiled
   into sheets per layer; plus a JSON index and a self-contained HTML page (zfnet.viz.topk_page).

What a cell shows. The unit (y, x) of a layer sees the input box

    [o + y*s, o + y*s + r) x [o + x*s, o + x*s + r)     (r, s, o: zfnet.net.receptive)

clipped to the H x W input: the patch is that box of the network's input (the resized, cropped
image exactly as the network saw it, zfnet.image.to_display), and the projection is cut to the
same box (it is zero outside it) and normalised on its own (zfnet.deconv.render: mid-grey = 0).
Every cell shows the whole field at one scale: a box clipped by the border sits where it
belongs in a min(r, H) x min(r, W) frame, the part outside the image left light grey; the frame
is then resized to the cell size (nearest when enlarging, Lanczos when shrinking).
"""
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zfnet.atomic import atomic_write, save_png, write_json
from zfnet.deconv import Unit, cut, project, render
from zfnet.errors import ZFNetError
from zfnet.image import to_display
from zfnet.net.forward import forward
from zfnet.net.receptive import receptive_field
from zfnet.viz import grid
from zfnet.viz.scan import scan, scan_layers  # noqa: F401  (topk.scan: the scan behind the figures)
from zfnet.viz.scan_state import check_unchanged, check_weights
from zfnet.viz.shard import load_input
from zfnet.viz.topk_page import write_topk_page

__all__ = ["scan", "scan_layers", "TopUnit", "top_units", "units_by_image", "iter_projections", "project_image_units",
           "project_topk", "image_cells", "place_in_field", "unit_cells", "map_block", "render_topk", "topk_json", "layer_slug"]

UNITS_PER_CALL = 32   # projections computed per call to project (bounds the (K, 3, H, W) buffer)
# Projections are scaled so that this percentile of |p| in the box is full contrast: with the
# maximum, a handful of strong pixels leave the rest of a deep unit's projection invisible.
PERCENTILE = 99.5


@dataclass(frozen=True)
class TopUnit:
    """One kept unit: map, rank (0 = strongest), image index and path, position, value, boxes."""
    map: int
    rank: int
    image: int
    path: str
    y: int
    x: int
    value: float
    box: tuple        # (y0, y1, x0, x1) receptive field clipped to the input (half-open)
    field: tuple      # the same, unclipped (may reach outside the input)


def layer_slug(layer):
    """A file-name-safe form of a layer name: 'fire9/concat' -> 'fire9_concat'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", layer).strip("_") or "layer"


def top_units(state, arch):
    """Per chosen map, its kept units strongest first: [[TopUnit, ...], ...] (M lists)."""
    hw = arch.input_shape[1:]
    rf = receptive_field(arch, state.layer)
    out = []
    for j, m in enumerate(state.maps.tolist()):
        units = []
        for rank, (i, y, x, v) in enumerate(state.topk.entries(j)):
            field = rf.box(y, x)
            box = (max(field[0], 0), min(field[1], hw[0]), max(field[2], 0), min(field[3], hw[1]))
            units.append(TopUnit(m, rank, i, state.image_path(i), y, x, v, box, field))
        out.append(units)
    return out


def iter_projections(net, x, layer, units, mode="deconvnet", lrn="identity"):
    """Yield (unit, projection (3, H, W)) for units (TopUnits of one image), in order.

    x: (1, 3, H, W). One forward pass serves every unit; the walks down run UNITS_PER_CALL at a
    time, so at most that many projections are held. A unit whose value is 0 projects to zeros
    (the deconvnet is positively homogeneous in its seed) and is not walked. The forward pass
    must reproduce the scan's values (up to summation order): otherwise the image or the
    computation changed since the scan.
    """
    zero = np.zeros((3,) + x.shape[2:], np.float32)
    walk = [u for u in units if u.value != 0.0]
    fwd = forward(net, x, keep="all", upto=layer) if walk else None
    for u in walk:
        a = fwd.outputs[layer][0, u.map, u.y, u.x]
        if abs(float(a) - u.value) > 1e-3 * max(1.0, abs(u.value)):
            raise ZFNetError(
                f"{u.path}: unit ({u.map}, {u.y}, {u.x}) of {layer} is now {a:.6g}, the scan saw "
                f"{u.value:.6g}; the image or the computation changed since the scan: rescan with --restart"
            )
    done = {}
    for c in range(0, len(walk), UNITS_PER_CALL):
        chunk = walk[c:c + UNITS_PER_CALL]
        p = project(net, x, layer, [Unit(0, u.map, u.y, u.x) for u in chunk], mode=mode, lrn=lrn,
                    crop=True, forward_result=fwd)                                    # (K', 3, H, W)
        done.update((id(u), p[k]) for k, u in enumerate(chunk))
        # hand out, in order, everything that is ready (zero units need no walk)
        while units and (units[0].value == 0.0 or id(units[0]) in done):
            u, units = units[0], units[1:]
            yield u, done.pop(id(u), zero)
    for u in units:
        yield u, done.pop(id(u), zero)


def project_image_units(net, x, layer, units, mode="deconvnet", lrn="identity"):
    """Projections (K, 3, H, W) of units (TopUnits of one image) from one forward pass."""
    out = np.zeros((len(units), 3) + x.shape[2:], np.float32)                        # (K, 3, H, W)
    for k, (_, p) in enumerate(iter_projections(net, x, layer, list(units), mode, lrn)):
        out[k] = p
    return out


def units_by_image(state, arch):
    """{image index: [TopUnit, ...]} over every chosen map, images in scan order."""
    by_image = {}
    for units in top_units(state, arch):
        for u in units:
            by_image.setdefault(u.image, []).append(u)
    return dict(sorted(by_image.items()))


def project_topk(net, state, mode="deconvnet", lrn="identity", load=load_input):
    """Yield, image by image, (image index, x (3, H, W), units, projections (K, 3, H, W)).

    Every kept unit of an image is projected from one forward pass of that image; the arrays
    for one image at a time are all that is held.
    """
    check_weights(net, state)
    crop = bool(state.preprocessing.get("crop", True))
    for i, units in units_by_image(state, net.arch).items():
        check_unchanged(state, i)
        x = np.ascontiguousarray(load(state.image_path(i), net.meta, crop)[None], dtype=np.float32)
        yield i, x[0], units, project_image_units(net, x, state.layer, units, mode, lrn)


def place_in_field(img, unit, hw):
    """Place a clipped box's pixels (h, w, 3) where they belong in the unit's whole field (capped
    at the input size hw = (H, W)): the part outside the image is left light grey."""
    fh = min(unit.field[1] - unit.field[0], hw[0])
    fw = min(unit.field[3] - unit.field[2], hw[1])
    h, w = img.shape[:2]
    oy = min(unit.box[0] - unit.field[0], fh - h)
    ox = min(unit.box[2] - unit.field[2], fw - w)
    return grid.place(img, (fh, fw), (oy, ox))


def unit_cells(x_display, projection, unit, meta, cell, percentile=PERCENTILE):
    """(projection cell, patch cell), each (cell, cell, 3) uint8, for one unit.

    x_display: (H, W, 3) uint8, the input as the network saw it; projection: (3, H, W).
    percentile: the projection is scaled so this percentile of its magnitudes (in the box) is
    full contrast (None: its maximum).
    """
    y0, y1, x0, x1 = unit.box
    hw = x_display.shape[:2]
    proj = render(np.ascontiguousarray(projection[:, y0:y1, x0:x1]), meta, percentile)  # (h, w, 3)
    patch = cut(x_display, unit.box)                                                  # (h, w, 3)
    return (grid.fit(place_in_field(proj, unit, hw), cell), grid.fit(place_in_field(patch, unit, hw), cell))


def block_geometry(k, cell, gap=2, between=10):
    """Layout of one map's block: (rows, cols, block (h, w), [(y, x) of each projection cell],
    [(y, x) of each patch cell])."""
    rows, cols = grid.grid_shape(k)
    gh, gw = rows * cell + (rows - 1) * gap, cols * cell + (cols - 1) * gap
    proj = [grid.cell_origin(i, (cell, cell), cols, gap) for i in range(k)]
    patch = [(y, x + gw + between) for y, x in proj]
    return rows, cols, (gh, 2 * gw + between), proj, patch


def map_block(proj_cells, patch_cells, k, cell, gap=2, between=10):
    """The paper's block for one map: [k projections | k patches] -> (h, w, 3) uint8.

    proj_cells, patch_cells: up to k (cell, cell, 3) images, strongest first; missing ones
    (fewer than k images scanned) are left EMPTY.
    """
    rows, cols, _, _, _ = block_geometry(k, cell, gap, between)
    filler = grid.blank(cell, cell, grid.EMPTY)
    left = grid.tile(list(proj_cells) or [filler], ncols=cols, gap=gap, n=k)
    right = grid.tile(list(patch_cells) or [filler], ncols=cols, gap=gap, n=k)
    return grid.hstack([left, right], gap=between)


def _label(img, text, height=14):
    """img with a one-line caption strip above it (PIL's built-in bitmap font)."""
    from PIL import Image, ImageDraw
    out = grid.blank(img.shape[0] + height, img.shape[1], grid.BACKGROUND)
    out[height:] = img
    pil = Image.fromarray(out)
    ImageDraw.Draw(pil).text((1, 1), text, fill=(0, 0, 0))
    return np.asarray(pil)


def sheets(blocks, labels, per_sheet=48, ncols=4, gap=12):
    """Tile labelled map blocks into sheets of at most `per_sheet` maps: [(H, W, 3) uint8]."""
    labelled = [_label(b, t) for b, t in zip(blocks, labels)]
    return [grid.tile(labelled[i:i + per_sheet], ncols=min(ncols, len(labelled[i:i + per_sheet])), gap=gap)
            for i in range(0, len(labelled), per_sheet)]


def topk_json(state, short_paths=False):
    """Per map, the kept entries strongest first: {"maps": {"7": [{image, y, x, value}, ...]}}."""
    def name(i):
        p = state.image_path(i)
        return Path(p).name if short_paths else p
    return {
        "model": state.model, "layer": state.layer, "k": state.k,
        "images_scanned": len(state.images), "images_skipped": len(state.skipped),
        "maps": {str(m): [{"image": name(i), "y": y, "x": x, "value": v} for i, y, x, v in state.topk.entries(j)]
                 for j, m in enumerate(state.maps.tolist())},
    }


CELL_CACHE = "cells"


def _cell_tag(state, i, mode, lrn, cell, percentile):
    """What a cached cell depends on: the image file, the weights, the layer and the rendering."""
    rec = state.images[i]
    return json.dumps({"path": rec["path"], "size": rec["size"], "mtime_ns": rec["mtime_ns"],
                       "weights_sha256": state.weights_sha256, "layer": state.layer, "mode": mode,
                       "lrn": lrn, "cell": cell, "percentile": percentile,
                       "preprocessing": state.preprocessing}, sort_keys=True)


def _read_cells(path, tag):
    """{(map, y, x): (projection cell, patch cell)} saved for one image, if made the same way."""
    try:
        with np.load(path) as z:
            if str(z["tag"]) != tag:
                return {}
            return {tuple(int(v) for v in key): (p, q) for key, p, q in zip(z["keys"], z["proj"], z["patch"])}
    except (OSError, KeyError, ValueError, EOFError):
        return {}   # missing or damaged: recompute


def _write_cells(path, tag, cells):
    keys = sorted(cells)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, tag=np.array(tag), keys=np.array(keys, np.int64).reshape(-1, 3),
                 proj=np.stack([cells[key][0] for key in keys]), patch=np.stack([cells[key][1] for key in keys]))


def image_cells(net, path, layer, units, crop, mode, lrn, cell, percentile, load=load_input):
    """(shown (H, W, 3) uint8, {(map, y, x): (projection cell, patch cell)}) for units (TopUnits
    of the image at path): one forward pass, the projections, the cells. Pure: a render on a
    Dask cluster runs it as one task per image (zfnet.viz.scan_dask.map_images)."""
    x = np.ascontiguousarray(load(path, net.meta, crop)[None], dtype=np.float32)   # (1, 3, H, W)
    shown = to_display(x[0], net.meta)                                               # (H, W, 3) uint8
    cells = {(u.map, u.y, u.x): unit_cells(shown, p, u, net.meta, cell, percentile)
             for u, p in iter_projections(net, x, layer, list(units), mode, lrn)}    # p: (3, H, W)
    return shown, cells


def _cached_cells(state, by_image, out_dir, inputs, tag_args):
    """({image: cached cells}, [(image, units to compute)]): what the cell cache (out_dir/cells/
    img<i>.npz) already holds, and what is left. The cache makes rendering resumable after a
    crash, and makes a re-render after an extended scan project only the units new in the top-k."""
    cached, jobs = {}, []
    for i, units in by_image.items():
        cached[i] = _read_cells(Path(out_dir) / CELL_CACHE / f"img{i:06d}.npz", _cell_tag(state, i, *tag_args))
        missing = [u for u in units if (u.map, u.y, u.x) not in cached[i]]
        if missing or not (Path(out_dir) / inputs[i]).exists():
            check_unchanged(state, i)
            jobs.append((i, missing))
    return cached, jobs


def _computed_cells(net, state, jobs, mode, lrn, cell, percentile, load, client):
    """Yield (image, shown, cells) for jobs [(image, units)]: here, or one task per image on a
    Dask cluster (client)."""
    crop = bool(state.preprocessing.get("crop", True))
    args = [(state.image_path(i), state.layer, units, crop, mode, lrn, cell, percentile, load) for i, units in jobs]
    if client is None:
        results = ((j, image_cells(net, *a)) for j, a in enumerate(args))
    else:
        from zfnet.viz.scan_dask import map_images
        results = map_images(client, image_cells, net, args)
    for j, (shown, cells) in results:
        yield jobs[j][0], shown, cells


def render_topk(net, state, out_dir, mode="deconvnet", lrn="identity", cell=80, percentile=PERCENTILE,
                load=load_input, progress=None, maps_per_sheet=48, sheet_columns=4, embed=False, client=None):
    """Compute every kept unit's projection and patch; write the figures, index.json and index.html.

    Files in out_dir (all written atomically):
      maps/<layer>_map<m>.png   one block per map: k projections | k patches (strongest top-left)
      topk_<layer>.png          the blocks tiled (topk_<layer>_002.png ... past maps_per_sheet maps)
      inputs/img<i>.png         each image that holds a kept unit, as the network saw it
      cells/img<i>.npz          the rendered cells of that image's units (a cache: see _cells_of_image)
      index.json                what was computed and, per map, every cell's unit and position
      index.html                the page: captions, the figures, each cell linked to its image
    progress: called with 1 after each image (the images holding kept units).
    client: a dask.distributed Client: the projections are computed on its workers, one task
    per image holding a kept unit; the figures are drawn here.
    Returns the index dict.
    """
    out_dir = Path(out_dir)
    check_weights(net, state)
    units = top_units(state, net.arch)
    j_of = {m: j for j, m in enumerate(state.maps.tolist())}
    proj_cells = [[None] * len(u) for u in units]
    patch_cells = [[None] * len(u) for u in units]
    by_image = units_by_image(state, net.arch)
    inputs = {i: f"inputs/img{i:06d}.png" for i in by_image}
    tag_args = (mode, lrn, cell, percentile)
    cached, jobs = _cached_cells(state, by_image, out_dir, inputs, tag_args)
    computed = _computed_cells(net, state, jobs, mode, lrn, cell, percentile, load, client)
    ready = [(i, None, {}) for i in by_image if i not in {j for j, _ in jobs}]
    for i, shown, cells in itertools.chain(ready, computed):
        cells = {**cached[i], **cells}
        if shown is not None:
            save_png(out_dir / inputs[i], shown)
            key = [(u.map, u.y, u.x) for u in by_image[i]]
            _write_cells(out_dir / CELL_CACHE / f"img{i:06d}.npz", _cell_tag(state, i, *tag_args),
                         {c: cells[c] for c in key})
        for u in by_image[i]:
            proj_cells[j_of[u.map]][u.rank], patch_cells[j_of[u.map]][u.rank] = cells[(u.map, u.y, u.x)]
        if progress is not None:
            progress(1)
    entries, sheet_files = _write_figures(out_dir, state, units, proj_cells, patch_cells, inputs, cell,
                                          maps_per_sheet, sheet_columns)
    _remove_stale(out_dir, layer_slug(state.layer), sheet_files, {e["png"] for e in entries})
    rows, cols, block_hw, _, _ = block_geometry(state.k, cell)
    rf = receptive_field(net.arch, state.layer)
    info = {
        "model": state.model, "architecture": net.arch.name, "source_sha256": state.source_sha256,
        "weights_sha256": state.weights_sha256, "layer": state.layer, "layer_shape": list(state.layer_shape),
        "maps": state.maps.tolist(), "k": state.k, "images_scanned": len(state.images),
        "images_skipped": len(state.skipped), "skipped": state.skipped, "scan_seconds": state.seconds,
        "projection": {"mode": mode, "lrn": lrn}, "preprocessing": state.preprocessing,
        "receptive_field": {"size": list(rf.size), "stride": list(rf.stride), "offset": list(rf.offset)},
        "input_size": list(net.arch.input_shape[1:]), "cell": cell, "percentile": percentile,
        "block_size": list(block_hw), "sheets": sheet_files,
        "layout": f"per map: {rows}x{cols} projections (left) and {rows}x{cols} patches (right), "
                  f"strongest first in row-major order",
    }
    index = {**info, "results": entries}
    write_json(out_dir / "index.json", index)
    write_topk_page(out_dir, index, embed)
    return index


def _write_figures(out_dir, state, units, proj_cells, patch_cells, inputs, cell, maps_per_sheet, sheet_columns):
    """One block per map, tiled into sheets of maps_per_sheet maps (one sheet in memory at a
    time; each map's cells are dropped once drawn). Returns (index entries, sheet file names)."""
    k, slug, maps = state.k, layer_slug(state.layer), state.maps.tolist()
    _, _, _, proj_xy, patch_xy = block_geometry(k, cell)
    entries, sheet_files = [], []
    for s0 in range(0, len(maps), maps_per_sheet):
        blocks = []
        for j in range(s0, min(s0 + maps_per_sheet, len(maps))):
            m = maps[j]
            block = map_block(proj_cells[j], patch_cells[j], k, cell)
            proj_cells[j] = patch_cells[j] = None
            png = f"maps/{slug}_map{m:04d}.png"
            save_png(out_dir / png, block)
            blocks.append(block)
            cells = [{"rank": u.rank, "image": u.image, "path": u.path, "input_png": inputs[u.image],
                      "y": u.y, "x": u.x, "value": u.value, "box": list(u.box), "field": list(u.field),
                      "projection_cell": [*proj_xy[u.rank], cell, cell], "patch_cell": [*patch_xy[u.rank], cell, cell]}
                     for u in units[j]]
            entries.append({"map": m, "png": png, "cells": cells})
        # zero-padded, so that a folder listing shows the sheets in order (_002 before _010)
        name = f"topk_{slug}.png" if s0 == 0 else f"topk_{slug}_{s0 // maps_per_sheet + 1:03d}.png"
        (sheet,) = sheets(blocks, [f"map {m}" for m in maps[s0:s0 + len(blocks)]], per_sheet=len(blocks),
                          ncols=sheet_columns)
        save_png(out_dir / name, sheet)
        sheet_files.append(name)
    return entries, sheet_files


def _remove_stale(out_dir, slug, sheet_files, block_files):
    """Delete figures of this layer that an earlier render wrote and this one did not (more
    sheets, or maps no longer chosen), so the folder shows one consistent result."""
    for f in out_dir.glob(f"topk_{slug}_*.png"):
        if re.fullmatch(rf"topk_{re.escape(slug)}_\d+\.png", f.name) and f.name not in sheet_files:
            f.unlink()
    for f in (out_dir / "maps").glob(f"{slug}_map*.png"):
        if re.fullmatch(rf"{re.escape(slug)}_map\d+\.png", f.name) and f"maps/{f.name}" not in block_files:
            f.unlink()
