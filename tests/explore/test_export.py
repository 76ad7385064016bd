"""The static export opens from file:// in Chromium with every image loading, in every exported
mode, with no server: the model, the maps of the scanned layer and each map's top-k."""
import json

import pytest

from test_page import Watched, browser  # noqa: F401  (the module's Chromium fixture)

FILE_ONLY = ("file:", "data:")


@pytest.fixture(scope="module")
def site(explorer, tmp_path_factory):
    from zfnet.explore import export_site
    out = tmp_path_factory.mktemp("site")
    calls = []
    index = export_site(explorer, out, modes=["deconvnet", "guided"], progress=calls.append)
    assert index == out / "index.html" and len(calls) == 6
    return out


def test_export_writes_the_api_answers_as_files(site):
    text = (site / "data.js").read_text()
    data = json.loads(text[text.index("=") + 1:].rstrip().rstrip(";"))
    assert data["model"]["static"] is True and (site / data["model"]["filters"]).is_file()
    maps = data["maps"]["fire9/concat"]["maps"]
    assert len(maps) == 6 and all((site / m["thumb"]).is_file() for m in maps)
    for per_map in data["topk"]["fire9/concat"].values():
        assert sorted(per_map) == ["deconvnet", "guided"]
        for t in per_map.values():
            assert len(t["cells"]) == 3
            assert all((site / c["projection"]).is_file() and (site / c["patch"]).is_file() for c in t["cells"])
    assert not any(p.is_symlink() for p in site.rglob("*"))


def test_export_opens_from_file_with_every_image(browser, site):  # noqa: F811
    w = Watched(browser)
    page = w.page
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(FILE_ONLY)
               else (w.foreign.append(route.request.url), route.abort()))
    page.goto((site / "index.html").as_uri(), wait_until="load")
    page.wait_for_selector("#layers tr >> nth=5")
    w.images_loaded("img.filters")
    assert page.locator("nav >> text=Your image").count() == 0
    page.click("nav >> text=Maps of fire9/concat")
    assert len(w.images_loaded("#maps img")) == 6
    for m in range(6):
        page.goto((site / "index.html").as_uri() + f"#/layer/fire9%2Fconcat/map/{m}")
        page.wait_for_selector("#cells .cell >> nth=2")
        assert len(w.images_loaded("#cells img")) == 6
    page.select_option("#mode", "guided")
    page.wait_for_url("**?mode=guided")
    page.wait_for_function("() => [...document.querySelectorAll('#cells img.proj')].every(e => e.src.includes('_guided'))")
    assert len(w.images_loaded("#cells img")) == 6
    assert [o for o in page.eval_on_selector_all("#mode option", "os => os.map(o => o.value)")] == ["deconvnet", "guided"]
    w.clean()
    page.close()
