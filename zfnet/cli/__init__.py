"""The ``zfnet`` command: thin argparse front ends over the library (no math here).

Each subcommand lives in its own module ``zfnet/cli/<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` to a function taking the parsed
arguments and returning an exit code. Errors a user can cause are ``ZFNetError``s: printed as one
``zfnet: error: ...`` line, exit status 2.
"""
import argparse
import importlib
import pkgutil
import sys

from zfnet import __version__
from zfnet.cli import _common
from zfnet.errors import ZFNetError


def _command_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{__name__}.{info.name}")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="zfnet",
        description="See what a convolutional network has learned (Zeiler & Fergus deconvnet).",
        epilog="Run 'zfnet COMMAND --help' for each command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"zfnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.register(sub)
    for command in sub.choices.values():
        _common.add_threads_argument(command)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _common.apply_threads(args)
        return int(args.func(args) or 0)
    except ZFNetError as e:
        print(f"zfnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zfnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
