"""Invariance to translation, scale and rotation (Zeiler & Fergus, Section 4, "Feature Invariance", Fig. 5).

The image is transformed by an amount t, and for each t we record

    d_l(t) = || phi_l(x) - phi_l(T_t x) ||_2       for a low layer l and a high layer l'
    P(C | T_t x)                                    the probability of class C

where phi_l(x) is layer l's whole activation tensor flattened to a vector. The paper uses
layer 1 and layer 7 of its network; ``default_layers`` picks the same depths for every built-in
architecture (e.g. SqueezeNet: pool1 and fire9/concat).

The transforms act on the preprocessed input x (3, H, W), the exact tensor the network sees, by
inverse mapping with bilinear interpolation. Outside the image the input is 0, which is the model's
mean colour (the mean is subtracted in preprocessing), so uncovered borders are grey:

    (T x)[:, r, c] = bilinear(x, A @ (r, c, 1))       A: a 2x3 map from output to source pixel

    translation by t px (vertical; content moves down for t > 0):  src = (r - t, c)
    scale by s >= 1 (zoom about the centre o):                     src = o + (p - o) / s
    rotation by theta degrees (anticlockwise on screen, about o):   src = o + R(theta)^-1 (p - o)

with p = (r, c) and o = ((H - 1) / 2, (W - 1) / 2). At the identity (t = 0, s = 1, theta = 0)
every source point is an exact pixel centre, so T x == x bit for bit and d_l = 0.

Default sweeps, as in the paper's Fig. 5: translation -60..60 px in steps of 5, scale 1.0..1.8
in steps of 0.1, rotation 0..360 degrees in steps of 10.

Shapes: x (3, H, W); T transforms per sweep; K classes.
"""
import sys
from dataclasses import dataclass

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.forward import forward
from zfnet.viz.choose import pool_and_penultimate, target_class

SWEEPS = {
    "translation": np.arange(-60, 61, 5).astype(np.float64),        # vertical shift in input pixels
    "scale": np.round(np.arange(1.0, 1.8001, 0.1), 2),               # zoom factor
    "rotation": np.arange(0, 361, 10).astype(np.float64),            # degrees
}
UNITS = {"translation": "pixels (vertical)", "scale": "scale factor", "rotation": "degrees"}

# Paper's "layer 1" / "layer 7": the first block's output and the penultimate representation.
DEFAULT_LAYERS = {
    "zfnet": ("norm1", "relu7"),
    "zf_caffe": ("pool1", "relu7"),
    "zfnet512": ("pool1", "relu7"),
    "alexnet": ("pool1", "relu7"),
    "caffenet": ("norm1", "relu7"),
    "bvlc_alexnet": ("pool1", "relu7"),
    "squeezenet1_0": ("pool1", "fire9/concat"),
    "vgg16": ("pool1", "relu7"),
}


def default_layers(arch):
    """(low, high) layer names for the distance curves; see DEFAULT_LAYERS.

    Other architectures: the first max-pool (else the first ReLU), and the input of the last layer
    with weights (the penultimate representation), or the last ReLU if that input is not above it.
    """
    if arch.name in DEFAULT_LAYERS:
        return DEFAULT_LAYERS[arch.name]
    return pool_and_penultimate(arch, pool=0)


