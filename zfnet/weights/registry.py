"""Model cards: what zfnet knows about each pretrained model, one JSON file per model.

The cards live in the repository's top-level ``weights/`` folder, installed as the package
``zfnet.model_cards`` and read with importlib.resources. A card says

    name            the model's name, e.g. "squeezenet1_0" (also the card's file name)
    architecture    the built-in architecture it converts to (zfnet.net.ARCHITECTURES)
    classes         the class-list name ("imagenet": 1000 ILSVRC-2012 classes)
    licence         the licence of the weights, as their publisher states it
    preprocessing   channel_order ("BGR"|"RGB"), scale (255 Caffe, 1 torchvision), mean and std
                    (3 floats each, network channel order, after scaling), input_size [H, W]
                    (null: the architecture's), resize (short side before the centre crop;
                    null: input_size / 0.875, e.g. 256 for 224)
    convert         the file of ``sources`` that is converted by default
    sources         every known file holding the weights: file name, converter, download URLs,
                    checksums (the full sha256; where the publisher gives only md5/sha1/a sha256
                    prefix, or nothing, sha256 is null and ``checksum_note`` says so: it is printed
                    on download), size in bytes, and optionally the prototxt or the archive (from
                    ``files``) it needs
    files           auxiliary downloads named by sources (a deploy.prototxt, an archive)

Checksums are never invented: each one comes from the publisher or from the shared data's README.
"""
import json
import re
from dataclasses import dataclass, field
from importlib import resources

from zfnet.errors import ZFNetError

_HEX = {"sha256": 64, "sha1": 40, "md5": 32}
_PREPROCESSING_KEYS = ("channel_order", "scale", "mean", "std", "input_size", "resize")


@dataclass(frozen=True)
class FileEntry:
    """One downloadable file: its name, where to get it, and how to recognise it."""
    file: str
    urls: tuple = ()
    sha256: str = None
    md5: str = None
    sha1: str = None
    sha256_prefix: str = None   # torchvision publishes the first 8 hex digits of the sha256
    size: int = None
    checksum_note: str = None   # without a full sha256: what the publisher gives (printed on download;
                                # every bundled card has one, tests/weights/test_weights_registry.py)

    @property
    def checksums(self):
        """{algorithm: expected hex digest} for every checksum the card knows."""
        return {k: getattr(self, k) for k in ("sha256", "md5", "sha1") if getattr(self, k)}

    @property
    def verifiable(self):
        return bool(self.checksums or self.sha256_prefix)


@dataclass(frozen=True)
class Source(FileEntry):
    """A file that holds the weights, and how to convert it."""
    converter: str = None       # "deep_compression" | "caffe" | "onnx" | "torch_pth"
    prototxt: str = None        # name of a ``files`` entry the converter also needs
    archive: str = None         # name of a ``files`` entry (a .tgz) that contains this file ...
    member: str = None          # ... at this path inside it
    architecture: str = None    # passed to the converter (torchvision state dicts need it)
    note: str = None


@dataclass(frozen=True)
class ModelCard:
    name: str
    title: str
    architecture: str
    classes: str
    licence: str
    preprocessing: dict
    convert: str
    sources: tuple
    files: tuple = ()
    homepage: str = None
    paper: str = None
    accuracy: str = None
    notes: str = None
    raw: dict = field(default=None, repr=False, compare=False)

    def source(self, file):
        for s in self.sources:
            if s.file == file:
                return s
        raise ZFNetError(f"model card {self.name!r} has no source file {file!r}")

    def file(self, name):
        for f in self.files:
            if f.file == name:
                return f
        raise ZFNetError(f"model card {self.name!r} has no auxiliary file {name!r}")

    @property
    def primary(self):
        """The source converted by default (``convert``), then the others in card order."""
        first = self.source(self.convert)
        return (first, *[s for s in self.sources if s is not first])


def _check_digest(where, kind, value):
    if value is None:
        return None
    n = _HEX.get(kind, 8)
    if not (isinstance(value, str) and re.fullmatch(f"[0-9a-f]{{{n}}}", value)):
        raise ZFNetError(f"{where}: {kind} must be {n} lowercase hex digits or null, got {value!r}")
    return value


def _file_fields(where, d):
    if not isinstance(d.get("file"), str) or not d["file"] or "/" in d["file"]:
        raise ZFNetError(f"{where}: every file needs a plain 'file' name, got {d.get('file')!r}")
    urls = d.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) and re.match(r"https?://", u) for u in urls):
        raise ZFNetError(f"{where}: 'urls' must be a list of http(s) URLs, got {urls!r}")
    size = d.get("size")
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise ZFNetError(f"{where}: 'size' must be a positive number of bytes or null, got {size!r}")
    note = d.get("checksum_note")
    if note is not None and not isinstance(note, str):
        raise ZFNetError(f"{where}: 'checksum_note' must be text or null, got {note!r}")
    return dict(
        file=d["file"], urls=tuple(urls), size=size, checksum_note=note,
        sha256=_check_digest(where, "sha256", d.get("sha256")),
        md5=_check_digest(where, "md5", d.get("md5")),
        sha1=_check_digest(where, "sha1", d.get("sha1")),
        sha256_prefix=_check_digest(where, "sha256_prefix", d.get("sha256_prefix")),
    )


