"""Invariance (Fig. 5): the transforms themselves, distances zero at the identity and equal to a direct
computation elsewhere, default layers for every architecture, and ``zfnet invariance`` end to end."""
import json

import numpy as np
import pytest

from analyses_support import features, preprocessed, run_cli, squeezenet
from zfnet import ZFNetError
from zfnet.net import ARCHITECTURES, get_architecture
from zfnet.viz.invariance import (SWEEPS, default_layers, invariance_curves, render_invariance, transform,
                                  transform_matrix, warp)

IMAGE = "skimage_chelsea.png"


# -- the transforms ----------------------------------------------------------------------------------
@pytest.fixture
def x(rng):
    return (rng.standard_normal((3, 21, 16)) * 50).astype(np.float32)


def test_identity_transforms_are_exact(x):
    for kind, amount in [("translation", 0), ("scale", 1.0), ("rotation", 0), ("rotation", 360)]:
        assert np.array_equal(transform(x, kind, amount), x), (kind, amount)


def test_translation_moves_rows_down_and_fills_with_the_mean(x):
    y = transform(x, "translation", 5)
    assert np.array_equal(y[:, 5:], x[:, :-5]) and np.all(y[:, :5] == 0)
    y = transform(x, "translation", -3)
    assert np.array_equal(y[:, :-3], x[:, 3:]) and np.all(y[:, -3:] == 0)
    # A half-pixel shift is the mean of neighbouring rows.
    y = transform(x, "translation", 0.5)
    np.testing.assert_allclose(y[:, 1:], 0.5 * (x[:, 1:] + x[:, :-1]), rtol=1e-6, atol=1e-4)


def test_rotation_by_90_degrees_is_rot90_anticlockwise(rng):
    x = rng.standard_normal((3, 15, 15)).astype(np.float32)
    assert np.array_equal(transform(x, "rotation", 90), np.rot90(x, 1, axes=(1, 2)))
    assert np.array_equal(transform(x, "rotation", 180), np.rot90(x, 2, axes=(1, 2)))


def test_scale_zooms_about_the_centre(rng):
    x = rng.standard_normal((1, 9, 9)).astype(np.float32)
    y = transform(x, "scale", 2.0)
    # Output pixel p samples o + (p - o) / 2 with o = (4, 4): p = (0, 0) -> (2, 2), p = (8, 6) -> (6, 5).
    assert y[0, 4, 4] == x[0, 4, 4] and y[0, 0, 0] == x[0, 2, 2] and y[0, 8, 6] == x[0, 6, 5]
    assert y[0, 1, 1] == pytest.approx(0.25 * (x[0, 2, 2] + x[0, 2, 3] + x[0, 3, 2] + x[0, 3, 3]))


def test_warp_matches_a_loop_over_pixels(rng):
    x = rng.standard_normal((2, 7, 8)).astype(np.float32)
    a = transform_matrix("rotation", 33.0, (7, 8))
    y = warp(x, a)
    for r in range(7):
        for c in range(8):
            sr, sc = a @ np.array([r, c, 1.0])
            want = np.zeros(2)
            for rr in (int(np.floor(sr)), int(np.floor(sr)) + 1):
                for cc in (int(np.floor(sc)), int(np.floor(sc)) + 1):
                    if 0 <= rr < 7 and 0 <= cc < 8:
                        want += max(0.0, 1 - abs(sr - rr)) * max(0.0, 1 - abs(sc - cc)) * x[:, rr, cc]
            np.testing.assert_allclose(y[:, r, c], want, rtol=1e-5, atol=1e-5)


def test_unknown_transform_is_an_error(x):
    with pytest.raises(ZFNetError, match="unknown transform"):
        transform(x, "shear", 3)


def test_paper_sweeps():
    assert SWEEPS["translation"][0] == -60 and SWEEPS["translation"][-1] == 60
    assert SWEEPS["scale"][0] == 1.0 and SWEEPS["scale"][-1] == 1.8
    assert SWEEPS["rotation"][0] == 0 and SWEEPS["rotation"][-1] == 360


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_default_layers_exist_in_every_architecture(name):
    arch = get_architecture(name)
    low, high = default_layers(arch)
    assert arch.index(low) < arch.index(high)
    assert len(arch.shapes[low]) == 3                     # a spatial layer-1 output


