"""Occlusion sensitivity (Zeiler & Fergus, Section 4.2, Fig. 7).

A grey square is slid over the image; for every position the network is run again and three
things are recorded:

    (b) the total activation of one feature map m of layer L:  a(p) = sum_{y,x} h_L[m, y, x](x_p)
    (d) the probability of one class C:                        P(C | x_p)
    (e) the most probable class:                               argmax_k P(k | x_p)

where x_p is the input with the square at position p. The map m is chosen once, on the
unoccluded image: the map of layer L with the largest total activation ("the strongest feature
map"). Panel (c) projects that map's strongest unit down to the pixels with the deconvnet, for
the unoccluded image and for three square positions.

The grey square is the model's mean colour. It is applied in the preprocessed input, where the
mean has already been subtracted, so the square is exactly zero there:

    x_p[:, y0:y0+s, x0:x0+s] = 0        (every channel; = the mean colour in pixel space)

Positions: the square (side s, in input pixels) lies wholly inside the H x W input; its top-left
corner runs over y0 = 0, stride, 2*stride, ... <= H - s (likewise x0), giving an (NY, NX) grid of
positions. Cell (i, j) of every map belongs to the square with top-left (ys[i], xs[j]); the figure
draws the cell centred on the square's centre.

Shapes: x (3, H, W) one preprocessed image; P = NY * NX positions; K classes.
"""
import sys
from dataclasses import dataclass, field

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.forward import forward
from zfnet.viz.choose import target_class


# -- positions and the occluder ------------------------------------------------------------------
def square_positions(hw, size, stride):
    """Top-left corners of the squares: ys (NY,), xs (NX,) with y0 + size <= H, x0 + size <= W."""
    h, w = int(hw[0]), int(hw[1])
    size, stride = int(size), int(stride)
    if size < 1 or stride < 1:
        raise ZFNetError(f"occlusion square size and stride must be >= 1, got size {size}, stride {stride}")
    if size > min(h, w):
        raise ZFNetError(f"occlusion square of {size} px does not fit in the {h}x{w} network input")
    ys = np.arange(0, h - size + 1, stride)   # (NY,)
    xs = np.arange(0, w - size + 1, stride)   # (NX,)
    return ys, xs


def occlude(x, boxes, fill=0.0):
    """Copies of one image, each with one box set to `fill` in every channel.

    x: (C, H, W); boxes: [(y0, y1, x0, x1)] half-open -> (P, C, H, W) float32.
    """
    out = np.repeat(x[None], len(boxes), axis=0)   # (P, C, H, W)
    for p, (y0, y1, x0, x1) in enumerate(boxes):
        out[p, :, y0:y1, x0:x1] = fill
    return out


def strongest_feature_map(h):
    """The feature map with the largest total activation. h: (C, H', W') or (C,) -> index m.

    m = argmax_c sum_{y,x} h[c, y, x]   (ties: the lowest index).
    """
    totals = h.reshape(h.shape[0], -1).sum(axis=1, dtype=np.float64)   # (C,)
    return int(np.argmax(totals))


def check_classifier(net):
    """The network must end in one probability per class, (K,) per image."""
    shape = net.arch.shapes[net.arch.output]
    if len(shape) != 1 or net.arch.layer(net.arch.output).op != "softmax":
        raise ZFNetError(
            f"network {net.arch.name!r} ends in {net.arch.output!r} of shape {shape}, not in class "
            f"probabilities (a softmax over K classes); these analyses need a classifier"
        )
    return shape[0]


def default_layer(arch):
    """The last convolution's rectified output (its ReLU when one reads it directly), else the conv."""
    convs = [layer for layer in arch.layers if layer.op == "conv"]
    if not convs:
        raise ZFNetError(f"architecture {arch.name!r} has no convolution layer; pass a layer explicitly")
    last = convs[-1].name
    relus = [c for c in arch.consumers(last) if c.op == "relu"]
    return relus[0].name if relus else last


