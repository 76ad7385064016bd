"""The streaming top-k scan behind Fig. 2, in process: the k strongest units of every chosen
feature map of one layer, over an image collection of any size, resumable and extendable.

The scan is a few modules with one job each; a distributed scan calls the same functions:

    zfnet.viz.collect     paths of a folder / list file; each image's record and content hash
    zfnet.viz.shard       load a shard of images, run it up to the layer, reduce it to a summary
    zfnet.viz.summary     the mergeable top-k summary, its tie rule and merge()
    zfnet.viz.scan_state  the saved state (what was computed + the summary), resume checks
    zfnet.viz.scan        this driver: batches as shards, loader threads, a checkpoint per batch
    zfnet.viz.scan_dask   the same shards as tasks on a Dask cluster (``client=``)
    zfnet.viz.topk        render: projections of the kept units, the figures and the page

What is kept, and the tie rule, are in zfnet.viz.summary: per map the k images whose strongest
unit is largest, ties broken by (content hash, path), so the result depends on the set of images
only, not on their order or on how the scan was split.

Streaming: images are loaded, preprocessed and run (``forward(..., upto=layer)``) one batch at a
time; only the (M, k) arrays of kept units survive a batch, so memory does not grow with the
collection (apart from the table of scanned images, a few dozen bytes per image).

Several layers: ``scan_layers`` keeps the top-k of every listed layer from one forward pass per
image, each layer in its own state.

State: after every batch (every shard on Dask) the whole state is written atomically to a small JSON file
(``STATE_FILE`` in the output folder). A crash loses at most the batch in flight; running again
with the same arguments continues where it stopped, and running with more images extends the
result without rescanning the old ones.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.viz.scan_state import ScanState, check_resumable, remaining
from zfnet.viz.shard import check_preprocessing, choose_maps, layer_maps, load_input, read_image, summarize_layers
from zfnet.viz.summary import merge_into

LOADERS = min(4, os.cpu_count() or 1)   # threads decoding images ahead of the forward pass
SHARD_SIZE = 256                        # images per Dask task (see zfnet.viz.scan_dask)


@dataclass
class ScanResult:
    state: ScanState
    scanned: int                 # images scanned by this run
    skipped: list                # [{"path", "reason"}] skipped by this run
    seconds: float               # this run's wall time
    resumed: bool                # a saved state was continued
    not_in_collection: int = 0   # images of the saved scan that this run's collection lacks
    shards: int = 0              # shards (batches in process) merged by this run

    @property
    def images_per_s(self):
        return self.scanned / self.seconds if self.seconds > 0 else 0.0


def open_state(net, layer, maps, k, crop, state_path=None, restart=False):
    """(state, resumed): the saved state at state_path if it describes this computation (else a
    ZFNetError), or a new one. maps: "all" or a list of map indices."""
    c, _, _ = layer_maps(net, layer)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ZFNetError(f"k must be a positive integer, got {k!r}")
    fresh = ScanState.new(net, layer, choose_maps(maps, c), int(k), crop)
    if state_path is not None and Path(state_path).exists() and not restart:
        state = ScanState.load(state_path)
        check_resumable(state, fresh, state_path)
        return state, True
    return fresh, False


class _Merger:
    """The client's side of a scan: merges each finished shard ({layer: Summary}) into the
    states, saves them (the checkpoint) and reports progress."""

    def __init__(self, states, state_paths, total, progress, on_shard, n_shards):
        self.states, self.state_paths, self.total = states, state_paths, total
        self.progress, self.on_shard, self.n_shards = progress, on_shard, n_shards
        self.t0, self.before = time.perf_counter(), {layer: s.seconds for layer, s in states.items()}
        self.scanned, self.skipped, self.shards = 0, [], 0

    def start(self):
        if self.progress is not None:
            self.progress(0, self.total)
        if self.on_shard is not None:
            self.on_shard(0, self.n_shards)

    def add(self, parts, n_paths):
        for layer, part in parts.items():
            merge_into(self.states[layer].summary, part)
        first = next(iter(parts.values()))
        self.scanned += len(first.images)
        self.skipped += [{"path": s["path"], "reason": s["reason"]} for s in first.skipped]
        self.shards += 1
        self.save()
        if self.progress is not None:
            self.progress(n_paths, self.total)
        if self.on_shard is not None:
            self.on_shard(self.shards, self.n_shards)

    def save(self):
        now = time.perf_counter() - self.t0
        for layer, state in self.states.items():
            state.seconds = self.before[layer] + now
            if self.state_paths.get(layer) is not None:
                state.save(self.state_paths[layer])


def _todo(states, images):
    """The paths some state still lacks, in the collection's order; and the largest count of a
    state's images that the collection lacks."""
    left, missing = set(), 0
    for state in states.values():
        todo, lacks = remaining(state, images)
        left.update(todo)
        missing = max(missing, lacks)
    return [p for p in images if p in left], missing