# -- the real SqueezeNet -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def curves(images_dir):
    x = preprocessed(images_dir, IMAGE)
    sweeps = {"translation": [-30, 0, 17], "scale": [1.0, 1.35], "rotation": [0, 45, 360]}
    return x, invariance_curves(squeezenet(), x, sweeps=sweeps, batch_size=3)


def test_distances_are_zero_at_the_identity(curves):
    _, r = curves
    assert r.layers == ("pool1", "fire9/concat")
    for kind, i in [("translation", 1), ("scale", 0), ("rotation", 0), ("rotation", 2)]:
        s = r.sweeps[kind]
        for layer in r.layers:
            assert s.distances[layer][i] == 0.0, (kind, s.amounts[i], layer)
        assert s.probability[i] == pytest.approx(r.base_probability, rel=1e-6)
    # ... and clearly not zero elsewhere.
    assert r.sweeps["rotation"].distances["pool1"][1] > 0.1 * r.norms["pool1"]


def test_distances_equal_a_direct_computation(curves):
    x, r = curves
    net = squeezenet()
    phi0 = features(net, x, r.layers)
    for kind, i in [("translation", 2), ("scale", 1), ("rotation", 1)]:
        s = r.sweeps[kind]
        xt = transform(x, kind, s.amounts[i])
        phi, p = features(net, xt, r.layers, with_output=True)
        for layer in r.layers:
            want = np.sqrt(np.sum((phi0[layer] - phi[layer]) ** 2))       # || phi(x) - phi(T x) ||_2
            assert s.distances[layer][i] == pytest.approx(want, rel=1e-6), (kind, layer)
            assert s.relative[layer][i] == pytest.approx(want / np.sqrt(np.sum(phi0[layer] ** 2)), rel=1e-6)
        assert s.probability[i] == pytest.approx(float(p[r.target]), rel=1e-6)
        assert s.top_class[i] == int(np.argmax(p))


def test_figure_has_three_rows_of_three_panels(curves):
    _, r = curves
    fig = render_invariance([r, r], ["a", "b"])
    assert len(fig.axes) == 9
    assert len(fig.axes[0].get_lines()) == 2
    line = fig.axes[4].get_lines()[0]                       # scale row, high layer
    np.testing.assert_array_equal(line.get_ydata(), r.sweeps["scale"].distances["fire9/concat"])


def test_bad_layer_is_an_error(curves):
    x, _ = curves
    with pytest.raises(ZFNetError, match="no layer 'fc7'"):
        invariance_curves(squeezenet(), x, layers=["pool1", "fc7"], sweeps={"scale": [1.0]})


# -- the command ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_invariance_end_to_end(images_dir, tmp_path, capsys):
    out = tmp_path / "inv"
    rc, stdout, err = run_cli(["invariance", images_dir / IMAGE, "--class", "Egyptian cat", "--out", out], capsys)
    assert rc == 0, err
    for name in ("invariance.png", "invariance.json", "invariance.html", "invariance_examples.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "invariance.json").read_text())
    (img,) = data["images"]
    assert img["target_class"] == {"index": 285, "name": "Egyptian cat"}
    sw = img["sweeps"]
    assert sw["translation"]["amounts"] == list(np.arange(-60, 61, 5).astype(float))
    assert len(sw["rotation"]["amounts"]) == 37 and len(sw["scale"]["amounts"]) == 9
    assert sw["translation"]["distance"]["pool1"][12] == 0.0       # translation 0
    assert sw["rotation"]["distance"]["fire9/concat"][0] == 0.0    # rotation 0
    assert sw["rotation"]["distance"]["fire9/concat"][-1] == 0.0   # rotation 360


def test_cli_invariance_errors(images_dir, tmp_path, capsys):
    rc, _, err = run_cli(["invariance", images_dir / IMAGE, "--class", "1000", "--out", tmp_path], capsys)
    assert rc == 2 and "out of range" in err
    rc, _, err = run_cli(["invariance", images_dir / IMAGE, "--layers", "pool1,nope", "--out", tmp_path], capsys)
    assert rc == 2 and "no layer 'nope'" in err
    assert not any(tmp_path.iterdir())
