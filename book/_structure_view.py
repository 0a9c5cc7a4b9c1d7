"""A structure view for the book's pages that draws in the built, offline HTML.

The view is nglview's viewer (NGL), served from the book itself by the ``structure_view``
extension (``book/_ext``). In a live notebook, ``nglview.show_ase(atoms)`` gives the same
view as an interactive widget; a widget, though, needs a kernel or a widget manager from a
CDN, and draws nothing in an offline page.
"""

from __future__ import annotations

import html
import io
import json

import ase.io
from ase import Atoms
from IPython.display import HTML


def structure_view(atoms: Atoms, colours: dict[str, str], *, height: int = 420) -> HTML:
    """An NGL view of ``atoms`` (ball and stick, the unit cell), one colour per element
    (CSS colour names or hex codes), with a legend."""
    atoms = atoms.copy()
    atoms.wrap()  # every atom inside the drawn cell
    pdb = io.StringIO()
    ase.io.write(pdb, atoms, format="proteindatabank")  # with CRYST1: NGL draws the cell
    legend = " ".join(
        f'<span style="color: {c}; font-size: 1.4em;">&#9679;</span> {html.escape(e)}'
        for e, c in colours.items()
    )
    return HTML(
        f'<div class="structure-view" style="width: 100%; height: {height}px;" '
        f'data-pdb="{html.escape(pdb.getvalue())}" '
        f'data-colours="{html.escape(json.dumps(colours))}"></div>\n'
        f'<p class="structure-legend">{legend}</p>\n'
        '<script src="_static/nglview/ngl.js"></script>\n'
        "<script>renderStructureViews();</script>"
    )