# -- the transforms ------------------------------------------------------------------------------
def transform_matrix(kind, amount, hw):
    """The 2x3 inverse map A (output pixel (r, c, 1) -> source pixel) of one transform."""
    h, w = hw
    oy, ox = (h - 1) / 2.0, (w - 1) / 2.0
    if kind == "translation":
        return np.array([[1.0, 0.0, -float(amount)], [0.0, 1.0, 0.0]])
    if kind == "scale":
        s = float(amount)
        if s <= 0:
            raise ZFNetError(f"scale factor must be positive, got {s}")
        return np.array([[1 / s, 0.0, oy - oy / s], [0.0, 1 / s, ox - ox / s]])
    if kind == "rotation":
        # Rows grow downwards, so an anticlockwise turn on screen is R(-theta) in (r, c);
        # its inverse, R(theta), maps output to source.
        t = np.deg2rad(float(amount))
        cos, sin = np.cos(t), np.sin(t)
        if float(amount) % 90 == 0:   # exact at right angles, so 0 and 360 degrees are the identity
            cos, sin = float(round(cos)), float(round(sin))
        a = np.array([[cos, sin], [-sin, cos]])
        o = np.array([oy, ox])
        return np.column_stack([a, o - a @ o])
    raise ZFNetError(f"unknown transform {kind!r}; choose from {', '.join(SWEEPS)}")


def warp(x, a):
    """Bilinear inverse warp with zero outside. x: (C, H, W), a: (2, 3) -> (C, H, W) float32.

    y[:, r, c] = sum over the 4 neighbours (r0 + i, c0 + j) of src = a @ (r, c, 1) of
                 (1 - |src_r - (r0 + i)|) (1 - |src_c - (c0 + j)|) x[:, r0 + i, c0 + j]
    with x = 0 outside the image.
    """
    c, h, w = x.shape
    r, col = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    sr = a[0, 0] * r + a[0, 1] * col + a[0, 2]                         # (H, W) source rows
    sc = a[1, 0] * r + a[1, 1] * col + a[1, 2]                         # (H, W) source columns
    r0, c0 = np.floor(sr).astype(np.int64), np.floor(sc).astype(np.int64)
    fr, fc = sr - r0, sc - c0
    out = np.zeros((c, h, w), dtype=np.float64)
    for dr, wr in ((0, 1.0 - fr), (1, fr)):
        for dc, wc in ((0, 1.0 - fc), (1, fc)):
            rr, cc = r0 + dr, c0 + dc
            inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w) & (wr * wc != 0)
            wgt = np.where(inside, wr * wc, 0.0)                        # (H, W)
            out += wgt * x[:, np.clip(rr, 0, h - 1), np.clip(cc, 0, w - 1)]   # (C, H, W)
    return out.astype(np.float32)


def transform(x, kind, amount):
    """One transformed copy of x (3, H, W) -> (3, H, W)."""
    return warp(x, transform_matrix(kind, amount, x.shape[1:]))


# -- the analysis --------------------------------------------------------------------------------
@dataclass
class Sweep:
    """One transform's curves. amounts (T,); distances {layer: (T,)}; probability (T,) of the target."""
    kind: str
    amounts: np.ndarray
    distances: dict
    relative: dict          # {layer: (T,)} d_l / ||phi_l(x)||
    probability: np.ndarray
    top_class: np.ndarray   # (T,) argmax_k P(k | T x)


@dataclass
class InvarianceResult:
    layers: tuple
    target: int
    base_probability: float
    norms: dict             # {layer: ||phi_l(x)||}
    sweeps: dict            # {kind: Sweep}

    def to_json(self, labels=None):
        def name(k):
            return labels[k] if labels else None
        return {
            "layers": list(self.layers),
            "target_class": {"index": self.target, "name": name(self.target)},
            "original": {"target_probability": self.base_probability,
                         "feature_norms": {k: float(v) for k, v in self.norms.items()}},
            "distance": "Euclidean distance between flattened activations, original vs transformed",
            "sweeps": {
                kind: {
                    "unit": UNITS.get(kind, ""),
                    "amounts": [float(v) for v in s.amounts],
                    "distance": {l: [float(v) for v in d] for l, d in s.distances.items()},
                    "relative_distance": {l: [float(v) for v in d] for l, d in s.relative.items()},
                    "target_probability": [float(v) for v in s.probability],
                    "top_class": [int(v) for v in s.top_class],
                    "top_class_name": [name(int(v)) for v in s.top_class],
                }
                for kind, s in self.sweeps.items()
            },
        }


