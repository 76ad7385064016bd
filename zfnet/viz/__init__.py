"""The paper's experiments: each returns arrays and numbers first, renders PNG/HTML second.

    grid.py      tiling helpers (cells, grids, blocks) for every figure
    html.py      the self-contained HTML page builder every experiment's page uses
    filters.py   layer-1 filters as images, and numbers that describe them (Fig. 2 layer 1, Fig. 6)
    filters_page.py  the ``zfnet filters`` report: filter grid, numbers, top patches, page
    collect.py   the top-k scan, one job a module: image paths and records (content hash),
    shard.py     one shard of images -> a top-k summary (load, forward to the layer, reduce),
    summary.py   the mergeable top-k summary, its tie rule and merge,
    scan_state.py  the saved state (checkpoint, resume checks),
    scan.py      the in-process driver (batches as shards, loader threads, a checkpoint a batch)
    scan_dask.py   the same shards as tasks on a Dask cluster (optional: zfnet[dask])
    layer_sets.py  --layer lists and named sets ("stages")
    topk.py      Fig. 2: top-k units per feature map, their projections and patches, the figures
    topk_page.py   the page of a top-k render (index.html)
    occlusion.py, invariance.py, correspondence.py, ...: the analyses of Sections 4-5

Modules are imported on use (``from zfnet.viz import topk``); importing zfnet.viz loads nothing.
"""
