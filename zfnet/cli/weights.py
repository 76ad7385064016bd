"""``zfnet weights``: the known models, fetching and converting pretrained weights."""
import argparse
import json
import sys
from pathlib import Path

from zfnet.cli._common import check_out_file

EXAMPLE = """\
examples:
  zfnet weights list                                    # known models and where each would come from
  zfnet weights get squeezenet1_0                       # convert (or download) once; print the cached file
  zfnet weights info zfnet512                           # a model card, or a weights file's metadata
  zfnet weights convert ZF.v2.caffemodel --model-card zf_caffe -o zf.safetensors
  zfnet weights convert my.caffemodel --prototxt deploy.prototxt \\
      --channel-order BGR --scale 255 --mean 104,117,123 -o mine.safetensors

Models resolve through the cache ($ZFNET_CACHE, else $XDG_CACHE_HOME/zfnet or ~/.cache/zfnet),
then source files in $ZFNET_WEIGHTS/<name>/, then a download checked against the model card.
"""


def register(subparsers):
    p = subparsers.add_parser(
        "weights", help="list, fetch and convert pretrained weights",
        description="Pretrained weights: the models zfnet knows (model cards), fetching one into the "
                    "cache, and converting Caffe / ONNX / PyTorch / Deep Compression files to zfnet's "
                    "safetensors format.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="the known models", epilog=EXAMPLE,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=run_list)

    get = sub.add_parser("get", help="make sure a model is converted and cached; print its path",
                         epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    get.add_argument("name", metavar="NAME", help="a model name from 'zfnet weights list'")
    get.set_defaults(func=run_get)

    info = sub.add_parser("info", help="a model card, or the metadata of a weights file",
                          epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    info.add_argument("target", metavar="NAME_OR_FILE")
    info.set_defaults(func=run_info)

    conv = sub.add_parser("convert", help="convert a Caffe/ONNX/PyTorch/Deep Compression file",
                          epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    conv.add_argument("file", metavar="FILE", help=".caffemodel, .onnx, .pth or Deep Compression .net")
    conv.add_argument("--prototxt", help="Caffe: the deploy prototxt defining the layers")
    conv.add_argument("--architecture", help="the built-in architecture the file is (required for "
                                             "torchvision state dicts zfnet cannot recognise)")
    conv.add_argument("-o", "--out", metavar="OUT.safetensors",
                      help="output file (default: ./<FILE's stem>.safetensors)")
    conv.add_argument("--model-card", metavar="NAME",
                      help="take name and preprocessing from this model card (default: the card whose "
                           "source file has FILE's sha256, if any)")
    g = conv.add_argument_group("preprocessing (overrides the card and the converter)")
    g.add_argument("--channel-order", choices=("BGR", "RGB"))
    g.add_argument("--scale", type=float, help="pixel values in [0, 1] are multiplied by this (255 Caffe, 1 torchvision)")
    g.add_argument("--mean", type=_floats(3), help="3 comma-separated values, network channel order, after scaling")
    g.add_argument("--std", type=_floats(3), help="3 comma-separated values (default 1,1,1)")
    g.add_argument("--input-size", type=_size, metavar="H,W", help="network input size, e.g. 227 or 224,224")
    g.add_argument("--resize", type=int, help="short side before the centre crop (default input / 0.875)")
    g.add_argument("--classes", help="class-list name (default imagenet for 1000 outputs)")
    conv.set_defaults(func=run_convert)


def _floats(n):
    def parse(text):
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}") from None
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}")
        return values
    return parse


def _size(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W or one size, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W or one size, got {text!r}")
    return values


def run_list(args):
    from zfnet.weights import DEFAULT_MODEL, list_cards, model_status

    rows = []
    for card in list_cards():
        first = card.primary[0]
        rows.append({"name": card.name, "architecture": card.architecture, "status": model_status(card.name),
                     "default": card.name == DEFAULT_MODEL, "source": first.file,
                     "size": first.size, "licence": card.licence, "title": card.title})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("NAME", "STATUS", "SOURCE", "SIZE", "TITLE")
    table = [header] + [(r["name"] + (" *" if r["default"] else ""), r["status"], r["source"],
                         f"{r['size'] / 2**20:.0f} MB" if r["size"] else "?", r["title"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    print("\n* default model. status: converted (cached) | local (source in $ZFNET_WEIGHTS) | "
          "download | unavailable")
    return 0


def run_get(args):
    from zfnet.atomic import check_writable_dir
    from zfnet.weights import cache_dir, fetch, model_status, read_meta

    if model_status(args.name) != "converted":     # it will be written: the cache must take it
        check_writable_dir(cache_dir(), what="the weights cache (set $ZFNET_CACHE to a writable folder)")
    path = fetch(args.name)
    arch, meta = read_meta(path)
    print(path)
    print(f"{meta.get('model')}: {arch.name}, from {meta.get('source_file')} "
          f"(sha256 {str(meta.get('source_sha256'))[:12]}...)", file=sys.stderr)
    return 0


def run_info(args):
    from zfnet.weights import get_card, list_cards, load_net

    if args.target in {c.name for c in list_cards()} and not Path(args.target).exists():
        print(json.dumps(get_card(args.target).raw, indent=2))
        return 0
    _check_info_target(args.target, [c.name for c in list_cards()])
    net = load_net(args.target)
    n = sum(int(a.size) for a in net.params.values())
    print(json.dumps({"file": str(args.target), "parameters": n, "layers": len(net.arch.layers),
                      "meta": net.meta}, indent=2))
    return 0


def _check_info_target(target, names):
    """`weights info` reads model cards and zfnet's .safetensors files; say what to do with anything else."""
    import difflib

    from zfnet.errors import ZFNetError
    path = Path(target)
    if not path.exists():
        close = difflib.get_close_matches(target, names, n=3)
        hint = f"did you mean {' or '.join(close)}? The" if close else "the"
        raise ZFNetError(f"{target} is neither a known model nor a file; {hint} models are in 'zfnet weights list'")
    if path.is_dir():
        raise ZFNetError(f"{target} is a folder; give a model name or a .safetensors file")
    if path.suffix != ".safetensors":
        raise ZFNetError(f"{target}: 'zfnet weights info' reads model names and zfnet's .safetensors files; "
                         f"convert this one first: zfnet weights convert {target}")


def run_convert(args):
    from zfnet.weights import convert_file, save_net

    out = Path(args.out) if args.out else Path.cwd() / f"{Path(args.file).stem}.safetensors"
    if out.suffix != ".safetensors":
        from zfnet.errors import ZFNetError
        raise ZFNetError(f"the output file must end in .safetensors, got {out}")
    check_out_file(out, "-o")
    overrides = {"channel_order": args.channel_order, "scale": args.scale, "mean": args.mean,
                 "std": args.std, "input_size": args.input_size, "resize": args.resize,
                 "classes": args.classes}
    if args.scale is not None and args.scale == int(args.scale):
        overrides["scale"] = int(args.scale)
    net = convert_file(args.file, prototxt=args.prototxt, architecture=args.architecture,
                       card=args.model_card, preprocessing=overrides)
    save_net(net, out)
    n = sum(int(a.size) for a in net.params.values())
    m = net.meta
    print(out)
    print(f"{m['model']}: {net.arch.name}, {n:,} parameters; input {m['input_size'][0]}x{m['input_size'][1]} "
          f"{m['channel_order']} scale {m['scale']} mean {m['mean']} std {m['std']}", file=sys.stderr)
    return 0
