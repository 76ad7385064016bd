"""``zfnet project`` end to end on the real SqueezeNet and a shared photograph."""
import json

import numpy as np
import pytest
from PIL import Image

from zfnet.cli import main
from zfnet.deconv import Unit, cut, project, render, strongest_unit, top_maps
from zfnet.image import load_image, preprocess, to_display
from zfnet.kernels import thread_pool
from zfnet.net import forward
from zfnet.net.receptive import unit_box
from zfnet.weights import load_model


@pytest.fixture(scope="module")
def cat(images_dir):
    """The real SqueezeNet, the cat photograph as the network sees it, and its forward pass."""
    net = load_model("squeezenet1_0")
    path = images_dir / "skimage_chelsea.png"
    x = preprocess(load_image(path), net.meta)[None]                                # (1, 3, 227, 227)
    return net, path, x, forward(net, x, keep="all")


def _png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_strongest_unit_of_a_map(cat, tmp_path, capsys):
    net, path, x, fwd = cat
    layer = "fire9/concat"
    c = top_maps(fwd[layer], 0, 1)[0].channel
    npz = tmp_path / "unit.npz"
    assert main(["project", str(path), "--layer", layer, "--map", str(c), "--out", str(tmp_path / "out"),
                 "--npz", str(npz)]) == 0
    printed = capsys.readouterr().out
    u = strongest_unit(fwd[layer], 0, c)
    stem = f"fire9-concat_map{c}_{u.y}x{u.x}_deconvnet"
    assert f"map {c} at ({u.y}, {u.x})" in printed and stem in printed

    # the arrays: the image the network saw, and the library's own projection of that unit
    d = np.load(npz)
    assert np.array_equal(d["input"], x)
    want = project(net, x, layer, [u])
    assert d["projection"].dtype == np.float32 and d["projection"].shape == (1, 3, 227, 227)
    assert np.array_equal(d["projection"], want)
    assert np.abs(want).max() > 0
    assert str(d["layer"]) == layer and int(d["map"]) == c and tuple(d["at"]) == (u.y, u.x)
    assert d["activation"] == np.float32(fwd[layer][0, c, u.y, u.x]) > 0

    # the pictures: rendered projection, its receptive-field crop, the image patch
    out = tmp_path / "out"
    box = unit_box(net.arch, layer, u.y, u.x)
    shown = render(want[0], net.meta, percentile=99.5)
    assert np.array_equal(_png(out / f"{stem}_projection.png"), shown)
    assert np.array_equal(_png(out / f"{stem}_projection_rf.png"), cut(shown, box))
    assert np.array_equal(_png(out / f"{stem}_patch.png"), cut(to_display(x[0], net.meta), box))
    assert np.array_equal(_png(out / f"{stem}_input.png"), to_display(x[0], net.meta))
    summary = json.loads((out / f"{stem}_summary.json").read_text())
    assert summary["layer"] == layer and summary["map"] == c and summary["at"] == [u.y, u.x]
    assert summary["receptive_field"] == dict(zip(("y0", "y1", "x0", "x1"), box))
    assert summary["model"] == "squeezenet1_0" and summary["mode"] == "deconvnet"
    # nothing half-written is left behind
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_given_position_guided_mode(cat, tmp_path):
    net, path, x, fwd = cat
    layer, c, at = "relu_conv1", 7, (50, 60)
    npz = tmp_path / "u.npz"
    assert main(["project", str(path), "--layer", layer, "--map", str(c), "--at", "50,60", "--mode", "guided",
                 "--out", str(tmp_path), "--npz", str(npz)]) == 0
    d = np.load(npz)
    want = project(net, x, layer, [Unit(0, c, *at)], mode="guided")
    assert np.array_equal(d["projection"], want) and tuple(d["at"]) == at
    box = unit_box(net.arch, layer, *at)
    assert _png(tmp_path / f"relu_conv1_map7_50x60_guided_patch.png").shape == (box[1] - box[0], box[3] - box[2], 3)
    # --dense walks the whole feature maps: the same projection
    assert main(["project", str(path), "--layer", layer, "--map", str(c), "--at", "50,60", "--mode", "guided",
                 "--dense", "--out", str(tmp_path), "--npz", str(npz)]) == 0
    dense = np.load(npz)["projection"]
    assert np.abs(dense - want).max() <= 1e-6 * np.abs(want).max()


