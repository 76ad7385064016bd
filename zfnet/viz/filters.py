"""Layer-1 filters as images (Fig. 2, layer 1; Fig. 6 a-d) and the patches that excite one most.

Shape legend: F = filters, C = input channels (3: the image's), KH, KW = filter size.

A first-layer filter w_f (C, KH, KW) lives in the input's pixel space, so it can be looked at as
a small colour image. Each is normalised on its own to the full display range,

    img_f = 255 * (w_f - min(w_f)) / (max(w_f) - min(w_f))          (all channels together)

so its colours keep their balance, and its channels are put in RGB order (Caffe models read BGR).

Two numbers summarise what a filter looks like (both in [0, 1], both near 0 for random filters):

- orientation selectivity: with P(u, v) the filter's power spectrum (summed over channels, the
  per-channel mean removed, zero-padded to 16x16, DC left out) and theta(u, v) the direction of
  frequency (u, v),
      s_f = | sum P e^{2 i theta} | / sum P
  the length of the mean doubled-angle vector: 1 when all energy lies on one line through the
  origin (an edge or grating of one orientation), about 1/sqrt(#frequencies) for white noise.
  The dominant orientation (of the frequency vector; edges run perpendicular to it) is
  arg(sum P e^{2 i theta}) / 2.
- colour-blob fraction: the share of the filter's energy that is both chromatic (w minus its
  mean over channels) and of the lowest spatial frequencies (|u|, |v| <= 1 cycle per window):
  large for the smooth colour-opponent blobs of trained first layers.
"""
from dataclasses import dataclass

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.image import to_display
from zfnet.viz import grid
from zfnet.viz.scan_state import check_unchanged
from zfnet.viz.shard import load_input
from zfnet.viz.topk import place_in_field, top_units


def image_layers(net):
    """Conv layers that read the image directly (their filters can be shown as pictures)."""
    return [l.name for l in net.arch.layers if l.op == "conv" and l.inputs == ("data",)]


def first_layer_weights(net, layer=None):
    """(name, w (F, C, KH, KW)) of a conv layer that reads the image; default the first one."""
    names = image_layers(net)
    if not names:
        raise ZFNetError(f"{net.arch.name} has no convolution that reads the image directly")
    layer = layer or names[0]
    spec = net.arch.layer(layer)
    if spec.op != "conv":
        raise ZFNetError(f"layer {layer!r} is a {spec.op}, not a convolution: it has no filters; try {names[0]!r}")
    if layer not in names:
        raise ZFNetError(
            f"the filters of {layer!r} act on {spec.in_channels} feature maps, not on the image, so "
            f"they cannot be drawn as pictures; draw {', '.join(names)} here, and see higher layers "
            f"with 'zfnet topk --layer {layer}'"
        )
    return layer, net.weight(layer)


def _rgb_order(w, channel_order):
    """(F, C, KH, KW) in the network's channel order -> (F, KH, KW, 3) RGB."""
    if w.shape[1] != 3:
        raise ZFNetError(f"filters with {w.shape[1]} input channels cannot be shown in colour (need 3)")
    order = str(channel_order or "RGB").upper()
    if order not in ("RGB", "BGR"):
        raise ZFNetError(f"unknown channel order {channel_order!r} (expected 'RGB' or 'BGR')")
    w = w[:, ::-1] if order == "BGR" else w                     # channels to R, G, B
    return np.transpose(w, (0, 2, 3, 1))                        # (F, KH, KW, 3)


def filter_images(w, channel_order="RGB"):
    """Each filter normalised on its own: (F, C, KH, KW) -> (F, KH, KW, 3) uint8 RGB."""
    rgb = _rgb_order(np.asarray(w, dtype=np.float64), channel_order)
    return np.stack([grid.to_uint8(f) for f in rgb])            # (F, KH, KW, 3)


def filter_grid(net, layer=None, cell=None, ncols=None, gap=1):
    """The paper's layer-1 picture: every filter, normalised, enlarged (nearest) and tiled.

    cell: pixels per filter side (default: 6x the filter size, e.g. 42 for 7x7). Returns the
    grid (H, W, 3) uint8 and the layer's name.
    """
    layer, w = first_layer_weights(net, layer)
    imgs = filter_images(w, net.meta.get("channel_order", "RGB"))
    cell = cell or 6 * max(w.shape[2:])
    cells = [grid.fit(img, cell, nearest=True) for img in imgs]
    return grid.tile(cells, ncols=ncols, gap=gap), layer


