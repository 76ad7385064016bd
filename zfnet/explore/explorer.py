"""What the explorer computes, with no HTTP in sight: the API (api.py) and the static export
(export.py) both call this.

    ex = Explorer(net, scans=["top9/"], images_dir="photos/")
    ex.model()                                         # layers, shapes, receptive fields, scans
    ex.topk("fire9/concat", 7, "guided")               # map 7's top-k cells, projected on demand
    ex.cell_png("fire9/concat", 7, 0, "guided", "projection")
    i = ex.images.upload(data, "cat.jpg")
    ex.classify(i); ex.image_maps(i, "fire9/concat")
    png, info = ex.project(i, "fire9/concat", 7, y=6, x=5, mode="guided")

Shapes: one image at a time, x (3, H, W); its forward pass (every activation and switch) is kept
per image in a small LRU, so a click on a unit costs only the walk down, the rendering and the PNG.
Rendered cells and projections are cached in an LRU with a byte budget.
"""
import threading

import numpy as np

from zfnet.deconv import MODES, Unit, project, render
from zfnet.errors import ZFNetError
from zfnet.explore.cells import unit_cell
from zfnet.explore.errors import NotFound
from zfnet.explore.images import ImageStore
from zfnet.explore.jobs import Foreground, OcclusionJobs
from zfnet.explore.lru import LRU
from zfnet.explore.pictures import heat_rgba, png_bytes
from zfnet.explore.scanfolder import ScanFolder
from zfnet.explore.units import check_layer, check_map, check_mode, check_position, check_spatial
from zfnet.net import forward
from zfnet.net.receptive import receptive_fields, unit_box
from zfnet.viz.occlusion import check_classifier
from zfnet.weights import class_names


def _layer_rows(arch):
    rfs = receptive_fields(arch)
    rows = []
    for layer in arch.layers:
        rf = rfs[layer.name]
        rows.append({"name": layer.name, "op": layer.op, "inputs": list(layer.inputs),
                     "shape": list(arch.shapes[layer.name]),
                     "receptive_field": ({"size": list(rf.size), "stride": list(rf.stride), "offset": list(rf.offset)}
                                         if rf.spatial else None)})
    return rows


def _arch_for_inputs(net):
    """The architecture at the input size the model card prepares (meta["input_size"]): the shapes
    of every map the explorer shows."""
    size = net.meta.get("input_size")
    if size and tuple(size) != tuple(net.arch.input_shape[1:]):
        return net.arch.with_input_shape((net.arch.input_shape[0], *size))
    return net.arch


def _render_in_box(p, box, meta):
    """render(p, meta, percentile=99.5), computed on the unit's box only: a unit's projection is zero
    outside its receptive field (zfnet.net.receptive), and zero renders as grey (128)."""
    y0, y1, x0, x1 = box
    out = np.full((*p.shape[1:], 3), 128, np.uint8)                                   # (H, W, 3)
    out[y0:y1, x0:x1] = render(np.ascontiguousarray(p[:, y0:y1, x0:x1]), meta, percentile=99.5)
    return out


