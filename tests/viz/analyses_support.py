"""Shared helpers for the analyses tests (occlusion, invariance, correspondence, evolution)."""
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def squeezenet():
    """The real SqueezeNet v1.0 (from $ZFNET_WEIGHTS, set by tests/conftest.py), loaded once per session."""
    from zfnet.weights import load_model
    return load_model("squeezenet1_0")


@lru_cache(maxsize=8)
def photo(images_dir, name):
    """A shared photograph as (H, W, 3) uint8 RGB."""
    from zfnet.image import load_image
    return load_image(images_dir / name)


def preprocessed(images_dir, name):
    """A shared photograph as the network's (3, H, W) float32 input (centre crop)."""
    from zfnet.image import preprocess
    return preprocess(photo(images_dir, name), squeezenet().meta)


def run_cli(argv, capsys):
    """Run ``zfnet ARGV`` in-process -> (exit code, stdout, stderr)."""
    from zfnet.cli import main
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def features(net, x, layers, with_output=False):
    """One image x (3, H, W) through the net -> {layer: its activations flattened, float64}
    (and the output vector when with_output)."""
    from zfnet.net import forward
    r = forward(net, np.ascontiguousarray(x[None]), keep=list(layers))
    f = {l: r[l][0].ravel().astype(np.float64) for l in layers}
    return (f, r.output[0]) if with_output else f


CHROMIUM = "/usr/bin/chromium"


def open_in_chromium(page_path):
    """Load a page in headless Chromium -> (images [(src, complete, naturalWidth)], console errors,
    requests that were not file: or data:, link hrefs, page text)."""
    from pathlib import Path

    from playwright.sync_api import sync_playwright   # a dev requirement: missing must fail, not skip
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    errors, foreign = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
            page.wait_for_load_state("networkidle")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
            links = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
            text = page.inner_text("body")
        finally:
            browser.close()
    return images, errors, foreign, links, text
