"""Correspondence analysis (Zeiler & Fergus, Section 4.3, Fig. 8, Table 1).

The same part of an object (a left eye, the nose, ...) is masked in N images of one kind. For image
i and layer l the feature change is

    eps_i^l = x_i^l - x~_i^l                  (original minus masked activations, flattened to D_l)

and the consistency of the change across images is

    Delta_l = sum_{i != j} H(sign(eps_i^l), sign(eps_j^l))

with H the Hamming distance (the number of positions where the two sign vectors differ) and
sign(0) = 0 (so a unit the mask does not reach agrees with itself in every image). A lower
Delta means the mask changed the representation in the same way in every image.

Normalisation (ours, stated exactly because the paper does not spell it out): the paper's values
(0.067 ... 0.107) lie in (0, 1), so we report

    Delta_l^norm = Delta_l / (N (N - 1) D_l)

the mean over ordered pairs i != j of the Hamming distance as a fraction of the vector length.
The raw sum Delta_l is reported too.

Random masks: the same measurement with, in each image, a box of the parts' mean size at a
uniformly random place inside the image; repeated over several trials with a seeded generator.

Masking happens in the original image, in its pixels: the box is painted with the model's mean
colour (rounded to 8 bits), then the image is preprocessed exactly as the unmasked one. Boxes are
[x0, y0, x1, y1] in original image pixels, half-open (x1, y1 excluded). The forward pass computes
every example independently, so units the mask does not reach give eps = 0 exactly.

Shapes: N images; D_l = the number of activations of layer l per image.
"""
import sys
from dataclasses import dataclass, field

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.net.forward import forward
from zfnet.viz.choose import pool_and_penultimate

# Paper's layers 5 and 7: the last convolutional block's output and the penultimate representation.
DEFAULT_LAYERS = {
    "zfnet": ("pool5", "relu7"),
    "zf_caffe": ("pool5", "relu7"),
    "zfnet512": ("pool5", "relu7"),
    "alexnet": ("pool5", "relu7"),
    "caffenet": ("pool5", "relu7"),
    "bvlc_alexnet": ("pool5", "relu7"),
    "squeezenet1_0": ("fire5/concat", "fire9/concat"),
    "vgg16": ("pool5", "relu7"),
}


def default_layers(arch):
    """(mid, high) layers for Table 1; see DEFAULT_LAYERS. Others: the last max-pool (else the
    first ReLU), and the input of the last layer with weights, or the last ReLU if that input is
    not above the first."""
    if arch.name in DEFAULT_LAYERS:
        return DEFAULT_LAYERS[arch.name]
    return pool_and_penultimate(arch, pool=-1)


# -- the measure ---------------------------------------------------------------------------------
def hamming(a, b):
    """H(a, b): the number of positions where two sign vectors differ. a, b: (D,) -> int."""
    return int(np.count_nonzero(a != b))


def delta(eps):
    """Table 1's Delta for one layer. eps: (N, D) feature changes -> (normalised, raw sum).

    Delta = sum_{i != j} H(sign(eps_i), sign(eps_j));  normalised = Delta / (N (N - 1) D).
    """
    eps = np.asarray(eps)
    if eps.ndim != 2 or eps.shape[0] < 2:
        raise ZFNetError(f"Delta needs feature changes of at least 2 images as (N, D), got shape {eps.shape}")
    n, d = eps.shape
    s = np.sign(eps).astype(np.int8)                                   # (N, D) in {-1, 0, 1}
    total = 0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += hamming(s[i], s[j])
    return total / (n * (n - 1) * d), total


# -- masking in the original image ---------------------------------------------------------------
def mean_colour_rgb(meta):
    """The model's mean colour as 8-bit RGB: the pixel that preprocessing maps to (almost) zero.

    Preprocessing is x = ((rgb / 255 * scale) in channel_order - mean) / std, so x = 0 at
    rgb = mean * 255 / scale, reordered to RGB.
    """
    mean = np.asarray(meta.get("mean", [0.0, 0.0, 0.0]), dtype=np.float64)
    scale = float(meta.get("scale", 1.0))
    rgb = mean * 255.0 / scale
    if str(meta.get("channel_order", "RGB")).upper() == "BGR":
        rgb = rgb[::-1]
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def check_box(box, hw, where):
    """A box [x0, y0, x1, y1] (half-open, original pixels) that lies inside an H x W image."""
    h, w = hw
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    except (TypeError, ValueError):
        raise ZFNetError(f"{where}: a box must be [x0, y0, x1, y1], got {box!r}") from None
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ZFNetError(
            f"{where}: box [x0, y0, x1, y1] = {[x0, y0, x1, y1]} is not inside the {w}x{h} (width x height) "
            f"image (need 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h})"
        )
    return x0, y0, x1, y1


