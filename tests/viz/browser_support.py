"""Open a written page in headless Chromium and report what a reader would see (the page tests)."""
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def open_in_chromium(page_path):
    """Load a page in headless Chromium -> (images [(src, complete, naturalWidth)], console errors
    and warnings, requests that were not file: or data:, link hrefs, sizes [(w, h)] of the
    clickable figure cells (".fig a"), page text)."""
    from playwright.sync_api import sync_playwright   # a dev requirement: missing must fail, not skip
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    errors, foreign = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            response = page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
            assert response is None or response.ok
            page.wait_for_load_state("networkidle")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])")
            links = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
            boxes = page.eval_on_selector_all(
                ".fig a", "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")
            text = page.inner_text("body")
        finally:
            browser.close()
    return images, errors, foreign, links, boxes, text