def _check_preprocessing(where, p):
    if not isinstance(p, dict) or set(p) != set(_PREPROCESSING_KEYS):
        raise ZFNetError(f"{where}: 'preprocessing' needs exactly the keys {', '.join(_PREPROCESSING_KEYS)}")
    if p["channel_order"] not in ("BGR", "RGB"):
        raise ZFNetError(f"{where}: channel_order must be 'BGR' or 'RGB', got {p['channel_order']!r}")
    if not (isinstance(p["scale"], (int, float)) and p["scale"] > 0):
        raise ZFNetError(f"{where}: scale must be a positive number, got {p['scale']!r}")
    for k in ("mean", "std"):
        v = p[k]
        if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)):
            raise ZFNetError(f"{where}: {k} must be a list of 3 numbers, got {v!r}")
    if any(s <= 0 for s in p["std"]):
        raise ZFNetError(f"{where}: std must be positive, got {p['std']!r}")
    size = p["input_size"]
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and x > 0 for x in size)):
        raise ZFNetError(f"{where}: input_size must be [H, W] or null, got {size!r}")
    if p["resize"] is not None and not (isinstance(p["resize"], int) and p["resize"] > 0):
        raise ZFNetError(f"{where}: resize must be a positive int or null, got {p['resize']!r}")


def card_from_dict(d, where="model card"):
    """Validate a card's JSON object and build a ModelCard (a ZFNetError names what is wrong)."""
    from zfnet.net.architectures import ARCHITECTURES

    required = ("name", "title", "architecture", "classes", "licence", "preprocessing", "convert", "sources")
    missing = [k for k in required if k not in d]
    if missing:
        raise ZFNetError(f"{where}: missing keys {missing}")
    where = f"model card {d['name']!r}"
    if d["architecture"] not in ARCHITECTURES:
        raise ZFNetError(f"{where}: unknown architecture {d['architecture']!r}")
    _check_preprocessing(where, d["preprocessing"])
    files = tuple(FileEntry(**_file_fields(where, f)) for f in d.get("files", []))
    names = {f.file for f in files}
    sources = []
    for s in d["sources"]:
        extra = dict(converter=s.get("converter"), prototxt=s.get("prototxt"), archive=s.get("archive"),
                     member=s.get("member"), architecture=s.get("architecture"), note=s.get("note"))
        if extra["converter"] not in ("deep_compression", "caffe", "onnx", "torch_pth"):
            raise ZFNetError(f"{where}: source {s.get('file')!r} has unknown converter {extra['converter']!r}")
        for ref in ("prototxt", "archive"):
            if extra[ref] is not None and extra[ref] not in names:
                raise ZFNetError(f"{where}: source {s.get('file')!r} names {ref} {extra[ref]!r}, "
                                 f"which is not in the card's 'files'")
        if (extra["archive"] is None) != (extra["member"] is None):
            raise ZFNetError(f"{where}: source {s.get('file')!r} needs both 'archive' and 'member', or neither")
        sources.append(Source(**_file_fields(where, s), **extra))
    if not sources:
        raise ZFNetError(f"{where}: no sources")
    card = ModelCard(
        name=d["name"], title=d["title"], architecture=d["architecture"], classes=d["classes"],
        licence=d["licence"], preprocessing=dict(d["preprocessing"]), convert=d["convert"],
        sources=tuple(sources), files=files, homepage=d.get("homepage"), paper=d.get("paper"),
        accuracy=d.get("accuracy"), notes=d.get("notes"), raw=d,
    )
    card.source(card.convert)  # the default source must exist
    return card


_CARDS = None


def _load_cards():
    global _CARDS
    if _CARDS is None:
        cards = {}
        for entry in sorted(resources.files("zfnet.model_cards").iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".json"):
                continue
            try:
                d = json.loads(entry.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ZFNetError(f"model card {entry.name}: invalid JSON ({e})") from None
            card = card_from_dict(d, where=f"model card {entry.name}")
            if f"{card.name}.json" != entry.name:
                raise ZFNetError(f"model card {entry.name} is named {card.name!r}; file and name must agree")
            cards[card.name] = card
        _CARDS = cards
    return _CARDS


def list_cards():
    """Every known model card, sorted by name."""
    return list(_load_cards().values())


def get_card(name):
    """The card of model `name`; a ZFNetError lists the known names otherwise."""
    cards = _load_cards()
    try:
        return cards[name]
    except KeyError:
        raise ZFNetError(
            f"unknown model {name!r}; known models: {', '.join(cards)} (or pass a path to a weights file)"
        ) from None


def card_for_sha256(sha256):
    """(card, source) whose source file has this sha256, else (None, None)."""
    for card in _load_cards().values():
        for s in card.sources:
            if s.sha256 == sha256 or (s.sha256 is None and s.sha256_prefix and sha256.startswith(s.sha256_prefix)):
                return card, s
    return None, None