def mask(rgb, box, colour):
    """A copy of rgb (H, W, 3) uint8 with box [x0, y0, x1, y1] painted `colour` (3,)."""
    x0, y0, x1, y1 = box
    out = rgb.copy()
    out[y0:y1, x0:x1] = colour
    return out


# -- the analysis --------------------------------------------------------------------------------
@dataclass
class CorrespondenceResult:
    layers: tuple
    parts: dict              # {part: [box per image]} (checked ints)
    table: dict              # {part: {layer: normalised Delta}}
    raw: dict                # {part: {layer: raw Delta}}
    random: list = field(default_factory=list)   # per trial: {"boxes": [...], "delta": {layer: norm}, "raw": {...}}
    dims: dict = field(default_factory=dict)     # {layer: D_l}
    n_images: int = 0
    changed: dict = field(default_factory=dict)  # {part: {layer: [fraction of units changed per image]}}

    def random_summary(self):
        """{layer: (mean, std)} of the random-mask Delta over trials."""
        if not self.random:
            return {}
        return {l: (float(np.mean([t["delta"][l] for t in self.random])),
                    float(np.std([t["delta"][l] for t in self.random]))) for l in self.layers}

    def to_json(self, image_names=None):
        return {
            "layers": list(self.layers),
            "n_images": self.n_images,
            "images": list(image_names) if image_names else None,
            "dims": self.dims,
            "normalisation": "Delta_l / (N (N-1) D_l): mean Hamming distance between sign(eps_i) and "
                             "sign(eps_j) over ordered pairs i != j, as a fraction of the vector length D_l",
            "parts": {p: {"boxes": [list(b) for b in boxes], "delta": self.table[p], "raw_delta": self.raw[p],
                          "fraction_changed": self.changed.get(p)}
                      for p, boxes in self.parts.items()},
            "random": {"trials": self.random,
                       "mean": {l: m for l, (m, s) in self.random_summary().items()},
                       "std": {l: s for l, (m, s) in self.random_summary().items()}},
        }


def _features(net, batch, layers):
    r = forward(net, batch, keep=list(layers), switches=False)
    return {l: r[l].reshape(len(batch), -1) for l in layers}           # {l: (B, D_l)}


def random_box(rng, size, hw):
    """A box of `size` (bh, bw) at a uniformly random place inside an H x W image: (x0, y0, x1, y1)."""
    (bh, bw), (h, w) = size, hw
    bh, bw = min(bh, h), min(bw, w)
    y0 = int(rng.integers(0, h - bh + 1))
    x0 = int(rng.integers(0, w - bw + 1))
    return x0, y0, x0 + bw, y0 + bh


def check_parts(parts, hws, names):
    """{part: [box per image]} with every box checked (check_box) -> {part: [(x0, y0, x1, y1)]}.

    hws: [(H_i, W_i)] of the N images; names: their names, for the messages.
    """
    checked = {}
    for part, boxes in parts.items():
        if not isinstance(boxes, (list, tuple)) or len(boxes) != len(hws):
            got = len(boxes) if isinstance(boxes, (list, tuple)) else boxes
            raise ZFNetError(f"part {part!r}: need one box per image ({len(hws)}), got {got}")
        checked[part] = [check_box(b, hw, f"part {part!r}, image {i} ({names[i]})")
                         for i, (b, hw) in enumerate(zip(boxes, hws))]
    return checked


