"""zfnet explore: the interactive explorer in the browser, or its static export."""
import sys
import threading

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(sub):
    from zfnet.cli._common import add_model_argument
    p = sub.add_parser(
        "explore", help="browse the model, a scan's maps and your images in the browser (or export a static site)",
        description="Start a local web app: the model's layers and conv1 filters; the feature maps of a "
                    "'zfnet topk' scan with their top-k cells in every mode; your own image with its top-5 "
                    "classes, strongest maps, live projection of any unit and an occlusion map. With "
                    "--export, write the browsing part as static files instead.",
        epilog="example: zfnet topk --images photos/ --layer fire9/concat --out top9/ && "
               "zfnet explore --scan top9/ --images photos/")
    add_model_argument(p)
    p.add_argument("--scan", action="append", default=[], metavar="DIR",
                   help="a 'zfnet topk' output folder (repeat for several layers)")
    p.add_argument("--images", metavar="DIR", help="a folder of images to pick from in the page")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--export", metavar="SITE", help="write a static site into SITE instead of serving")
    p.add_argument("--modes", default="all",
                   help="with --export: projection modes to include, comma-separated, or 'all' (default)")
    p.add_argument("--max-upload-mb", type=float, default=16, help="largest upload accepted (default 16 MB)")
    p.add_argument("--max-images", type=int, default=32, help="uploaded images kept in memory (default 32)")
    p.add_argument("--occlusion", default="48,16", metavar="SIZE,STRIDE",
                   help="the occlusion map's grey square and its step, in input pixels (default 48,16)")
    p.add_argument("--cache-mb", type=float, default=64, help="memory for cached pictures (default 64 MB)")
    p.set_defaults(func=run)


def _modes(text):
    from zfnet.deconv import MODES
    from zfnet.explore.units import check_mode
    return list(MODES) if text.strip() == "all" else [check_mode(m.strip()) for m in text.split(",") if m.strip()]


def _occlusion(text):
    from zfnet.errors import ZFNetError
    try:
        size, stride = (int(v) for v in text.split(","))
    except ValueError:
        raise ZFNetError(f"--occlusion {text!r}: give SIZE,STRIDE in pixels, e.g. 48,16") from None
    return size, stride


def run(args):
    from zfnet.errors import ZFNetError
    try:
        from zfnet.explore import Explorer
        from zfnet.explore.app import bind, create_app, serve
    except ImportError as e:
        raise ZFNetError(f"zfnet explore needs the 'explore' extra ({e.name} is missing): "
                         f"pip install 'zfnet[explore]'") from None
    from zfnet.weights import load_model
    if args.export and not args.scan:
        raise ZFNetError("--export writes what a scan found: give --scan DIR (a 'zfnet topk' output folder)")
    modes = _modes(args.modes)
    ex = Explorer(load_model(args.model), scans=args.scan, images_dir=args.images,
                  max_images=args.max_images, cache_bytes=int(args.cache_mb * 2**20),
                  max_upload_bytes=int(args.max_upload_mb * 2**20), occlusion=_occlusion(args.occlusion))
    if args.export:
        return _export(ex, args.export, modes)
    if args.host not in LOCAL_HOSTS:
        print(f"zfnet explore: warning: listening on {args.host}: anyone who can reach this machine on the "
              f"network can use the explorer (and its CPU); use --host 127.0.0.1 to keep it local", file=sys.stderr)
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        raise ZFNetError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); pick another --port") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"zfnet explore: serving {ex.model()['model']} at http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
    threading.Thread(target=ex.warm_up, daemon=True, name="zfnet-explore-warm-up").start()
    serve(create_app(ex), sock)
    return 0


def _export(ex, site, modes):
    from tqdm import tqdm
    from zfnet.explore import export_site
    total = sum(len(s.maps) for s in ex.scans.values())
    from pathlib import Path
    from zfnet.errors import ZFNetError
    try:
        Path(site).mkdir(parents=True, exist_ok=True)     # unwritable: said before any work
        with tqdm(total=total, file=sys.stderr, desc="export", unit="map", leave=False) as bar:
            index = export_site(ex, site, modes, progress=bar.update)
    except OSError as e:
        raise ZFNetError(f"cannot write the site into {site}: {e.strerror or e}; choose another --export folder") from None
    print(index)
    return 0
