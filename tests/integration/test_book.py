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

BOOK = Path(__file__).resolve().parents[2] / "book"
HTML = Path(os.environ.get("ASE_ALCHEMICAL_BOOK_HTML", BOOK / "_build" / "html"))
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # WebGL (the structure view) in software, with no GPU
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
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


#: pages with neither equations nor figures by design (front page, quick start, API)
PLAIN_PAGES = {"intro", "00_quick_start", "api"}


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
    # code and its output wrap at the page edge instead of being cut off
    overflowing = page.evaluate(
        "() => [...document.querySelectorAll('div.cell pre')]"
        ".filter(p => p.scrollWidth > p.clientWidth + 1).length"
    )
    assert overflowing == 0, f"{overflowing} code blocks overflow in {name}"
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


def _chapters() -> list[str]:
    """The numbered chapters: the files named NN_topic, NN >= 1."""
    return [name for name in _pages() if re.match(r"(0[1-9]|[1-9]\d)_", name)]


@pytest.mark.parametrize("name", _chapters())
def test_chapter_is_numbered_and_downloadable(browser_page, name):
    page, base = browser_page
    page.goto(f"{base}/{name}.html", wait_until="load")
    number = int(name.split("_")[0])
    # the navigation and the page title carry the chapter's number
    assert page.locator("h1 .section-number").first.inner_text().strip() == f"{number}."
    # the executed notebook is offered for download, and it is a notebook
    link = page.locator(f'a[href$="_sources/{name}.ipynb"]')
    assert link.count() == 1, f"no .ipynb download on {name}"
    response = page.request.get(f"{base}/_sources/{name}.ipynb")
    assert response.ok and "cells" in response.json()


def test_chapter_references_are_links():
    """Every "chapter N" in the prose of the book is a link to that chapter."""
    pattern = re.compile(r"(?<!\[)\b[Cc]hapters? \d+\b(?!\]\()")
    for source in BOOK.glob("*.md"):
        prose = re.sub(r"^```.*?^```", "", source.read_text(), flags=re.S | re.M)
        prose = "\n".join(line for line in prose.splitlines() if not line.startswith("#"))
        assert not pattern.findall(prose), f"unlinked chapter reference in {source.name}"


def test_api_reference_documents_the_public_api(browser_page):
    page, base = browser_page
    response = page.goto(f"{base}/api.html", wait_until="load")
    assert response is not None and response.ok
    documented = set(page.locator("dt.sig[id]").evaluate_all("els => els.map(e => e.id)"))
    import ase_alchemical

    for name in ase_alchemical.__all__:
        if name.startswith("_"):
            continue
        home = getattr(ase_alchemical, name).__module__
        assert f"{home}.{name}" in documented, f"{home}.{name} missing from the API reference"
    # the methods users call, with their parameters rendered from the numpy docstrings
    for method in (
        "calculator.AlchemicalCalculator.get_energies",
        "structure.model.AlchemicalKRR.fit",
        "local.model.AlchemicalPotential.fit",
        "core.estimator.AlchemicalModel.score",
        "export.export_metatomic",
        "structure.screening.screen_elpasolites",
    ):
        assert f"ase_alchemical.{method}" in documented
    assert page.locator("dl.field-list dt", has_text="Parameters").count() > 20


def test_structure_view_draws(browser_page):
    """The nglview (NGL) view of the data chapter draws the crystal in the offline page."""
    import io

    import matplotlib.image

    page, base = browser_page
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(f"{base}/02_data.html", wait_until="load")
    view = page.locator("div.structure-view")
    assert view.count() == 1
    view.scroll_into_view_if_needed()
    page.wait_for_selector('div.structure-view[data-rendered="done"]', timeout=60_000)
    page.wait_for_timeout(1000)  # the first frames after autoView
    canvas = view.locator("canvas")
    assert canvas.count() == 1 and canvas.bounding_box()["height"] > 200
    pixels = matplotlib.image.imread(io.BytesIO(canvas.screenshot()), format="png")[..., :3]
    drawn = (pixels.max(axis=-1) - pixels.min(axis=-1) > 0.1).mean()  # coloured pixels
    assert drawn > 0.01, f"the structure view is blank ({drawn:.2%} coloured pixels)"
    assert not [url for url in failed if "127.0.0.1" not in url], failed
