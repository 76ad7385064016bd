"""The HTML pages: self-contained, escaped, and really rendering in headless Chromium."""
import base64
import os
import re
from pathlib import Path

import numpy as np
import pytest

from browser_support import open_in_chromium
from topk_support import tiny_net, write_images
from zfnet import ZFNetError
from zfnet.atomic import save_png
from zfnet.cli import main
from zfnet.viz import topk as T
from zfnet.viz.html import Cell, Link, Page
from zfnet.viz.scan import scan
from zfnet.viz.scan_state import STATE_FILE
from zfnet.weights import save_net

# -- the builder -----------------------------------------------------------------------------------
def _png(path, h=6, w=10):
    save_png(path, np.full((h, w, 3), 77, np.uint8))
    return path


def test_page_escapes_text_and_links_relative(tmp_path):
    _png(tmp_path / "fig" / "a.png")
    page = Page("<b>title</b> & co", tmp_path)
    page.facts({"layer": "fire9/concat <script>alert(1)</script>"})
    page.figure("fig/a.png", 'caption "quoted" <i>', links=[Link((0, 3, 5, 10), "fig/a.png", "unit <1>")])
    page.table(["a", "b"], [[Cell("x<y", "fig/a.png", "t"), 1.5]])
    path = page.write()
    html = path.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;title&lt;/b&gt; &amp; co" in html
    assert 'src="fig/a.png"' in html and 'width="10" height="6"' in html
    # the link covers rows 0..3 of 6 and columns 5..10 of 10, in percentages of the shown image
    assert "left:50.0000%;top:0.0000%;width:50.0000%;height:50.0000%" in html
    assert 'title="unit &lt;1&gt;"' in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)       # nothing from the network


def test_page_refuses_images_outside_its_folder_unless_embedded(tmp_path):
    _png(tmp_path / "outside.png")
    (tmp_path / "page").mkdir()
    page = Page("p", tmp_path / "page")
    with pytest.raises(ZFNetError, match="outside the page's folder"):
        page.figure(tmp_path / "outside.png", "c")
    with pytest.raises(ZFNetError, match="does not exist"):
        page.figure("missing.png", "c")
    embedded = Page("p", tmp_path / "page", embed=True)
    embedded.figure(tmp_path / "outside.png", "c")
    html = embedded.render()
    uri = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(uri) == (tmp_path / "outside.png").read_bytes()


def test_page_write_is_atomic(tmp_path, monkeypatch):
    page = Page("p", tmp_path)
    page.paragraph("first")
    page.write()
    page.paragraph("second")
    real_write_bytes = Path.write_bytes

    def half_then_fail(self, data):
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(ZFNetError, match="cannot write .*index.html: disk full"):
        page.write()
    monkeypatch.setattr(Path, "write_bytes", real_write_bytes)
    html = (tmp_path / "index.html").read_text()
    assert "first" in html and "second" not in html and html.rstrip().endswith("</html>")
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]      # no temporary file left


# -- in a browser ----------------------------------------------------------------------------------
def _check_links(page_path, links):
    folder = Path(page_path).parent
    for href in links:
        if href.startswith("#"):
            continue
        assert not href.startswith(("http:", "https:", "//")), href
        assert (folder / href).is_file(), href


@pytest.mark.slow
def test_topk_page_renders_in_chromium(tmp_path, rng):
    paths = write_images(tmp_path / "imgs", 9, rng)
    net = tiny_net()
    out = tmp_path / "out"
    state = scan(net, paths, "relu2", [0, 1, 2, 3], k=4, state_path=out / STATE_FILE).state
    T.render_topk(net, state, out, cell=24)
    images, errors, foreign, links, boxes, text = open_in_chromium(out / "index.html")
    assert errors == [] and foreign == []
    assert len(images) == 1 + 4                                       # the sheet and one block per map
    assert all(complete and width > 0 for _, complete, width in images), images
    _check_links(out / "index.html", links)
    cell_links = [href for href in links if href.startswith("inputs/")]
    assert len(cell_links) >= 4 * 4 * 2                                # every projection and patch cell
    assert all(w > 5 and h > 5 for w, h in boxes)                     # the clickable cells have a size
    for words in ("tiny", "relu2", "images scanned", "9", "deconvnet", "centre crop 32x32", "receptive field"):
        assert words in text, words


@pytest.mark.slow
def test_filters_page_and_embedded_topk_page_render_in_chromium(tmp_path, rng):
    paths = write_images(tmp_path / "imgs", 6, rng)
    model = tmp_path / "tiny.safetensors"
    save_net(tiny_net(), model)
    out = tmp_path / "filters"
    assert main(["filters", "--model", str(model), "--images", str(tmp_path / "imgs"), "--filter", "1",
                 "--k", "4", "--out", str(out)]) == 0
    images, errors, foreign, links, _, text = open_in_chromium(out / "index.html")
    assert errors == [] and foreign == [] and len(images) == 2
    assert all(complete and width > 0 for _, complete, width in images)
    _check_links(out / "index.html", links)
    assert "Filter 1" in text and "conv1" in text

    single = tmp_path / "single"
    assert main(["topk", "--model", str(model), "--images", str(tmp_path / "imgs"), "--layer", "pool1",
                 "--maps", "2", "--k", "4", "--cell", "16", "--embed", "--out", str(single)]) == 0
    html = (single / "index.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3
    # the page alone, moved away from its folder, still shows every figure
    alone = tmp_path / "alone"
    alone.mkdir()
    os.replace(single / "index.html", alone / "index.html")
    images, errors, foreign, _, _, _ = open_in_chromium(alone / "index.html")
    assert foreign == [] and len(images) == 3 and all(c and w > 0 for _, c, w in images)
