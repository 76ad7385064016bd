"""The JSON API the page uses (and scripts can): Starlette routes over an Explorer.

    GET  /api/model                                        layers, shapes, receptive fields, scans
    GET  /api/filters.png                                  the first conv layer's filters
    GET  /api/layers/{layer}/maps                          the scanned maps, each with its thumbnail
    GET  /api/layers/{layer}/maps/{map}/thumb.png          a map's strongest projection
    GET  /api/layers/{layer}/maps/{map}/topk?mode=M        its top-k cells (computed on demand)
    GET  /api/layers/{layer}/maps/{map}/cells/{rank}/{projection|patch}.png?mode=M
    GET  /api/library;  POST /api/library/{index} -> {"id"}
    POST /api/images  (multipart/form-data, field "image") -> {"id", "name"}
    GET  /api/images/{id}/input.png | classify | maps?layer=L[&k=12] | activation.png?layer=L&map=C
    GET  /api/images/{id}/project?layer=L&map=C[&y=Y&x=X][&mode=M] -> PNG (the unit in X-ZFNet-Unit)
    POST /api/images/{id}/occlusion[?size=S&stride=T] -> {"job"}   (default: the server's, 48 and 16);  GET /api/jobs/{job}[/occlusion.png]
    DELETE /api/jobs/{job}                                 stop a running occlusion job

Layer names are URL-encoded in paths (fire9%2Fconcat). Every error is JSON {"error": message}
with a 4xx status; compute endpoints are plain functions, which Starlette runs on its thread pool,
so requests are served concurrently while the kernels run one op at a time.
"""
import json
import logging

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zfnet.errors import ZFNetError
from zfnet.explore.errors import NotFound, TooLarge

log = logging.getLogger("zfnet.explore")
FORM_OVERHEAD = 64 << 10   # multipart boundaries and headers on top of the file itself
NO_STORE = {"Cache-Control": "no-store"}


def png(data, headers=None):
    return Response(data, media_type="image/png", headers=headers)


def _int(request, name, default=None, required=False):
    """An integer query parameter; a ZFNetError (400) when it is malformed, or missing and required."""
    v = request.query_params.get(name, "")
    if v == "":
        if required:
            raise ZFNetError(f"query parameter {name!r} is required")
        return default
    try:
        return int(v)
    except ValueError:
        raise ZFNetError(f"query parameter {name}={v!r} is not an integer") from None


def _layer_q(request):
    layer = request.query_params.get("layer")
    if not layer:
        raise ZFNetError("query parameter 'layer' is required (URL-encoded, e.g. fire9%2Fconcat)")
    return layer


def _p(request, name):
    return request.path_params[name]


