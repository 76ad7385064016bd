"""End to end on the real SqueezeNet and the shared photographs: a low and a high layer."""
import json

import numpy as np
import pytest
from PIL import Image

from zfnet.cli import main
from zfnet.viz import grid
from zfnet.viz import topk as T
from zfnet.viz.collect import collect_images
from zfnet.viz.scan_state import load_state


@pytest.mark.slow
@pytest.mark.parametrize("layer,maps,n_maps", [("fire2/concat", "0-3,", 4), ("fire9/concat", "5,77,300", 3)])
def test_topk_on_real_squeezenet(layer, maps, n_maps, images_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["topk", "--images", str(images_dir), "--layer", layer, "--maps", maps, "--k", "9",
                 "--cell", "48", "--batch", "12", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    n_images = len(collect_images(images_dir))
    printed = json.loads(captured.out)
    assert printed["model"] == "squeezenet1_0" and printed["images_scanned"] == n_images >= 30
    index = json.loads((out / "index.json").read_text())
    assert index["receptive_field"]["size"][0] == {"fire2/concat": 19, "fire9/concat": 155}[layer]
    rows, cols, block_hw, _, _ = T.block_geometry(9, 48)
    assert len(index["results"]) == n_maps
    for e in index["results"]:
        assert len(e["cells"]) == 9
        values = [c["value"] for c in e["cells"]]
        assert values == sorted(values, reverse=True) and values[0] > 0
        assert len({c["image"] for c in e["cells"]}) == 9                  # one unit per image
        block = np.asarray(Image.open(out / e["png"]))
        assert block.shape == (*block_hw, 3)
        patches = []
        for c in e["cells"]:
            y0, y1, x0, x1 = c["box"]
            assert 0 <= y0 < y1 <= 227 and 0 <= x0 < x1 <= 227
            assert max(y1 - y0, x1 - x0) <= index["receptive_field"]["size"][0]
            y, x, h, w = c["patch_cell"]
            patches.append(block[y:y + h, x:x + w])
            assert np.any(patches[-1] != grid.EMPTY)                         # something of the photograph
            y, x, h, w = c["projection_cell"]
            proj = block[y:y + h, x:x + w].astype(int)
            assert np.abs(proj - 128).max() > 60                             # a visible projection
            shown = np.asarray(Image.open(out / c["input_png"]))
            assert shown.shape == (227, 227, 3)
        assert np.std(patches) > 10                                          # photographs, not blanks
    sheet = np.asarray(Image.open(out / index["sheets"][0]))
    assert sheet.shape[0] > block_hw[0] and sheet.shape[1] >= block_hw[1]
    html = (out / "index.html").read_text()
    assert f"{n_images}" in html and layer in html and "centre crop 227x227" in html and "BGR" in html
    # the state on disk is the one printed
    state = load_state(out)
    assert T.topk_json(state)["maps"] == printed["maps"]
