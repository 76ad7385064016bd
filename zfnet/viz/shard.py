"""Scanning one shard of images: load and prepare each image, run the batch up to the layer,
reduce it to a top-k summary (zfnet.viz.summary).

    scan_shard(net, paths, layer, maps, k)  ==  summarize_shard(net, layer, maps, k, load_shard(paths, ...))
    scan_shard_layers(net, paths, wanted, batch_size)   several layers, batch by batch (a Dask task)

The two halves are separate so that the in-process scan decodes the next batch on threads while
the current one runs through the network; a worker of a distributed scan calls scan_shard. A bad
image never raises: it becomes a skipped record with the reason.

Shape legend: N = images in the shard, C, H', W' = the layer's maps and size, M = chosen maps.
"""
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.image import load_image, preprocess
from zfnet.net.forward import forward
from zfnet.viz.collect import file_sha256, file_stamp
from zfnet.viz.summary import merge_into, summarize

PREPROCESSING_KEYS = ("input_size", "channel_order", "scale", "mean", "std", "resize")


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


def choose_maps(maps, n_maps):
    """The chosen feature maps as a sorted int64 array: "all" (or None) -> 0..C-1; a sequence of
    ints -> those maps. (The command line's --maps syntax is parsed in zfnet.cli.)"""
    if maps is None or (isinstance(maps, str) and maps == "all"):
        return np.arange(n_maps, dtype=np.int64)
    if isinstance(maps, str) or not all(isinstance(m, (int, np.integer)) for m in maps):
        raise ZFNetError(f"maps must be 'all' or a list of map indices, got {maps!r}")
    if len(maps) == 0:
        raise ZFNetError("no maps chosen")
    bad = [int(m) for m in maps if not 0 <= m < n_maps]
    if bad:
        raise ZFNetError(f"maps {bad} do not exist: the layer has {n_maps} maps (0..{n_maps - 1})")
    return np.array(sorted({int(m) for m in maps}), dtype=np.int64)


def check_preprocessing(net, crop):
    """A ZFNetError unless net.meta says how to prepare images (zfnet.image's keys)."""
    need = [key for key in PREPROCESSING_KEYS if net.meta.get(key) is None and (crop or key != "resize")]
    if need:
        raise ZFNetError(
            f"the network's metadata lacks {', '.join(need)}, so images cannot be prepared for it; "
            f"convert the weights with their preprocessing (zfnet weights convert --channel-order, --scale, --mean, "
            f"--std, --input-size, --resize) or use a model name (zfnet weights list)"
        )


def preprocessing_of(meta, crop):
    """What a scan's inputs depend on: the preprocessing keys of meta and the crop flag."""
    return {**{k: meta.get(k) for k in PREPROCESSING_KEYS}, "crop": bool(crop)}


# -- loading ---------------------------------------------------------------------------------
def load_input(path, meta, crop=True):
    """Load and preprocess one image: (3, H, W) float32 (zfnet.image's rules)."""
    return preprocess(load_image(path), meta, crop=crop)


def _image_errors():
    from PIL import Image
    return (ZFNetError, OSError, SyntaxError, Image.DecompressionBombError)


def _reason(path, e):
    msg = str(e) or type(e).__name__
    # the path is in our own records already; keep the reason short
    return msg.replace(f"{path}: ", "").replace(str(path), os.path.basename(path))


def _content_sha256(path, x):
    """The image's content hash: its file's sha256; for a name that is no file (a custom `load`
    that serves arrays, as the benchmarks do), the sha256 of the prepared input's bytes."""
    if os.path.isfile(path):
        return file_sha256(path)
    return hashlib.sha256(x.tobytes()).hexdigest()


@dataclass
class Loaded:
    """One image read for a scan: its record (path, size, mtime_ns, sha256) and input x
    (3, H, W) float32, or x None and the reason it could not be read."""
    record: dict
    x: np.ndarray = None
    reason: str = None


def read_image(path, meta, crop=True, load=load_input):
    """Loaded(record, x) for one path; never raises for a bad image (Loaded with a reason)."""
    size, mtime_ns = file_stamp(path)          # before reading: a later change shows as a new stamp
    rec = {"path": path, "size": size, "mtime_ns": mtime_ns}
    try:
        x = np.ascontiguousarray(load(path, meta, crop), dtype=np.float32)
        return Loaded({**rec, "sha256": _content_sha256(path, x)}, x)
    except _image_errors() as e:
        return Loaded({**rec, "reason": _reason(path, e)}, reason=_reason(path, e))


def load_shard(paths, meta, crop=True, load=load_input):
    """[Loaded] for paths, in order (the in-process scan reads them on threads instead)."""
    return [read_image(p, meta, crop, load) for p in paths]


# -- the reduction -----------------------------------------------------------------------------
def _stack(xs):
    shapes = {x.shape for x in xs}
    if len(shapes) != 1:
        raise ZFNetError(f"preprocessed images differ in shape {sorted(shapes)}; the scan needs one input size")
    return np.ascontiguousarray(np.stack(xs))


def summarize_layers(net, wanted, loaded):
    """{layer: Summary} of loaded images ([Loaded]) for several layers from one forward pass.

    wanted: {layer: (maps, k)}; the pass runs up to the deepest of them.
    """
    good = [im for im in loaded if im.x is not None]
    skipped = [im.record for im in loaded if im.x is None]
    outputs = {}
    if good:
        x = _stack([im.x for im in good])                                            # (N, 3, H, W)
        deepest = max(wanted, key=net.arch.index)
        outputs = forward(net, x, keep=list(wanted), upto=deepest, switches=False).outputs   # (N, C, H', W') each
    return {layer: summarize([im.record for im in good], outputs.get(layer), maps, k, skipped)
            for layer, (maps, k) in wanted.items()}


def summarize_shard(net, layer, maps, k, loaded):
    """The top-k summary of loaded images ([Loaded]) for one layer."""
    return summarize_layers(net, {layer: (maps, k)}, loaded)[layer]


def scan_shard(net, paths, layer, maps, k, crop=True, load=load_input):
    """The top-k summary of the images at `paths` (maps: chosen indices, see choose_maps)."""
    return summarize_shard(net, layer, maps, k, load_shard(paths, net.meta, crop, load))


def scan_shard_layers(net, paths, wanted, batch_size=16, crop=True, load=load_input):
    """{layer: Summary} of the images at `paths`, batch_size images per forward pass, every
    layer of wanted ({layer: (maps, k)}) from the same pass. A distributed scan's task: a shard
    of a few hundred images never needs the memory of one forward pass over all of them."""
    acc = None
    for b in range(0, len(paths), batch_size):
        part = summarize_layers(net, wanted, load_shard(paths[b:b + batch_size], net.meta, crop, load))
        acc = part if acc is None else {layer: merge_into(acc[layer], part[layer]) for layer in wanted}
    if acc is None:
        raise ZFNetError("a shard needs at least one image path")
    return acc