class Explorer:
    def __init__(self, net, scans=(), images_dir=None, max_images=32, max_forwards=4,
                 cache_bytes=64 << 20, max_upload_bytes=16 << 20, occlusion=(48, 16)):
        self.net = net
        self.arch = _arch_for_inputs(net)
        self.occlusion = tuple(int(v) for v in occlusion)   # (square size, stride) in input pixels
        self.scans = {}
        for folder in scans:
            s = ScanFolder(folder, net, self.arch)
            if s.layer in self.scans:
                raise ZFNetError(f"{folder} and {self.scans[s.layer].folder} both scanned {s.layer!r}; give one of them")
            self.scans[s.layer] = s
        self.images = ImageStore(net.meta, images_dir, max_images, max_upload_bytes)
        self.foreground = Foreground()     # interactive work in progress: occlusion jobs wait for it
        self.jobs = OcclusionJobs(net, class_names(net), foreground=self.foreground)
        self._forwards = LRU(max_forwards)
        self._pictures = LRU(10_000, cache_bytes)
        self._forward_lock = threading.Lock()
        self._scan_inputs = LRU(16)

    # -- the model ------------------------------------------------------------------------------
    def model(self):
        arch, meta = self.arch, self.net.meta
        return {"model": meta.get("model", arch.name), "architecture": arch.name,
                "input_shape": list(arch.input_shape), "layers": _layer_rows(arch),
                "scans": [{"layer": s.layer, "maps": len(s.maps), "k": s.k, "mode": s.mode,
                           "images_scanned": s.index.get("images_scanned")} for s in self.scans.values()],
                "modes": list(MODES), "classifier": self._is_classifier()}

    def _is_classifier(self):
        try:
            check_classifier(self.net)
            return True
        except ZFNetError:
            return False

    def has_filters(self):
        """Whether the first conv layer's filters can be drawn (it reads the image directly)."""
        try:
            self.filters_png()
            return True
        except ZFNetError:
            return False

    def filters_png(self):
        from zfnet.viz.filters import filter_grid
        key = ("filters",)
        png = self._pictures.get(key)
        if png is None:
            grid_rgb, _ = filter_grid(self.net)
            png = png_bytes(grid_rgb)
            self._pictures.put(key, png, len(png))
        return png

    def warm_up(self):
        """Draw what the first page load asks for (the filters, every scanned map's thumbnail) into
        the cache; the server runs this on a background thread as it starts."""
        if self.has_filters():
            self.filters_png()
        for layer, s in self.scans.items():
            for m in s.maps:
                if s.cells(m):
                    self.thumb_png(layer, m)

    # -- a scanned layer ------------------------------------------------------------------------
    def scan(self, layer):
        check_layer(self.arch, layer)
        s = self.scans.get(layer)
        if s is None:
            raise NotFound(f"layer {layer!r} was not scanned; scanned: {', '.join(self.scans) or 'none'} "
                           f"(zfnet topk --layer {layer} --out DIR, then zfnet explore --scan DIR)")
        return s

    def layer_maps(self, layer):
        """[{map, value, image}] of the scanned layer: each map's strongest kept unit."""
        s = self.scan(layer)
        out = []
        for m in s.maps:
            cells = s.cells(m)
            out.append({"map": m, "value": cells[0]["value"] if cells else 0.0,
                        "image": cells[0]["name"] if cells else None})
        return out

    def thumb_png(self, layer, m):
        """The map's strongest projection, in the scan's own mode (cut from its figure)."""
        s = self.scan(layer)
        if not s.cells(m):
            raise NotFound(f"map {m} of {layer!r} kept no unit")
        return self.cell_png(layer, m, 0, s.mode, "projection")

    def topk(self, layer, m, mode):
        """Map m's kept units, strongest first, with their cells computed in `mode` (cached)."""
        s = self.scan(layer)
        check_mode(mode)
        cells = s.cells(m)
        for c in cells:
            self._cell(s, m, c, mode)
        return cells

    def cell_png(self, layer, m, rank, mode, part):
        s = self.scan(layer)
        check_mode(mode)
        cells = s.cells(m)
        if not 0 <= rank < len(cells):
            raise NotFound(f"map {m} of {layer!r} has {len(cells)} kept units (ranks 0..{len(cells) - 1})")
        if part not in ("projection", "patch"):
            raise NotFound(f"no cell part {part!r}; use projection or patch")
        return self._cell(s, m, cells[rank], mode)[part]

    def _cell(self, s, m, c, mode):
        key = ("cell", s.layer, m, c["rank"], mode)
        hit = self._pictures.get(key)
        if hit is not None:
            return hit
        if mode == s.mode:   # already projected by the scan: cut from its figure
            proj = s.block_cell(m, c["rank"], "projection")
            patch = s.block_cell(m, c["rank"], "patch")
        else:
            with self.foreground:
                proj, patch = self._new_cell(s, m, c, mode)
        pngs = {"projection": png_bytes(proj), "patch": png_bytes(patch)}
        self._pictures.put(key, pngs, len(pngs["projection"]) + len(pngs["patch"]))
        return pngs

    def _new_cell(self, s, m, c, mode):
        """Project a kept unit in a mode the scan did not draw: (projection cell, patch cell)."""
        x, shown = self._scan_input(s, c["image"])
        fwd = forward(self.net, x[None], keep="all", upto=s.layer)
        p = self._project(x, fwd, s.layer, Unit(0, m, c["y"], c["x"]), mode)
        return unit_cell(shown, p, c["box"], c["field"], self.net.meta, s.cell, s.percentile)

    def _scan_input(self, s, image):
        key = (s.layer, image)
        hit = self._scan_inputs.get(key)
        if hit is None:
            hit = s.input(image, self.net.meta)
            self._scan_inputs.put(key, hit)
        return hit

    def _project(self, x, fwd, layer, unit, mode):
        """(3, H, W) projection of one unit; a map that never fires projects to zeros (no walk)."""
        act = fwd.outputs[layer][0, unit.channel]
        if not np.any(act):
            return np.zeros_like(x)
        return project(self.net, x[None], layer, [unit], mode=mode, forward_result=fwd)[0]

    # -- an image of the user's -----------------------------------------------------------------
    def _forward(self, image_id):
        """The image's forward pass with every activation and switch kept (cached per image)."""
        img = self.images.get(image_id)
        fwd = self._forwards.get(image_id)
        if fwd is None:
            with self._forward_lock:
                fwd = self._forwards.get(image_id)
                if fwd is None:
                    with self.foreground:
                        fwd = forward(self.net, img.x[None], keep="all")
                    self._forwards.put(image_id, fwd)
        return img, fwd

    def classify(self, image_id, k=5):
        check_classifier(self.net)
        img, fwd = self._forward(image_id)
        prob = fwd.output[0].astype(np.float64)                     # (K,)
        labels = self.jobs.labels
        order = np.argsort(-prob, kind="stable")[:k]
        return {"name": img.name, "top": [{"index": int(c), "label": labels[c], "prob": float(prob[c])} for c in order]}

    def image_maps(self, image_id, layer, k=12):
        """The k maps of `layer` with the largest maximum on this image: {name, layer, shape, maps:
        [{map, max, y, x}]}, (y, x) the first maximum in row-major order."""
        shape = check_spatial(self.arch, layer)
        img, fwd = self._forward(image_id)
        a = fwd.outputs[layer][0].reshape(shape[0], -1)              # (C, H*W)
        best = np.argmax(a, axis=1)                                  # first maximum, row-major
        peak = a[np.arange(shape[0]), best]
        order = np.argsort(-peak, kind="stable")[:max(1, min(int(k), shape[0]))]
        return {"name": img.name, "layer": layer, "shape": list(shape),
                "maps": [{"map": int(c), "max": float(peak[c]), "y": int(best[c] // shape[2]),
                          "x": int(best[c] % shape[2])} for c in order]}

    def activation_png(self, image_id, layer, m):
        """Map m of `layer` on this image as an (h, w) heat map PNG (RGBA, transparent at zero)."""
        check_spatial(self.arch, layer)
        check_map(self.arch, layer, m)
        _, fwd = self._forward(image_id)
        return png_bytes(heat_rgba(fwd.outputs[layer][0, m]))

    def input_png(self, image_id):
        return png_bytes(self.images.get(image_id).display)

    def project(self, image_id, layer, m, y=None, x=None, mode="deconvnet"):
        """One unit of this image projected to pixels: (PNG bytes, {y, x, activation, box})."""
        shape = check_map(self.arch, layer, m)
        check_position(shape, layer, y, x)
        check_mode(mode)
        img, fwd = self._forward(image_id)
        act = fwd.outputs[layer][0, m]
        if len(shape) == 3 and y is None:
            y, x = (int(v) for v in np.unravel_index(np.argmax(act), act.shape))
        key = ("live", image_id, layer, m, y, x, mode)
        hit = self._pictures.get(key)
        if hit is None:
            with self.foreground:
                p = self._project(img.x, fwd, layer, Unit(0, m, y, x), mode)             # (3, H, W)
            value = float(act[y, x]) if y is not None else float(act)
            box = unit_box(self.arch, layer, y, x) if y is not None else (0, img.x.shape[1], 0, img.x.shape[2])
            hit = (png_bytes(_render_in_box(p, box, self.net.meta)),
                   {"layer": layer, "map": m, "y": y, "x": x, "mode": mode, "activation": value,
                    "box": [int(v) for v in box]})
            self._pictures.put(key, hit, len(hit[0]))
        return hit
