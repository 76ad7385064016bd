"""Image loading and preprocessing: the reference tensors exactly, both conventions (Caffe BGR
0-255 and torchvision RGB mean/std), exact inversion for display, and a clear ZFNetError naming
the file for every kind of bad image."""
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from zfnet import ZFNetError
from zfnet.image import (MIN_SIDE, load_batch, load_image, normalise, preprocess, resize_and_crop,
                         to_display)
from zfnet.weights import get_card

CAFFE = dict(get_card("squeezenet1_0").preprocessing)      # BGR, 255, mean 104/117/123, 227, 256
TORCH = dict(get_card("alexnet").preprocessing)            # RGB, 1, ImageNet mean/std, 224, 256


def test_reference_inputs_exactly(images_dir, reference_outputs):
    """crop=False reproduces reference_outputs.npz's `data` bit for bit (same recipe, same Pillow)."""
    files = [str(f) for f in reference_outputs["image_files"]]
    x = load_batch([images_dir / f for f in files], CAFFE, crop=False)
    assert x.shape == (6, 3, 227, 227) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, reference_outputs["data"])


def test_load_image_modes(images_dir):
    rgb = load_image(images_dir / "skimage_chelsea.png")
    assert rgb.shape == (300, 451, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    grey = load_image(images_dir / "skimage_camera.png")          # mode L
    assert grey.shape == (512, 512, 3)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    rgba = load_image(images_dir / "opencv_chicky_512.png")       # mode RGBA: alpha dropped
    assert rgba.shape == (512, 512, 3)
    jpg = load_image(images_dir / "sklearn_china.jpg")
    assert jpg.shape == (427, 640, 3)


def _save(tmp_path, name, img, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def test_palette_cmyk_and_16_bit(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    p = load_image(_save(tmp_path, "p.png", Image.fromarray(rgb).convert("P")))
    assert p.shape == (40, 50, 3)
    cmyk = load_image(_save(tmp_path, "c.jpg", Image.fromarray(rgb).convert("CMYK")))
    assert cmyk.shape == (40, 50, 3)
    # 16-bit grey PNG: 0..65535 maps onto 0..255 (not clipped to white).
    g16 = (np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 32).astype(np.uint16)
    out = load_image(_save(tmp_path, "g16.png", Image.fromarray(g16)))
    np.testing.assert_array_equal(out[..., 0], np.clip(np.rint(g16 / 257.0), 0, 255).astype(np.uint8))


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((30, 60, 3), np.uint8)
    rgb[:, :30] = 255                                   # left half white
    exif = Image.Exif()
    exif[0x0112] = 6                                    # "rotate 90 CW to display"
    path = _save(tmp_path, "o.jpg", Image.fromarray(rgb), exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (60, 30, 3)                     # portrait once displayed
    assert out[:20].mean() > 200 and out[-20:].mean() < 50   # the white half is now on top


def test_first_frame_of_an_animation(tmp_path):
    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (10, 200)]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert load_image(path).mean() < 50


# -- bad images -------------------------------------------------------------------------------------
def _png_header_only(w, h):
    """A PNG whose IHDR claims w x h (valid CRC) with a tiny, wrong body: an absurd header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ZFNetError, match="image not found: .*nope.jpg"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ZFNetError, match="is a folder"):
        load_image(tmp_path)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(ZFNetError, match="notes.jpg: not an image file"):
        load_image(path)


def test_truncated_jpeg(tmp_path, images_dir):
    data = (images_dir / "sklearn_china.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ZFNetError, match="cut.jpg: damaged or truncated image"):
        load_image(path)


def test_corrupt_png_body(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(_png_header_only(64, 64))
    with pytest.raises(ZFNetError, match="bad.png: damaged or truncated"):
        load_image(path)


@pytest.mark.parametrize("size", [(1, 1), (MIN_SIDE - 1, 300)])
def test_too_small(tmp_path, size):
    path = _save(tmp_path, "tiny.png", Image.new("RGB", size))
    with pytest.raises(ZFNetError, match=f"tiny.png: {size[0]}x{size[1]} pixels is too small"):
        load_image(path)


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 9_000)])
def test_absurdly_large_header(tmp_path, size):
    """Refused from the header alone (both above Pillow's bomb error and between warning and error)."""
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(*size))
    with pytest.raises(ZFNetError, match="bomb.png: .*(more than zfnet reads|too large)"):
        load_image(path)


# -- preprocessing ----------------------------------------------------------------------------------
def test_crop_geometry_is_short_side_then_centre():
    """An image whose short side already equals `resize` is only cropped: exact pixel positions."""
    rgb = np.random.default_rng(1).integers(0, 256, (256, 400, 3), dtype=np.uint8)
    out = resize_and_crop(rgb, CAFFE, crop=True)
    top, left = round((256 - 227) / 2), round((400 - 227) / 2)   # torchvision CenterCrop rounding
    np.testing.assert_array_equal(out, rgb[top:top + 227, left:left + 227])
    tall = np.ascontiguousarray(rgb.transpose(1, 0, 2))           # (400, 256): the crop transposes too
    np.testing.assert_array_equal(resize_and_crop(tall, CAFFE, crop=True), out.transpose(1, 0, 2))


def test_crop_resizes_short_side_with_pillow_bilinear():
    rgb = np.random.default_rng(2).integers(0, 256, (300, 451, 3), dtype=np.uint8)
    resized = np.asarray(Image.fromarray(rgb).resize((int(256 * 451 / 300), 256), Image.BILINEAR))
    assert resized.shape == (256, 384, 3)
    top, left = round((256 - 227) / 2), round((384 - 227) / 2)   # 14, 78 (round half to even)
    want = resized[top:top + 227, left:left + 227]
    np.testing.assert_array_equal(resize_and_crop(rgb, CAFFE, crop=True), want)


def test_small_and_narrow_images_still_fill_the_crop():
    for shape in ((20, 30, 3), (16, 2000, 3), (2000, 17, 3)):
        rgb = np.full(shape, 7, np.uint8)
        x = preprocess(rgb, TORCH)
        assert x.shape == (3, 224, 224)
    assert preprocess(np.zeros((500, 20, 3), np.uint8), CAFFE, crop=False).shape == (3, 227, 227)


def test_caffe_convention_values():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50          # R, G, B
    x = normalise(rgb, CAFFE)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0, 0], [50 - 104, 100 - 117, 200 - 123])   # B, G, R channels


def test_torchvision_convention_matches_torch():
    rgb = np.random.default_rng(3).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    t = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)
    t = (t - torch.tensor(TORCH["mean"]).view(3, 1, 1)) / torch.tensor(TORCH["std"]).view(3, 1, 1)
    np.testing.assert_allclose(normalise(rgb, TORCH), t.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("meta", [CAFFE, TORCH], ids=["caffe", "torchvision"])
@pytest.mark.parametrize("crop", [True, False])
def test_to_display_gives_back_the_pixels_that_went_in(images_dir, meta, crop):
    rgb = load_image(images_dir / "skimage_astronaut.png")
    x = preprocess(rgb, meta, crop=crop)
    np.testing.assert_array_equal(to_display(x, meta), resize_and_crop(rgb, meta, crop=crop))


def test_load_batch_and_argument_errors(images_dir):
    paths = [images_dir / "skimage_coffee.png", images_dir / "darknet_dog.jpg"]
    x = load_batch(paths, TORCH)
    assert x.shape == (2, 3, 224, 224) and x.dtype == np.float32
    np.testing.assert_array_equal(x[1], preprocess(load_image(paths[1]), TORCH))
    with pytest.raises(ZFNetError, match="no images"):
        load_batch([], TORCH)
    with pytest.raises(ZFNetError, match="image not found"):
        load_batch([paths[0], images_dir / "missing.png"], TORCH)
    with pytest.raises(ZFNetError, match="lacks mean, std.*zfnet weights convert"):
        preprocess(np.zeros((30, 30, 3), np.uint8), {k: v for k, v in TORCH.items() if k not in ("mean", "std")})
    with pytest.raises(ZFNetError, match=r"\(H, W, 3\) uint8.*float64"):
        preprocess(np.zeros((30, 30, 3)), TORCH)
    with pytest.raises(ZFNetError, match=r"\(3, H, W\)"):
        to_display(np.zeros((224, 224, 3), np.float32), TORCH)


# -- hostile files: never hang, never blow up memory, damage is named -------------------------------
def _load_in_thread(path, timeout=20):
    """load_image(path) on a thread: -> the exception it raised (a hang fails the test, not the run)."""
    import threading
    box = {}

    def target():
        try:
            load_image(path)
        except BaseException as e:        # noqa: B902 - report whatever it was
            box["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"load_image({path}) still waiting after {timeout} s"
    return box.get("error")


def test_fifo_named_jpg_is_refused_at_once(tmp_path):
    import os
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    err = _load_in_thread(fifo)
    if err is None or "x.jpg" not in str(err):
        with open(fifo, "wb"):        # unblock a reader stuck in open() before failing
            pass
    assert isinstance(err, ZFNetError) and "x.jpg is a named pipe (FIFO)" in str(err)


def test_devices_and_sockets_are_refused(tmp_path):
    import socket
    err = _load_in_thread("/dev/zero")
    assert isinstance(err, ZFNetError) and "/dev/zero is a device" in str(err)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.jpg"))
        err = _load_in_thread(tmp_path / "s.jpg")
    finally:
        sock.close()
    assert isinstance(err, ZFNetError) and "s.jpg is a socket" in str(err)


def test_a_strip_is_refused_from_its_header(tmp_path):
    """1000000x20 would be resized to 256 x 12.8 million pixels (~10 GB): refused before any decode
    (the file's body is bogus, so a decode would say 'damaged' instead)."""
    path = tmp_path / "strip.png"
    path.write_bytes(_png_header_only(1_000_000, 20))
    with pytest.raises(ZFNetError, match=r"strip.png: 1000000x20 pixels is a strip.*at most 32 times"):
        load_image(path)
    from zfnet.image import MAX_ASPECT
    ok = _save(tmp_path, "wide.png", Image.new("RGB", (MAX_ASPECT * 16, 16)))
    assert load_image(ok).shape == (16, MAX_ASPECT * 16, 3)


def test_resizing_a_strip_array_is_refused_before_allocating():
    with pytest.raises(ZFNetError, match=r"40000x20 image would be resized to 512000x256"):
        preprocess(np.zeros((20, 40_000, 3), np.uint8), CAFFE)


def test_jpeg_zeroed_mid_file_warns_naming_it(tmp_path, images_dir):
    """Pillow decodes such a file without a word (libjpeg's warnings are dropped): zfnet warns."""
    from zfnet.image import ImageWarning
    data = bytearray((images_dir / "sklearn_china.jpg").read_bytes())
    data[len(data) // 2:len(data) // 2 + 2000] = bytes(2000)
    path = tmp_path / "zeroed.jpg"
    path.write_bytes(bytes(data))
    with pytest.warns(ImageWarning, match=r"zeroed.jpg: the JPEG looks damaged \(2000 zero bytes"):
        rgb = load_image(path)
    assert rgb.shape == (427, 640, 3)


def test_genuine_jpegs_give_no_warning(images_dir, tmp_path):
    import warnings
    flat = _save(tmp_path, "flat.jpg", Image.new("RGB", (512, 512), (128, 128, 128)), optimize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in [*sorted(images_dir.glob("*.jpg")), flat]:
            load_image(path)


def test_jpeg_damage_check_restart_markers_and_end(images_dir):
    import io
    from zfnet.jpegcheck import jpeg_damage
    rgb = load_image(images_dir / "skimage_chelsea.png")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90, restart_marker_blocks=4)
    data = buf.getvalue()
    assert jpeg_damage(data) is None
    first = data.index(b"\xff\xd1")                           # restart marker 1 -> 5: out of sequence
    assert "restart marker 1 out of sequence" in jpeg_damage(data[:first + 1] + b"\xd5" + data[first + 2:])
    assert "no end-of-image marker" in jpeg_damage(data[:-2])
    assert jpeg_damage(b"\x89PNG\r\n") is None                 # not a JPEG: not its business
