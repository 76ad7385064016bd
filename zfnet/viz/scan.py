"""The streaming top-k scan behind Fig. 2: the k strongest units of every chosen feature map of
one layer, over an image collection of any size, resumable after a crash and extendable.

Shape legend: N = images in a batch, C = the layer's feature maps, H, W = its spatial size,
M = the chosen maps, k = units kept per map.

What is kept (the paper's rule: one unit per image per map). For image n and map m, the image's
strongest unit is

    (y*, x*) = argmax_{y,x} a[n, m, y, x]         (first maximum in row-major order on ties)
    v[n, m]  = a[n, m, y*, x*]

and for every map the scan keeps the k images with the largest v, strongest first; between
images with equal values the earlier image wins (the smaller image index: its position in the
order the images were first scanned). So the result is a pure function of the ordered image
list, however the scan was split into runs, batches or resumptions.

Streaming: images are loaded, preprocessed and run (``forward(..., upto=layer)``) one batch at a
time; only the (M, k) arrays of kept units survive a batch, so memory does not grow with the
collection (apart from the list of scanned paths, a few dozen bytes per image).

State: after every batch the whole scan state is written atomically to a small JSON file
(``STATE_FILE`` in the output folder): the model and a digest of its weights, the layer, maps, k,
the preprocessing, every scanned image (path, size, mtime), every skipped image with its reason,
and the (M, k) kept units. A crash loses at most the batch in flight; running again with the same
arguments continues where it stopped, and running with more images extends the result without
rescanning the old ones. An image whose file changed since it was scanned makes the saved top-k
stale (its old units may be in it): the scan refuses to continue and says to start over.
"""
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zfnet.atomic import write_text
from zfnet.errors import ZFNetError
from zfnet.net.forward import forward

STATE_FILE = "topk_state.json"
STATE_FORMAT = "zfnet-topk-scan"
STATE_VERSION = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
PREPROCESSING_KEYS = ("input_size", "channel_order", "scale", "mean", "std", "resize")
LOADERS = min(4, os.cpu_count() or 1)   # threads decoding images ahead of the forward pass


