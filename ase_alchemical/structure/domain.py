"""Where a structure kernel's prediction is outside its domain although its uncertainty
does not say so: structures with atoms that have no neighbour within the cutoff.

The structure features are normalised, so a lone atom's own density term looks like the
self terms that dominate the features of the sparsest crystals (an isolated Na atom's
features have a cosine of 0.99 with those of a Na-rich training crystal): its predicted
sigma stays small. The check compares the share of lone atoms with the largest share
among the model's support structures.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from ..core.hypers import hypers_list

__all__ = ["lone_atom_warnings", "lone_atoms"]


def lone_atoms(atoms: Atoms, cutoff: float) -> int:
    """Number of atoms without a neighbour within ``cutoff``."""
    return len(atoms) - len(np.unique(neighbor_list("i", atoms, cutoff)))


def lone_atom_warnings(model, atoms: Atoms) -> list[str]:
    """A message when ``atoms`` has a larger share of lone atoms than any support
    structure of the fitted ``model`` had, else none. The first structure with a lone
    atom costs one scan of the support structures (kept on the model until its state
    changes)."""
    cutoff = max(h["cutoff"]["radius"] for h in hypers_list(model.hypers_))
    lone = lone_atoms(atoms, cutoff)
    if not lone:
        return []
    most = model.__dict__.get("_support_lone_fraction")
    if most is None:
        most = max(lone_atoms(s, cutoff) / len(s) for s in model.state_.support)
        model.__dict__["_support_lone_fraction"] = most
    if lone / len(atoms) <= most:
        return []
    return [
        f"{lone} of {len(atoms)} atom(s) without a neighbour within the {cutoff:g} Å "
        f"cutoff, more than in any of the model's support structures (at most "
        f"{most:.0%}): this prediction is outside the model's domain, and its "
        "uncertainty does not show it (normalised structure features)"
    ]
