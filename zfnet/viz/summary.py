"""The top-k of a scan as a mergeable summary: per feature map, the k strongest units over a set
of images, one unit per image; summaries of any shards merge into the summary of their union.

Shape legend: N = images in a batch, C = the layer's feature maps, H, W = its spatial size,
M = the chosen maps, k = units kept per map.

What is kept (the paper's rule: one unit per image per map). For image n and map m, the image's
strongest unit is

    (y*, x*) = argmax_{y,x} a[n, m, y, x]         (first maximum in row-major order on ties)
    v[n, m]  = a[n, m, y*, x*]

and per map the summary keeps the k images with the largest v, strongest first.

The tie rule (one total order, so the result is a pure function of the *set* of images): per
map the entries are sorted by

    value descending, then the image's content hash (sha256 of its file) ascending, then its path

(zfnet.viz.collect.image_key). Neither the order of the images, nor how they were split into
batches, shards or runs, nor the order or grouping of the merges changes a summary: merging is
associative and commutative, and an image met twice counts once.

A Summary holds its image table (`images`: records with path, size, mtime_ns, sha256), the
images that could not be read (`skipped`), and the (M, k) arrays of a TopK whose `image` entries
index the table. Only arrays of size M x k and the table (a few dozen bytes per image) are held.
"""
from dataclasses import dataclass, field

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.viz.collect import image_key


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

    image[j, r] is the index (in the owner's image table) of the r-th strongest kept unit of map
    maps[j], or -1 for an empty slot (fewer than k images so far); value, y, x are its activation
    and position.
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

    def entries(self, j):
        """Kept units of the j-th chosen map, strongest first: [(image, y, x, value), ...]."""
        return [(int(self.image[j, r]), int(self.y[j, r]), int(self.x[j, r]), float(self.value[j, r]))
                for r in range(self.k) if self.image[j, r] >= 0]

    def to_dict(self):
        return {"maps": self.maps.tolist(), "k": self.k, "value": self.value.tolist(),
                "image": self.image.tolist(), "y": self.y.tolist(), "x": self.x.tolist()}

    @classmethod
    def from_dict(cls, d):
        k = int(d["k"])
        return cls(np.array(d["maps"], np.int64), k, np.array(d["value"], np.float32).reshape(-1, k),
                   np.array(d["image"], np.int64).reshape(-1, k), np.array(d["y"], np.int64).reshape(-1, k),
                   np.array(d["x"], np.int64).reshape(-1, k))


@dataclass
class Summary:
    """The top-k of a set of images (see the module docstring): topk indexes `images`."""
    topk: TopK
    images: list = field(default_factory=list)     # [{"path", "size", "mtime_ns", "sha256"}]
    skipped: list = field(default_factory=list)    # [{"path", "size", "mtime_ns", "reason"}]
    _index: dict = field(default=None, repr=False, compare=False)   # image key -> table position
    _paths: set = field(default=None, repr=False, compare=False)    # the table's paths

    @classmethod
    def empty(cls, maps, k):
        return cls(TopK(maps, k))

    def key_entries(self, j):
        """The j-th map's kept units as [(sha256, path, y, x, value), ...]: independent of the
        table's order, so summaries made in different orders compare equal."""
        return [(*image_key(self.images[i]), y, x, v) for i, y, x, v in self.topk.entries(j)]

    def to_dict(self):
        return {"images": self.images, "skipped": self.skipped, "topk": self.topk.to_dict()}

    @classmethod
    def from_dict(cls, d):
        return cls(TopK.from_dict(d["topk"]), list(d["images"]), list(d["skipped"]))


def summarize(records, a, maps, k, skipped=()):
    """The summary of one batch: records (N image records), a (N, C, H, W) their activations."""
    s = Summary(TopK(maps, k), list(records), list(skipped))
    n = len(records)
    if n:
        value, y, x = image_maxima(a, s.topk.maps)                  # (N, M) each
        images = np.broadcast_to(np.arange(n, dtype=np.int64), (len(s.topk.maps), n))
        s.topk = _best_k(s.topk, value.T, images, y.T, x.T, s.images)
    return s


def _ranks(image_all, images):
    """(M, n) rank of each entry's image in the order (sha256, path); empty slots rank last."""
    ids = np.unique(image_all[image_all >= 0])
    keys = [image_key(images[i]) for i in ids.tolist()]
    rank_of = np.empty(len(ids), np.int64)
    rank_of[sorted(range(len(ids)), key=keys.__getitem__)] = np.arange(len(ids))
    pos = np.searchsorted(ids, np.maximum(image_all, 0))
    return np.where(image_all >= 0, rank_of[np.minimum(pos, len(ids) - 1)] if len(ids) else 0, len(ids))


def _first_per_image(image_sorted):
    """(M, n) bool: False where an image already appeared earlier in its (sorted) row."""
    m, n = image_sorted.shape
    by_image = np.argsort(image_sorted, axis=1, kind="stable")                 # earlier ranks first
    im = np.take_along_axis(image_sorted, by_image, axis=1)
    repeat = np.zeros((m, n), bool)
    repeat[:, 1:] = (im[:, 1:] == im[:, :-1]) & (im[:, 1:] >= 0)
    keep = np.ones((m, n), bool)
    np.put_along_axis(keep, by_image, ~repeat, axis=1)
    return keep


def _best_k(top, value, image, y, x, images, dedupe=False):
    """The k best of top's entries plus candidates value/image/y/x (M, n) by the tie rule."""
    value_all = np.concatenate([top.value, value], axis=1)                    # (M, k+n)
    image_all = np.concatenate([top.image, image], axis=1)
    y_all, x_all = np.concatenate([top.y, y], axis=1), np.concatenate([top.x, x], axis=1)
    primary = np.where(image_all < 0, np.inf, -value_all.astype(np.float64))   # empty slots last
    order = np.lexsort((_ranks(image_all, images), primary), axis=1)         # (M, k+n)
    if dedupe:   # an image met twice keeps its best entry; the others become empty slots
        keep = np.empty_like(image_all, dtype=bool)
        np.put_along_axis(keep, order, _first_per_image(np.take_along_axis(image_all, order, axis=1)), axis=1)
        image_all, primary = np.where(keep, image_all, -1), np.where(keep, primary, np.inf)
        value_all, y_all, x_all = (np.where(keep, arr, 0).astype(arr.dtype) for arr in (value_all, y_all, x_all))
        order = np.lexsort((_ranks(image_all, images), primary), axis=1)
    order = order[:, :top.k]
    best = (np.take_along_axis(arr, order, axis=1) for arr in (value_all, image_all, y_all, x_all))   # (M, k) each
    return TopK(top.maps, top.k, *best)


def _table_index(s):
    """(key -> table position, set of paths) of s's table, kept up to date by merge_into."""
    if s._index is None:
        s._index = {image_key(r): i for i, r in enumerate(s.images)}
        s._paths = {r["path"] for r in s.images}
    return s._index, s._paths


def merge_into(acc, other):
    """Merge summary `other` into `acc` in place (acc keeps its table order; other's new images
    are appended). The in-process scan's step; see merge() for the pure form."""
    if acc.topk.k != other.topk.k or not np.array_equal(acc.topk.maps, other.topk.maps):
        raise ZFNetError(f"cannot merge top-k summaries of different maps or k ({len(acc.topk.maps)} maps, "
                         f"k {acc.topk.k} vs {len(other.topk.maps)} maps, k {other.topk.k})")
    index, paths = _table_index(acc)
    remap, overlap = np.empty(len(other.images) + 1, np.int64), False
    remap[-1] = -1
    for i, rec in enumerate(other.images):
        key = image_key(rec)
        overlap |= key in index
        if key not in index:
            index[key] = len(acc.images)
            paths.add(rec["path"])
            acc.images.append(rec)
        remap[i] = index[key]
    t = other.topk
    acc.topk = _best_k(acc.topk, t.value, remap[t.image], t.y, t.x, acc.images, dedupe=overlap)
    acc.skipped = _merge_skipped(acc.skipped, other.skipped, paths)
    return acc


def _merge_skipped(a, b, scanned):
    """Skipped records of both, minus images scanned after all; one per path (the newest file)."""
    out = {}
    for rec in list(a) + list(b):
        old = out.get(rec["path"])
        if rec["path"] not in scanned and (old is None or (rec["mtime_ns"] or 0) > (old["mtime_ns"] or 0)):
            out[rec["path"]] = rec
    return list(out.values())


def merge(*summaries):
    """The summary of the union of the summaries' images: associative, commutative, deterministic
    (see the module docstring). Inputs are left unchanged."""
    if not summaries:
        raise ZFNetError("merge needs at least one top-k summary")
    first = summaries[0]
    acc = Summary(first.topk, list(first.images), list(first.skipped))
    for s in summaries[1:]:
        merge_into(acc, s)
    return acc
