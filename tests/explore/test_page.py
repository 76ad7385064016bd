"""The page in headless Chromium (Debian's, driven by Playwright), on the live server: browse to a
layer, a map and its top-k; switch the mode; upload an image; click a unit and see its projection;
switch the mode there; follow a copied URL. No console errors, no request leaving 127.0.0.1.

With ZFNET_EXPLORE_SCREENSHOT=PATH the image view is also saved there (the README's figure).
"""
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
UNIT_SHOWN = "() => { const p = document.querySelector('#projection'); return p && p.dataset.unit; }"
LOCAL = ("http://127.0.0.1:", "blob:http://127.0.0.1:", "data:", "file:")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright   # a dev requirement: missing must fail, not skip
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watched:
    """A page whose console errors and non-local requests are recorded (the latter also aborted)."""

    def __init__(self, browser):
        self.errors, self.foreign = [], []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.route("**/*", self._route)

    def _route(self, route):
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def images_loaded(self, selector):
        """Wait until every image under `selector` has loaded; return their [src]."""
        self.page.wait_for_function(
            f"() => {{ const im = [...document.querySelectorAll({selector!r})];"
            f" return im.length > 0 && im.every(e => e.complete && e.naturalWidth > 0); }}", timeout=120_000)
        return self.page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('src'))")

    def clean(self):
        assert self.errors == [] and self.foreign == []
        assert self.page.inner_text("#error") == ""


def test_browse_model_maps_and_topk(browser, server):
    w = Watched(browser)
    page = w.page
    page.goto(server + "/", wait_until="load")
    page.wait_for_selector("#layers tr >> nth=5")
    assert "fire9/concat" in page.inner_text("#layers") and "155 px, stride 16" in page.inner_text("#layers")
    w.images_loaded("img.filters")
    page.click("nav >> text=Maps of fire9/concat")
    assert len(w.images_loaded("#maps img")) == 6
    assert page.url.endswith("#/layer/fire9%2Fconcat")
    page.click("#maps a >> nth=2")
    page.wait_for_selector("#cells .cell >> nth=2")
    srcs = w.images_loaded("#cells img")
    assert len(srcs) == 6 and all("mode=deconvnet" in s for s in srcs)
    assert page.url.endswith("#/layer/fire9%2Fconcat/map/2")
    page.select_option("#mode", "guided")
    page.wait_for_url("**/map/2?mode=guided")
    page.wait_for_function("() => [...document.querySelectorAll('#cells img.proj')].every(e => e.src.includes('mode=guided'))")
    assert len(w.images_loaded("#cells img.proj")) == 3
    page.click("text=map 3 >")
    page.wait_for_url("**/map/3?mode=guided")
    w.images_loaded("#cells img")
    w.clean()
    page.close()


def test_upload_click_a_unit_switch_mode_and_follow_the_url(browser, server, photos, tmp_path):
    w = Watched(browser)
    page = w.page
    page.goto(server + "/#/image", wait_until="load")
    page.set_input_files("#file", str(photos / "skimage_chelsea.png"))
    page.wait_for_url("**/#/image/*")
    page.wait_for_selector("#top5 li >> nth=4")
    assert "Egyptian cat" in page.inner_text("#top5 li >> nth=0")
    w.images_loaded("#strongest img")
    w.images_loaded("#input")
    page.click("#stage", position={"x": 100, "y": 150})    # 454 px shows 13 positions: y 4, x 2
    page.wait_for_function(UNIT_SHOWN)
    unit = page.get_attribute("#projection", "data-unit")
    assert unit.startswith("fire9/concat/") and unit.endswith("/4/2/deconvnet")
    assert page.is_visible("#rf") and "receptive field" in page.inner_text("#unit-info")
    page.select_option("#image-mode", "guided")
    page.wait_for_function("() => { const p = document.querySelector('#projection'); return p && (p.dataset.unit || '').endsWith('/guided'); }")
    w.images_loaded("#projection")
    url = page.url
    assert "mode=guided" in url and "y=4" in url and "x=2" in url
    shot = os.environ.get("ZFNET_EXPLORE_SCREENSHOT")
    page.screenshot(path=str(tmp_path / "explore.png"))
    if shot:
        shutil.copy(tmp_path / "explore.png", shot)
    w.clean()
    page.close()

    again = Watched(browser)                    # the copied URL, in a fresh tab
    again.page.goto(url, wait_until="load")
    again.page.wait_for_function(UNIT_SHOWN)
    assert again.page.get_attribute("#projection", "data-unit") == unit.replace("deconvnet", "guided")
    again.images_loaded("#projection")
    again.clean()
    again.page.close()


def test_pick_a_library_image_and_a_strongest_map(browser, server):
    w = Watched(browser)
    page = w.page
    page.goto(server + "/#/image", wait_until="load")
    page.click(".library button >> text=darknet_dog.jpg")
    page.wait_for_selector("#strongest a >> nth=3")
    page.click("#strongest a >> nth=3")
    page.wait_for_url("**map=*")
    w.images_loaded("#heat")
    assert page.inner_text("h2") == "darknet_dog.jpg"
    w.clean()
    page.close()


def test_occlusion_map_with_progress(browser, server, explorer, chelsea_id):
    saved = explorer.occlusion
    explorer.occlusion = (113, 57)              # 3 x 3 squares: the page's job, kept short
    try:
        w = Watched(browser)
        page = w.page
        page.goto(server + f"/#/image/{chelsea_id}?layer=fire9%2Fconcat", wait_until="load")
        page.click("#occlusion")
        page.wait_for_function("() => { const s = document.querySelector('#occlusion-status');"
                               " return s && s.textContent.startsWith('occlusion of'); }", timeout=300_000)
        w.images_loaded("#occlusion-map")
        assert page.is_visible("#occlusion-map") and page.get_attribute("#occlusion-progress", "value") == "9"
        assert 'occlusion of "Egyptian cat"' in page.inner_text("#occlusion-status")
        w.clean()
        page.close()
    finally:
        explorer.occlusion = saved
