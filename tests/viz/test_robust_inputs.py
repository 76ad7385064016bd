"""Hostile and careless inputs to the commands that read many images (topk, filters, evolution,
the analyses): one bad file is reported and skipped and the run goes on; --images takes several
paths and globs; --k beyond the collection is said; a resume names what really changed."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from topk_support import tiny_net, write_images
from zfnet import ZFNetError
from zfnet.cli import main
from zfnet.weights import save_net


@pytest.fixture
def tiny_model(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_net(tiny_net(), path)
    return str(path)


def _hostile(folder):
    """A FIFO and a 1000000x20 strip named like images (each would hang or blow up memory)."""
    import struct
    import zlib
    os.mkfifo(folder / "pipe.jpg")

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    (folder / "strip.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1_000_000, 20, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))
    return ["pipe.jpg", "strip.png"]


def test_topk_skips_a_fifo_and_a_strip_and_goes_on(tiny_model, tmp_path, rng, capsys):
    folder = tmp_path / "photos"
    good = write_images(folder, 4, rng)
    bad = _hostile(folder)
    out = tmp_path / "out"
    code = main(["topk", "--model", tiny_model, "--images", str(folder), "--layer", "relu2", "--maps", "2",
                 "--k", "3", "--out", str(out), "--scan-only", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"scanned {len(good)} new image(s)" in captured.err and f"{len(bad)} skipped" in captured.err
    assert f"skipped {folder / 'pipe.jpg'}: pipe.jpg is a named pipe" in captured.err
    assert f"skipped {folder / 'strip.png'}: 1000000x20 pixels is a strip" in captured.err


def test_filters_scan_skips_a_fifo(tiny_model, tmp_path, rng, capsys):
    folder = tmp_path / "photos"
    write_images(folder, 3, rng)
    _hostile(folder)
    code = main(["filters", "--model", tiny_model, "--images", str(folder), "--filter", "1", "--k", "2",
                 "--cell", "16", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "pipe.jpg is a named pipe" in err and "2 skipped" in err


def test_k_larger_than_the_collection_is_said(tiny_model, tmp_path, rng, capsys):
    folder = tmp_path / "photos"
    write_images(folder, 2, rng)
    assert main(["topk", "--model", tiny_model, "--images", str(folder), "--layer", "relu2", "--maps", "2",
                 "--k", "5", "--out", str(tmp_path / "o"), "--scan-only"]) == 0
    assert "note: --k 5 but only 2 image(s) were scanned" in capsys.readouterr().err


def test_images_takes_several_paths_and_globs(tmp_path, rng):
    from zfnet.cli._scan import collect_args
    a = write_images(tmp_path / "a", 3, rng)
    b = write_images(tmp_path / "b" / "deep", 2, rng)
    (tmp_path / "b" / "README.txt").write_text("not an image, not a list: a glob ignores it\n")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{b[0]}\n")
    assert collect_args([str(tmp_path / "a"), b[1]]) == a + [b[1]]
    assert collect_args([str(tmp_path / "*" / "img_000.*")]) == [a[0]]
    assert collect_args([str(tmp_path / "b" / "*")]) == b                      # a matched folder is searched
    assert collect_args([str(tmp_path / "**" / "*.png"), a[1]]) == sorted(p for p in a + b if p.endswith(".png"))
    assert collect_args([str(listing), str(listing), b[0]]) == [b[0]]          # duplicates dropped
    with pytest.raises(ZFNetError, match=r"--images '.*nothing\*': no image or folder matches"):
        collect_args([str(tmp_path / "nothing*")])


def test_topk_command_line_takes_several_images(tiny_model, tmp_path, rng, capsys):
    a = write_images(tmp_path / "a", 2, rng)
    b = write_images(tmp_path / "b", 2, rng)
    assert main(["topk", "--model", tiny_model, "--images", str(tmp_path / "a"), b[0], str(tmp_path / "b" / "*.jpg"),
                 "--layer", "relu2", "--maps", "1,", "--k", "2", "--out", str(tmp_path / "o"), "--scan-only"]) == 0
    assert f"scanned {len(a) + 1} new image(s)" in capsys.readouterr().err   # b[0] is the only .jpg of b


def test_resume_with_another_layer_blames_the_layer_not_the_weights(tiny_model, tmp_path, rng, capsys):
    folder = tmp_path / "photos"
    write_images(folder, 3, rng)
    common = ["topk", "--model", tiny_model, "--images", str(folder), "--out", str(tmp_path / "o"), "--scan-only",
              "--maps", "2"]
    assert main(common + ["--layer", "relu2"]) == 0
    capsys.readouterr()
    assert main(common + ["--layer", "conv2"]) == 2
    err = capsys.readouterr().err
    assert "the saved scan used layer relu2, this run asks for conv2" in err and "weights" not in err


def test_evolution_skips_a_bad_image_and_goes_on(tmp_path, rng, capsys):
    ckpts = []
    for seed in (0, 1):
        ckpts.append(tmp_path / f"epoch{seed}.safetensors")
        save_net(tiny_net(seed), ckpts[-1])
    folder = tmp_path / "photos"
    write_images(folder, 3, rng)
    _hostile(folder)
    out = tmp_path / "evo"
    code = main(["evolution", *map(str, ckpts), "--images", str(folder), "--layer", "relu2", "--maps", "0,2",
                 "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "zfnet: warning: skipped" in captured.err and "pipe.jpg is a named pipe" in captured.err
    assert "2 of 5 image(s) skipped" in captured.err
    assert (out / "evolution.png").is_file()


def test_read_each_reports_skips_and_needs_enough(tmp_path, capsys, images_dir):
    from zfnet.cli._common import read_each
    from zfnet.image import load_image
    os.mkfifo(tmp_path / "p.jpg")
    good = images_dir / "skimage_coffee.png"
    kept = read_each([tmp_path / "p.jpg", good], load_image)
    assert [(i, p) for i, p, _ in kept] == [(1, good)] and kept[0][2].shape == (400, 600, 3)
    err = capsys.readouterr().err
    assert "zfnet: warning: skipped" in err and "p.jpg is a named pipe" in err
    with pytest.raises(ZFNetError, match=r"only 1 of the 2 image\(s\) could be read; this needs at least 2 images"):
        read_each([tmp_path / "p.jpg", good], load_image, need=2)


def test_sheet_names_are_zero_padded(tiny_model, tmp_path, rng):
    from zfnet.viz.scan import scan
    from zfnet.viz.topk import render_topk
    paths = write_images(tmp_path / "p", 3, rng)
    res = scan(tiny_net(), paths, "relu2", "all", k=1)
    render_topk(tiny_net(), res.state, tmp_path / "o", cell=16, maps_per_sheet=1)
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert index["sheets"][:3] == ["topk_relu2.png", "topk_relu2_002.png", "topk_relu2_003.png"]
    assert sorted(index["sheets"][1:]) == index["sheets"][1:] and len(index["sheets"]) == 8