def test_class_score(cat, tmp_path, capsys):
    net, path, x, fwd = cat
    assert main(["project", str(path), "--layer", "prob", "--map", "285", "--mode", "gradient",
                 "--out", str(tmp_path), "--npz", str(tmp_path / "p.npz")]) == 0
    d = np.load(tmp_path / "p.npz")
    # the command runs BLAS on one thread (thread_pool.configure); fc/conv10's GEMMs change in the
    # last bits with OpenBLAS's thread count, so the library call gets the same setting
    with thread_pool.blas_single_threaded():
        want = project(net, x, "prob", [Unit(0, 285)], mode="gradient")
    assert np.array_equal(d["projection"], want)
    assert np.isclose(float(d["activation"]), fwd["pool10_flat"][0, 285])
    assert "prob map 285" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--layer", "conv9", "--map", "0"], "has no layer 'conv9'"),
    (["--layer", "fire9/concat", "--map", "512"], "512 maps (0..511)"),
    (["--layer", "fire9/concat", "--map", "3", "--at", "13,0"], "0..12"),
    (["--layer", "fire9/concat", "--map", "3", "--at", "1;2"], "--at must be two"),
    (["--layer", "prob", "--map", "3", "--at", "0,0"], "flat"),
    (["--layer", "conv1", "--map", "3", "--percentile", "0"], "--percentile"),
])
def test_user_errors_exit_2_with_a_message(cat, tmp_path, capsys, argv, message):
    net, path, x, fwd = cat
    assert main(["project", str(path), *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zfnet: error:") and message in err
    assert not list(tmp_path.iterdir())


def test_dead_map_is_an_error_naming_live_maps(cat, tmp_path, capsys):
    net, path, x, fwd = cat
    act = fwd["fire9/concat"][0]
    dead = int(np.flatnonzero(~act.reshape(act.shape[0], -1).any(axis=1))[0])
    assert main(["project", str(path), "--layer", "fire9/concat", "--map", str(dead), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"map {dead} of layer 'fire9/concat' is all zeros" in err
    best = top_maps(fwd["fire9/concat"], 0, 1)[0].channel
    assert f"strongest maps of 'fire9/concat' are {best}," in err


def test_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    assert main(["project", str(bad), "--layer", "conv1", "--map", "0", "--out", str(tmp_path / "o")]) == 2
    assert "broken.jpg" in capsys.readouterr().err


def test_class_score_in_deconvnet_mode_says_the_image_is_grey(cat, tmp_path, capsys):
    """Issue 16: `--layer prob` with the deconvnet rule wrote a plain grey image without a word."""
    net, path, x, fwd = cat
    assert main(["project", str(path), "--layer", "prob", "--map", "285", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    picture = _png(tmp_path / "prob_map285_deconvnet_projection.png")
    assert not np.any(project(net, x, "prob", [Unit(0, 285)], mode="deconvnet"))   # what the note is about
    assert (picture == picture[0, 0]).all()
    assert "prob_map285_deconvnet_projection.png is plain grey" in err
    assert "rectifies a class score's signal away" in err and "try --mode guided" in err


def test_command_line_messages_carry_no_api_names(cat, tmp_path, capsys):
    net, path, x, fwd = cat
    assert main(["project", str(path), "--layer", "prob", "--map", "3", "--at", "0,0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unit 3 at (0, 0): layer 'prob' is flat" in err and "without a position" in err
    assert "Unit(" not in err and "zfnet." not in err