# -- the analysis --------------------------------------------------------------------------------
@dataclass
class OcclusionResult:
    """Everything behind Fig. 7, as numbers. Maps are (NY, NX), cell (i, j) = square at (ys[i], xs[j])."""
    layer: str
    feature_map: int            # m: strongest map of `layer` on the unoccluded image
    target: int                 # C: the class whose probability is mapped
    size: int
    stride: int
    input_hw: tuple
    ys: np.ndarray              # (NY,) top edges of the squares
    xs: np.ndarray              # (NX,) left edges
    activation: np.ndarray      # (NY, NX) total activation of map m
    probability: np.ndarray     # (NY, NX) P(C | x_p)
    top_class: np.ndarray       # (NY, NX) argmax_k P(k | x_p)
    top_probability: np.ndarray  # (NY, NX) max_k P(k | x_p)
    base_activation: float      # total activation of map m, unoccluded
    base_probabilities: np.ndarray  # (K,) P(k | x), unoccluded
    map_totals: np.ndarray = field(repr=False, default=None)  # (C,) total activation of every map, unoccluded

    @property
    def grid(self):
        return len(self.ys), len(self.xs)

    def square(self, i, j):
        """The square of cell (i, j) in input pixels, half-open: (y0, y1, x0, x1)."""
        y0, x0 = int(self.ys[i]), int(self.xs[j])
        return y0, y0 + self.size, x0, x0 + self.size

    def centre(self, i, j):
        """The square's centre (y, x) in input pixel coordinates (pixel k covers [k, k+1))."""
        y0, y1, x0, x1 = self.square(i, j)
        return (y0 + y1) / 2.0, (x0 + x1) / 2.0

    def map_extent(self):
        """(left, right, bottom, top) for imshow: cell (i, j) is drawn centred on square (i, j)."""
        half = self.size / 2.0
        s = self.stride / 2.0
        return (self.xs[0] + half - s, self.xs[-1] + half + s,
                self.ys[-1] + half + s, self.ys[0] + half - s)

    def example_cells(self):
        """Three cells for panel (c): the lowest, the median and the highest total activation."""
        order = np.argsort(self.activation, axis=None, kind="stable")
        picks = [order[0], order[len(order) // 2], order[-1]]
        return [tuple(int(v) for v in np.unravel_index(p, self.activation.shape)) for p in picks]

    def to_json(self, labels=None):
        """The numbers behind the figure, JSON-ready."""
        def name(k):
            return labels[k] if labels else None
        classes = sorted({int(k) for k in np.unique(self.top_class)})
        return {
            "layer": self.layer,
            "feature_map": self.feature_map,
            "target_class": {"index": self.target, "name": name(self.target)},
            "square": {"size": self.size, "stride": self.stride, "fill": "model mean colour (0 after preprocessing)"},
            "input_hw": list(self.input_hw),
            "ys": [int(v) for v in self.ys],
            "xs": [int(v) for v in self.xs],
            "unoccluded": {
                "total_activation": self.base_activation,
                "target_probability": float(self.base_probabilities[self.target]),
                "top_class": int(np.argmax(self.base_probabilities)),
                "top_class_name": name(int(np.argmax(self.base_probabilities))),
                "top_probability": float(np.max(self.base_probabilities)),
            },
            "total_activation": self.activation.tolist(),
            "target_probability": self.probability.tolist(),
            "top_class": self.top_class.tolist(),
            "top_probability": self.top_probability.tolist(),
            "classes_seen": [{"index": k, "name": name(k), "cells": int((self.top_class == k).sum())}
                             for k in classes],
            "example_cells": [list(c) for c in self.example_cells()],
        }


def _progress(total, enabled, desc):
    from tqdm import tqdm
    return tqdm(total=total, disable=not enabled, file=sys.stderr, desc=desc, unit="img", leave=False)


def occlusion_maps(net, x, layer=None, target=None, size=48, stride=8, batch_size=16, progress=False):
    """Slide the grey square over one image and record Fig. 7's maps.

    net: a Net ending in class probabilities (K,); x: (3, H, W) preprocessed image;
    layer: tensor name (default: ``default_layer``); target: class index (default: top-1 of x).
    Positions are run through the network `batch_size` at a time. Returns an OcclusionResult.
    """
    from zfnet.kernels import check_array
    check_array(x, "x", 3)
    if int(batch_size) < 1:
        raise ZFNetError(f"batch_size must be >= 1, got {batch_size}")
    layer = layer or default_layer(net.arch)
    net.arch.layer(layer)                       # unknown layer -> ZFNetError listing the layers
    if len(net.arch.shapes[layer]) != 3:
        raise ZFNetError(f"layer {layer!r} has no feature maps (shape {net.arch.shapes[layer]}); "
                         f"pick a convolutional layer")
    check_classifier(net)
    h, w = x.shape[1:]
    ys, xs = square_positions((h, w), size, stride)

    # The unoccluded image: the strongest map m and the default class.
    base = forward(net, x[None], keep=[layer], switches=False)
    feat = base[layer][0]                                                  # (C, H', W')
    map_totals = feat.reshape(feat.shape[0], -1).sum(axis=1, dtype=np.float64)   # (C,)
    m = strongest_feature_map(feat)
    probs0 = base.output[0].astype(np.float64)                            # (K,)
    target = target_class(probs0, target)

    # Every square position, in batches.
    cells = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    act = np.zeros(len(cells))
    prob = np.zeros(len(cells))
    top = np.zeros(len(cells), dtype=np.int64)
    top_p = np.zeros(len(cells))
    bar = _progress(len(cells), progress, "occlusion")
    try:
        for start in range(0, len(cells), batch_size):
            chunk = cells[start:start + batch_size]
            boxes = [(ys[i], ys[i] + size, xs[j], xs[j] + size) for i, j in chunk]
            xp = occlude(x, boxes)                                         # (B, 3, H, W)
            r = forward(net, xp, keep=[layer], switches=False)
            a = r[layer][:, m].reshape(len(chunk), -1).sum(axis=1, dtype=np.float64)   # (B,)
            p = r.output.astype(np.float64)                                # (B, K)
            sl = slice(start, start + len(chunk))
            act[sl], prob[sl] = a, p[:, target]
            top[sl], top_p[sl] = p.argmax(axis=1), p.max(axis=1)
            bar.update(len(chunk))
    finally:
        bar.close()

    grid = (len(ys), len(xs))
    return OcclusionResult(
        layer=layer, feature_map=m, target=target, size=int(size), stride=int(stride), input_hw=(h, w),
        ys=ys, xs=xs, activation=act.reshape(grid), probability=prob.reshape(grid),
        top_class=top.reshape(grid), top_probability=top_p.reshape(grid),
        base_activation=float(map_totals[m]), base_probabilities=probs0, map_totals=map_totals,
    )


def occlusion_projections(net, x, result, cells=None, mode="deconvnet"):
    """Panel (c): the strongest map's top unit projected to the pixels, unoccluded and with the
    square at `cells` (as in the paper, the projection of the map's strongest activation).

    x: (3, H, W); cells: [(i, j)] (default ``result.example_cells()``).
    Returns (inputs (1 + Q, 3, H, W) the occluded inputs, unoccluded first; units [Unit] the
    strongest unit of map m in each; projections (1 + Q, 3, H, W)).
    """
    from zfnet.deconv import project, strongest_unit
    cells = result.example_cells() if cells is None else list(cells)
    inputs = np.concatenate([x[None], occlude(x, [result.square(i, j) for i, j in cells])])   # (1+Q, 3, H, W)
    fwd = forward(net, inputs, keep="all", upto=result.layer)
    units = [strongest_unit(fwd[result.layer], k, result.feature_map) for k in range(len(inputs))]
    return inputs, units, project(net, inputs, result.layer, units, mode=mode, forward_result=fwd)


def projection_panels(net, x, result, percentile=99.5, mode="deconvnet"):
    """Panel (c) as pixels: ([(H, W, 3) uint8] projections, [(y0, y1, x0, x1)] receptive fields).

    Each projection is rendered by zfnet.deconv.render, scaled by its own `percentile`-th
    magnitude percentile (a few strong pixels saturate instead of leaving the rest invisible).
    """
    from zfnet.deconv import render
    from zfnet.net.receptive import unit_box
    _, units, projections = occlusion_projections(net, x, result, mode=mode)
    rendered = [render(p, net.meta, percentile=percentile) for p in projections]
    boxes = [unit_box(net.arch, result.layer, u.y, u.x, x.shape[1:]) for u in units]
    return rendered, boxes


# -- rendering -----------------------------------------------------------------------------------
def _frame(ax, result, title):
    """Input pixel coordinates on every panel, so a map cell sits where its square's centre is."""
    h, w = result.input_hw
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)


def _draw_squares(ax, result, which, colour="white"):
    """Outline the squares of cells [(number or None, (i, j))], numbered where a number is given."""
    from matplotlib.patches import Rectangle
    for n, (i, j) in which:
        y0, y1, x0, x1 = result.square(i, j)
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5,
                               gid=f"square-{i}-{j}"))
        if n is not None:
            ax.text(x0 + 2, y0 + 2, str(n), color=colour, fontsize=8, va="top", ha="left")


