"""A structure view for the book's pages that draws in the built, offline HTML.

The view is nglview's viewer (NGL), served from the book itself by the ``structure_view``
extension (``book/_ext``). In a live notebook, ``nglview.show_ase(atoms)`` shows the same
structure as an interactive widget (with NGL's default bonds, guessed from distances); a
widget, though, needs a kernel or a widget manager from a CDN, and draws nothing in an
offline page.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterable
from itertools import product

import ase.io
import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.geometry import get_distances
from IPython.display import HTML

EDGE = 1e-3  # fractional coordinates this close to 0 or 1 lie on a face of the cell


def _whole_cell(atoms: Atoms) -> Atoms:
    """The atoms of the cell, wrapped into it, with every atom on a face, an edge or a corner
    repeated on the opposite ones: the picture a crystallographer draws of a unit cell."""
    frac = atoms.get_scaled_positions(wrap=True)
    frac[(frac > 1 - EDGE) & atoms.pbc] -= 1  # 0.9999... is the face at 0
    pieces, cells = [], []
    for shift in product((0, 1), repeat=3):
        shift = np.array(shift)
        keep = np.all((shift == 0) | (atoms.pbc & (np.abs(frac) < EDGE)), axis=1)
        pieces.append(np.flatnonzero(keep))
        cells.append(np.broadcast_to(shift, (keep.sum(), 3)))
    index = np.concatenate(pieces)
    whole = atoms[index]
    whole.set_scaled_positions(frac[index] + np.concatenate(cells))
    return whole


def _bond_pairs(atoms: Atoms, bonds: Iterable[tuple[str, str]]) -> list[tuple[int, int]]:
    """The pairs of ``atoms`` to join: for each pair of elements named in ``bonds``, the
    atoms of the two elements no farther apart than 1.1 times their shortest distance in the
    periodic crystal."""
    symbols = np.array(atoms.get_chemical_symbols())
    pairs = []
    for first, second in bonds:
        i, j = np.flatnonzero(symbols == first), np.flatnonzero(symbols == second)
        if len(i) == 0 or len(j) == 0:
            raise ValueError(f"no {first}-{second} pair in {atoms.get_chemical_formula()}")
        _, periodic = get_distances(atoms.positions[i], atoms.positions[j], atoms.cell, atoms.pbc)
        _, drawn = get_distances(atoms.positions[i], atoms.positions[j])
        near = (drawn <= 1.1 * periodic[periodic > 1e-6].min()) & (drawn > 1e-6)
        pairs += [(int(i[a]), int(j[b])) for a, b in zip(*np.nonzero(near))]
    return pairs


def structure_view(
    atoms: Atoms,
    colours: dict[str, str],
    *,
    bonds: Iterable[tuple[str, str]] = (),
    height: int = 420,
) -> HTML:
    """An NGL view of the unit cell of ``atoms``, one colour per element (CSS colour names or
    hex codes), with a legend.

    Each atom is a ball of half its covalent radius (as ``ase.visualize.plot.plot_atoms``
    with ``radii=0.5``); the atoms on the cell's faces, edges and corners are repeated on the
    opposite ones, so the drawn cell holds a whole, centred picture. ``bonds`` names the pairs
    of elements to join with sticks, e.g. ``[("Al", "F")]``: each atom to its nearest atoms of
    the other element. No other sticks are drawn: the bonds NGL guesses from distances would
    join atoms that share no chemical bond.
    """
    bonds = [tuple(pair) for pair in bonds]
    whole = _whole_cell(atoms)
    whole.set_array("bfactor", 0.5 * covalent_radii[whole.numbers])  # NGL's ball radii
    pdb = io.StringIO()
    ase.io.write(pdb, whole, format="proteindatabank")  # with CRYST1: NGL draws the cell
    for i, j in _bond_pairs(whole, bonds):  # PDB serials count from 1
        pdb.write(f"CONECT{i + 1:5d}{j + 1:5d}\n")
    pdb.write("END\n")
    legend = " ".join(
        f'<span style="color: {c}; font-size: 1.4em;">&#9679;</span> {html.escape(e)}'
        for e, c in colours.items()
    )
    if bonds:
        names = [html.escape(f"{a}-{b}") for a, b in bonds]
        names = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        legend += f"; sticks: the {names} bonds"
    return HTML(
        f'<div class="structure-view" style="width: 100%; height: {height}px;" '
        f'data-pdb="{html.escape(pdb.getvalue())}" '
        f'data-colours="{html.escape(json.dumps(colours))}"></div>\n'
        f'<p class="structure-legend">{legend}</p>\n'
        '<script src="_static/nglview/ngl.js"></script>\n'
        "<script>renderStructureViews();</script>"
    )
