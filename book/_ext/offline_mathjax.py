"""Serve MathJax from the built book instead of a CDN.

The book must render its equations with no network (CI builds and tests it offline), so
MathJax 3 comes from the ``django-static-mathjax`` wheel (plain MathJax files, in the
``book`` extra) and is copied into ``_static/mathjax`` of the HTML output.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path


def _mathjax_es5() -> Path:
    try:
        path = Path(str(files("mathjax"))) / "static" / "mathjax" / "es5"
    except ModuleNotFoundError:
        path = None
    if path is None or not (path / "tex-mml-chtml.js").is_file():
        raise RuntimeError(
            "MathJax files not found: install the book extra, pip install -e '.[book]' "
            "(it brings django-static-mathjax, a plain copy of MathJax 3)"
        )
    return path


def _copy(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(
            _mathjax_es5(), Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True
        )


def setup(app):
    _mathjax_es5()  # fail early, before executing every chapter
    app.config.mathjax_path = "mathjax/tex-mml-chtml.js"
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