class _Masking:
    """One run's unmasked features, and how to mask its images and measure the change."""

    def __init__(self, net, images, names, layers, crop):
        from zfnet.image import preprocess
        self.net, self.images, self.names, self.layers, self.crop = net, images, names, layers, crop
        self.colour = mean_colour_rgb(net.meta)
        self.x = np.stack([preprocess(im, net.meta, crop=crop) for im in images])   # (N, 3, H, W)
        self.f0 = _features(net, self.x, layers)

    def masked_input(self, i, box, label):
        """Image i with `box` painted in the mean colour, preprocessed: (3, H, W). With a label, a
        ZFNetError naming it if the box does not change the network's input."""
        from zfnet.image import preprocess
        xm = preprocess(mask(self.images[i], box, self.colour), self.net.meta, crop=self.crop)   # (3, H, W)
        if label is not None and np.array_equal(xm, self.x[i]):
            raise ZFNetError(
                f"{label}: the box {list(box)} in image {i} ({self.names[i]}) does not change the network's "
                f"input (it lies outside the part of the image the network sees, or is already the "
                f"mean colour)" + ("; run without the centre crop" if self.crop else "")
            )
        return xm

    def measure(self, xm):
        """The masked inputs xm (N, 3, H, W) -> ({layer: Delta_norm}, {layer: Delta}, {layer: [changed]})."""
        fm = _features(self.net, xm, self.layers)
        out, raw, changed = {}, {}, {}
        for l in self.layers:
            eps = self.f0[l].astype(np.float64) - fm[l].astype(np.float64)    # (N, D_l)
            out[l], raw[l] = delta(eps)
            changed[l] = [float(np.count_nonzero(e) / e.size) for e in eps]
        return out, raw, changed

    def random_trial(self, rng, sizes, t):
        """Trial t: in each image a box of sizes[i] at a random place the network sees -> (boxes, xm)."""
        boxes, xm = [], []
        for i, image in enumerate(self.images):
            # A random box that the network does not see is drawn again (up to 100 times).
            for _ in range(100):
                b = random_box(rng, sizes[i], image.shape[:2])
                xi = self.masked_input(i, b, None)
                if not np.array_equal(xi, self.x[i]):
                    break
            else:
                xi = self.masked_input(i, b, f"random trial {t}")   # raises, naming the image
            boxes.append(b)
            xm.append(xi)
        return boxes, np.stack(xm)


def correspondence(net, images, parts, layers=None, random=5, seed=0, crop=False, names=None, progress=False):
    """Table 1 for N images of one kind.

    images: N RGB arrays (H_i, W_i, 3) uint8; parts: {part name: [[x0, y0, x1, y1] per image]};
    layers: layer names (default ``default_layers``); random: number of random-mask trials;
    crop: preprocess with the centre crop (default False: the whole image is resized to the input,
    so every box is seen). Returns a CorrespondenceResult.
    """
    from tqdm import tqdm
    names = list(names) if names else [f"image {i}" for i in range(len(images))]
    if len(images) < 2:
        raise ZFNetError(f"correspondence needs at least 2 images, got {len(images)}")
    if not parts:
        raise ZFNetError("correspondence needs at least one named part with a box per image")
    layers = tuple(layers or default_layers(net.arch))
    for l in layers:
        net.arch.layer(l)
    checked = check_parts(parts, [im.shape[:2] for im in images], names)
    run = _Masking(net, images, names, layers, crop)

    # The named parts, then the random trials with boxes of the parts' mean size in each image.
    rng = np.random.default_rng(seed)
    mean_size = [(int(round(np.mean([b[3] - b[1] for b in (checked[p][i] for p in checked)]))),
                  int(round(np.mean([b[2] - b[0] for b in (checked[p][i] for p in checked)]))))
                 for i in range(len(images))]
    table, raw, changed, trials = {}, {}, {}, []
    bar = tqdm(total=len(checked) + int(random), disable=not progress, file=sys.stderr,
               desc="correspondence", unit="mask", leave=False)
    try:
        for part, boxes in checked.items():
            xm = np.stack([run.masked_input(i, b, f"part {part!r}") for i, b in enumerate(boxes)])   # (N, 3, H, W)
            table[part], raw[part], changed[part] = run.measure(xm)
            bar.update(1)
        for t in range(int(random)):
            boxes, xm = run.random_trial(rng, mean_size, t)
            d, r, _ = run.measure(xm)
            trials.append({"boxes": [list(b) for b in boxes], "delta": d, "raw": r})
            bar.update(1)
    finally:
        bar.close()
    return CorrespondenceResult(
        layers=layers, parts={p: [list(b) for b in bs] for p, bs in checked.items()}, table=table, raw=raw,
        random=trials, dims={l: int(run.f0[l].shape[1]) for l in layers}, n_images=len(images), changed=changed,
    )


