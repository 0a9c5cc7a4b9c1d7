"""Offer every executed page as a notebook download (the ".ipynb" entry of the download menu).

MyST-NB writes each executed page to ``_build/jupyter_execute/<page>.ipynb``. The book
theme lists an ``.ipynb`` download only when launch buttons (Binder and the like) are
configured, which an offline book has none of; this copies the executed notebook beside
the page's source in ``_sources`` and names it in the page context, before the theme
builds its download menu.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def _add_notebook(app, pagename, templatename, context, doctree) -> None:
    notebook = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if doctree is None or not notebook.is_file():
        return  # a page without code cells, or not a page from a source file
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # before the theme's header buttons (priority 500), which read ``ipynb_source``
    app.connect("html-page-context", _add_notebook, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
