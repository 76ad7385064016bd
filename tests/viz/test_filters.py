"""Layer-1 filters: display normalisation, layout, and that the real ones look like the paper's."""
import numpy as np
import pytest

from topk_support import tiny_net
from zfnet import ZFNetError
from zfnet.image import load_image, preprocess
from zfnet.viz import filters as F
from zfnet.viz.collect import collect_images
from zfnet.viz.scan import scan
from zfnet.viz import topk as T


def _angle_diff_deg(a, b):
    """Distance between orientations (mod 180 degrees), in degrees."""
    return np.degrees(np.abs((a - b + np.pi / 2) % np.pi - np.pi / 2))


@pytest.fixture(scope="module")
def squeezenet(weights_dir):
    import os
    os.environ["ZFNET_WEIGHTS"] = str(weights_dir)
    from zfnet.weights import load_model
    return load_model("squeezenet1_0", progress=False)


def test_each_filter_is_normalised_on_its_own_and_shown_in_rgb():
    w = np.zeros((2, 3, 3, 3), np.float32)
    w[0, 0] = 5.0             # filter 0: only the network's channel 0 (blue, for a BGR model)
    w[1] = np.arange(27, dtype=np.float32).reshape(3, 3, 3) * 1e-3 - 0.01
    bgr = F.filter_images(w, "BGR")
    assert bgr.shape == (2, 3, 3, 3) and bgr.dtype == np.uint8
    assert np.all(bgr[0, :, :, 2] == 255) and np.all(bgr[0, :, :, :2] == 0)       # blue is last in RGB
    assert np.all(F.filter_images(w, "RGB")[0, :, :, 0] == 255)                    # red when it is RGB
    for img in bgr:
        assert img.min() == 0 and img.max() == 255                                # full range, per filter
    flat = F.filter_images(np.ones((1, 3, 2, 2), np.float32))
    assert np.all(flat == 128)                                                      # constant: mid-grey
    with pytest.raises(ZFNetError):
        F.filter_images(w, "XYZ")


def test_filter_grid_layout_and_layer_checks():
    net = tiny_net()
    g, layer = F.filter_grid(net, cell=10, gap=1)
    assert layer == "conv1" and g.shape == (2 * 10 + 1, 3 * 10 + 2, 3)           # 6 filters -> 2 x 3
    assert F.image_layers(net) == ["conv1"]
    with pytest.raises(ZFNetError, match="cannot be drawn as pictures"):
        F.filter_grid(net, "conv2")
    with pytest.raises(ZFNetError, match="not a convolution"):
        F.filter_grid(net, "relu1")
    with pytest.raises(ZFNetError, match="no layer"):
        F.filter_grid(net, "conv7")


def test_orientation_selectivity_of_gratings_and_noise(rng):
    yy, xx = np.mgrid[-3:4, -3:4].astype(np.float64)
    filters, angles = [], np.radians([0, 30, 45, 90, 135])
    for t in angles:
        # a Gabor whose frequency vector points at angle t (stripes run perpendicular to it)
        g = np.cos(1.2 * (xx * np.cos(t) + yy * np.sin(t))) * np.exp(-(xx ** 2 + yy ** 2) / 8)
        filters.append(np.stack([g, g, g]))
    s, a = F.orientation_selectivity(np.array(filters))
    assert np.all(s > 0.7)
    assert np.all(_angle_diff_deg(a, angles) < 6)
    s_noise, _ = F.orientation_selectivity(rng.standard_normal((200, 3, 7, 7)))
    assert np.median(s_noise) < 0.15 and s_noise.max() < 0.4


@pytest.mark.slow
def test_real_conv1_shows_oriented_edges_and_colour_blobs(squeezenet, rng):
    w = squeezenet.weight("conv1")                                   # (96, 3, 7, 7)
    random = (rng.standard_normal(w.shape) * w.std()).astype(np.float32)
    s_real, _ = F.orientation_selectivity(w)
    s_rand, _ = F.orientation_selectivity(random)
    # most real filters have one clearly dominant orientation; random filters of the same shape don't
    assert (s_real > 0.4).mean() > 0.5
    assert (s_rand > 0.4).mean() < 0.05
    assert np.median(s_real) > 3 * np.median(s_rand)
    # and a good share are smooth colour-opponent blobs, which random filters never are
    b_real, b_rand = F.colour_blob_fraction(w), F.colour_blob_fraction(random)
    assert (b_real > 0.4).sum() >= 10 and (b_rand > 0.4).sum() <= 1
    stats = F.filter_stats(squeezenet)
    assert stats.layer == "conv1" and not stats.dead.any() and np.allclose(stats.orientation, s_real)


@pytest.mark.slow
def test_top_patches_share_their_filters_orientation(squeezenet, images_dir):
    """The patches that excite an oriented filter most are edges of its orientation (Fig. 2, layer 1)."""
    net = squeezenet
    w = net.weight("conv1")
    sel, ang = F.orientation_selectivity(w)
    paths = collect_images(images_dir)
    chosen = [int(f) for f in np.argsort(-sel)[:4]]
    state = scan(net, paths, "conv1", chosen, k=9, batch_size=12).state
    for f in chosen:
        found = F.top_patches(net, state, f, cell=28)
        assert len(found) == 9
        patches = []
        for u, cell, shown in found:
            assert u.box == (u.field[0], u.field[1], u.field[2], u.field[3])   # conv1 has no padding: never clipped
            assert cell.shape == (28, 28, 3) and shown.shape == (227, 227, 3)
            x = preprocess(load_image(u.path), net.meta)
            patches.append(x[:, u.box[0]:u.box[1], u.box[2]:u.box[3]])       # (3, 7, 7) network input
            # the kept value is the filter's response there: w . patch + b
            assert np.isclose(float((w[f] * patches[-1]).sum() + net.bias("conv1")[f]), u.value, rtol=1e-4, atol=1e-2)
        _, patch_angles = F.orientation_selectivity(np.array(patches))
        assert np.median(_angle_diff_deg(patch_angles, ang[f])) < 15, f
    block, origins = F.filter_block(np.zeros((7, 7, 3), np.uint8), [c for _, c, _ in found], 9, 28)
    assert block.shape == (3 * 28 + 4, 2 * (3 * 28 + 4) + 10, 3) and len(origins) == 9


def test_top_patches_wants_one_filter(tmp_path, rng):
    from topk_support import write_images
    net = tiny_net()
    paths = write_images(tmp_path, 3, rng)
    state = scan(net, paths, "conv1", [0, 1], k=2).state
    with pytest.raises(ZFNetError, match="say which one"):
        F.top_patches(net, state)
    with pytest.raises(ZFNetError, match="not part of the scan"):
        F.top_patches(net, state, 3)
    assert F.top_patches(net, state, 1, cell=10)[0][0].map == 1
    state = scan(net, paths, "conv1", [4], k=2).state
    (u, cell, shown), _ = F.top_patches(net, state, cell=10)
    assert cell.shape == (10, 10, 3) and u.map == 4 and shown.shape == (32, 32, 3)
    assert T.top_units(state, net.arch)[0][0] == u