def routes(ex):
    """The API's routes over Explorer `ex`."""
    def base(r):
        return f"/api/layers/{_quote(_p(r, 'layer'))}/maps/{_p(r, 'map')}"

    def model(r):
        return JSONResponse({**ex.model(), "filters": "/api/filters.png" if ex.has_filters() else None,
                             "static": False})

    def layer_maps(r):
        layer = _p(r, "layer")
        s = ex.scan(layer)
        maps = [{**m, "thumb": f"/api/layers/{_quote(layer)}/maps/{m['map']}/thumb.png"} for m in ex.layer_maps(layer)]
        return JSONResponse({"layer": layer, "mode": s.mode, "k": s.k, "maps": maps})

    def topk(r):
        layer, m = _p(r, "layer"), _p(r, "map")
        mode = r.query_params.get("mode", ex.scan(layer).mode)
        cells = [{**c, "projection": f"{base(r)}/cells/{c['rank']}/projection.png?mode={mode}",
                  "patch": f"{base(r)}/cells/{c['rank']}/patch.png?mode={mode}"} for c in ex.topk(layer, m, mode)]
        for c in cells:
            c.pop("input_png", None)
        return JSONResponse({"layer": layer, "map": m, "mode": mode, "cells": cells})

    def cell(r):
        layer = _p(r, "layer")
        mode = r.query_params.get("mode", ex.scan(layer).mode)
        return png(ex.cell_png(layer, _p(r, "map"), _p(r, "rank"), mode, _p(r, "part")))

    def project(r):
        data, info = ex.project(_p(r, "id"), _layer_q(r), _int(r, "map", required=True), _int(r, "y"), _int(r, "x"),
                                r.query_params.get("mode", "deconvnet"))
        return png(data, {"X-ZFNet-Unit": json.dumps(info), **NO_STORE})

    def occlusion(r):
        img = ex.images.get(_p(r, "id"))
        size, stride = ex.occlusion
        return JSONResponse({"job": ex.jobs.start(img, _int(r, "size", size), _int(r, "stride", stride))})

    L = "/api/layers/{layer:path}/maps"
    I = "/api/images/{id}"
    return [
        Route("/api/model", model),
        Route("/api/filters.png", lambda r: png(ex.filters_png())),
        Route(L, layer_maps),
        Route(L + "/{map:int}/thumb.png", lambda r: png(ex.thumb_png(_p(r, "layer"), _p(r, "map")))),
        Route(L + "/{map:int}/topk", topk),
        Route(L + "/{map:int}/cells/{rank:int}/{part}.png", cell),
        Route("/api/library", lambda r: JSONResponse({"images": ex.images.library()})),
        Route("/api/library/{index:int}", lambda r: JSONResponse({"id": ex.images.open_library(_p(r, "index"))}),
              methods=["POST"]),
        Route("/api/images", upload_endpoint(ex), methods=["POST"]),
        Route(I + "/input.png", lambda r: png(ex.input_png(_p(r, "id")), NO_STORE)),
        Route(I + "/classify", lambda r: JSONResponse(ex.classify(_p(r, "id")))),
        Route(I + "/maps", lambda r: JSONResponse(ex.image_maps(_p(r, "id"), _layer_q(r), _int(r, "k", 12)))),
        Route(I + "/activation.png", lambda r: png(ex.activation_png(_p(r, "id"), _layer_q(r), _int(r, "map", required=True)),
                                                   NO_STORE)),
        Route(I + "/project", project),
        Route(I + "/occlusion", occlusion, methods=["POST"]),
        Route("/api/jobs/{job}", lambda r: JSONResponse(ex.jobs.status(_p(r, "job")) if r.method == "GET"
                                                        else ex.jobs.cancel(_p(r, "job"))), methods=["GET", "DELETE"]),
        Route("/api/jobs/{job}/occlusion.png", lambda r: png(ex.jobs.png(_p(r, "job")), NO_STORE)),
    ]


def _quote(layer):
    from urllib.parse import quote
    return quote(layer, safe="")


def upload_endpoint(ex):
    limit = ex.images.max_upload_bytes

    async def upload(request):
        size = request.headers.get("content-length")
        if size is None:
            raise ZFNetError("send the upload with a Content-Length (a browser form does)")
        if not size.isdigit() or int(size) > limit + FORM_OVERHEAD:
            raise TooLarge(f"the upload ({size} bytes) is over the limit of {limit:,} bytes")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ZFNetError("send the image as multipart/form-data in the field 'image'")
        async with request.form(max_files=1, max_fields=8) as form:
            f = form.get("image")
            if f is None or isinstance(f, str):
                raise ZFNetError("no file in the form field 'image'")
            data = await f.read(limit + 1)
            name = f.filename or "upload"
        image_id = await run_in_threadpool(ex.images.upload, data, name)
        return JSONResponse({"id": image_id, "name": ex.images.get(image_id).name})
    return upload


def error_handlers():
    """ZFNetError -> 400 (404 NotFound, 413 TooLarge); HTTP errors and anything else -> JSON too."""
    def zfnet_error(request, e):
        status = 404 if isinstance(e, NotFound) else 413 if isinstance(e, TooLarge) else 400
        return JSONResponse({"error": str(e)}, status_code=status)

    def http_error(request, e):
        return JSONResponse({"error": e.detail or "error"}, status_code=e.status_code)

    def internal(request, e):
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"error": "internal error; the server's log has the details"}, status_code=500)

    return {ZFNetError: zfnet_error, HTTPException: http_error, Exception: internal}
