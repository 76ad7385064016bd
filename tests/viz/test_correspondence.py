"""Correspondence (Table 1): Delta on hand-computed toy cases, the whole pipeline on a toy network with
known feature changes, box checks, and ``zfnet correspondence`` on the real SqueezeNet."""
import json

import numpy as np
import pytest

from analyses_support import photo, run_cli, squeezenet
from zfnet import ZFNetError
from zfnet.image import preprocess
from zfnet.net import ARCHITECTURES, Architecture, Conv, Net, ReLU, forward, get_architecture
from zfnet.viz.correspondence import (check_box, correspondence, default_layers, delta, hamming, load_boxes,
                                      mask, mean_colour_rgb, render_correspondence)

# Faces in three shared photographs, [x0, y0, x1, y1] in each image's own pixels.
FACES = ["skimage_chelsea.png", "opencv_chicky_512.png", "scipy_face.jpg"]
PARTS = {
    "left eye": [[140, 85, 200, 145], [178, 108, 222, 152], [545, 275, 610, 340]],
    "nose": [[240, 220, 295, 275], [236, 150, 280, 194], [585, 415, 665, 495]],
}


# -- the measure ---------------------------------------------------------------------------------------
def test_delta_of_a_hand_computed_case():
    eps = np.array([[1.0, -2.0, 0.0, 0.5],      # signs + - 0 +
                    [3.0, 0.0, 0.0, -1.0],      #       + 0 0 -
                    [-1.0, -1.0, 0.0, 2.0]])    #       - - 0 +
    # H(1,2) = 2, H(1,3) = 1, H(2,3) = 3; ordered pairs count each twice: 12; / (3 * 2 * 4) = 0.5
    assert hamming(np.sign(eps[0]), np.sign(eps[1])) == 2
    norm, raw = delta(eps)
    assert raw == 12 and norm == pytest.approx(0.5)
    # Identical changes agree everywhere; two images with opposite changes differ everywhere.
    assert delta(np.ones((4, 10))) == (0.0, 0)
    assert delta(np.array([[1.0, 2.0], [-1.0, -2.0]])) == (1.0, 4)
    with pytest.raises(ZFNetError, match="at least 2 images"):
        delta(np.ones((1, 5)))


TOY_META = {"model": "toy", "architecture": "toy", "input_size": [8, 8], "channel_order": "RGB", "scale": 255.0,
            "mean": [100.0, 100.0, 100.0], "std": [1.0, 1.0, 1.0], "resize": 8}


def toy_net():
    """features = x (a 1x1 identity convolution), then ReLU: feature changes are known in closed form."""
    arch = Architecture("toy", (Conv("feat", "data", 3, 3, 1), ReLU("relu", "feat")), (3, 8, 8))
    w = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    return Net(arch, {"feat.weight": w, "feat.bias": np.zeros(3, np.float32)}, dict(TOY_META))


def test_pipeline_on_a_toy_network_with_known_feature_changes(rng):
    # Preprocessing: x = rgb - 100, so the mask (the mean colour, 100) makes x = 0 inside the box and
    # eps = x - x_masked = rgb - 100 there, 0 elsewhere. In the box (2 x 2 pixels, 3 channels = 12 entries):
    #   A: every pixel 150 -> sign +1 (12 entries);  B: every pixel 50 -> sign -1;
    #   C: channels (150, 100, 50) -> signs (+1, 0, -1) at each of the 4 pixels.
    # Layer "feat" (D = 192): H(A,B) = 12, H(A,C) = 8, H(B,C) = 8 -> sum over ordered pairs 56.
    # Layer "relu": eps = relu(x) - relu(0) -> A: +1 (12), B: 0, C: (+1, 0, 0):
    #               H(A,B) = 12, H(A,C) = 8, H(B,C) = 4 -> 48.
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    images[0][2:4, 2:4] = 150
    images[1][2:4, 2:4] = 50
    images[2][2:4, 2:4] = (150, 100, 50)
    box = [2, 2, 4, 4]
    r = correspondence(toy_net(), images, {"part": [box] * 3}, layers=["feat", "relu"], random=0)
    assert r.dims == {"feat": 192, "relu": 192}
    assert r.raw["part"] == {"feat": 56, "relu": 48}
    assert r.table["part"]["feat"] == pytest.approx(56 / (3 * 2 * 192))
    assert r.table["part"]["relu"] == pytest.approx(48 / (3 * 2 * 192))
    assert r.changed["part"]["feat"] == pytest.approx([12 / 192, 12 / 192, 8 / 192])
    assert r.random == [] and r.random_summary() == {}


def test_random_boxes_are_seeded_inside_and_of_the_parts_size(rng):
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    parts = {"a": [[0, 0, 2, 2], [1, 1, 3, 3], [4, 4, 6, 6]], "b": [[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4]]}
    r1 = correspondence(toy_net(), images, parts, layers=["feat"], random=4, seed=7)
    r2 = correspondence(toy_net(), images, parts, layers=["feat"], random=4, seed=7)
    assert r1.random == r2.random and len(r1.random) == 4
    for trial in r1.random:
        for x0, y0, x1, y1 in trial["boxes"]:
            assert (x1 - x0, y1 - y0) == (3, 3)                    # the mean of 2 and 4
            assert 0 <= x0 and x1 <= 8 and 0 <= y0 and y1 <= 8
        assert 0.0 <= trial["delta"]["feat"] <= 1.0
    mean, std = r1.random_summary()["feat"]
    assert mean == pytest.approx(np.mean([t["delta"]["feat"] for t in r1.random]))


