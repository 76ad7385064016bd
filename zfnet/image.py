"""Images in and out: the one place where photographs become network inputs, and back.

    rgb = load_image("cat.jpg")                 # (H, W, 3) uint8 RGB, EXIF orientation applied
    x = preprocess(rgb, net.meta)               # (3, H', W') float32, what the network expects
    x = load_batch(paths, net.meta)             # (N, 3, H', W') float32
    rgb_in = to_display(x[0], net.meta)         # (H', W', 3) uint8: exactly the pixels it saw

The recipe comes from the model card (``net.meta``), never from the caller's guess:

    crop=True:   resize the short side to meta["resize"] (bilinear; the long side keeps the aspect
                 ratio, rounded down), then cut the centre meta["input_size"] (H', W') crop;
    crop=False:  resize the whole image to (H', W') (bilinear), as reference_outputs.npz was made;
    then         x = ((rgb / 255 * scale) in meta["channel_order"] - mean) / std,  HWC -> CHW.

Caffe models: scale 255, BGR, mean in 0-255 units, std 1. torchvision: scale 1, RGB, mean/std.
"""
import os
import stat
import warnings
from pathlib import Path

import numpy as np

from zfnet.errors import ZFNetError

# Smaller than this is a thumbnail or a tracking pixel, not a photograph a network can read.
MIN_SIDE = 16
# Pillow's own decompression-bomb limit (about 9459 x 9459): refuse before decoding.
MAX_PIXELS = 89_478_485
# Longest side over shortest: wider panoramas than this are strips to cut up, not photographs.
MAX_ASPECT = 32


