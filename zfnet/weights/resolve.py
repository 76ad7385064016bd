"""From a model name (or a file) to a Net: the cache, ``$ZFNET_WEIGHTS``, downloads, conversion.

    net = load_model()                         # the default model, squeezenet1_0
    net = load_model("zfnet512")               # a name from a model card (weights/*.json)
    net = load_model("my.safetensors")         # a converted file
    net = load_model("ZF.v2.caffemodel")       # any file a converter reads (converted on the fly)
    path = fetch("squeezenet1_0")              # make sure the converted file is cached; its path

A model name resolves in this order:

1. the converted file ``<cache>/models/<name>.safetensors``, if the source checksum it records
   still matches the model card and its tensors still match the sha256 recorded beside them (a
   changed byte means converting again from the source; ``<cache>`` is ``$ZFNET_CACHE``, else
   ``$XDG_CACHE_HOME/zfnet``, else ``~/.cache/zfnet``);
2. else the source files in ``$ZFNET_WEIGHTS/<name>/`` (laid out like the shared data folder:
   the files the card lists under ``sources``), checked against the card, converted and cached;
3. else files downloaded earlier to ``<cache>/downloads/<name>/``;
4. else a download from the card's URLs (progress bar on stderr), checked, converted and cached.

The Net's ``meta`` always carries the card's preprocessing, so images are prepared the way the
network was trained (see zfnet.image).
"""
import os
import re
import shutil
import tarfile
import warnings
from pathlib import Path

from zfnet.atomic import atomic_write
from zfnet.convert._guard import guard
from zfnet.errors import ZFNetError
from zfnet.weights.download import download, sha256_of, verify
from zfnet.weights.format import has_tensors_sha256, load_net, read_meta, save_net
from zfnet.weights.registry import card_for_sha256, get_card, list_cards

DEFAULT_MODEL = "squeezenet1_0"
_NAME = re.compile(r"[A-Za-z0-9_\-]+")


