"""Feature evolution during training (Zeiler & Fergus, Section 4, "Feature Evolution during Training", Fig. 4).

For a set of images and a series of checkpoints of one network, each chosen feature map m of
layer L is shown at every checkpoint t by its strongest unit over all the images,

    (n*, y*, x*) = argmax_{n, y, x} h_L^t[n, m, y, x]        (ties: the first in (n, y, x) order)

projected down to the pixels with the deconvnet (every other unit of layer L set to zero) and
cropped to that unit's receptive field. Checkpoints become the columns of one grid, maps its rows.

The checkpoints must be one architecture: any file ``zfnet.weights.load_model`` reads (converted
safetensors or a foreign format), compared layer by layer; a mismatch is an error naming both.
The default maps are the ``count`` maps with the largest strongest activation at the last
checkpoint (the trained network), in decreasing order.

Shapes: x (N, 3, H, W) preprocessed images; M maps; T checkpoints.
"""
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.forward import forward


def load_checkpoints(paths, loader=None):
    """Load every checkpoint and check they share one architecture. -> list of Nets.

    loader: path -> Net (default ``zfnet.weights.load_model``).
    """
    if loader is None:
        from zfnet.weights import load_model as loader
    paths = [str(p) for p in paths]
    if not paths:
        raise ZFNetError("feature evolution needs at least one checkpoint")
    nets = [loader(p) for p in paths]
    check_same_architecture(nets, paths)
    return nets


def check_same_architecture(nets, names=None):
    """Raise ZFNetError unless every net has the first one's layers and parameter shapes."""
    names = list(names) if names else [f"checkpoint {i}" for i in range(len(nets))]
    first = nets[0].arch
    for net, name in zip(nets[1:], names[1:]):
        a = net.arch
        if a.layers != first.layers or a.param_shapes() != first.param_shapes():
            diff = next((f"layer {x.name!r} differs" for x, y in zip(first.layers, a.layers) if x != y),
                        f"{len(first.layers)} vs {len(a.layers)} layers")
            raise ZFNetError(
                f"checkpoints are of different architectures: {names[0]} is {first.name!r}, {name} is "
                f"{a.name!r} ({diff}); all checkpoints must be one network at different training steps"
            )


def _map_layer(net, layer):
    net.arch.layer(layer)
    shape = net.arch.shapes[layer]
    if len(shape) != 3:
        raise ZFNetError(f"layer {layer!r} has no feature maps (shape {shape}); pick a convolutional layer")
    return shape


def strongest_units(h, maps):
    """The strongest unit of each map over all images. h: (N, C, H', W') -> [(n, y, x, value)] per map."""
    out = []
    for m in maps:
        a = h[:, m]                                                       # (N, H', W')
        n, y, x = np.unravel_index(int(np.argmax(a)), a.shape)            # first maximum, row-major
        out.append((int(n), int(y), int(x), float(a[n, y, x])))
    return out


def default_maps(h, count=8):
    """The `count` maps with the largest strongest activation. h: (N, C, H', W') -> [m] (decreasing)."""
    peak = h.max(axis=(0, 2, 3))                                          # (C,)
    order = np.argsort(-peak, kind="stable")
    return [int(m) for m in order[:count]]


@dataclass
class EvolutionResult:
    layer: str
    maps: list                # M map indices (rows)
    checkpoints: list         # T labels (columns)
    units: list               # [M][T] (n, y, x, value): the strongest unit
    projections: np.ndarray   # (M, T, 3, H, W) float32 deconvnet projections of those units
    boxes: list               # [M][T] (y0, y1, x0, x1) receptive field of the unit, clipped, half-open

    def to_json(self, image_names=None):
        def img(n):
            return image_names[n] if image_names else n
        return {
            "layer": self.layer,
            "maps": self.maps,
            "checkpoints": self.checkpoints,
            "cells": [[{"map": m, "checkpoint": c, "image": img(u[0]), "image_index": u[0], "y": u[1], "x": u[2],
                        "activation": u[3], "receptive_field": list(b)}
                       for c, u, b in zip(self.checkpoints, row_u, row_b)]
                      for m, row_u, row_b in zip(self.maps, self.units, self.boxes)],
        }


