"""Occlusion sensitivity (Fig. 7): positions, the occluder, the maps against one-by-one forward passes,
the figure's geometry, class resolution and the ``zfnet occlusion`` command on the real SqueezeNet."""
import json

import numpy as np
import pytest

from analyses_support import preprocessed, run_cli, squeezenet
from zfnet import ZFNetError
from zfnet.net import (Architecture, Conv, Flatten, GlobalAvgPool, Net, ReLU, Softmax, forward,
                       get_architecture)
from zfnet.viz.classes import class_labels, resolve_class
from zfnet.viz.occlusion import (default_layer, occlude, occlusion_maps, occlusion_projections,
                                 render_occlusion, square_positions, strongest_feature_map)

IMAGE = "skimage_chelsea.png"
SIZE, STRIDE = 64, 48          # 4 x 4 = 16 positions on SqueezeNet's 227 x 227 input


# -- positions, occluder, strongest map (no network) -----------------------------------------------
def test_square_positions_lie_inside_on_the_stride_grid():
    ys, xs = square_positions((227, 200), 48, 8)
    assert ys[0] == 0 and xs[0] == 0
    assert np.all(np.diff(ys) == 8) and np.all(np.diff(xs) == 8)
    assert ys[-1] + 48 <= 227 < ys[-1] + 8 + 48          # the last square that still fits
    assert xs[-1] + 48 <= 200 < xs[-1] + 8 + 48
    assert len(ys) == (227 - 48) // 8 + 1 and len(xs) == (200 - 48) // 8 + 1
    with pytest.raises(ZFNetError, match="does not fit"):
        square_positions((40, 40), 48, 8)
    with pytest.raises(ZFNetError, match=">= 1"):
        square_positions((227, 227), 48, 0)


def test_occlude_zeroes_exactly_the_box_and_nothing_else(rng):
    x = rng.standard_normal((3, 20, 30)).astype(np.float32) + 5.0     # no zeros of its own
    out = occlude(x, [(2, 7, 10, 14), (0, 20, 0, 1)])
    assert out.shape == (2, 3, 20, 30) and out.dtype == np.float32
    mask = np.zeros((20, 30), bool)
    mask[2:7, 10:14] = True
    assert np.all(out[0][:, mask] == 0) and np.array_equal(out[0][:, ~mask], x[:, ~mask])
    assert np.all(out[1][:, :, 0] == 0) and np.array_equal(out[1][:, :, 1:], x[:, :, 1:])
    assert np.all(x != 0)                                             # the input is not modified


def test_strongest_map_is_the_largest_total_not_the_largest_peak():
    h = np.zeros((3, 4, 4), np.float32)
    h[0, 0, 0] = 10.0          # the highest single unit
    h[1] = 1.0                 # total 16: the largest sum
    h[2, :2] = 1.5             # total 12
    assert strongest_feature_map(h) == 1
    h[2] = 1.0                 # tie between maps 1 and 2: the lower index
    assert strongest_feature_map(h) == 1


def test_default_layer_is_the_last_convs_relu():
    assert default_layer(get_architecture("squeezenet1_0")) == "relu_conv10"
    assert default_layer(get_architecture("zfnet")) == "relu5"
    arch = Architecture("plain", (Conv("c1", "data", 3, 4, 3), ReLU("r1", "c1"), Conv("c2", "r1", 4, 2, 1)), (3, 8, 8))
    assert default_layer(arch) == "c2"


# -- the real SqueezeNet -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chelsea(images_dir):
    return preprocessed(images_dir, IMAGE)


@pytest.fixture(scope="module")
def occ(chelsea):
    return occlusion_maps(squeezenet(), chelsea, size=SIZE, stride=STRIDE, batch_size=5)   # 16 = 5+5+5+1


