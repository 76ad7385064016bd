"""The four analysis commands on a small classifier of another architecture, and their HTML pages
really rendering in headless Chromium (every figure loads, nothing is fetched from the network)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analyses_support import run_cli
from browser_support import open_in_chromium
from zfnet.net import Architecture, Conv, Flatten, GlobalAvgPool, MaxPool, Net, ReLU, Softmax
from zfnet.viz.correspondence import default_layers as corr_layers
from zfnet.viz.invariance import default_layers as inv_layers
from zfnet.viz.occlusion import default_layer
from zfnet.weights import save_net

META = {"model": "small", "architecture": "small", "input_size": [40, 40], "channel_order": "BGR", "scale": 255.0,
        "mean": [104.0, 117.0, 123.0], "std": [1.0, 1.0, 1.0], "resize": 46, "source_sha256": "0" * 64}


def small_arch():
    return Architecture("small", (
        Conv("conv1", "data", 3, 6, 5, stride=2, padding=2), ReLU("relu1", "conv1"),
        MaxPool("pool1", "relu1", 3, 2, 0, ceil_mode=True),
        Conv("conv2", "pool1", 6, 5, 3, padding=1), ReLU("relu2", "conv2"),
        GlobalAvgPool("gap", "relu2"), Flatten("flat", "gap"), Softmax("prob", "flat"),
    ), (3, 40, 40))


def small_net(seed):
    net = Net.random(small_arch(), seed=seed, meta=dict(META))
    params = dict(net.params)                                 # (a Net's tensors are read-only)
    params["conv1.weight"] = params["conv1.weight"] * np.float32(0.02)   # 0-255 inputs -> activations of order 1
    return Net(net.arch, params, net.meta)


def test_defaults_on_an_architecture_without_a_table_entry():
    arch = small_arch()
    assert default_layer(arch) == "relu2"
    assert inv_layers(arch) == ("pool1", "relu2")
    assert corr_layers(arch) == ("pool1", "relu2")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    rng = np.random.default_rng(5)
    imgs = root / "imgs"
    imgs.mkdir()
    paths = []
    for i, (h, w) in enumerate([(48, 60), (50, 50), (64, 44)]):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        a[10:30, 12:30] = (200, 40, 40)                       # a shape the filters can find
        Image.fromarray(a).save(imgs / f"img{i}.png")
        paths.append(imgs / f"img{i}.png")
    ckpts = [save_net(small_net(s), root / f"step{s}.safetensors") for s in (1, 2)]
    return root, paths, ckpts


@pytest.mark.slow
def test_the_four_commands_and_their_pages(setup, capsys):
    root, paths, ckpts = setup
    boxes = root / "parts.json"
    boxes.write_text(json.dumps({"square": [[12, 10, 30, 30]] * 3}))
    runs = {
        "occlusion": ["occlusion", paths[0], "--model", ckpts[1], "--size", 12, "--stride", 7, "--class", 3],
        "invariance": ["invariance", paths[0], paths[1], "--model", ckpts[1]],
        "correspondence": ["correspondence", *paths, "--boxes", boxes, "--model", ckpts[1], "--random", 2],
        "evolution": ["evolution", *ckpts, "--images", root / "imgs", "--layer", "relu2", "--count", 3],
    }
    for name, argv in runs.items():
        out = root / name
        rc, stdout, err = run_cli([*argv, "--out", out, "--json"], capsys)
        assert rc == 0, (name, err)
        printed = json.loads(stdout)                                # --json: the numbers on stdout
        assert printed == {**json.loads((out / f"{name}.json").read_text()), **printed}
        images, errors, foreign, links, _, text = open_in_chromium(out / f"{name}.html")
        assert errors == [] and foreign == [], (name, errors, foreign)
        assert images and all(complete and width > 0 for _, complete, width in images), (name, images)
        assert {src for src, _, _ in images} <= {p.name for p in out.iterdir()}   # figures beside the page
        assert all((out / href).is_file() for href in links if not href.startswith("#")), links
        assert "small" in text, name
    occ = json.loads((root / "occlusion" / "occlusion.json").read_text())
    assert occ["target_class"]["index"] == 3 and occ["layer"] == "relu2"
    assert len(occ["ys"]) == (40 - 12) // 7 + 1
