"""Atomic file writes: a crash or an error never leaves a half-written output behind.

    with atomic_write("out/grid.png") as tmp:      # tmp: a Path in the same folder
        image.save(tmp, format="PNG")
    # only now does out/grid.png appear (os.replace is atomic on one file system)
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path, data):
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_png(path, rgb):
    """rgb: (H, W, 3) or (H, W) uint8 array -> PNG at `path`, atomically."""
    from PIL import Image
    with atomic_write(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