def feature_evolution(nets, x, layer, maps=None, count=8, labels=None, mode="deconvnet", progress=False):
    """Fig. 4's grid as numbers: for each checkpoint and map, the strongest unit and its projection.

    nets: T checkpoints of one architecture; x: (N, 3, H, W) preprocessed images; layer: tensor name;
    maps: map indices (default ``default_maps`` at the last checkpoint). Returns an EvolutionResult.
    """
    from tqdm import tqdm

    from zfnet.deconv import DeadMapWarning, Unit, project
    from zfnet.kernels import check_array
    from zfnet.net.receptive import unit_box
    check_array(x, "x", 4)
    check_same_architecture(nets, labels)
    shape = _map_layer(nets[0], layer)
    labels = list(labels) if labels else [f"checkpoint {i}" for i in range(len(nets))]
    if maps is not None:
        maps = [int(m) for m in maps]
        bad = [m for m in maps if not 0 <= m < shape[0]]
        if bad:
            raise ZFNetError(f"layer {layer!r} has maps 0..{shape[0] - 1}; got {bad}")
    h, w = x.shape[2:]
    cells = {}
    bar = tqdm(total=len(nets), disable=not progress, file=sys.stderr, desc="evolution", unit="checkpoint",
               leave=False)
    try:
        # The last checkpoint first: it chooses the default maps.
        for t in reversed(range(len(nets))):
            net = nets[t]
            fwd = forward(net, x, keep="all", upto=layer)                  # switches + activations below `layer`
            a = fwd[layer]                                                 # (N, C, H', W')
            if maps is None:
                maps = default_maps(a, count)
            found = strongest_units(a, maps)
            units = [Unit(n, m, y, xx) for m, (n, y, xx, _) in zip(maps, found)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeadMapWarning)            # a dead map projects to zeros
                p = project(net, x, layer, units, mode=mode, forward_result=fwd)   # (M, 3, H, W)
            for i, (m, u) in enumerate(zip(maps, found)):
                cells[i, t] = (u, unit_box(net.arch, layer, u[1], u[2], (h, w)), p[i])
            bar.update(1)
    finally:
        bar.close()
    units = [[cells[i, t][0] for t in range(len(nets))] for i in range(len(maps))]
    boxes = [[cells[i, t][1] for t in range(len(nets))] for i in range(len(maps))]
    proj = np.stack([np.stack([cells[i, t][2] for t in range(len(nets))]) for i in range(len(maps))])   # (M, T, 3, H, W)
    return EvolutionResult(layer=layer, maps=maps, checkpoints=labels, units=units, projections=proj, boxes=boxes)


# -- rendering -----------------------------------------------------------------------------------
def cell_images(result, meta, cell=96, percentile=99.5):
    """Every cell as pixels: the rendered projection (zfnet.deconv.render, scaled by its own
    `percentile`-th magnitude percentile so faint early projections stay visible), cut to the unit's
    receptive field and fitted into a cell x cell square. -> [M][T] (cell, cell, 3) uint8."""
    from zfnet.deconv import cut, render
    from zfnet.viz.grid import fit
    return [[fit(cut(render(result.projections[i, t], meta, percentile=percentile), result.boxes[i][t]), cell)
             for t in range(len(result.checkpoints))] for i in range(len(result.maps))]


def render_evolution(result, meta, cell=96, percentile=99.5):
    """Fig. 4 as one matplotlib Figure: rows = feature maps, columns = checkpoints."""
    from zfnet.viz.plotting import new_figure
    images = cell_images(result, meta, cell, percentile)
    m, t = len(result.maps), len(result.checkpoints)
    width, height = max(1.45 * t + 0.9, 3.6), 1.5 * m + 1.1
    fig = new_figure(width, height)
    axes = fig.subplots(m, t, squeeze=False)
    for i in range(m):
        for j in range(t):
            ax = axes[i][j]
            ax.imshow(images[i][j], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{result.units[i][j][3]:.3g}", fontsize=6, labelpad=1)
            if i == 0:
                ax.set_title(str(result.checkpoints[j]), fontsize=7)
            if j == 0:
                ax.set_ylabel(f"map {result.maps[i]}", fontsize=7)
    fig.suptitle(f"Feature evolution of {result.layer}\nstrongest projection per map (rows) and "
                 f"checkpoint (columns)\nnumber = its activation", fontsize=7)
    fig.subplots_adjust(left=0.6 / width + 0.02, right=0.99, top=1 - 0.85 / height, bottom=0.02,
                        wspace=0.08, hspace=0.3)
    return fig


def write_evolution(out_dir, result, meta, image_names, facts, stem="evolution"):
    """Write <stem>.png, <stem>.json and <stem>.html into out_dir; returns their paths."""
    from pathlib import Path

    from zfnet.atomic import write_json
    from zfnet.viz.html import Page
    from zfnet.viz.plotting import save_figure

    out = Path(out_dir)
    png, js, page_path = out / f"{stem}.png", out / f"{stem}.json", out / f"{stem}.html"
    save_figure(render_evolution(result, meta), png)
    write_json(js, {**facts, **result.to_json(image_names)})
    page = Page(f"Feature evolution: {result.layer}", out)
    page.facts({**facts, "layer": result.layer, "maps": ", ".join(map(str, result.maps)),
                "checkpoints": ", ".join(map(str, result.checkpoints)), "images": len(image_names),
                "numbers": js.name})
    page.paragraph(
        "For every checkpoint (column) and feature map (row): the unit with the largest activation "
        "over all the images, projected to the pixels with the deconvnet and cut to its receptive "
        "field (each cell scaled by its own 99.5th percentile of magnitude). The number under each cell is that activation (0: the map is dead at that checkpoint "
        "on these images, and the cell is flat grey).")
    page.figure(png.name, "Feature evolution (Zeiler & Fergus Fig. 4)")
    rows = [[f"map {m}"] + [f"{image_names[u[0]]} ({u[1]}, {u[2]}): {u[3]:.4g}" for u in us]
            for m, us in zip(result.maps, result.units)]
    page.table(["map"] + [str(c) for c in result.checkpoints], rows)
    page.write(page_path)
    return png, js, page_path