def _to_rgb(img):
    """Any Pillow mode -> 8-bit RGB (alpha dropped, as torchvision and Caffe do)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grey: scale the range that is used down to 0-255.
        a = np.asarray(img, dtype=np.float64)
        a = a / 257.0 if a.max(initial=0) > 255 else a
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = a * 255.0 if a.max(initial=0) <= 1.0 else a
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)  # (H, W, 3), a fresh C-contiguous copy


class ImageWarning(UserWarning):
    """An image was read, but looks damaged (a corrupt or truncated JPEG): its results may be garbage."""


def _not_regular(path, mode):
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return ZFNetError(f"{path} is {kind}, not an image file; zfnet reads only regular files")


def _open_regular(path):
    """Open `path` for reading only if it is a regular file: a FIFO, device or socket named x.jpg
    is refused at once (and O_NONBLOCK: a FIFO swapped in after the check cannot make open wait)."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ZFNetError(f"image not found: {path}") from None
    except PermissionError:
        raise ZFNetError(f"cannot read {path}: permission denied") from None
    except OSError as e:           # ELOOP, ENAMETOOLONG, ENOTDIR, EIO ...
        raise ZFNetError(f"cannot read {path}: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return os.fdopen(fd, "rb")


def check_image_size(w, h, path="image"):
    """A ZFNetError naming `path` unless a w x h image is one zfnet can prepare: at least MIN_SIDE
    on each side, at most MAX_PIXELS, and no longer than MAX_ASPECT times its short side (the
    short-side resize of a 1000000x20 strip would need tens of GB)."""
    if w * h > MAX_PIXELS:
        raise ZFNetError(f"{path}: {w}x{h} pixels is more than zfnet reads ({MAX_PIXELS:,} pixels); "
                         f"downscale it first (or the file's header is damaged)")
    if min(w, h) < MIN_SIDE:
        raise ZFNetError(f"{path}: {w}x{h} pixels is too small to classify or visualise "
                         f"(at least {MIN_SIDE}x{MIN_SIDE} needed)")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ZFNetError(f"{path}: {w}x{h} pixels is a strip, not a photograph (the long side may be at most "
                         f"{MAX_ASPECT} times the short one); crop it into pieces first")


def load_image(path):
    """Read an image file -> (H, W, 3) uint8 RGB.

    EXIF orientation is applied; grey, palette, RGBA, CMYK and 16-bit images become 8-bit RGB;
    an animated image gives its first frame. Every failure is a ZFNetError naming the file: it
    is missing or unreadable, not a regular file (a FIFO or device is refused without waiting),
    not an image, damaged or truncated, or its header's size fails ``check_image_size`` (checked
    before anything is decoded). A JPEG that decodes but looks damaged (see zfnet.jpegcheck)
    gives an ImageWarning naming it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with _open_regular(path) as f, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                check_image_size(*img.size, path)
                img.load()  # decode now, inside the try: truncated files fail here
                if img.format == "JPEG":
                    _warn_if_damaged_jpeg(f, path)
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except ZFNetError:
        raise
    except UnidentifiedImageError:
        raise ZFNetError(f"{path}: not an image file Pillow can read (wrong extension, or damaged)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ZFNetError(f"{path}: image is too large to decode safely; downscale it first") from None
    except MemoryError:
        raise ZFNetError(f"{path}: not enough memory to decode this image; downscale it first") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as e:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated"), and
        # some malformed headers as SyntaxError/ValueError/struct errors.
        raise ZFNetError(f"{path}: damaged or truncated image ({e})") from None


def _warn_if_damaged_jpeg(f, path):
    """An ImageWarning if the JPEG's bytes show damage that its decoder (libjpeg, whose warnings
    Pillow drops) passed over silently."""
    from zfnet.jpegcheck import jpeg_damage
    f.seek(0)
    problem = jpeg_damage(f.read())
    if problem:
        warnings.warn(f"{path}: the JPEG looks damaged ({problem}); its results may be garbage",
                      ImageWarning, stacklevel=3)


def _check_meta(meta, crop):
    need = ["input_size", "channel_order", "scale", "mean", "std"] + (["resize"] if crop else [])
    missing = [k for k in need if meta.get(k) is None]
    if missing:
        raise ZFNetError(
            f"the network's metadata lacks {', '.join(missing)}, so its input cannot be prepared; "
            f"convert the weights with their preprocessing (zfnet weights convert --channel-order, --scale, --mean, "
            f"--std, --input-size, --resize) or use a model name (zfnet weights list)"
        )
    if meta["channel_order"] not in ("RGB", "BGR"):
        raise ZFNetError(f"channel_order must be 'RGB' or 'BGR', got {meta['channel_order']!r}")


def _check_rgb(rgb):
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ZFNetError(f"expected an (H, W, 3) uint8 RGB image (see load_image), got a {got}")


def resize_and_crop(rgb, meta, crop=True):
    """(H, W, 3) uint8 -> (H', W', 3) uint8: the geometric part of ``preprocess``.

    crop=True: short side to meta["resize"] (long side int(resize * long / short), as torchvision's
    Resize), then the centre input_size crop (offsets rounded as torchvision's CenterCrop).
    crop=False: the whole image resized to input_size (aspect ratio not kept).
    """
    from PIL import Image

    _check_rgb(rgb)
    oh, ow = (int(v) for v in meta["input_size"])
    img = Image.fromarray(rgb)
    h, w = rgb.shape[:2]
    if not crop:
        return np.asarray(img.resize((ow, oh), Image.BILINEAR))   # (H', W', 3)
    r = int(meta["resize"])
    nh, nw = (r, int(r * w / h)) if h <= w else (int(r * h / w), r)
    if nh < oh or nw < ow:
        # resize smaller than the crop (or a very narrow image): scale just enough to fit the crop.
        s = max(oh / h, ow / w)
        nh, nw = max(oh, int(np.ceil(h * s))), max(ow, int(np.ceil(w * s)))
    if nh * nw > MAX_PIXELS:
        # a strip (say 20 x 1000000) would grow to tens of GB before the crop: refuse before resizing.
        raise ZFNetError(f"a {w}x{h} image would be resized to {nw}x{nh} pixels, more than zfnet handles "
                         f"({MAX_PIXELS:,}); crop the strip into pieces first")
    img = img.resize((nw, nh), Image.BILINEAR)                     # (nh, nw, 3)
    top, left = int(round((nh - oh) / 2.0)), int(round((nw - ow) / 2.0))
    return np.asarray(img.crop((left, top, left + ow, top + oh)))  # (H', W', 3)


def normalise(rgb, meta):
    """(H, W, 3) uint8 RGB -> (3, H, W) float32: x = ((rgb/255 * scale) reordered - mean) / std."""
    _check_rgb(rgb)
    # float64 arithmetic, rounded once to float32: exact for Caffe models (scale 255, integer mean).
    x = rgb.astype(np.float64) * (float(meta["scale"]) / 255.0)
    if meta["channel_order"] == "BGR":
        x = x[:, :, ::-1]                                           # RGB -> BGR
    x = (x - np.asarray(meta["mean"], np.float64)) / np.asarray(meta["std"], np.float64)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)  # (3, H, W)


def preprocess(rgb, meta, crop=True):
    """(H, W, 3) uint8 RGB -> (3, H', W') float32 network input, per the model's metadata."""
    _check_meta(meta, crop)
    return normalise(resize_and_crop(rgb, meta, crop), meta)


def to_display(x, meta):
    """(3, H, W) network input -> (H, W, 3) uint8 RGB: undo std, mean, scale and channel order.

    For an input made by ``preprocess`` this gives back exactly the pixels that went in.
    """
    _check_meta(meta, crop=False)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ZFNetError(f"to_display expects a (3, H, W) array, got shape {x.shape}")
    hwc = x.transpose(1, 2, 0) * np.asarray(meta["std"], np.float64) + np.asarray(meta["mean"], np.float64)
    if meta["channel_order"] == "BGR":
        hwc = hwc[:, :, ::-1]                                       # BGR -> RGB
    rgb = hwc * (255.0 / float(meta["scale"]))
    return np.ascontiguousarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))  # (H, W, 3)


def load_batch(paths, meta, crop=True):
    """Image files -> (N, 3, H', W') float32, each prepared by ``preprocess``.

    The first unreadable image raises its ZFNetError (callers that want to skip bad files call
    load_image per file, as ``zfnet classify`` does).
    """
    paths = list(paths)
    if not paths:
        raise ZFNetError("no images given")
    return np.stack([preprocess(load_image(p), meta, crop) for p in paths])   # (N, 3, H', W')