def orientation_selectivity(w, pad=16):
    """(strength (F,), angle (F,) radians in [0, pi)): see the module docstring. w (F, C, KH, KW)."""
    w = np.asarray(w, dtype=np.float64)
    w = w - w.mean(axis=(2, 3), keepdims=True)                  # no DC, no leakage from it
    power = (np.abs(np.fft.fft2(w, s=(pad, pad))) ** 2).sum(axis=1)   # (F, pad, pad)
    u = np.fft.fftfreq(pad)[:, None]                            # vertical frequency
    v = np.fft.fftfreq(pad)[None, :]                            # horizontal frequency
    theta = np.arctan2(u, v)
    power = power * (np.hypot(u, v) > 0)
    total = power.sum(axis=(1, 2))
    z = (power * np.exp(2j * theta)).sum(axis=(1, 2)) / np.where(total > 0, total, 1.0)
    return np.abs(z), np.mod(np.angle(z) / 2, np.pi)


def colour_blob_fraction(w):
    """(F,) share of each filter's energy that is chromatic and of the lowest frequencies."""
    w = np.asarray(w, dtype=np.float64)
    chroma = w - w.mean(axis=1, keepdims=True)                  # (F, C, KH, KW) minus the grey part
    power = (np.abs(np.fft.fft2(chroma)) ** 2).sum(axis=1)      # (F, KH, KW)
    fy = np.abs(np.fft.fftfreq(w.shape[2]) * w.shape[2])[:, None]
    fx = np.abs(np.fft.fftfreq(w.shape[3]) * w.shape[3])[None, :]
    low = (fy <= 1) & (fx <= 1)
    total = (np.abs(np.fft.fft2(w)) ** 2).sum(axis=(1, 2, 3))
    return (power * low).sum(axis=(1, 2)) / np.where(total > 0, total, 1.0)


@dataclass
class FilterStats:
    """Per-filter numbers for a layer-1 diagnosis (Fig. 6): F entries each."""
    layer: str
    rms: np.ndarray            # sqrt(mean w^2): the paper renormalises filters with RMS > 0.1
    orientation: np.ndarray    # selectivity in [0, 1]
    angle_deg: np.ndarray      # dominant frequency direction, degrees in [0, 180)
    colour_blob: np.ndarray    # in [0, 1]
    dead: np.ndarray           # bool: all weights zero

    def to_dict(self):
        return {"layer": self.layer,
                "filters": [{"filter": i, "rms": float(self.rms[i]), "orientation": float(self.orientation[i]),
                             "angle_deg": float(self.angle_deg[i]), "colour_blob": float(self.colour_blob[i]),
                             "dead": bool(self.dead[i])} for i in range(len(self.rms))]}


def filter_stats(net, layer=None):
    layer, w = first_layer_weights(net, layer)
    s, angle = orientation_selectivity(w)
    return FilterStats(layer, np.sqrt((w.astype(np.float64) ** 2).mean(axis=(1, 2, 3))), s,
                       np.degrees(angle), colour_blob_fraction(w), ~np.any(w != 0, axis=(1, 2, 3)))


# -- the patches that excite one filter most ------------------------------------------------------
def top_patches(net, state, filter=None, cell=56, load=None):
    """The receptive-field patches of a filter's kept units (a top-k scan of its conv layer).

    state: a zfnet.viz.scan_state.ScanState of a layer-1 conv; filter: which of its chosen maps
    (may be left out when the scan has one map only).
    Returns [(TopUnit, patch cell (cell, cell, 3) uint8, input (H, W, 3) uint8)], strongest first:
    each patch is the input box the unit's filter was applied to (clipped at the border, placed
    in its full field), enlarged with nearest neighbour so its pixels stay visible.
    """
    load = load or load_input
    maps = state.maps.tolist()
    if filter is None:
        if len(maps) != 1:
            raise ZFNetError(f"the scan kept {len(maps)} filters ({maps[:5]}...); say which one with filter=")
        filter = maps[0]
    if filter not in maps:
        raise ZFNetError(f"filter {filter} was not part of the scan (it kept filters {maps})")
    crop = bool(state.preprocessing.get("crop", True))
    out = []
    for u in top_units(state, net.arch)[maps.index(filter)]:
        check_unchanged(state, u.image)
        shown = to_display(load(u.path, net.meta, crop), net.meta)                     # (H, W, 3)
        y0, y1, x0, x1 = u.box
        patch = place_in_field(np.ascontiguousarray(shown[y0:y1, x0:x1]), u, shown.shape[:2])
        out.append((u, grid.fit(patch, cell, nearest=True), shown))
    return out


def filter_block(filter_img, patch_cells, k, cell, gap=2, between=10):
    """[the filter, enlarged to the grid's height | its top-k patches in a grid] -> (image, origins).

    origins: (y, x) of each patch cell in the block, in rank order (for links on a page).
    """
    rows, cols = grid.grid_shape(k)
    side = rows * cell + (rows - 1) * gap
    f = grid.fit(filter_img, side, nearest=True)
    filler = grid.blank(cell, cell)
    patches = grid.tile(list(patch_cells) or [filler], ncols=cols, gap=gap, n=k)
    origins = [(y, x + side + between) for y, x in
               (grid.cell_origin(i, (cell, cell), cols, gap) for i in range(len(patch_cells)))]
    return grid.hstack([f, patches], gap=between), origins
