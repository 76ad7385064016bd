"""The web app: the API routes, the page and its static files, on uvicorn.

    app = create_app(Explorer(net, scans=["top9/"]))
    serve(app, host="127.0.0.1", port=8000)               # blocks; Ctrl-C stops
    with running(app) as url: ...                          # a free port, on a thread (tests, benchmarks)

The page is plain HTML, CSS and JavaScript in zfnet/explore/static (no build step, nothing fetched
from elsewhere: the Content-Security-Policy says so to the browser too).
"""
import contextlib
import socket
import threading
import time
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
                                 b"connect-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)
        await self.app(scope, receive, with_headers)


def create_app(explorer):
    """A Starlette app serving the page at / and the API under /api over `explorer`."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from zfnet.explore.api import error_handlers, routes

    def index(request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app = Starlette(routes=[Route("/", index), *routes(explorer),
                            Mount("/static", StaticFiles(directory=STATIC), name="static")],
                    exception_handlers=error_handlers(), middleware=[Middleware(SecurityHeaders)])
    app.state.explorer = explorer
    return app


def bind(host, port):
    """A listening TCP socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _server(app, log_level):
    import uvicorn
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                                         timeout_graceful_shutdown=2))


def serve(app, sock, log_level="warning"):
    """Serve until interrupted, on an already bound socket."""
    _server(app, log_level).run(sockets=[sock])


@contextlib.contextmanager
def running(app, host="127.0.0.1", port=0, log_level="warning"):
    """Serve `app` on a thread for the duration of the block; yields its base URL."""
    sock = bind(host, port)
    server = _server(app, log_level)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="zfnet-explore")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the explore server did not start")
            time.sleep(0.02)
        h, p = sock.getsockname()[:2]
        yield f"http://{h}:{p}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