# -- where things live ----------------------------------------------------------------------------
def cache_dir():
    """``$ZFNET_CACHE``, else ``$XDG_CACHE_HOME/zfnet``, else ``~/.cache/zfnet``."""
    if os.environ.get("ZFNET_CACHE"):
        return Path(os.environ["ZFNET_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "zfnet"


def weights_root():
    """``$ZFNET_WEIGHTS`` (a folder with one sub-folder of source files per model), or None."""
    root = os.environ.get("ZFNET_WEIGHTS")
    return Path(root).expanduser() if root else None


def converted_path(name):
    return cache_dir() / "models" / f"{name}.safetensors"


def downloads_dir(name):
    return cache_dir() / "downloads" / name


def _local_dirs(card):
    dirs = []
    if weights_root() is not None:
        dirs.append(weights_root() / card.name)
    dirs.append(downloads_dir(card.name))
    return dirs


def _manual_dir(card):
    root = weights_root()
    return str(root / card.name) if root else f"$ZFNET_WEIGHTS/{card.name}"


def _locate(card, entry):
    for d in _local_dirs(card):
        if (d / entry.file).is_file():
            return d / entry.file
    return None


# -- metadata -------------------------------------------------------------------------------------
def complete_meta(net, card=None, overrides=None):
    """Fill ``net.meta`` with everything zfnet.image needs, from the card, then `overrides`.

    Keys the card fixes (channel_order, scale, mean, std, input_size, resize, classes; model when
    the architectures agree) replace what a converter guessed from the file format. Left-over gaps get defaults only where
    they are unambiguous (input size from the architecture, resize = input / 0.875, std 1 when the
    rest is given); an unknown channel order, scale or mean is a ZFNetError saying how to give it.
    """
    meta = net.meta
    if card is not None:
        if card.architecture == net.arch.name:
            meta["model"] = card.name  # else the card only lends its input convention
        meta["classes"] = card.classes
        meta.update({k: v for k, v in card.preprocessing.items() if v is not None})
    meta.update({k: v for k, v in (overrides or {}).items() if v is not None})
    meta["architecture"] = net.arch.name
    meta.setdefault("model", net.arch.name)
    meta.setdefault("input_size", list(net.arch.input_shape[1:]))
    meta["input_size"] = [int(v) for v in meta["input_size"]]
    meta.setdefault("resize", int(round(max(meta["input_size"]) / 0.875)))
    if "classes" not in meta:
        n = net.arch.shapes[net.arch.output][0]
        meta["classes"] = "imagenet" if n == 1000 else None
    missing = [k for k in ("channel_order", "scale", "mean") if meta.get(k) is None]
    if missing:
        raise ZFNetError(
            f"{meta.get('source_file', 'this model')}: the file does not say how its input images are "
            f"prepared ({', '.join(missing)} unknown). Name a model card with the same convention "
            f"(zfnet weights convert FILE --model-card squeezenet1_0 for Caffe BGR 0-255, alexnet for "
            f"torchvision RGB mean/std) or give --channel-order, --scale, --mean and --std."
        )
    meta.setdefault("std", [1.0, 1.0, 1.0])
    if meta["channel_order"] not in ("BGR", "RGB"):
        raise ZFNetError(f"channel_order must be 'BGR' or 'RGB', got {meta['channel_order']!r}")
    for k in ("mean", "std"):
        if len(meta[k]) != 3:
            raise ZFNetError(f"{k} needs 3 values (one per channel), got {meta[k]!r}")
        meta[k] = [float(v) for v in meta[k]]
    h, w = meta["input_size"]
    try:
        net.arch.with_input_shape((net.arch.input_shape[0], h, w))
    except ZFNetError as e:
        raise ZFNetError(f"input size {h}x{w} does not fit architecture {net.arch.name!r}: {e}") from None
    return meta


# -- source files ---------------------------------------------------------------------------------
def _extract_member(card, source, archive, progress):
    """Take ``source.member`` out of the verified tar archive `archive` into the downloads folder."""
    dest = downloads_dir(card.name) / source.file
    want = Path(source.member).name
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and
                       (m.name == source.member or Path(m.name).name == want)]
            if len(members) != 1:
                raise ZFNetError(f"{archive}: expected one {source.member} inside, found {len(members)}")
            with tar.extractfile(members[0]) as fin, atomic_write(dest) as tmp, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ZFNetError(f"{archive}: damaged archive ({e}); delete it and fetch it again") from None
    return dest


def _obtain_aux(card, name, progress, allow_download):
    """A verified local copy of the card's auxiliary file `name` (prototxt or archive), or None."""
    entry = card.file(name)
    path = _locate(card, entry)
    if path is not None:
        verify(path, entry)
        return path
    if allow_download and entry.urls:
        path = downloads_dir(card.name) / entry.file
        download(entry, path, progress, _manual_dir(card))
        return path
    return None


def _obtain_source(card, source, progress, allow_download):
    """(path, sha256) of a verified copy of `source`, from local folders or a download; else None."""
    path = _locate(card, source)
    if path is not None:
        return path, verify(path, source)
    if source.archive:
        archive = _obtain_aux(card, source.archive, progress, allow_download)
        if archive is not None:
            path = _extract_member(card, source, archive, progress)
            sha = verify(path, source)
            if archive.parent == downloads_dir(card.name):
                archive.unlink()  # keep the one member we need, not the whole (large) archive
            return path, sha
        return None
    if allow_download and source.urls:
        path = downloads_dir(card.name) / source.file
        return path, download(source, path, progress, _manual_dir(card))
    return None


def _convert_card(card, progress=True):
    """Find (locally, else by download) a source file of `card` and convert it: -> Net."""
    from zfnet.convert import convert

    found = None
    # Local copies of any source first (no network), in the card's order of preference.
    for allow_download in (False, True):
        for source in card.primary:
            found = _obtain_source(card, source, progress, allow_download)
            if found:
                break
        if found:
            break
    if not found:
        where = " or ".join(str(d) for d in _local_dirs(card))
        raise ZFNetError(
            f"no weights for model {card.name!r}: none of {', '.join(s.file for s in card.sources)} is in "
            f"{where}, and none can be downloaded. Put one of them there (or set ZFNET_WEIGHTS)."
        )
    path, sha = found
    prototxt = None
    if source.prototxt:
        prototxt = _obtain_aux(card, source.prototxt, progress, allow_download=True)
    net = convert(path, prototxt=prototxt, architecture=source.architecture)
    net.meta.update(model=card.name, source_file=source.file, source_sha256=sha)
    complete_meta(net, card)
    return net


def _cache_is_current(card, meta):
    """Does the cached conversion still come from a file the card accepts, by today's converter?"""
    from zfnet.convert._common import CONVERTER_VERSION

    if meta.get("model") != card.name or meta.get("converter_version") != CONVERTER_VERSION:
        return False
    sha = meta.get("source_sha256")
    try:
        source = card.source(Path(str(meta.get("source_file", ""))).name)
    except ZFNetError:
        return False
    if not isinstance(sha, str):
        return False
    if source.sha256:
        return sha == source.sha256
    if source.sha256_prefix and not sha.startswith(source.sha256_prefix):
        return False
    # No full checksum published: trust the cache unless the local source file has changed.
    local = _locate(card, source)
    return local is None or sha256_of(local) == sha


def _cached_net(card, load):
    """The cached conversion of `card` if it is current: a Net (load=True) or its path; else None."""
    path = converted_path(card.name)
    if not path.is_file():
        return None
    try:
        _, meta = read_meta(path)
        if not _cache_is_current(card, meta) or not has_tensors_sha256(path):
            return None                               # older or foreign: convert again
        net = load_net(path)                          # checks the tensors' sha256
        return net if load else path
    except ZFNetError as e:
        warnings.warn(f"ignoring the damaged cached conversion {path} ({e}); converting again", stacklevel=3)
        return None


# -- public ---------------------------------------------------------------------------------------
def model_status(name):
    """Where model `name` would come from now, cheaply (no hashing, no network):
    "converted" (in the cache), "local" (a source file in $ZFNET_WEIGHTS or downloads),
    "download" (a URL is known) or "unavailable"."""
    card = get_card(name)
    if converted_path(card.name).is_file():
        return "converted"
    for source in card.sources:
        if _locate(card, source) or (source.archive and _locate(card, card.file(source.archive))):
            return "local"
    for source in card.sources:
        if source.urls or (source.archive and card.file(source.archive).urls):
            return "download"
    return "unavailable"


def fetch(name=None, progress=True):
    """Make sure model `name`'s converted file is in the cache; return its path."""
    card = get_card(name or DEFAULT_MODEL)
    path = _cached_net(card, load=False)
    if path is not None:
        return path
    net = _convert_card(card, progress)
    return save_net(net, converted_path(card.name))


def convert_file(path, *, prototxt=None, architecture=None, card=None, preprocessing=None):
    """Convert any file a zfnet converter reads into a Net with complete metadata.

    A file whose sha256 is one a model card lists takes that card's name and preprocessing
    (`card`, a name, forces one); `preprocessing` (a dict of channel_order, scale, mean, std,
    input_size, resize, classes) overrides both.
    """
    from zfnet.convert import convert

    path = Path(path)
    if not path.is_file():
        raise ZFNetError(f"no such file: {path}")
    sha = sha256_of(path)
    source = None
    if card is None:
        card, source = card_for_sha256(sha)
    elif isinstance(card, str):
        card = get_card(card)
    if architecture is None and source is not None:
        architecture = source.architecture
    net = convert(path, prototxt=prototxt, architecture=architecture)
    net.meta.update(source_file=path.name, source_sha256=sha)
    with guard(path):
        complete_meta(net, card, preprocessing)
    return net


def _is_name(s):
    return isinstance(s, str) and _NAME.fullmatch(s) is not None


def load_model(name_or_path=None, progress=True):
    """A ready Net: `name_or_path` is None (DEFAULT_MODEL), a model-card name, or a file path.

    A ``.safetensors`` path is loaded; any other path is converted (zfnet.convert). Names
    resolve through the cache, ``$ZFNET_WEIGHTS``, then a download (see this module's docstring).
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    cards = {c.name for c in list_cards()}
    if _is_name(name_or_path) and (name_or_path in cards or not Path(name_or_path).exists()):
        card = get_card(name_or_path)  # unknown names fail here, listing the known ones
        net = _cached_net(card, load=True)
        if net is None:
            net = _convert_card(card, progress)
            try:
                save_net(net, converted_path(card.name))
            except OSError as e:
                warnings.warn(f"could not cache the converted model in {cache_dir()}: {e}", stacklevel=2)
        complete_meta(net, card)  # the card's preprocessing is authoritative, even for old caches
        return net
    path = Path(name_or_path)
    if not path.is_file():
        raise ZFNetError(f"no such weights file: {path}")
    with guard(path):
        if path.suffix == ".safetensors":
            net = load_net(path)
            complete_meta(net)  # the file's own metadata is authoritative; only gaps are filled
            return net
        return convert_file(path)