def invariance_curves(net, x, layers=None, target=None, sweeps=None, batch_size=16, progress=False):
    """Fig. 5's curves for one image.

    x: (3, H, W) preprocessed; layers: layer names (default ``default_layers``); target: class index
    (default: top-1 of x); sweeps: {kind: amounts} (default SWEEPS). Returns an InvarianceResult.
    """
    from zfnet.kernels import check_array
    from tqdm import tqdm
    check_array(x, "x", 3)
    if int(batch_size) < 1:
        raise ZFNetError(f"batch_size must be >= 1, got {batch_size}")
    from zfnet.viz.occlusion import check_classifier
    check_classifier(net)
    layers = tuple(layers or default_layers(net.arch))
    for name in layers:
        net.arch.layer(name)
    sweeps = dict(SWEEPS if sweeps is None else sweeps)

    # The original image's features and probabilities.
    base = forward(net, x[None], keep=list(layers), switches=False)
    phi0 = {l: base[l][0].ravel().astype(np.float64) for l in layers}          # {l: (D_l,)}
    probs0 = base.output[0]
    target = target_class(probs0, target)

    jobs = [(kind, float(t)) for kind, amounts in sweeps.items() for t in amounts]
    dist = {l: np.zeros(len(jobs)) for l in layers}
    prob = np.zeros(len(jobs))
    top = np.zeros(len(jobs), dtype=np.int64)
    bar = tqdm(total=len(jobs), disable=not progress, file=sys.stderr, desc="invariance", unit="img", leave=False)
    try:
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            xt = np.stack([transform(x, kind, t) for kind, t in chunk])         # (B, 3, H, W)
            r = forward(net, xt, keep=list(layers), switches=False)
            sl = slice(start, start + len(chunk))
            for l in layers:
                phi = r[l].reshape(len(chunk), -1).astype(np.float64)         # (B, D_l)
                dist[l][sl] = np.sqrt(((phi - phi0[l]) ** 2).sum(axis=1))
            prob[sl] = r.output[:, target]
            top[sl] = r.output.argmax(axis=1)
            bar.update(len(chunk))
    finally:
        bar.close()

    norms = {l: float(np.linalg.norm(phi0[l])) for l in layers}
    out, i = {}, 0
    for kind, amounts in sweeps.items():
        sl = slice(i, i + len(amounts))
        out[kind] = Sweep(
            kind=kind, amounts=np.asarray(amounts, dtype=np.float64),
            distances={l: dist[l][sl] for l in layers},
            relative={l: dist[l][sl] / (norms[l] or 1.0) for l in layers},
            probability=prob[sl], top_class=top[sl],
        )
        i += len(amounts)
    return InvarianceResult(layers=layers, target=target, base_probability=float(probs0[target]),
                            norms=norms, sweeps=out)


# -- rendering -----------------------------------------------------------------------------------
TITLES = {"translation": "vertical translation", "scale": "scale", "rotation": "rotation"}


