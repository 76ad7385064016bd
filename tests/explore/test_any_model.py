"""The explorer is not tied to SqueezeNet: a small chain network with random weights and no
classifier (tests/viz's tiny net) browses, projects and reports what it cannot do as a 400."""
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from topk_support import tiny_net  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    from zfnet.explore import Explorer
    ex = Explorer(tiny_net())
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    return ex, ex.images.upload(buf.getvalue(), "noise.png")


def test_model_maps_and_projection(tiny):
    from zfnet.deconv import project_unit, render
    ex, image_id = tiny
    m = ex.model()
    assert [l["name"] for l in m["layers"]] == ["conv1", "relu1", "pool1", "conv2", "relu2"] and m["scans"] == []
    assert m["classifier"] is False                 # the page then shows no classes and no occlusion
    maps = ex.image_maps(image_id, "relu2", k=3)
    assert maps["shape"] == [8, 8, 8] and len(maps["maps"]) == 3 and maps["name"] == "noise.png"
    best = maps["maps"][0]
    png, info = ex.project(image_id, "relu2", best["map"], mode="guided")
    assert (info["y"], info["x"]) == (best["y"], best["x"]) and info["activation"] == pytest.approx(best["max"])
    r = project_unit(ex.net, ex.images.get(image_id).x[None], "relu2", best["map"], at=(best["y"], best["x"]),
                     mode="guided")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), render(r.projection, ex.net.meta, percentile=99.5))
    assert ex.has_filters()


def test_what_needs_a_classifier_is_a_clear_error(tiny):
    from zfnet.errors import ZFNetError
    ex, image_id = tiny
    with pytest.raises(ZFNetError, match="need a classifier"):
        ex.classify(image_id)
    with pytest.raises(ZFNetError, match="need a classifier"):
        ex.jobs.start(ex.images.get(image_id), 16, 8)
    with pytest.raises(ZFNetError, match="was not scanned"):
        ex.layer_maps("relu2")


def test_a_scan_of_another_model_or_a_layer_given_twice_is_refused(scan_dir, net):
    from zfnet.errors import ZFNetError
    from zfnet.explore import Explorer
    with pytest.raises(ZFNetError, match="scanned with squeezenet1_0 .* pass the same --model"):
        Explorer(tiny_net(), scans=[scan_dir])
    with pytest.raises(ZFNetError, match="both scanned 'fire9/concat'"):
        Explorer(net, scans=[scan_dir, scan_dir])
