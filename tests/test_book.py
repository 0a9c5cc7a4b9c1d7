"""The built Jupyter Book, opened in a real headless browser (Debian chromium + Playwright).

``.ci/run`` builds the book (``jupyter-book build book -W``) before the tests; there the
built pages must exist. Elsewhere the test is skipped unless ``book/_build/html`` exists.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
HTML = Path(os.environ.get("ASE_ALCHEMICAL_BOOK_HTML", BOOK / "_build" / "html"))
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _pages() -> list[str]:
    """HTML pages of the book's table of contents, root first (a flat ``_toc.yml``)."""
    toc = (BOOK / "_toc.yml").read_text()
    root = re.search(r"^root:\s*(\S+)", toc, re.M).group(1)
    return [root] + re.findall(r"^\s*-\s*file:\s*(\S+)", toc, re.M)


def _need(condition: bool, why: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output readable
        pass


@pytest.fixture(scope="module")
def browser_page():
    _need((HTML / "index.html").is_file(), f"built book not found in {HTML}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    _need(chromium is not None, "Debian chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        yield page, f"http://127.0.0.1:{server.server_address[1]}"
        browser.close()
    server.shutdown()


#: pages with neither equations nor figures by design (the front page, the quick start)
PLAIN_PAGES = {"intro", "00_quick_start"}


@pytest.mark.parametrize("name", _pages())
def test_book_page_renders(browser_page, name):
    page, base = browser_page
    response = page.goto(f"{base}/{name}.html", wait_until="load")
    assert response is not None and response.ok, f"{name}.html did not load"
    assert page.locator("h1").count() >= 1
    # no executed cell may show an error
    outputs = page.locator("div.cell_output").all_inner_texts()
    assert not any("Traceback" in text or "Error" in text.split("\n")[0] for text in outputs)
    assert page.locator("div.cell_output .traceback, div.output.error").count() == 0
    # all math is rendered by MathJax (served from the book itself: no network)
    n_math = page.locator("span.math, div.math").count()
    if name not in PLAIN_PAGES:
        assert n_math > 0, f"no equations in {name}"
    if n_math:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.evaluate("() => MathJax.startup.promise")
        assert page.locator("mjx-container").count() >= n_math, f"unrendered math in {name}"
        assert page.locator("mjx-merror").count() == 0, f"MathJax error in {name}"
    if name in PLAIN_PAGES:
        return
    # every chapter has at least one figure, and every image has a real size
    images = page.locator("div.cell_output img")
    assert images.count() >= 1, f"no figure in {name}"
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        box = image.bounding_box()
        assert min(natural) > 0 and box is not None and box["width"] > 50 and box["height"] > 50