def test_maps_equal_forward_passes_run_one_by_one(occ, chelsea):
    net = squeezenet()
    assert occ.grid == (4, 4) and occ.layer == "relu_conv10"
    for i in range(occ.grid[0]):
        for j in range(occ.grid[1]):
            y0, y1, x0, x1 = occ.square(i, j)
            xp = chelsea.copy()
            xp[:, y0:y1, x0:x1] = 0.0                                   # the mean colour, preprocessed
            r = forward(net, xp[None], keep=[occ.layer])
            p = r.output[0]
            assert occ.probability[i, j] == pytest.approx(float(p[occ.target]), rel=1e-6, abs=1e-9)
            assert occ.top_class[i, j] == int(np.argmax(p))
            assert occ.top_probability[i, j] == pytest.approx(float(p.max()), rel=1e-6)
            total = r[occ.layer][0, occ.feature_map].sum(dtype=np.float64)
            assert occ.activation[i, j] == pytest.approx(total, rel=1e-6)
    # The occlusion changes things: the maps are not constant.
    assert occ.probability.max() - occ.probability.min() > 1e-3
    assert occ.activation.max() - occ.activation.min() > 1.0


def test_strongest_map_and_default_class_come_from_the_unoccluded_image(occ, chelsea):
    r = forward(squeezenet(), chelsea[None], keep=[occ.layer])
    totals = r[occ.layer][0].reshape(r[occ.layer].shape[1], -1).sum(axis=1, dtype=np.float64)
    assert occ.feature_map == int(np.argmax(totals))
    assert occ.base_activation == pytest.approx(totals.max(), rel=1e-9)
    assert occ.target == int(np.argmax(r.output[0]))
    np.testing.assert_allclose(occ.base_probabilities, r.output[0], rtol=1e-6)
    labels = class_labels(squeezenet())
    assert labels[occ.target] == "Egyptian cat"                     # README of the shared weights: 285


def test_square_is_where_the_figure_says_it_is(occ, chelsea):
    from matplotlib.image import AxesImage
    from matplotlib.patches import Rectangle
    inputs, units, projections = occlusion_projections(squeezenet(), chelsea, occ)
    cells = occ.example_cells()
    assert len(inputs) == len(units) == len(projections) == 1 + len(cells)
    rgb = [np.full((227, 227, 3), 128, np.uint8)] * len(inputs)
    fig = render_occlusion(occ, np.zeros((227, 227, 3), np.uint8), rgb, class_labels(squeezenet()))
    drawn = {}
    for ax in fig.axes:
        for patch in ax.patches:
            if isinstance(patch, Rectangle) and (patch.get_gid() or "").startswith("square-"):
                i, j = (int(v) for v in patch.get_gid().split("-")[1:])
                drawn.setdefault((i, j), []).append((patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height()))
    assert set(drawn) == set(cells)
    for n, (i, j) in enumerate(cells):
        y0, y1, x0, x1 = occ.square(i, j)
        assert all(d == (x0, y0, x1 - x0, y1 - y0) for d in drawn[i, j])
        # ... and that is exactly where the input the network saw was occluded.
        changed = np.any(inputs[1 + n] != chelsea, axis=0)
        ys, xs = np.nonzero(changed)
        assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (y0, y1, x0, x1)
        assert np.all(inputs[1 + n][:, y0:y1, x0:x1] == 0)
    # Map panels: cell (i, j) is drawn centred on square (i, j)'s centre, in input pixels.
    maps = [im for ax in fig.axes for im in ax.get_images()
            if isinstance(im, AxesImage) and im.get_array().shape[:2] == occ.grid]
    assert len(maps) == 3                                           # (b), (d), (e)
    for im in maps:
        left, right, bottom, top = im.get_extent()
        ny, nx = occ.grid
        for i, j in [(0, 0), (1, 2), (ny - 1, nx - 1)]:
            cy = top + (i + 0.5) * (bottom - top) / ny
            cx = left + (j + 0.5) * (right - left) / nx
            assert (cy, cx) == pytest.approx(occ.centre(i, j))
    # The projections of (c) are of map m's strongest unit in each (occluded) input.
    fwd = forward(squeezenet(), inputs, keep=[occ.layer])
    for k, u in enumerate(units):
        a = fwd[occ.layer][k, occ.feature_map]
        assert (u.image, u.channel) == (k, occ.feature_map) and a[u.y, u.x] == a.max()
    assert np.abs(projections).max() > 0


