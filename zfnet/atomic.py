"""Atomic file writes: a crash or an error never leaves a half-written output behind.

    with atomic_write("out/grid.png") as tmp:      # tmp: a Path in the same folder
        image.save(tmp, format="PNG")
    # only now does out/grid.png appear (os.replace is atomic on one file system)

A write that fails for a reason of the file system (a full disk, a read-only mount, a file where a
folder should be) is a ZFNetError naming the output and the fix. A process killed mid-write can
leave its temporary ``.NAME.XXXX.part`` file; ``remove_stale_parts`` (called by the commands on
their output folder before they start) clears them away.
"""
import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

from zfnet.errors import ZFNetError

PART_SUFFIX = ".part"


class OutputError(ZFNetError, OSError):
    """A write failed for a reason of the file system: a ZFNetError (one line for the user) that is
    still the OSError it was, with its errno and filename (callers that catch OSError keep working)."""

    @classmethod
    def from_os_error(cls, e, path, what="cannot write"):
        err = cls(f"{what} {path}: {describe_os_error(e)}")
        err.errno, err.strerror, err.filename = e.errno, e.strerror, str(path)
        return err

    def __str__(self):
        return str(self.args[0])             # the sentence, not OSError's "[Errno N] ..." form


def describe_os_error(e):
    """What an OSError means for someone writing files, with the fix, in a few words."""
    return {errno.ENOSPC: "the disk is full: free some space or write elsewhere",
            errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
            errno.EROFS: "it is on a read-only file system: write elsewhere",
            errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "it is a folder; give a file",
            errno.EEXIST: "something is already there; remove it or choose another name",
            errno.EACCES: "permission denied: write elsewhere, or change the folder's permissions",
            errno.EPERM: "not permitted: write elsewhere, or change the folder's permissions",
            errno.ENOENT: "no such file or folder"}.get(e.errno, e.strerror or str(e))


def check_writable_dir(folder, what="output folder"):
    """Prove that files can be written in `folder`: a ZFNetError naming it otherwise (checked
    before any work, so a run does not fail at its end). Folders it has to create for the probe
    are removed again, so a run that fails later leaves nothing behind; the writes create them."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ZFNetError(f"{what} {folder} exists and is not a folder; give a folder (it is created if missing)")
    created = [p for p in [folder, *folder.parents] if not p.exists()]   # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".zfnet-probe.", suffix=PART_SUFFIX, dir=folder)
        try:
            os.write(fd, b"zfnet")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise OutputError.from_os_error(e, folder, f"cannot write to {what}") from None
    finally:
        for p in created:
            with contextlib.suppress(OSError):
                p.rmdir()
    return folder


def remove_stale_parts(folder):
    """Delete the temporary ``.*.part`` files that killed writes left in `folder` (and below it).
    Returns how many were removed."""
    removed = 0
    for p in Path(folder).rglob(f".*{PART_SUFFIX}"):
        with contextlib.suppress(OSError):
            if p.is_file():
                p.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise OutputError.from_os_error(e, path) from None
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError.from_os_error(e, path) from None
    finally:
        with contextlib.suppress(OSError):
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