def test_mean_colour_maps_to_zero():
    assert mean_colour_rgb({"channel_order": "BGR", "scale": 255, "mean": [104, 117, 123]}).tolist() == [123, 117, 104]
    torch_meta = {"channel_order": "RGB", "scale": 1.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                  "input_size": [4, 4]}
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:] = mean_colour_rgb(torch_meta)
    assert np.abs(preprocess(rgb, torch_meta, crop=False)).max() < 0.5 / 255 / 0.224 + 1e-6


def test_boxes_are_checked():
    assert check_box([1, 2, 5, 6], (10, 8), "x") == (1, 2, 5, 6)
    for bad in ([0, 0, 9, 5], [-1, 0, 3, 3], [3, 3, 3, 5], [0, 0, 4, 11], [1, 2, 3], "abc"):
        with pytest.raises(ZFNetError):
            check_box(bad, (10, 8), "part 'nose', image 0")
    with pytest.raises(ZFNetError, match=r"part 'nose', image 1 \(b\).*not inside the 8x8"):
        correspondence(toy_net(), [np.zeros((8, 8, 3), np.uint8)] * 2, {"nose": [[0, 0, 2, 2], [6, 6, 9, 8]]},
                       layers=["feat"], random=0, names=["a", "b"])
    with pytest.raises(ZFNetError, match="one box per image"):
        correspondence(toy_net(), [np.zeros((8, 8, 3), np.uint8)] * 2, {"nose": [[0, 0, 2, 2]]}, layers=["feat"])
    # A mask that changes nothing (the box is already the mean colour) is an error, not a zero.
    with pytest.raises(ZFNetError, match="does not change the network's input"):
        correspondence(toy_net(), [np.full((8, 8, 3), 100, np.uint8)] * 2, {"p": [[0, 0, 2, 2]] * 2},
                       layers=["feat"], random=0)


def test_boxes_file_errors(tmp_path):
    with pytest.raises(ZFNetError, match="not found"):
        load_boxes(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ZFNetError, match="not readable JSON"):
        load_boxes(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ZFNetError, match="expected an object"):
        load_boxes(tmp_path / "list.json")


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_default_layers_exist_in_every_architecture(name):
    arch = get_architecture(name)
    mid, high = default_layers(arch)
    assert arch.index(mid) < arch.index(high)


# -- the real SqueezeNet ---------------------------------------------------------------------------------
def test_real_network_delta_equals_a_direct_computation(images_dir):
    net = squeezenet()
    images = [photo(images_dir, n) for n in FACES]
    layers = ["fire5/concat", "fire9/concat"]
    r = correspondence(net, images, PARTS, layers=layers, random=1, seed=3)
    colour = np.array([123, 117, 104], np.uint8)                    # SqueezeNet's mean in RGB
    x = np.stack([preprocess(im, net.meta, crop=False) for im in images])
    f0 = forward(net, x, keep=layers)
    for part, boxes in PARTS.items():
        masked = []
        for im, (x0, y0, x1, y1) in zip(images, boxes):
            m = im.copy()
            m[y0:y1, x0:x1] = colour
            masked.append(preprocess(m, net.meta, crop=False))
        f1 = forward(net, np.stack(masked), keep=layers)
        for layer in layers:
            s = np.sign(f0[layer].reshape(3, -1).astype(np.float64) - f1[layer].reshape(3, -1))
            total = sum(int(np.sum(s[i] != s[j])) for i in range(3) for j in range(3) if i != j)
            assert r.raw[part][layer] == total
            assert r.table[part][layer] == pytest.approx(total / (6 * s.shape[1]))
            assert 0.0 < r.table[part][layer] < 1.0
    fig = render_correspondence(r, images, FACES)
    assert len(fig.axes) == len(FACES) + 2


def test_mask_paints_only_the_box():
    im = np.zeros((5, 6, 3), np.uint8)
    out = mask(im, (1, 2, 4, 3), np.array([9, 8, 7], np.uint8))
    assert np.all(out[2, 1:4] == [9, 8, 7]) and out.sum() == 3 * (9 + 8 + 7) and im.sum() == 0


# -- the command ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_correspondence_end_to_end(images_dir, tmp_path, capsys):
    boxes = tmp_path / "parts.json"
    boxes.write_text(json.dumps(PARTS))
    out = tmp_path / "corr"
    rc, stdout, err = run_cli(["correspondence", *[images_dir / n for n in FACES], "--boxes", boxes,
                               "--random", 2, "--out", out], capsys)
    assert rc == 0, err
    for name in ("correspondence.png", "correspondence.json", "correspondence.html"):
        assert (out / name).is_file()
    data = json.loads((out / "correspondence.json").read_text())
    assert data["layers"] == ["fire5/concat", "fire9/concat"] and data["n_images"] == 3
    assert set(data["parts"]) == {"left eye", "nose"}
    assert len(data["random"]["trials"]) == 2
    for p in data["parts"].values():
        assert all(0.0 < v < 1.0 for v in p["delta"].values())
    assert "left eye" in stdout and "random (2)" in stdout


def test_cli_correspondence_box_outside_the_image(images_dir, tmp_path, capsys):
    boxes = tmp_path / "parts.json"
    bad = {"nose": [PARTS["nose"][0], [236, 150, 280, 600]]}          # chicky is 512 x 512
    boxes.write_text(json.dumps(bad))
    rc, _, err = run_cli(["correspondence", images_dir / FACES[0], images_dir / FACES[1], "--boxes", boxes,
                          "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "not inside the 512x512" in err and "opencv_chicky_512.png" in err
    assert not (tmp_path / "o").exists()
    rc, _, err = run_cli(["correspondence", images_dir / FACES[0], "--boxes", boxes, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "at least 2 images" in err
