"""The ``zfnet`` command: thin argparse front ends over the library (no math here).

Each subcommand lives in its own module ``zfnet/cli/<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` to a function taking the parsed
arguments and returning an exit code. Errors a user can cause are ``ZFNetError``s: printed as one
``zfnet: error: ...`` line, exit status 2; so is every OSError (a full disk, a read-only
mount, a file where a folder should be), naming the path. Every command takes
``--device cpu|cuda`` (cli/_common.py), selected before the command runs.
"""
import argparse
import importlib
import pkgutil
import sys
import warnings

from zfnet import __version__
from zfnet.cli import _common
from zfnet.cli._common import add_device_argument, use_device
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
    for command in _leaves(sub):
        add_device_argument(command)          # --device cpu|cuda on every command
    for command in sub.choices.values():
        _common.add_threads_argument(command) # --threads N on every command and subcommand
    return parser


def os_error_message(e):
    """An OSError -> one line naming the path and the fix (no space, read-only, not a folder ...)."""
    from zfnet.atomic import describe_os_error
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None) or "a file"
    return f"cannot use {where}: {describe_os_error(e)}"


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """zfnet's own warnings (a damaged image, a dead map, a stale cache) as one line each; others
    as Python shows them."""
    import os
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))     # .../zfnet
    if category.__module__.startswith("zfnet.") or os.path.abspath(str(filename)).startswith(package + os.sep):
        print(f"zfnet: warning: {message}", file=sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def _leaves(sub):
    """The parsers that run something: each command's, or its own subcommands' (zfnet weights list)."""
    for command in sub.choices.values():
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            yield from _leaves(nested[0])
        else:
            yield command


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        use_device(args)
        with _common.threads_applied(args), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except ZFNetError as e:
        print(f"zfnet: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:     # a full disk, a read-only mount, a file where a folder should be ...
        print(f"zfnet: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zfnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