# -- the collection --------------------------------------------------------------------------
def _is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def collect_images(source):
    """The ordered list of image paths (absolute strings) named by `source`.

    - a folder: every entry whose name has an image extension (IMAGE_EXTENSIONS, any case),
      searched recursively, in sorted order of the relative path. Entries that merely *look*
      like images (a folder called x.jpg, a broken link) are listed too, so that the scan
      reports them instead of silently ignoring them;
    - an image file: just that image;
    - any other file: a list, one path per line (relative paths are relative to the list's
      folder; blank lines and lines starting with '#' are ignored), in the list's order;
    - a list/tuple of paths: those paths, in order.
    Duplicates are dropped (the first occurrence keeps its place).
    """
    if isinstance(source, (list, tuple)):
        paths = [os.path.abspath(os.fspath(p)) for p in source]
    else:
        src = Path(source)
        if src.is_dir():
            paths = []
            for root, dirs, files in os.walk(src, followlinks=False):
                # a folder named like an image is a (bad) image candidate, not a place to look in
                for d in list(dirs):
                    if _is_image_name(d):
                        paths.append(os.path.join(root, d))
                        dirs.remove(d)
                dirs.sort()
                paths.extend(os.path.join(root, f) for f in files if _is_image_name(f))
            paths = sorted((os.path.abspath(p) for p in paths), key=lambda p: os.path.relpath(p, src.resolve()))
            if not paths:
                raise ZFNetError(f"{src}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
        elif src.is_file():
            if _is_image_name(src.name):
                paths = [os.path.abspath(src)]
            else:
                try:
                    lines = src.read_text(encoding="utf-8").splitlines()
                except (OSError, UnicodeDecodeError) as e:
                    raise ZFNetError(f"{src}: cannot read the image list ({e})") from None
                base = src.resolve().parent
                paths = [os.path.abspath(base / line.strip()) for line in lines
                         if line.strip() and not line.strip().startswith("#")]
                if not paths:
                    raise ZFNetError(f"{src}: the image list is empty (one image path per line)")
        else:
            raise ZFNetError(f"{src}: no such folder or file (give a folder of images or a text file listing them)")
    seen, out = set(), []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def parse_maps(spec, n_maps):
    """Which feature maps to keep, as a sorted int array.

    "all" -> every map 0..C-1; "N" (one integer) -> the first N maps 0..N-1; "i,j,..." -> those
    maps (ranges "a-b" allowed inside the list, e.g. "0-7,42"; one single map is written "i,").
    A list of ints means those maps.
    """
    if isinstance(spec, (list, tuple, np.ndarray)):
        maps = [int(m) for m in spec]
    else:
        s = str(spec).strip().lower()
        if s == "all":
            maps = list(range(n_maps))
        elif s.isdigit():
            n = int(s)
            if not 1 <= n <= n_maps:
                raise ZFNetError(f"--maps {s}: the first N maps needs 1 <= N <= {n_maps} (the layer has {n_maps} maps)")
            maps = list(range(n))
        else:
            maps = []
            for part in (p.strip() for p in s.split(",")):
                if not part:
                    continue
                a, dash, b = part.partition("-")
                if not a.isdigit() or (dash and not b.isdigit()):
                    raise ZFNetError(
                        f"--maps {spec!r}: expected 'all', a count N, or map indices like '3,17,40' or '0-7,42'"
                    )
                maps.extend(range(int(a), int(b) + 1) if dash else [int(a)])
            if not maps:
                raise ZFNetError(f"--maps {spec!r}: no maps given")
    bad = [m for m in maps if not 0 <= m < n_maps]
    if bad:
        raise ZFNetError(f"maps {bad} do not exist: the layer has {n_maps} maps (0..{n_maps - 1})")
    return np.array(sorted(set(maps)), dtype=np.int64)


# -- the per-map top-k -----------------------------------------------------------------------
def image_maxima(a, maps):
    """Each image's strongest unit in each chosen map.

    a: (N, C, H, W) activations; maps: (M,) indices. Returns value (N, M) float32 and y, x (N, M)
    int64: v[n, j] = max_{y,x} a[n, maps[j], y, x] at its first maximum in row-major order.
    """
    n, c, h, w = a.shape
    flat = a[:, maps].reshape(n, len(maps), h * w)               # (N, M, H*W)
    idx = flat.argmax(axis=2)                                    # (N, M); numpy returns the first max
    value = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]   # (N, M)
    y, x = np.divmod(idx, w)
    return value.astype(np.float32), y.astype(np.int64), x.astype(np.int64)


@dataclass
class TopK:
    """The k strongest units per map, strongest first: arrays (M, k).

    image[j, r] is the image index of the r-th strongest kept unit of map maps[j], or -1 for an
    empty slot (fewer than k images scanned so far); value, y, x are its activation and position.
    """
    maps: np.ndarray
    k: int
    value: np.ndarray = None
    image: np.ndarray = None
    y: np.ndarray = None
    x: np.ndarray = None

    def __post_init__(self):
        self.maps = np.asarray(self.maps, dtype=np.int64)
        m = len(self.maps)
        if self.k < 1:
            raise ZFNetError(f"k must be >= 1, got {self.k}")
        if self.value is None:
            self.value = np.zeros((m, self.k), dtype=np.float32)
            self.image = np.full((m, self.k), -1, dtype=np.int64)
            self.y = np.zeros((m, self.k), dtype=np.int64)
            self.x = np.zeros((m, self.k), dtype=np.int64)

    def merge(self, images, value, y, x):
        """Add one batch's candidates: images (N,) indices, value/y/x (N, M) from image_maxima.

        Sort key per map: (-value, image index), empty slots last; keep the first k.
        """
        m, n = len(self.maps), len(images)
        if n == 0:
            return
        value_all = np.concatenate([self.value, value.T], axis=1)                   # (M, k+N)
        image_all = np.concatenate([self.image, np.broadcast_to(np.asarray(images, np.int64), (m, n))], axis=1)
        y_all = np.concatenate([self.y, y.T], axis=1)
        x_all = np.concatenate([self.x, x.T], axis=1)
        primary = np.where(image_all < 0, np.inf, -value_all.astype(np.float64))    # empty slots last
        order = np.lexsort((image_all, primary), axis=1)[:, :self.k]                 # (M, k)
        self.value = np.take_along_axis(value_all, order, axis=1)
        self.image = np.take_along_axis(image_all, order, axis=1)
        self.y = np.take_along_axis(y_all, order, axis=1)
        self.x = np.take_along_axis(x_all, order, axis=1)

    def add(self, images, a):
        """Merge a batch of activations a: (N, C, H, W) for images (N,) indices."""
        self.merge(images, *image_maxima(a, self.maps))

    def entries(self, j):
        """Kept units of the j-th chosen map, strongest first: [(image, y, x, value), ...]."""
        return [(int(self.image[j, r]), int(self.y[j, r]), int(self.x[j, r]), float(self.value[j, r]))
                for r in range(self.k) if self.image[j, r] >= 0]

    def to_dict(self):
        return {"maps": self.maps.tolist(), "k": self.k, "value": self.value.tolist(),
                "image": self.image.tolist(), "y": self.y.tolist(), "x": self.x.tolist()}

    @classmethod
    def from_dict(cls, d):
        return cls(np.array(d["maps"], np.int64), int(d["k"]), np.array(d["value"], np.float32).reshape(-1, d["k"]),
                   np.array(d["image"], np.int64).reshape(-1, d["k"]), np.array(d["y"], np.int64).reshape(-1, d["k"]),
                   np.array(d["x"], np.int64).reshape(-1, d["k"]))