def test_class_resolution_by_index_and_name():
    net = squeezenet()
    assert resolve_class(net, "285") == 285 and resolve_class(net, 7) == 7
    assert resolve_class(net, "egyptian CAT ") == 285
    with pytest.raises(ZFNetError, match="did you mean: Egyptian cat"):
        resolve_class(net, "egyptain cat")
    with pytest.raises(ZFNetError, match="out of range"):
        resolve_class(net, "1000")
    with pytest.raises(ZFNetError, match="unknown class"):
        resolve_class(net, "qqqqqq")


def test_unknown_layer_and_flat_layer_are_errors(chelsea):
    with pytest.raises(ZFNetError, match="no layer 'conv99'"):
        occlusion_maps(squeezenet(), chelsea, layer="conv99", size=SIZE, stride=STRIDE)
    with pytest.raises(ZFNetError, match="no feature maps"):
        occlusion_maps(squeezenet(), chelsea, layer="prob", size=SIZE, stride=STRIDE)


def test_tiny_network_target_class_and_batches_agree(rng):
    # The batch size changes nothing; an explicit class is mapped.
    arch = Architecture("t", (Conv("c1", "data", 3, 4, 3, padding=1), ReLU("r1", "c1"), GlobalAvgPool("gap", "r1"),
                              Flatten("flat", "gap"), Softmax("prob", "flat")), (3, 12, 12))
    net = Net.random(arch, seed=3)
    x = rng.standard_normal((3, 12, 12)).astype(np.float32)
    a = occlusion_maps(net, x, "r1", target=2, size=4, stride=3, batch_size=1)
    b = occlusion_maps(net, x, "r1", target=2, size=4, stride=3, batch_size=64)
    assert a.target == 2 and a.grid == (3, 3)
    np.testing.assert_array_equal(a.activation, b.activation)
    np.testing.assert_array_equal(a.probability, b.probability)
    with pytest.raises(ZFNetError, match="out of range"):
        occlusion_maps(net, x, "r1", target=9999, size=4, stride=3)
    headless = Net(Architecture("h", arch.layers[:2], (3, 12, 12)), {k: v for k, v in net.params.items()})
    with pytest.raises(ZFNetError, match="not in class probabilities"):
        occlusion_maps(headless, x, "r1", size=4, stride=3)


# -- the command ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_occlusion_end_to_end(images_dir, tmp_path, capsys):
    out = tmp_path / "occ"
    rc, stdout, err = run_cli(["occlusion", images_dir / IMAGE, "--class", "tabby", "--size", 48,
                               "--stride", 32, "--out", out], capsys)
    assert rc == 0, err
    for name in ("occlusion.png", "occlusion.json", "occlusion.html"):
        assert (out / name).is_file()
    data = json.loads((out / "occlusion.json").read_text())
    assert data["target_class"] == {"index": 281, "name": "tabby"}
    assert data["square"]["size"] == 48 and data["xs"] == list(range(0, 227 - 48 + 1, 32))
    assert np.array(data["target_probability"]).shape == (6, 6)
    assert {c["index"] for c in data["classes_seen"]} == set(np.unique(data["top_class"]).tolist())
    page = (out / "occlusion.html").read_text()
    assert 'src="occlusion.png"' in page and "http" not in page.replace("http-equiv", "")
    assert str(out / "occlusion.png") in stdout


def test_cli_occlusion_errors(images_dir, tmp_path, capsys):
    rc, _, err = run_cli(["occlusion", images_dir / IMAGE, "--class", "egyptain cat", "--out", tmp_path], capsys)
    assert rc == 2 and "unknown class 'egyptain cat'" in err and "Egyptian cat" in err
    rc, _, err = run_cli(["occlusion", images_dir / IMAGE, "--layer", "conv99", "--out", tmp_path], capsys)
    assert rc == 2 and "no layer 'conv99'" in err
    rc, _, err = run_cli(["occlusion", tmp_path / "missing.jpg", "--out", tmp_path], capsys)
    assert rc == 2 and "missing.jpg" in err
    assert not any(tmp_path.iterdir())                                # nothing half-written


def test_cli_occlusion_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(["occlusion", "--help"], capsys)
    assert e.value.code == 0
    assert "example:" in capsys.readouterr().out