def scan(net, images, layer, maps="all", k=9, state_path=None, batch_size=16, restart=False,
         crop=True, progress=None, load=load_input, client=None, shard_size=SHARD_SIZE, on_shard=None):
    """Scan `images` once and keep, per chosen map of `layer`, the k strongest units (one per image).

    net: a Net with complete preprocessing meta; images: paths (see collect_images) in order;
    maps: "all" or a list of map indices; state_path: where the state is saved after every batch
    (None: not saved, not resumable); restart: ignore a saved state.
    progress: called as progress(n, total) after every batch: n images finished (scanned or
        skipped) out of the `total` this run has to do (e.g. to drive a tqdm bar).
    load(path, meta, crop) -> (3, H, W) float32: the image loader (default zfnet.image's).
    client: a dask.distributed Client: the scan runs on its cluster in shards of shard_size
        images (zfnet.viz.scan_dask); on_shard(done, total) is called as shards finish.
    Returns a ScanResult whose ``state.topk`` holds (M, k) arrays, strongest first.
    """
    return scan_layers(net, images, {layer: maps}, k, {layer: state_path}, batch_size, restart, crop,
                       progress, load, client, shard_size, on_shard)[layer]


def scan_layers(net, images, wanted, k=9, state_paths=None, batch_size=16, restart=False, crop=True,
                progress=None, load=load_input, client=None, shard_size=SHARD_SIZE, on_shard=None):
    """scan() for several layers from one forward pass per image: wanted {layer: maps},
    state_paths {layer: path}; returns {layer: ScanResult}. Each layer has its own state; an
    image that one layer's saved state already holds counts once there (summaries merge
    idempotently), so layers saved at different points resume together."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ZFNetError(f"batch size must be a positive integer, got {batch_size!r}")
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ZFNetError(f"shard size must be a positive integer, got {shard_size!r}")
    if not wanted:
        raise ZFNetError("no layer to scan")
    if load is load_input:
        check_preprocessing(net, crop)
    state_paths = dict(state_paths or {})
    opened = {layer: open_state(net, layer, maps, k, crop, state_paths.get(layer), restart)
              for layer, maps in wanted.items()}
    states = {layer: s for layer, (s, _) in opened.items()}
    todo, not_in_collection = _todo(states, list(images))
    if client is None:
        run = _Merger(states, state_paths, len(todo), progress, on_shard, -(-len(todo) // batch_size))
        _scan_in_process(net, todo, batch_size, crop, load, run)
    else:
        from zfnet.viz.scan_dask import scan_on_cluster, shards_of
        shards = shards_of(todo, shard_size)
        run = _Merger(states, state_paths, len(todo), progress, on_shard, len(shards))
        scan_on_cluster(client, net, shards, {layer: (s.maps, s.k) for layer, s in states.items()},
                        batch_size, crop, load, run)
    if not todo:
        run.save()
    seconds = time.perf_counter() - run.t0
    return {layer: ScanResult(state, run.scanned, run.skipped, seconds, opened[layer][1], not_in_collection,
                              run.shards) for layer, state in states.items()}


def _scan_in_process(net, todo, batch_size, crop, load, run):
    """Batches of todo through the network here, each merged as a shard."""
    wanted = {layer: (s.maps, s.k) for layer, s in run.states.items()}
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    run.start()
    # The next batch is decoded by background threads (Pillow releases the GIL while decoding)
    # while the current one runs through the network.
    with ThreadPoolExecutor(max_workers=LOADERS) as pool:
        def submit(b):
            return [pool.submit(read_image, p, net.meta, crop, load) for p in batches[b]] if b < len(batches) else []
        pending = submit(0)
        for b in range(len(batches)):
            loaded = [f.result() for f in pending]
            pending = submit(b + 1)
            run.add(summarize_layers(net, wanted, loaded), len(loaded))