# -- identity of what was scanned --------------------------------------------------------------
def weights_digest(net, layer):
    """sha256 over the tensors of every layer up to `layer` (all that the activations depend on)."""
    h = hashlib.sha256()
    for spec in net.arch.layers[: net.arch.index(layer) + 1]:
        for key in sorted(spec.param_shapes()):
            a = net.params[f"{spec.name}.{key}"]
            h.update(f"{spec.name}.{key}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def file_stamp(path):
    """(size, mtime_ns) of a file, or (None, None) if it cannot even be stat'ed."""
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None, None


@dataclass
class ScanState:
    """Everything needed to resume or extend a scan (see the module docstring)."""
    model: str
    source_sha256: str
    weights_sha256: str
    layer: str
    layer_shape: list
    preprocessing: dict
    topk: TopK
    images: list = field(default_factory=list)     # [{"path", "size", "mtime_ns"}], index = image index
    skipped: list = field(default_factory=list)    # [{"path", "size", "mtime_ns", "reason"}]
    seconds: float = 0.0                           # scan time over all runs

    @property
    def maps(self):
        return self.topk.maps

    @property
    def k(self):
        return self.topk.k

    def to_dict(self):
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "model": self.model,
                "source_sha256": self.source_sha256, "weights_sha256": self.weights_sha256,
                "layer": self.layer, "layer_shape": list(self.layer_shape),
                "preprocessing": self.preprocessing, "seconds": self.seconds,
                "images": self.images, "skipped": self.skipped, "topk": self.topk.to_dict()}

    @classmethod
    def from_dict(cls, d, source="scan state"):
        if d.get("format") != STATE_FORMAT or d.get("version") != STATE_VERSION:
            raise ZFNetError(f"{source}: not a zfnet top-k scan state (format {d.get('format')!r}, version {d.get('version')!r})")
        try:
            return cls(d["model"], d["source_sha256"], d["weights_sha256"], d["layer"], d["layer_shape"],
                       d["preprocessing"], TopK.from_dict(d["topk"]), d["images"], d["skipped"], float(d["seconds"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ZFNetError(f"{source}: malformed scan state ({e}); delete it or pass --restart") from None

    def save(self, path):
        """Atomic write: a crash leaves the previous state or this one, never half of one."""
        write_text(path, json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path):
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ZFNetError(f"{path}: cannot read the scan state ({e}); delete it or pass --restart") from None
        return cls.from_dict(d, source=str(path))

    def image_path(self, i):
        return self.images[i]["path"]


def preprocessing_of(meta, crop):
    return {**{k: meta.get(k) for k in PREPROCESSING_KEYS}, "crop": bool(crop)}


def _new_state(net, layer, maps, k, crop):
    return ScanState(model=str(net.meta.get("model", net.arch.name)),
                     source_sha256=str(net.meta.get("source_sha256", "")),
                     weights_sha256=weights_digest(net, layer), layer=layer,
                     layer_shape=list(net.arch.shapes[layer]), preprocessing=preprocessing_of(net.meta, crop),
                     topk=TopK(maps, k))


def _check_resumable(state, fresh, path):
    """The saved state must describe the same computation; else say what differs and the fix."""
    fix = f"use another --out folder, or --restart to discard the saved scan in {Path(path).parent}"
    for what, old, new in (("model weights", state.weights_sha256, fresh.weights_sha256),
                           ("layer", state.layer, fresh.layer),
                           ("maps", state.maps.tolist(), fresh.maps.tolist()),
                           ("k", state.k, fresh.k),
                           ("preprocessing", state.preprocessing, fresh.preprocessing)):
        if old != new:
            old_s, new_s = (f"{v[:3]}...({len(v)} maps)" if isinstance(v, list) and len(v) > 6 else v for v in (old, new))
            if what == "model weights":
                old_s, new_s = f"{state.model} ({old[:12]})", f"{fresh.model} ({new[:12]})"
            raise ZFNetError(f"{path}: the saved scan used {what} {old_s}, this run asks for {new_s}; {fix}")
    changed = [im["path"] for im in state.images if file_stamp(im["path"]) != (im["size"], im["mtime_ns"])]
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise ZFNetError(
            f"{path}: {len(changed)} already scanned image(s) changed or disappeared since the scan "
            f"({', '.join(changed[:3])}{more}); their old activations may be in the saved top-k, so it "
            f"cannot be extended: pass --restart to scan from scratch"
        )


# -- loading ---------------------------------------------------------------------------------
def _image_errors():
    from PIL import Image
    return (ZFNetError, OSError, SyntaxError, Image.DecompressionBombError)


def load_input(path, meta, crop=True):
    """Load and preprocess one image: (3, H, W) float32 (zfnet.image's rules)."""
    from zfnet.image import load_image, preprocess
    return preprocess(load_image(path), meta, crop=crop)


def _load_one(path, meta, crop, load):
    """(path, stamp, x (3, H, W) or None, reason or None); never raises for a bad image."""
    stamp = file_stamp(path)
    try:
        return path, stamp, np.ascontiguousarray(load(path, meta, crop), dtype=np.float32), None
    except _image_errors() as e:
        return path, stamp, None, _reason(path, e)


def _reason(path, e):
    msg = str(e) or type(e).__name__
    # the path is in our own records already; keep the reason short
    return msg.replace(f"{path}: ", "").replace(str(path), os.path.basename(path))


# -- the scan --------------------------------------------------------------------------------
@dataclass
class ScanResult:
    state: ScanState
    scanned: int                 # images scanned by this run
    skipped: list                # [{"path", "reason"}] skipped by this run
    seconds: float               # this run's wall time
    resumed: bool                # a saved state was continued
    not_in_collection: int = 0   # images of the saved scan that this run's collection lacks

    @property
    def images_per_s(self):
        return self.scanned / self.seconds if self.seconds > 0 else 0.0


def layer_maps(net, layer):
    """(C, H, W) of `layer`'s output; a layer without feature maps is a ZFNetError."""
    shape = net.arch.shapes[net.arch.layer(layer).name]
    if len(shape) != 3:
        raise ZFNetError(
            f"layer {layer!r} of {net.arch.name} has output shape {shape}, not feature maps (C, H, W); "
            f"choose a convolutional layer, e.g. one of: "
            + ", ".join(n for n in net.arch.names if len(net.arch.shapes[n]) == 3 and net.arch.shapes[n][1] > 1)
        )
    return shape


def scan(net, images, layer, maps="all", k=9, state_path=None, batch_size=16, restart=False,
         crop=True, progress=None, load=load_input):
    """Scan `images` once and keep, per chosen map of `layer`, the k strongest units (one per image).

    net: a Net with complete preprocessing meta; images: paths (see collect_images) in order;
    maps: "all" | "N" | "i,j,.." | list of ints (see parse_maps); state_path: where the state is
    saved after every batch (None: not saved, not resumable); restart: ignore a saved state.
    progress: called as progress(n, total) after every batch: n images finished (scanned or
        skipped) out of the `total` this run has to do (e.g. to drive a tqdm bar).
    load(path, meta, crop) -> (3, H, W) float32: the image loader (default zfnet.image's).
    Returns a ScanResult whose ``state.topk`` holds (M, k) arrays, strongest first.
    """
    c, _, _ = layer_maps(net, layer)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ZFNetError(f"batch size must be a positive integer, got {batch_size!r}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ZFNetError(f"k must be a positive integer, got {k!r}")
    need = [key for key in PREPROCESSING_KEYS if net.meta.get(key) is None and (crop or key != "resize")]
    if need and load is load_input:
        raise ZFNetError(
            f"the network's metadata lacks {', '.join(need)}, so images cannot be prepared for it; load it "
            f"with zfnet.weights.load_model (which reads its model card) or set net.meta"
        )
    fresh = _new_state(net, layer, parse_maps(maps, c), int(k), crop)
    state, resumed = fresh, False
    if state_path is not None and Path(state_path).exists() and not restart:
        state = ScanState.load(state_path)
        _check_resumable(state, fresh, state_path)
        resumed = True

    # what is left: images never scanned, and skipped ones whose file changed since (retry them)
    done = {im["path"] for im in state.images}
    skipped_before = {s["path"]: (s["size"], s["mtime_ns"]) for s in state.skipped}
    wanted = set(images)
    todo = [p for p in images if p not in done and skipped_before.get(p) != file_stamp(p)]
    retry = set(todo)
    state.skipped = [s for s in state.skipped if s["path"] not in retry]
    not_in_collection = sum(1 for p in done if p not in wanted)

    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    skipped_now, scanned_now = [], 0
    t0 = time.perf_counter()
    seconds_before = state.seconds
    if progress is not None:
        progress(0, len(todo))
    # The next batch is decoded by background threads (Pillow releases the GIL while decoding)
    # while the current one runs through the network.
    with ThreadPoolExecutor(max_workers=LOADERS) as pool:
        def submit(b):
            return [pool.submit(_load_one, p, net.meta, crop, load) for p in batches[b]] if b < len(batches) else []
        pending = submit(0)
        for b in range(len(batches)):
            loaded = [f.result() for f in pending]
            pending = submit(b + 1)
            good = [(p, st, x) for p, st, x, _ in loaded if x is not None]
            for p, st, _, reason in loaded:
                if reason is not None:
                    rec = {"path": p, "size": st[0], "mtime_ns": st[1], "reason": reason}
                    state.skipped.append(rec)
                    skipped_now.append({"path": p, "reason": reason})
            if good:
                x = _stack(good, net)                                                   # (N, 3, H, W)
                a = forward(net, x, upto=layer, switches=False).output                  # (N, C, H', W')
                first = len(state.images)
                state.topk.add(np.arange(first, first + len(good)), a)
                state.images.extend({"path": p, "size": st[0], "mtime_ns": st[1]} for p, st, _ in good)
                scanned_now += len(good)
            state.seconds = seconds_before + (time.perf_counter() - t0)
            if state_path is not None:
                state.save(state_path)
            if progress is not None:
                progress(len(loaded), len(todo))
    if state_path is not None and not batches:
        state.save(state_path)
    return ScanResult(state, scanned_now, skipped_now, time.perf_counter() - t0, resumed, not_in_collection)


def _stack(good, net):
    shapes = {x.shape for _, _, x in good}
    if len(shapes) != 1:
        raise ZFNetError(f"preprocessed images differ in shape {sorted(shapes)}; the scan needs one input size")
    return np.ascontiguousarray(np.stack([x for _, _, x in good]))


def load_state(out_dir):
    """The saved ScanState in `out_dir` (a ZFNetError if there is none)."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        raise ZFNetError(f"{out_dir}: no saved top-k scan ({STATE_FILE}); run zfnet topk first")
    return ScanState.load(path)
