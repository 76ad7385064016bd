"""zfnet explore: browse a model in the browser, live on a CPU, or as an exported static site.

    from zfnet.explore import Explorer, create_app, export_site
    ex = Explorer(load_model(), scans=["top9/"], images_dir="photos/")
    export_site(ex, "site/")                       # static files: open site/index.html
    app = create_app(ex)                           # an ASGI app (Starlette): the page and /api

Modules, one job each:
    explorer.py    what is computed: model facts, scanned maps, top-k cells, a user's image
    scanfolder.py  a `zfnet topk` output folder, read through the files it writes
    images.py      uploads and the --images folder, by id, size-limited, through zfnet.image
    jobs.py        occlusion maps as background jobs with progress
    cells.py       one top-k cell: projection and patch in the unit's field
    units.py       checking layer, map, position and mode before computing
    pictures.py    arrays -> PNG bytes, heat maps
    lru.py         the bounded caches
    api.py         the JSON API (Starlette routes) and its errors
    app.py         the app, its static page (static/), and uvicorn
    export.py      the static site
"""
from zfnet.explore.explorer import Explorer
from zfnet.explore.export import export_site


def create_app(explorer):
    from zfnet.explore.app import create_app as _create
    return _create(explorer)


__all__ = ["Explorer", "export_site", "create_app"]