def _panel_input(fig, cell, result, image, name):
    """(a) the input with the three example squares."""
    h, w = result.input_hw
    ax = fig.add_subplot(cell)
    ax.imshow(image, extent=(0, w, h, 0), interpolation="nearest")
    _draw_squares(ax, result, [(n + 1, c) for n, c in enumerate(result.example_cells())], "yellow")
    p0 = result.base_probabilities
    _frame(ax, result, f"(a) input; top-1 {name(int(p0.argmax()))} {p0.max():.2f}")


def _panel_activation(fig, cell, result):
    """(b) total activation of the strongest map, per square position."""
    ax = fig.add_subplot(cell)
    im = ax.imshow(result.activation, extent=result.map_extent(), cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    _frame(ax, result, f"(b) {result.layer} map {result.feature_map}: total activation\n"
                       f"(unoccluded {result.base_activation:.4g})")


def _panel_probability(fig, cell, result, name):
    """(d) probability of the target class, per square position."""
    p0 = result.base_probabilities
    ax = fig.add_subplot(cell)
    im = ax.imshow(result.probability, extent=result.map_extent(), cmap="viridis", vmin=0.0,
                   vmax=max(float(result.probability.max()), float(p0[result.target]), 1e-12),
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    _frame(ax, result, f"(d) p({name(result.target)})\n(unoccluded {p0[result.target]:.3f})")


def _panel_top_class(fig, cell, legend_cell, result, name, legend_max):
    """(e) most probable class, with a legend naming the classes (most frequent first)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from zfnet.viz.plotting import class_colours
    ax = fig.add_subplot(cell)
    seen, counts = np.unique(result.top_class, return_counts=True)
    order = [int(seen[k]) for k in np.argsort(-counts, kind="stable")]
    shown = order[:legend_max]
    index = {k: n for n, k in enumerate(shown)}
    other = len(shown)
    codes = np.vectorize(lambda k: index.get(int(k), other))(result.top_class)   # (NY, NX)
    colours = class_colours(len(shown)) + [(0.6, 0.6, 0.6)]
    ax.imshow(codes, extent=result.map_extent(), cmap=ListedColormap(colours), vmin=-0.5,
              vmax=len(colours) - 0.5, interpolation="nearest")
    _frame(ax, result, "(e) most probable class")
    handles = [Patch(color=colours[n], label=f"{name(k)} ({k})") for n, k in enumerate(shown)]
    if len(order) > len(shown):
        handles.append(Patch(color=colours[-1], label=f"{len(order) - len(shown)} other classes"))
    lax = fig.add_subplot(legend_cell)
    lax.axis("off")
    lax.legend(handles=handles, loc="center left", fontsize=8, frameon=False, title="(e) classes",
               title_fontsize=9)


def _panels_projection(fig, cells, result, projections, unit_boxes):
    """(c) the map projected to the pixels: unoccluded, then with the square at each example cell."""
    from matplotlib.patches import Rectangle
    h, w = result.input_hw
    examples = result.example_cells()
    titles = ["(c) projection, unoccluded"] + [f"(c) square {n + 1}: activation "
                                               f"{result.activation[c]:.4g}" for n, c in enumerate(examples)]
    for k, (proj, title) in enumerate(zip(projections, titles)):
        ax = fig.add_subplot(cells[k])
        ax.imshow(proj, extent=(0, w, h, 0), interpolation="nearest")
        if k > 0:
            _draw_squares(ax, result, [(None, examples[k - 1])], "white")
        if unit_boxes is not None:
            y0, y1, x0, x1 = unit_boxes[k]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="cyan",
                                   linewidth=1.0, linestyle="--"))
        _frame(ax, result, title)


def render_occlusion(result, image, projections=None, labels=None, unit_boxes=None, legend_max=10):
    """Fig. 7 as one matplotlib Figure (Agg).

    image: (H, W, 3) uint8, the network's input as pixels (zfnet.image.to_display);
    projections: [(H, W, 3) uint8] rendered projections, unoccluded first, then one per
    ``result.example_cells()``; labels: class names; unit_boxes: the receptive field (y0, y1, x0, x1)
    of each projected unit, drawn dashed. Every panel uses input pixel coordinates,
    so a map cell sits where its square's centre is in the image.
    """
    from zfnet.viz.classes import short_label
    from zfnet.viz.plotting import new_figure

    name = (lambda k: short_label(labels[k])) if labels else (lambda k: f"class {k}")
    fig = new_figure(16, 7.2)
    gs = fig.add_gridspec(2, 5, width_ratios=[1, 1, 1, 1, 0.8], hspace=0.3, wspace=0.3,
                          left=0.03, right=0.99, top=0.93, bottom=0.04)
    _panel_input(fig, gs[0, 0], result, image, name)
    _panel_activation(fig, gs[0, 1], result)
    _panel_probability(fig, gs[0, 2], result, name)
    _panel_top_class(fig, gs[0, 3], gs[0, 4], result, name, legend_max)
    if projections is not None:
        _panels_projection(fig, [gs[1, k] for k in range(4)], result, projections, unit_boxes)
    info = fig.add_subplot(gs[1, 4])
    info.axis("off")
    info.text(0.0, 0.5, f"square {result.size} px (model mean colour),\nstride {result.stride} px, "
                        f"{result.grid[0]}x{result.grid[1]} positions\nmap cell = square centre\n"
                        f"squares 1-3: lowest, median,\nhighest total activation",
              fontsize=8, va="center")
    return fig


def write_occlusion(out_dir, result, image, projections, labels, facts, unit_boxes=None, stem="occlusion"):
    """Write <stem>.png, <stem>.json and <stem>.html into out_dir; returns their paths.

    facts: {"model": ..., "image": ...} shown at the top of the page and stored in the JSON.
    """
    from pathlib import Path

    from zfnet.atomic import write_json
    from zfnet.viz.html import Page
    from zfnet.viz.plotting import save_figure

    out = Path(out_dir)
    png, js, page_path = out / f"{stem}.png", out / f"{stem}.json", out / f"{stem}.html"
    save_figure(render_occlusion(result, image, projections, labels, unit_boxes), png)
    data = {**facts, **result.to_json(labels)}
    write_json(js, data)
    page = Page(f"Occlusion: {facts.get('image', '')}", out)
    page.facts({**facts, "layer": result.layer, "strongest feature map": result.feature_map,
                "class C": f"{result.target} {labels[result.target] if labels else ''}".strip(),
                "square": f"{result.size} px, stride {result.stride} px, {result.grid[0]}x{result.grid[1]} positions",
                "numbers": js.name})
    page.paragraph(
        "A square of the model's mean colour (zero after mean subtraction) is slid over the "
        "preprocessed input; its top-left corner runs over multiples of the stride, wholly inside the "
        "image. (b) total activation of the feature map with the largest total activation on the "
        "unoccluded image; (c) that map's strongest unit projected to the pixels by the deconvnet "
        "(dashed: its receptive field; each scaled by its own 99.5th percentile of magnitude), unoccluded and with the square (white) at the positions of lowest, "
        "median and highest total activation; (d) probability "
        "of class C; (e) most probable class. Every map cell is drawn centred on its square.")
    page.figure(png.name, "Occlusion sensitivity (Zeiler & Fergus Fig. 7)")
    seen = data["classes_seen"]
    page.table(["class", "name", "positions where it is the most probable"],
               [[c["index"], c["name"] or "", c["cells"]] for c in sorted(seen, key=lambda c: -c["cells"])])
    page.write(page_path)
    return png, js, page_path
