"""The saved state of a top-k scan: what was computed (model weights, layer, maps, k,
preprocessing) and its summary (zfnet.viz.summary), in one small JSON file written atomically.

A state describes one computation; a run may continue it only if it asks for the same one
(check_resumable). An already scanned image whose file changed since makes the saved top-k
stale (its old units may be in it): the scan refuses to continue and says to start over.
"""
import hashlib
import json
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zfnet.atomic import write_text
from zfnet.errors import ZFNetError
from zfnet.kernels import frozen
from zfnet.viz.collect import file_stamp
from zfnet.viz.shard import preprocessing_of
from zfnet.viz.summary import Summary

STATE_FILE = "topk_state.json"
STATE_FORMAT = "zfnet-topk-scan"
STATE_VERSION = 2     # 2: image records carry their sha256; ties are broken by (sha256, path)


# id(net) -> (a weak reference to net, {layer: (the tensors hashed, their digest)}): a digest of
# read-only tensors, kept while the net holds those same tensors (hashed once, not on every scan
# call: RESULTS.md); an entry goes when its net is collected
_digests = {}


def _kept_digests(net):
    """net's {layer: (tensors, digest)}, created empty (and dropped with net) the first time."""
    entry = _digests.get(id(net))
    if entry is None or entry[0]() is not net:
        entry = _digests[id(net)] = (weakref.ref(net, lambda _, key=id(net): _digests.pop(key, None)), {})
    return entry[1]


def weights_digest(net, layer):
    """sha256 over the tensors of every layer up to `layer` (all that the activations depend on)."""
    names = [f"{spec.name}.{key}" for spec in net.arch.layers[: net.arch.index(layer) + 1]
             for key in sorted(spec.param_shapes())]
    tensors = tuple(net.params[name] for name in names)
    kept = _kept_digests(net).get(layer)
    if kept is not None and len(kept[0]) == len(tensors) and all(a is b for a, b in zip(kept[0], tensors)):
        return kept[1]
    h = hashlib.sha256()
    for name, a in zip(names, tensors):
        h.update(f"{name}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    digest = h.hexdigest()
    if all(frozen(a) for a in tensors):                  # a writeable tensor may change: hashed each time
        _kept_digests(net)[layer] = (tensors, digest)
    return digest


@dataclass
class ScanState:
    """Everything needed to resume, extend or render a scan (see the module docstring)."""
    model: str
    source_sha256: str
    weights_sha256: str
    layer: str
    layer_shape: list
    preprocessing: dict
    summary: Summary
    seconds: float = 0.0                           # scan time over all runs

    @classmethod
    def new(cls, net, layer, maps, k, crop):
        """An empty state for scanning `layer` of net (maps: chosen indices)."""
        return cls(model=str(net.meta.get("model", net.arch.name)),
                   source_sha256=str(net.meta.get("source_sha256", "")),
                   weights_sha256=weights_digest(net, layer), layer=layer,
                   layer_shape=list(net.arch.shapes[layer]), preprocessing=preprocessing_of(net.meta, crop),
                   summary=Summary.empty(maps, k))

    # the summary's parts, by the names the renderers use
    @property
    def topk(self):
        return self.summary.topk

    @topk.setter
    def topk(self, value):
        self.summary.topk = value

    @property
    def images(self):                              # [{"path", "size", "mtime_ns", "sha256"}]
        return self.summary.images

    @property
    def skipped(self):                             # [{"path", "size", "mtime_ns", "reason"}]
        return self.summary.skipped

    @property
    def maps(self):
        return self.topk.maps

    @property
    def k(self):
        return self.topk.k

    def image_path(self, i):
        return self.images[i]["path"]

    def to_dict(self):
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "model": self.model,
                "source_sha256": self.source_sha256, "weights_sha256": self.weights_sha256,
                "layer": self.layer, "layer_shape": list(self.layer_shape),
                "preprocessing": self.preprocessing, "seconds": self.seconds, **self.summary.to_dict()}

    @classmethod
    def from_dict(cls, d, source="scan state"):
        if d.get("format") != STATE_FORMAT:
            raise ZFNetError(f"{source}: not a zfnet top-k scan state (format {d.get('format')!r})")
        if d.get("version") != STATE_VERSION:
            raise ZFNetError(f"{source}: a top-k scan state of version {d.get('version')!r}, this zfnet reads "
                             f"version {STATE_VERSION}; pass --restart to scan again")
        try:
            return cls(d["model"], d["source_sha256"], d["weights_sha256"], d["layer"], d["layer_shape"],
                       d["preprocessing"], Summary.from_dict(d), float(d["seconds"]))
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


def load_state(out_dir):
    """The saved ScanState in `out_dir` (a ZFNetError if there is none)."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        raise ZFNetError(f"{out_dir}: no saved top-k scan ({STATE_FILE}); run zfnet topk first")
    return ScanState.load(path)


def check_resumable(state, fresh, path):
    """The saved state must describe the same computation as `fresh`; else say what differs and the fix."""
    fix = f"use another --out folder, or --restart to discard the saved scan in {Path(path).parent}"
    # The layer first: the weights digest covers the layers up to the scanned one, so another
    # layer changes it too, and "other weights" would blame the wrong thing.
    for what, old, new in (("layer", state.layer, fresh.layer),
                           ("maps", state.maps.tolist(), fresh.maps.tolist()),
                           ("k", state.k, fresh.k),
                           ("preprocessing", state.preprocessing, fresh.preprocessing),
                           ("model weights", state.weights_sha256, fresh.weights_sha256)):
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


def check_unchanged(state, i):
    """A ZFNetError if image i of the scan changed on disk since it was scanned."""
    rec = state.images[i]
    if file_stamp(rec["path"]) != (rec["size"], rec["mtime_ns"]):
        raise ZFNetError(f"{rec['path']} changed or disappeared since it was scanned; rescan with --restart")


def check_weights(net, state):
    """A ZFNetError unless net has the weights the scan was made with."""
    if weights_digest(net, state.layer) != state.weights_sha256:
        raise ZFNetError(
            f"the saved scan of {state.layer!r} was made with other weights ({state.model}); "
            f"render it with the same model, or rescan with --restart"
        )


def remaining(state, paths):
    """What a run over `paths` has left to do: (todo paths in order, count of the state's images
    that `paths` lacks). Skipped images whose file changed since are retried: their old skip
    records are dropped from the state."""
    done = {im["path"] for im in state.images}
    skipped_before = {s["path"]: (s["size"], s["mtime_ns"]) for s in state.skipped}
    todo = [p for p in paths if p not in done and skipped_before.get(p) != file_stamp(p)]
    retry = set(todo)
    state.summary.skipped = [s for s in state.skipped if s["path"] not in retry]
    wanted = set(paths)
    return todo, sum(1 for p in done if p not in wanted)
