"""Checksums and downloads: nothing half-written, nothing unverified, ever lands in the cache.

    digests = file_digests(path, ("sha256", "md5"))          # one pass over the file
    verify(path_or_digests, entry)                            # ZFNetError on any mismatch
    download(entry, dest)                                     # try each URL; verify; rename

A download streams into a temporary file beside `dest` (hashing as it goes, tqdm progress on
stderr), checks the byte count against Content-Length, then every checksum the card knows, and
only then renames the file into place. Any failure (network error, short read, checksum
mismatch, Ctrl-C) deletes the temporary file.
"""
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from zfnet import __version__
from zfnet.errors import ZFNetError

CHUNK = 1 << 20
TIMEOUT_S = 60


def file_digests(path, algorithms=("sha256",)):
    """{algorithm: hex digest} of the file at `path`, all computed in one pass."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                for h in hashes.values():
                    h.update(chunk)
    except OSError as e:
        raise ZFNetError(f"cannot read {path}: {e.strerror or e}") from None
    return {a: h.hexdigest() for a, h in hashes.items()}


def sha256_of(path):
    return file_digests(path)["sha256"]


def _algorithms(entry):
    return tuple(sorted({"sha256", *entry.checksums}))


def verify(path, entry, digests=None, downloaded_from=None):
    """Check the file against every checksum `entry` (a registry FileEntry) knows.

    Returns its sha256. A mismatch is a ZFNetError naming the file, both digests and the fix.
    """
    digests = digests or file_digests(path, _algorithms(entry))
    what = f"the file downloaded from {downloaded_from}" if downloaded_from else str(path)
    fix = ("the server sent a damaged or different file; nothing was saved" if downloaded_from else
           f"the file is damaged or another version of {entry.file}: delete it and run 'zfnet weights get' "
           f"to download the right one, or convert it explicitly with 'zfnet weights convert {path}'")
    for algorithm, expected in entry.checksums.items():
        if digests[algorithm] != expected:
            raise ZFNetError(f"checksum mismatch: {what} has {algorithm} {digests[algorithm]}, the model "
                             f"card expects {expected} for {entry.file}; {fix}")
    if entry.sha256_prefix and not digests["sha256"].startswith(entry.sha256_prefix):
        raise ZFNetError(f"checksum mismatch: {what} has sha256 {digests['sha256']}, which does not start "
                         f"with {entry.sha256_prefix} as published for {entry.file}; {fix}")
    return digests["sha256"]


def _fetch(url, part, entry, progress):
    """Stream `url` into the open path `part`; return {algorithm: digest}."""
    request = urllib.request.Request(url, headers={"User-Agent": f"zfnet/{__version__}"})
    hashes = {a: hashlib.new(a) for a in _algorithms(entry)}
    from tqdm import tqdm

    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else entry.size
        received = 0
        with open(part, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc=entry.file, file=sys.stderr, disable=not progress,
                                          leave=False) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                for h in hashes.values():
                    h.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client returns a short body without complaint when the connection drops: count.
    if length and length.isdigit() and received != int(length):
        raise ZFNetError(f"download of {url} was interrupted: got {received} of {length} bytes")
    if entry.size is not None and received != entry.size:
        raise ZFNetError(f"download of {url} has {received} bytes; the model card says {entry.size}")
    return {a: h.hexdigest() for a, h in hashes.items()}


def download(entry, dest, progress=True, manual_dir="$ZFNET_WEIGHTS/<model>"):
    """Download `entry` (a FileEntry with urls and checksums) to `dest`, verified. Returns its sha256.

    Each URL is tried in turn; the first one that yields a verified file wins. Without any known
    checksum the file is accepted with a warning (its sha256 is still returned and recorded).
    """
    dest = Path(dest)
    if not entry.urls:
        raise ZFNetError(
            f"{entry.file} has no download URL; put the file in {manual_dir}/ by hand"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    if entry.sha256 is None and entry.checksum_note:
        print(f"zfnet: note: {entry.file}: {entry.checksum_note}", file=sys.stderr)
    failures = []
    for url in entry.urls:
        fd, part = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        part = Path(part)
        try:
            digests = _fetch(url, part, entry, progress)
            sha256 = verify(part, entry, digests, downloaded_from=url)
            if not entry.verifiable:
                warnings.warn(
                    f"{entry.file}: no checksum is known for this file, so the download from {url} "
                    f"could not be verified (its sha256 is {sha256})", stacklevel=2,
                )
            os.replace(part, dest)
            return sha256
        except ZFNetError as e:
            failures.append(f"{url}: {e}")
        except (urllib.error.URLError, OSError, ValueError) as e:  # HTTPError is a URLError
            reason = getattr(e, "reason", None) or e
            failures.append(f"{url}: {reason}")
        finally:
            if part.exists():
                part.unlink()
    raise ZFNetError(
        f"could not download {entry.file}:\n  " + "\n  ".join(failures)
        + f"\nDownload it by hand and put it in {manual_dir}/{entry.file}."
    )
