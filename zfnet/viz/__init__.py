"""The paper's experiments: each returns arrays and numbers first, renders PNG/HTML second.

    grid.py      tiling helpers (cells, grids, blocks) for every figure
    html.py      the self-contained HTML page builder every experiment's page uses
    filters.py   layer-1 filters as images, and numbers that describe them (Fig. 2 layer 1, Fig. 6)
    scan.py      the streaming, resumable top-k scan over an image collection
    topk.py      Fig. 2: top-k units per feature map, their projections and patches, the page
    occlusion.py, invariance.py, correspondence.py, ...: the analyses of Sections 4-5

Modules are imported on use (``from zfnet.viz import topk``); importing zfnet.viz loads nothing.
"""
