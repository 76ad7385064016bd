"""Collecting the images of a scan: a folder, a list file or a list of paths -> the ordered image
paths, and each image's identity (path, size, mtime, content hash).

An image is known to a scan by its record

    {"path": absolute path, "size": bytes, "mtime_ns": int, "sha256": hex digest of its bytes}

The (sha256, path) pair is the image's key: the top-k summaries break ties with it (see
zfnet.viz.summary), so it is the same wherever and in whatever order an image is scanned. Size
and mtime are a cheap stamp that tells whether a file changed since it was scanned.
"""
import hashlib
import os
from pathlib import Path

from zfnet.errors import ZFNetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
HASH_CHUNK = 1 << 20   # bytes read at a time while hashing


def is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _folder_images(src):
    """Every entry under `src` named like an image, sorted by its path relative to `src`."""
    paths = []
    for root, dirs, files in os.walk(src, followlinks=False):
        # a folder named like an image is a (bad) image candidate, not a place to look in
        for d in list(dirs):
            if is_image_name(d):
                paths.append(os.path.join(root, d))
                dirs.remove(d)
        dirs.sort()
        paths.extend(os.path.join(root, f) for f in files if is_image_name(f))
    base = src.resolve()
    paths = sorted((os.path.abspath(p) for p in paths), key=lambda p: os.path.relpath(p, base))
    if not paths:
        raise ZFNetError(f"{src}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return paths


def _listed_images(src):
    """The paths a list file names, one a line (relative to the list's folder; '#' comments)."""
    try:
        lines = src.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ZFNetError(f"{src}: cannot read the image list ({e})") from None
    base = src.resolve().parent
    paths = [os.path.abspath(base / line.strip()) for line in lines
             if line.strip() and not line.strip().startswith("#")]
    if not paths:
        raise ZFNetError(f"{src}: the image list is empty (one image path per line)")
    return paths


def collect_images(source):
    """The ordered list of image paths (absolute strings) named by `source`.

    - a folder: every entry whose name has an image extension (IMAGE_EXTENSIONS, any case),
      searched recursively, in sorted order of the relative path. Entries that merely *look*
      like images (a folder called x.jpg, a broken link) are listed too, so that the scan
      reports them instead of silently ignoring them;
    - an image file: just that image;
    - any other file: a list, one path per line (relative paths are relative to the list's
      folder; blank lines and lines starting with '#' are ignored), in the list's order;
    - a list/tuple of paths: those paths, in order.
    Duplicates are dropped (the first occurrence keeps its place).
    """
    if isinstance(source, (list, tuple)):
        paths = [os.path.abspath(os.fspath(p)) for p in source]
    else:
        src = Path(source)
        if src.is_dir():
            paths = _folder_images(src)
        elif src.is_file():
            paths = [os.path.abspath(src)] if is_image_name(src.name) else _listed_images(src)
        else:
            raise ZFNetError(f"{src}: no such folder or file (give a folder of images or a text file listing them)")
    return list(dict.fromkeys(paths))


def file_stamp(path):
    """(size, mtime_ns) of a file, or (None, None) if it cannot even be stat'ed."""
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None, None


def file_sha256(path):
    """Hex sha256 of a regular file's bytes (what `sha256sum` prints); OSError if it cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def image_record(path, sha256=None):
    """{"path", "size", "mtime_ns", "sha256"} of one image; sha256 is computed when not given
    (OSError if the file cannot be read)."""
    size, mtime_ns = file_stamp(path)
    return {"path": path, "size": size, "mtime_ns": mtime_ns,
            "sha256": sha256 if sha256 is not None else file_sha256(path)}


def image_key(record):
    """The identity the tie rule sorts by: (content hash, path)."""
    return record["sha256"], record["path"]
