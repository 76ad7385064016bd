"""Class labels: index -> a short human-readable name ("Egyptian cat").

A class list ``<classes>_classes.txt`` has one line per class, in the network's output order:
``synset_id<TAB>lemma, lemma, ...`` (ILSVRC-2012 for "imagenet": 1000 lines sorted by WordNet id,
so index = line number - 1). The label is the first lemma.

Looked up in ``$ZFNET_WEIGHTS/<model>/``, then ``$ZFNET_WEIGHTS/``, then the copy bundled with
zfnet (``zfnet.model_cards/imagenet_classes.txt``, the same 1000 public WordNet labels).
"""
from functools import lru_cache
from importlib import resources
from pathlib import Path

from zfnet.errors import ZFNetError


def _parse(text, where):
    labels = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t", 1)
        lemmas = parts[-1]
        label = lemmas.split(",")[0].strip()
        if not label:
            raise ZFNetError(f"{where}: line {i} has no label")
        labels.append(label)
    return labels


@lru_cache(maxsize=8)
def _read(path):
    try:
        return tuple(_parse(Path(path).read_text(encoding="utf-8"), path))
    except (OSError, UnicodeDecodeError) as e:
        raise ZFNetError(f"cannot read class list {path}: {e}") from None


@lru_cache(maxsize=8)
def _bundled(classes):
    entry = resources.files("zfnet.model_cards") / f"{classes}_classes.txt"
    if not entry.is_file():
        return None
    return tuple(_parse(entry.read_text(encoding="utf-8"), f"zfnet.model_cards/{entry.name}"))


def load_class_list(classes, model=None):
    """The labels of class list `classes` (e.g. "imagenet") as a list of strings."""
    from zfnet.weights.resolve import weights_root

    name = f"{classes}_classes.txt"
    root = weights_root()
    candidates = ([root / model / name] if root and model else []) + ([root / name] if root else [])
    for path in candidates:
        if path.is_file():
            return list(_read(str(path)))
    labels = _bundled(classes)
    if labels is None:
        raise ZFNetError(
            f"no class list {name!r}: put it in $ZFNET_WEIGHTS/ (one 'id<TAB>label' line per class)"
        )
    return list(labels)


def class_names(net):
    """One label per output of `net`, from ``net.meta["classes"]``.

    A network without a class list gets "class 0", "class 1", ...; a list whose length differs
    from the number of outputs is a ZFNetError (the labels would be silently wrong).
    """
    n = net.arch.shapes[net.arch.output][0]
    classes = net.meta.get("classes")
    if not classes:
        return [f"class {i}" for i in range(n)]
    labels = load_class_list(classes, net.meta.get("model"))
    if len(labels) != n:
        raise ZFNetError(
            f"class list {classes!r} has {len(labels)} labels but {net.arch.name} has {n} outputs"
        )
    return labels
