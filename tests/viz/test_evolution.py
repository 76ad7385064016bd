"""Feature evolution (Fig. 4): checkpoints made by perturbing the real SqueezeNet, the grid's cells against
strongest units and projections computed directly, architecture checks, and ``zfnet evolution``."""
import json

import numpy as np
import pytest

from analyses_support import preprocessed, run_cli, squeezenet
from zfnet import ZFNetError
from zfnet.deconv import Unit, cut, project, render
from zfnet.net import Architecture, Conv, Flatten, GlobalAvgPool, Net, ReLU, Softmax, forward
from zfnet.net.receptive import unit_box
from zfnet.viz.evolution import (cell_images, default_maps, feature_evolution, load_checkpoints,
                                 render_evolution, strongest_units)
from zfnet.viz.grid import fit
from zfnet.weights import save_net

IMAGES = ["skimage_chelsea.png", "opencv_chicky_512.png", "skimage_coffee.png"]
LAYER = "fire3/concat"


def perturbed(net, scale, seed):
    """The real weights plus Gaussian noise of `scale` times each tensor's own standard deviation."""
    rng = np.random.default_rng(seed)
    params = {k: (v + scale * v.std() * rng.standard_normal(v.shape)).astype(np.float32) for k, v in net.params.items()}
    return Net(net.arch, params, dict(net.meta))


def small_net():
    """Another architecture (a small classifier) with SqueezeNet's preprocessing."""
    arch = Architecture("small", (Conv("conv1", "data", 3, 4, 7, stride=2), ReLU("relu1", "conv1"),
                                  GlobalAvgPool("pool", "relu1"), Flatten("flat", "pool"), Softmax("prob", "flat")),
                        (3, 227, 227))
    return Net.random(arch, seed=0, meta=dict(squeezenet().meta))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three checkpoint files: heavy noise, light noise, the real weights (as training would approach them)."""
    folder = tmp_path_factory.mktemp("ckpt")
    net = squeezenet()
    paths = []
    for name, scale in (("early", 2.0), ("middle", 0.5), ("final", 0.0)):
        paths.append(save_net(perturbed(net, scale, seed=len(paths)), folder / f"{name}.safetensors"))
    return paths


@pytest.fixture(scope="module")
def x(images_dir):
    return np.stack([preprocessed(images_dir, n) for n in IMAGES])          # (3, 3, 227, 227)


def test_strongest_units_and_default_maps():
    h = np.zeros((2, 3, 4, 5), np.float32)
    h[1, 0, 2, 3] = 5.0
    h[0, 0, 1, 1] = 5.0           # a tie: the first in (n, y, x) order wins
    h[0, 2, 3, 4] = 9.0
    assert strongest_units(h, [0, 2, 1]) == [(0, 1, 1, 5.0), (0, 3, 4, 9.0), (0, 0, 0, 0.0)]
    assert default_maps(h, 2) == [2, 0]


def test_grid_cells_are_the_strongest_projections_computed_directly(checkpoints, x):
    nets = load_checkpoints(checkpoints)
    maps = [3, 40, 101]
    r = feature_evolution(nets, x, LAYER, maps=maps, labels=["early", "middle", "final"])
    assert r.maps == maps and r.checkpoints == ["early", "middle", "final"]
    assert r.projections.shape == (3, 3, 3, 227, 227)
    meta = nets[0].meta
    cells = cell_images(r, meta, cell=64)
    for t, net in enumerate(nets):
        h = forward(net, x, keep=[LAYER])[LAYER]                             # (N, C, H', W')
        for i, m in enumerate(maps):
            n, y, xx = np.unravel_index(int(np.argmax(h[:, m])), h[:, m].shape)
            assert r.units[i][t][:3] == (n, y, xx) and r.units[i][t][3] == pytest.approx(float(h[n, m, y, xx]))
            want = project(net, x[n:n + 1], LAYER, [Unit(0, m, int(y), int(xx))])[0]   # that image alone
            np.testing.assert_allclose(r.projections[i, t], want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
            box = unit_box(net.arch, LAYER, int(y), int(xx), (227, 227))
            assert tuple(r.boxes[i][t]) == box
            assert np.array_equal(cells[i][t], fit(cut(render(want, meta, percentile=99.5), box), 64))
    # The checkpoints differ, so their strongest projections do.
    assert not np.allclose(r.projections[:, 0], r.projections[:, 2])


def test_default_maps_come_from_the_last_checkpoint(checkpoints, x):
    nets = load_checkpoints(checkpoints[1:])
    r = feature_evolution(nets, x, LAYER, count=4)
    h = forward(nets[-1], x, keep=[LAYER])[LAYER]
    assert r.maps == default_maps(h, 4)
    peaks = h.max(axis=(0, 2, 3))
    assert peaks[r.maps[0]] == peaks.max()
    fig = render_evolution(r, nets[0].meta)
    assert len(fig.axes) == 4 * 2


def test_checkpoints_of_different_architectures_are_an_error(checkpoints, tmp_path):
    other = save_net(small_net(), tmp_path / "small.safetensors")
    with pytest.raises(ZFNetError, match="different architectures.*squeezenet1_0.*'small'"):
        load_checkpoints([checkpoints[0], other])


def test_bad_layer_and_maps_are_errors(checkpoints, x):
    nets = load_checkpoints(checkpoints[:1])
    with pytest.raises(ZFNetError, match="no feature maps"):
        feature_evolution(nets, x, "prob")
    with pytest.raises(ZFNetError, match=r"maps 0\.\.127"):
        feature_evolution(nets, x, LAYER, maps=[0, 128])


# -- the command ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_evolution_end_to_end(checkpoints, images_dir, tmp_path, capsys):
    out = tmp_path / "evo"
    rc, stdout, err = run_cli(["evolution", *checkpoints, "--images", images_dir, "--max-images", 3,
                               "--layer", LAYER, "--maps", "3,40", "--out", out], capsys)
    assert rc == 0, err
    for name in ("evolution.png", "evolution.json", "evolution.html"):
        assert (out / name).is_file()
    data = json.loads((out / "evolution.json").read_text())
    assert data["maps"] == [3, 40] and data["checkpoints"] == ["early", "middle", "final"]
    assert len(data["cells"]) == 2 and len(data["cells"][0]) == 3
    # --max-images 3: the first three image files of the folder by name.
    assert {c["image"] for row in data["cells"] for c in row} <= {"darknet_dog.jpg", "darknet_giraffe.jpg",
                                                                  "darknet_horses.jpg"}


def test_cli_evolution_errors(checkpoints, images_dir, tmp_path, capsys):
    other = save_net(small_net(), tmp_path / "small.safetensors")
    rc, _, err = run_cli(["evolution", checkpoints[0], other, "--images", images_dir, "--layer", LAYER,
                          "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "different architectures" in err
    rc, _, err = run_cli(["evolution", checkpoints[0], "--images", tmp_path / "none", "--layer", LAYER,
                          "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "no such folder or file" in err
    rc, _, err = run_cli(["evolution", checkpoints[0], "--images", images_dir, "--layer", LAYER,
                          "--maps", "1,x", "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "--maps" in err
    assert not (tmp_path / "o").exists()