def render_invariance(results, image_names=None, labels=None):
    """Fig. 5 as one 3x3 matplotlib Figure: rows = transforms, columns = d(low layer), d(high layer),
    P(class C). results: [InvarianceResult], one line per image (same layers and sweeps)."""
    from zfnet.viz.classes import short_label
    from zfnet.viz.plotting import class_colours, new_figure

    first = results[0]
    kinds = list(first.sweeps)
    layers = first.layers
    names = list(image_names) if image_names else [f"image {i}" for i in range(len(results))]
    colours = class_colours(len(results))
    ncols = len(layers) + 1
    fig = new_figure(4.2 * ncols, 3.1 * len(kinds))
    axes = fig.subplots(len(kinds), ncols, squeeze=False)
    for r, kind in enumerate(kinds):
        for c in range(ncols):
            ax = axes[r][c]
            for res, name, colour in zip(results, names, colours):
                s = res.sweeps[kind]
                y = s.distances[layers[c]] if c < len(layers) else s.probability
                cls = short_label(labels[res.target]) if labels else f"class {res.target}"
                label = name if c < len(layers) else f"{name}: {cls}"
                ax.plot(s.amounts, y, marker="o", markersize=2.5, linewidth=1.2, color=colour, label=label)
            if c < len(layers):
                ax.set_title(f"{TITLES.get(kind, kind)}: distance at {layers[c]}", fontsize=9)
                ax.set_ylim(bottom=0)
            else:
                ax.set_title(f"{TITLES.get(kind, kind)}: P(class C)", fontsize=9)
                ax.set_ylim(0, 1.02)
            ax.set_xlabel(UNITS.get(kind, kind), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if r == 0 and (c == ncols - 1 or len(results) > 1 and c == 0):
                ax.legend(fontsize=7, loc="best")
    fig.suptitle("Invariance (Zeiler & Fergus Fig. 5): Euclidean distance between the original's and the "
                 "transformed image's features, and the probability of class C", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def write_invariance(out_dir, results, image_names, labels, facts, examples=None, stem="invariance"):
    """Write <stem>.png, <stem>.json, <stem>.html (and the example strip <stem>_examples.png when
    `examples` (H, W, 3) uint8 is given) into out_dir; returns the paths written."""
    from pathlib import Path

    from zfnet.atomic import save_png, write_json
    from zfnet.viz.html import Page
    from zfnet.viz.plotting import save_figure

    out = Path(out_dir)
    png, js, page_path = out / f"{stem}.png", out / f"{stem}.json", out / f"{stem}.html"
    save_figure(render_invariance(results, image_names, labels), png)
    write_json(js, {**facts, "images": [{"image": n, **r.to_json(labels)} for n, r in zip(image_names, results)]})
    page = Page("Invariance to translation, scale and rotation", out)
    page.facts({**facts, "layers": ", ".join(results[0].layers), "numbers": js.name})
    page.paragraph(
        "Each image is transformed in the preprocessed input (bilinear interpolation; uncovered borders "
        "are the model's mean colour, i.e. zero). Distances are the Euclidean distance between the "
        "flattened activations of the original and of the transformed image; the last column is the "
        "probability of class C (by default each image's top-1 class).")
    page.figure(png.name, "Invariance curves (Zeiler & Fergus Fig. 5)")
    written = [png, js]
    if examples is not None:
        ex = out / f"{stem}_examples.png"
        save_png(ex, examples)
        page.figure(ex.name, "The transforms on the first image (what the network sees), left to right "
                             "for each row of the figure.")
        written.append(ex)
    rows = []
    for n, r in zip(image_names, results):
        for kind, s in r.sweeps.items():
            rows.append([n, kind, f"{s.amounts[0]:g}..{s.amounts[-1]:g}"]
                        + [f"{s.distances[l].max():.4g}" for l in r.layers]
                        + [f"{s.probability.min():.3f}..{s.probability.max():.3f}"])
    page.table(["image", "transform", "range"] + [f"max distance {l}" for l in results[0].layers]
               + ["P(class C)"], rows)
    page.write(page_path)
    return [*written, page_path]


def example_strip(x, meta, count=5, cell=96, sweeps=None):
    """`count` evenly spaced transforms of each sweep as pixels: rows = transforms -> (H, W, 3) uint8."""
    from zfnet.image import to_display
    from zfnet.viz.grid import fit, tile
    sweeps = dict(SWEEPS if sweeps is None else sweeps)
    cells = []
    for kind, amounts in sweeps.items():
        picks = np.asarray(amounts)[np.linspace(0, len(amounts) - 1, count).round().astype(int)]
        cells += [fit(to_display(transform(x, kind, t), meta), cell) for t in picks]
    return tile(cells, ncols=count, gap=2)                                 # (rows*cell+.., count*cell+.., 3)