def load_boxes(path):
    """Read BOXES_JSON: {"part name": [[x0, y0, x1, y1] per image], ...} -> dict."""
    import json
    from pathlib import Path
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZFNetError(f"boxes file {p} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ZFNetError(f"boxes file {p} is not readable JSON: {e}") from None
    if not isinstance(data, dict) or not data or not all(isinstance(v, list) for v in data.values()):
        raise ZFNetError(
            f"boxes file {p}: expected an object {{\"part name\": [[x0, y0, x1, y1] per image], ...}}"
        )
    return data


# -- rendering -----------------------------------------------------------------------------------
def render_correspondence(result, images, names=None):
    """Table 1 as one matplotlib Figure: the images with their masks (one colour per part, random
    trial 0 dashed) above a bar chart and a table of Delta per layer."""
    from matplotlib.patches import Rectangle

    from zfnet.viz.plotting import class_colours, new_figure

    n = len(images)
    names = list(names) if names else [f"image {i}" for i in range(n)]
    parts = list(result.parts)
    colours = dict(zip(parts + ["random"], class_colours(len(parts) + 1)))
    fig = new_figure(max(2.6 * n, 11.0), 7.6)
    top = fig.add_gridspec(1, n, left=0.03, right=0.97, top=0.95, bottom=0.55, wspace=0.08)
    bottom = fig.add_gridspec(1, 2, left=0.07, right=0.97, top=0.44, bottom=0.07, width_ratios=[1.0, 1.3],
                              wspace=0.25)
    for i, (im, name) in enumerate(zip(images, names)):
        ax = fig.add_subplot(top[0, i])
        ax.imshow(im, interpolation="nearest")
        for p in parts:
            x0, y0, x1, y1 = result.parts[p][i]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colours[p], linewidth=1.6))
        if result.random:
            x0, y0, x1, y1 = result.random[0]["boxes"][i]
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colours["random"],
                                   linewidth=1.2, linestyle="--"))
        ax.set_title(name, fontsize=8)
        ax.axis("off")

    # Bars: Delta per layer for every part, and the random masks' mean +- std.
    ax = fig.add_subplot(bottom[0, 0])
    rows = parts + (["random"] if result.random else [])
    summary = result.random_summary()
    width = 0.8 / len(rows)
    for k, p in enumerate(rows):
        xs = np.arange(len(result.layers)) + (k - (len(rows) - 1) / 2) * width
        vals = [result.table[p][l] if p != "random" else summary[l][0] for l in result.layers]
        err = [summary[l][1] for l in result.layers] if p == "random" else None
        ax.bar(xs, vals, width, yerr=err, color=colours[p], label=p, capsize=3)
    ax.set_xticks(np.arange(len(result.layers)), result.layers, fontsize=8)
    ax.set_ylabel("Delta (mean Hamming fraction)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)

    tax = fig.add_subplot(bottom[0, 1])
    tax.axis("off")
    cell = [[p] + [f"{result.table[p][l]:.4f}" for l in result.layers] for p in parts]
    if result.random:
        cell.append(["random"] + [f"{summary[l][0]:.4f} +- {summary[l][1]:.4f}" for l in result.layers])
    table = tax.table(cellText=cell, colLabels=["part"] + [f"Delta {l}" for l in result.layers],
                      loc="center", cellLoc="center", bbox=(0.0, 0.15, 1.0, 0.7))
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.4)
    tax.set_title(f"Table 1: Delta_l = sum_(i!=j) H(sign eps_i, sign eps_j) / (N(N-1) D_l), N = {n}"
                  + (f"; random: {len(result.random)} trials" if result.random else ""), fontsize=8)
    return fig


def write_correspondence(out_dir, result, images, names, facts, stem="correspondence"):
    """Write <stem>.png, <stem>.json and <stem>.html into out_dir; returns their paths."""
    from pathlib import Path

    from zfnet.atomic import write_json
    from zfnet.viz.html import Page
    from zfnet.viz.plotting import save_figure

    out = Path(out_dir)
    png, js, page_path = out / f"{stem}.png", out / f"{stem}.json", out / f"{stem}.html"
    save_figure(render_correspondence(result, images, names), png)
    write_json(js, {**facts, **result.to_json(names)})
    page = Page("Correspondence analysis (Table 1)", out)
    page.facts({**facts, "images": ", ".join(names), "layers": ", ".join(result.layers),
                "numbers": js.name})
    page.paragraph(
        "Each part is masked with the model's mean colour in every image (boxes in original image "
        "pixels). For each layer l, eps_i = features(original image i) - features(masked image i); "
        "Delta_l = sum over ordered pairs i != j of the Hamming distance between sign(eps_i) and "
        "sign(eps_j) (sign 0 counts as its own value), divided by N(N-1) and by the vector length "
        "D_l. Lower Delta = the mask changes the representation more consistently across images. "
        "Random rows: a box of the parts' mean size at a random place in each image, averaged over "
        "the trials (mean +- standard deviation).")
    page.figure(png.name, "Correspondence (Zeiler & Fergus Fig. 8 / Table 1)")
    summary = result.random_summary()
    rows = [[p] + [f"{result.table[p][l]:.4f}" for l in result.layers] for p in result.parts]
    if result.random:
        rows.append([f"random ({len(result.random)} trials)"]
                    + [f"{summary[l][0]:.4f} +- {summary[l][1]:.4f}" for l in result.layers])
    page.table(["part"] + [f"Delta {l} (D = {result.dims[l]})" for l in result.layers], rows)
    page.write(page_path)
    return png, js, page_path
