"""The streaming top-k scan behind Fig. 2, in process: the k strongest units of every chosen
feature map of one layer, over an image collection of any size, resumable and extendable.

The scan is a few modules with one job each; a distributed scan calls the same functions:

    zfnet.viz.collect     paths of a folder / list file; each image's record and content hash
    zfnet.viz.shard       load a shard of images, run it up to the layer, reduce it to a summary
    zfnet.viz.summary     the mergeable top-k summary, its tie rule and merge()
    zfnet.viz.scan_state  the saved state (what was computed + the summary), resume checks
    zfnet.viz.scan        this driver: batches as shards, loader threads, a checkpoint per batch
    zfnet.viz.topk        render: projections of the kept units, the figures and the page

What is kept, and the tie rule, are in zfnet.viz.summary: per map the k images whose strongest
unit is largest, ties broken by (content hash, path), so the result depends on the set of images
only, not on their order or on how the scan was split.

Streaming: images are loaded, preprocessed and run (``forward(..., upto=layer)``) one batch at a
time; only the (M, k) arrays of kept units survive a batch, so memory does not grow with the
collection (apart from the table of scanned images, a few dozen bytes per image).

State: after every batch the whole state is written atomically to a small JSON file
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
from zfnet.viz.shard import check_preprocessing, choose_maps, layer_maps, load_input, read_image, summarize_shard
from zfnet.viz.summary import merge_into

LOADERS = min(4, os.cpu_count() or 1)   # threads decoding images ahead of the forward pass


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


def scan(net, images, layer, maps="all", k=9, state_path=None, batch_size=16, restart=False,
         crop=True, progress=None, load=load_input):
    """Scan `images` once and keep, per chosen map of `layer`, the k strongest units (one per image).

    net: a Net with complete preprocessing meta; images: paths (see collect_images) in order;
    maps: "all" or a list of map indices; state_path: where the state is saved after every batch
    (None: not saved, not resumable); restart: ignore a saved state.
    progress: called as progress(n, total) after every batch: n images finished (scanned or
        skipped) out of the `total` this run has to do (e.g. to drive a tqdm bar).
    load(path, meta, crop) -> (3, H, W) float32: the image loader (default zfnet.image's).
    Returns a ScanResult whose ``state.topk`` holds (M, k) arrays, strongest first.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ZFNetError(f"batch size must be a positive integer, got {batch_size!r}")
    if load is load_input:
        check_preprocessing(net, crop)
    state, resumed = open_state(net, layer, maps, k, crop, state_path, restart)
    todo, not_in_collection = remaining(state, list(images))
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    t0, seconds_before, skipped_now, scanned_now = time.perf_counter(), state.seconds, [], 0
    if progress is not None:
        progress(0, len(todo))
    # The next batch is decoded by background threads (Pillow releases the GIL while decoding)
    # while the current one runs through the network.
    with ThreadPoolExecutor(max_workers=LOADERS) as pool:
        def submit(b):
            return [pool.submit(read_image, p, net.meta, crop, load) for p in batches[b]] if b < len(batches) else []
        pending = submit(0)
        for b in range(len(batches)):
            loaded = [f.result() for f in pending]
            pending = submit(b + 1)
            part = summarize_shard(net, layer, state.maps, state.k, loaded)
            merge_into(state.summary, part)
            scanned_now += len(part.images)
            skipped_now += [{"path": s["path"], "reason": s["reason"]} for s in part.skipped]
            state.seconds = seconds_before + (time.perf_counter() - t0)
            if state_path is not None:
                state.save(state_path)
            if progress is not None:
                progress(len(loaded), len(todo))
    if state_path is not None and not batches:
        state.save(state_path)
    return ScanResult(state, scanned_now, skipped_now, time.perf_counter() - t0, resumed, not_in_collection)
