"""Class labels for the analyses: the network's class names, and a user's ``--class`` resolved to an index.

    labels = class_labels(net)                 # ["tench", "goldfish", ...] (1000 for ImageNet)
    resolve_class(net, "285")                  # 285
    resolve_class(net, "egyptian cat")         # 285 (case-insensitive, any comma-separated synonym)
    resolve_class(net, "egyptain cat")         # ZFNetError: ... did you mean: Egyptian cat, ...
    resolve_class(net, "cat")                  # ZFNetError: ... did you mean: tiger cat; Persian cat; ...

A label matches when it equals, ignoring case and surrounding spaces, either the whole label or
one of its comma-separated synonyms ("tabby, tabby cat" answers to "tabby" and "tabby cat").
"""
import difflib
import re

from zfnet.errors import ZFNetError


def class_labels(net):
    """The names of the network's output classes (K,), or ``["class 0", ...]`` when it has none."""
    from zfnet.weights import class_names   # the registry owns the label lists
    return list(class_names(net))


def short_label(label):
    """The first synonym of a label: "tabby, tabby cat" -> "tabby"."""
    return label.split(",")[0].strip()


def _synonyms(label):
    return [label.strip().lower()] + [s.strip().lower() for s in label.split(",") if s.strip()]


def resolve_class(net, spec, labels=None):
    """A class given as an index ("285", 285) or a label name -> its index in [0, K).

    Unknown names raise ZFNetError listing the closest labels; out-of-range indices name the range.
    """
    labels = class_labels(net) if labels is None else labels
    k = len(labels)
    if isinstance(spec, (int,)) or (isinstance(spec, str) and spec.strip().lstrip("-").isdigit()):
        i = int(spec)
        if not 0 <= i < k:
            raise ZFNetError(f"class index {i} is out of range: the model has classes 0..{k - 1}")
        return i
    want = str(spec).strip().lower()
    for i, label in enumerate(labels):
        if want in _synonyms(label):
            return i
    close = suggest_labels(want, labels)
    hint = "; did you mean: " + "; ".join(close) if close else ""
    raise ZFNetError(
        f"unknown class {spec!r}: give an index 0..{k - 1} or one of the model's class names{hint}"
    )


def suggest_labels(want, labels, n=8):
    """Labels to suggest for an unknown class name: first those with `want`'s words as whole words
    ("cat" -> "tabby, tabby cat", "Egyptian cat" ...), then the closest spellings (difflib)."""
    want = str(want).strip().lower()
    words = re.findall(r"\w+", want)
    pool = {}
    for label in labels:
        for s in _synonyms(label):
            pool.setdefault(s, label)
    by_words = [label for label in labels
                if words and all(re.search(rf"\b{re.escape(w)}\b", label.lower()) for w in words)]
    close = [pool[s] for s in difflib.get_close_matches(want, list(pool), n=n, cutoff=0.6)]
    return list(dict.fromkeys(by_words + close))[:n]
