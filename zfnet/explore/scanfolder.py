"""A ``zfnet topk`` output folder, read through the files it writes (index.json, inputs/, maps/).

    scan = ScanFolder("top9/", net)
    scan.layer, scan.maps, scan.k, scan.mode            # "fire9/concat", [0, 1, ...], 9, "deconvnet"
    scan.cells(7)                                       # map 7's kept units, strongest first
    scan.block_cell(7, 0, "projection")                 # (cell, cell, 3) uint8, cut from maps/*.png
    scan.input(i)                                       # (3, H, W) float32: image i as the network saw it

Only the documented folder format is read, never the scan's internals. inputs/img<i>.png holds
image i after resize and crop, so normalising it (zfnet.image.normalise) gives the exact network
input: a folder keeps working when the original photographs have moved. Every file name read
from index.json is checked to stay inside the folder.
"""
import json
from pathlib import Path

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.explore.errors import NotFound
from zfnet.explore.pictures import read_png
from zfnet.image import normalise


class ScanFolder:
    """The maps, kept units and pictures of one scanned layer; checked against `net` on opening."""

    def __init__(self, folder, net, arch=None):
        self.folder = Path(folder).resolve()
        index = self.folder / "index.json"
        if not index.is_file():
            raise ZFNetError(f"{folder}: no index.json; give the --out folder of 'zfnet topk' "
                             f"(run without --scan-only, which draws nothing)")
        try:
            self.index = json.loads(index.read_text())
            self.layer = self.index["layer"]
            self.k = int(self.index["k"])
            self.mode = self.index["projection"]["mode"]
            self.cell = int(self.index["cell"])
            self.percentile = self.index["percentile"]
            self._results = {int(e["map"]): e for e in self.index["results"]}
        except (ValueError, KeyError, TypeError) as e:
            raise ZFNetError(f"{index}: not a zfnet topk index ({e!r} missing or malformed); rerun zfnet topk") from None
        self._check_model(net, arch or net.arch)
        self.maps = sorted(self._results)

    def _check_model(self, net, arch):
        name = self.index.get("architecture")
        if name != arch.name or self.index.get("model") != net.meta.get("model", self.index.get("model")):
            raise ZFNetError(f"{self.folder}: scanned with {self.index.get('model')} ({name}), but the model "
                             f"loaded is {net.meta.get('model')} ({arch.name}); pass the same --model")
        arch.layer(self.layer)   # unknown -> lists the layers
        if list(arch.shapes[self.layer]) != list(self.index.get("layer_shape", [])):
            raise ZFNetError(f"{self.folder}: layer {self.layer!r} has shape {self.index.get('layer_shape')} "
                             f"in the scan, {list(arch.shapes[self.layer])} in the model")

    def _file(self, rel):
        """A path named in index.json, refused if it leaves the folder."""
        path = (self.folder / rel).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            raise ZFNetError(f"{self.folder}: index.json names {rel!r}, which is not a file inside the folder")
        return path

    def entry(self, m):
        try:
            return self._results[int(m)]
        except KeyError:
            raise NotFound(f"map {m} of {self.layer!r} was not scanned; the scanned maps are "
                           f"{self.maps[0]}..{self.maps[-1]} ({len(self.maps)} maps)") from None

    def cells(self, m):
        """Map m's kept units, strongest first: [{rank, image, name, input_png, y, x, value, box, field}]."""
        return [{"rank": c["rank"], "image": int(c["image"]), "name": Path(c["path"]).name,
                 "input_png": c["input_png"], "y": int(c["y"]), "x": int(c["x"]), "value": float(c["value"]),
                 "box": [int(v) for v in c["box"]], "field": [int(v) for v in c["field"]]}
                for c in self.entry(m)["cells"]]

    def block_cell(self, m, rank, part):
        """A cell of map m's block figure (part "projection" or "patch"): (cell, cell, 3) uint8."""
        e = self.entry(m)
        c = e["cells"][rank]
        y, x, h, w = c["projection_cell" if part == "projection" else "patch_cell"]
        block = read_png(self._file(e["png"]))
        return np.ascontiguousarray(block[y:y + h, x:x + w])

    def input(self, image, meta):
        """(3, H, W) float32 network input and (H, W, 3) uint8 display of scanned image `image`."""
        rel = next((c["input_png"] for e in self._results.values() for c in e["cells"]
                    if int(c["image"]) == int(image)), None)
        if rel is None:
            raise NotFound(f"image {image} holds no kept unit of this scan")
        shown = read_png(self._file(rel))
        return normalise(shown, meta), shown
