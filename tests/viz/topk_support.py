"""Shared helpers for the top-k / filters / page tests: a tiny network, image folders, brute force."""
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from zfnet.image import load_image, preprocess
from zfnet.net import Architecture, Conv, MaxPool, Net, ReLU, forward

# A small Caffe-like stack: conv (pad 1) -> relu -> max-pool (ceil) -> conv (pad 1) -> relu, on 3x32x32.
TINY_META = {"model": "tiny", "architecture": "tiny", "input_size": [32, 32], "channel_order": "BGR",
             "scale": 255.0, "mean": [104.0, 117.0, 123.0], "std": [1.0, 1.0, 1.0], "resize": 36,
             "source_sha256": "0" * 64}


def tiny_arch():
    return Architecture("tiny", (
        Conv("conv1", "data", 3, 6, 5, stride=2, padding=2),
        ReLU("relu1", "conv1"),
        MaxPool("pool1", "relu1", 3, 2, 0, ceil_mode=True),
        Conv("conv2", "pool1", 6, 8, 3, stride=1, padding=1),
        ReLU("relu2", "conv2"),
    ), (3, 32, 32))


def tiny_net(seed=0):
    net = Net.random(tiny_arch(), seed=seed, meta=dict(TINY_META))
    # scale the first layer down so 0-255 Caffe-style inputs give activations of order 1..100
    # (a Net's tensors are read-only: new arrays are assigned, and Net() freezes them again)
    params = dict(net.params)
    params["conv1.weight"] = params["conv1.weight"] * np.float32(0.05)
    params["conv2.bias"] = params["conv2.bias"] - np.float32(0.2)   # some units switch off: zeros and ties
    params["conv2.bias"][1] = -1e4               # map 1 of relu2 never fires: ties at zero everywhere
    return Net(net.arch, params, net.meta)


def write_images(folder, n, rng, sizes=((40, 48), (33, 60), (64, 36), (50, 50))):
    """n random photographs-ish (smooth noise + shapes) as PNG/JPEG files; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        base = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.BILINEAR)
        a = np.array(img)
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        a[y:y + 8, x:x + 8] = rng.integers(0, 256, size=3)
        ext = ".png" if i % 3 else ".jpg"
        p = folder / f"img_{i:03d}{ext}"
        Image.fromarray(a).save(p, quality=95) if ext == ".jpg" else Image.fromarray(a).save(p)
        paths.append(str(p.resolve()))
    return paths


def duplicate(path, new_name):
    """A byte-identical copy: equal activations, so ties between images."""
    dst = Path(path).parent / new_name
    shutil.copyfile(path, dst)
    return str(dst.resolve())


def content_key(path):
    """The tie-break key of an image: (sha256 of its file, path), computed here independently."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest(), path


def brute_force_topk(net, paths, layer, maps, k):
    """Per map, the k (path, y, x, value) of the strongest per-image units, from a separate
    forward pass over every image, sorted by the documented rule: value descending, then the
    image's (content sha256, path). Written with plain loops (independent of the scan's merge)."""
    per_map = {m: [] for m in maps}
    for p in paths:
        x = preprocess(load_image(p), net.meta)[None]
        a = forward(net, np.ascontiguousarray(x), upto=layer).output[0]      # (C, H, W)
        for m in maps:
            best = None
            for y in range(a.shape[1]):
                for xx in range(a.shape[2]):
                    if best is None or a[m, y, xx] > best[2]:   # strict: the first max wins
                        best = (y, xx, a[m, y, xx])
            per_map[m].append((p, best[0], best[1], float(best[2])))
    return {m: sorted(per_map[m], key=lambda e: (-e[3], content_key(e[0])))[:k] for m in maps}


def scan_entries(state):
    """{map: [(path, y, x, value), ...]} from a ScanState (independent of its table's order)."""
    return {m: [(state.image_path(i), y, x, v) for i, y, x, v in state.topk.entries(j)]
            for j, m in enumerate(state.maps.tolist())}


def assert_topk_close(got, want, rtol=1e-4):
    """{map: [(path, y, x, value)]} equal up to float rounding: conv2d's results change in the last
    bits with the batch size (BLAS blocks a wider GEMM differently), so scans batched differently
    agree on the values to ~1e-5 and on the kept units except where two candidates are that close.
    Compare scans batched alike (or batch 1 against brute force) with == instead."""
    assert got.keys() == want.keys()
    for m in want:
        g, w = got[m], want[m]
        tol = rtol * max([1.0] + [abs(e[3]) for e in w])
        assert len(g) == len(w), m
        assert np.allclose([e[3] for e in g], [e[3] for e in w], rtol=0, atol=tol), (m, g, w)
        w_units = {e[:3]: e[3] for e in w}
        for e in g:
            if e[:3] in w_units:
                assert abs(w_units[e[:3]] - e[3]) <= tol, (m, e)
            else:   # swapped with a near-tie at the boundary of the kept k
                assert abs(e[3] - w[-1][3]) <= tol, (m, e, w)


def make_bad_images(folder, good_example):
    """The bad inputs the scan must skip, each with its expected reason fragment."""
    folder = Path(folder)
    bad = {}
    # a JPEG cut in half
    data = Path(good_example).read_bytes() if good_example.endswith(".jpg") else None
    if data is None:
        buf = Image.fromarray(np.full((40, 40, 3), 90, np.uint8))
        tmp = folder / "_tmp.jpg"
        buf.save(tmp)
        data = tmp.read_bytes()
        tmp.unlink()
    (folder / "bad_truncated.jpg").write_bytes(data[: len(data) // 2])
    bad["bad_truncated.jpg"] = "damaged or truncated"
    (folder / "bad_text.jpg").write_text("this is not an image\n")
    bad["bad_text.jpg"] = "not an image"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "bad_tiny.png")
    bad["bad_tiny.png"] = "too small"
    # a PNG header claiming 20000 x 20000 pixels (IHDR only; the data never comes)
    import struct
    import zlib
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    (folder / "bad_huge.png").write_bytes(png)
    bad["bad_huge.png"] = "too large"
    (folder / "bad_folder.jpg").mkdir()
    bad["bad_folder.jpg"] = "is a folder"
    os.symlink(folder / "does_not_exist.jpg", folder / "bad_link.jpg")
    bad["bad_link.jpg"] = "not found"
    return bad
