"""The images a user explores: uploads and the --images folder, each known by an id, never a path.

    store = ImageStore(net.meta, max_items=32, max_upload_bytes=16 << 20)
    id = store.upload(data, "cat.jpg")       # decoded by zfnet.image.load_image, or a ZFNetError
    img = store.get(id)                      # Image(name, x (3, H, W) float32, display (H, W, 3) uint8)
    store.library()                          # [{"index", "name"}] of the --images folder
    id = store.open_library(3)               # the 4th library image, as an upload

Uploads are written to a private temporary file and read by the project's one image loader (it
bounds the pixel count before decoding: bombs, truncated and non-image files fail there). The
least recently used images are forgotten beyond `max_items`.
"""
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zfnet.errors import ZFNetError
from zfnet.explore.errors import NotFound, TooLarge
from zfnet.explore.lru import LRU
from zfnet.image import load_image, preprocess, to_display

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Image:
    name: str
    x: np.ndarray          # (3, H, W) float32, the network input
    display: np.ndarray    # (H, W, 3) uint8, the input as the network sees it


def library_files(folder):
    """The image files directly inside `folder`, sorted by name (regular files only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ZFNetError(f"--images {folder}: not a folder")
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.is_symlink())


class ImageStore:
    def __init__(self, meta, images_dir=None, max_items=32, max_upload_bytes=16 << 20):
        self.meta = meta
        self.max_upload_bytes = int(max_upload_bytes)
        self._files = library_files(images_dir) if images_dir is not None else []
        self._images = LRU(max_items)

    def _add(self, rgb, name):
        x = preprocess(rgb, self.meta)                                    # (3, H, W)
        image_id = secrets.token_hex(8)
        self._images.put(image_id, Image(name, x, to_display(x, self.meta)))
        return image_id

    def upload(self, data, name="upload"):
        """Bytes of an image file -> its new id. ZFNetError (TooLarge) for what cannot be read."""
        name = Path(str(name or "upload")).name[:100] or "upload"
        if len(data) > self.max_upload_bytes:
            raise TooLarge(f"{name}: {len(data):,} bytes is over the upload limit of {self.max_upload_bytes:,} bytes")
        if not data:
            raise ZFNetError(f"{name}: the upload is empty; send the file in the form field 'image'")
        fd, tmp = tempfile.mkstemp(prefix="zfnet-explore-", suffix=Path(name).suffix[:10])
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                rgb = load_image(tmp)
            except ZFNetError as e:
                raise ZFNetError(str(e).replace(tmp, name)) from None
        finally:
            os.unlink(tmp)
        return self._add(rgb, name)

    def library(self):
        return [{"index": i, "name": p.name} for i, p in enumerate(self._files)]

    def open_library(self, index):
        if not 0 <= int(index) < len(self._files):
            raise NotFound(f"no library image {index}: there are {len(self._files)} (0..{len(self._files) - 1})")
        path = self._files[int(index)]
        return self._add(load_image(path), path.name)

    def get(self, image_id):
        img = self._images.get(image_id)
        if img is None:
            raise NotFound(f"no image {image_id!r} (unknown, or forgotten to keep memory bounded): upload it again")
        return img
