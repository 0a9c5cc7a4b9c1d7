"""Pure metals of the HEA elements: equation of state, lattice constant and bulk modulus
of a model against published all-electron DFT values.

The references are the all-electron averages (WIEN2k, FLEUR and SIRIUS/CP2K) of the
ACWF verification study, non-spin-polarised like the HEA labels:

* lattice constants, **PBEsol** (the HEA labels' functional):
  ``0-preliminary-do-not-run/unaries/lattice_parameters_unaries-verification-PBEsol-v1.json``
  of https://github.com/aiidateam/acwf-verification-scripts (the central volumes of the
  PBEsol extension of E. Bosoni et al., Nat. Rev. Phys. 6, 45 (2024));
* bulk moduli, **PBE** (no PBEsol bulk moduli are published with that set):
  ``acwf_paper_plots/code-data/results-unaries-verification-PBE-v1-AE-average.json`` of
  the same repository (Bosoni et al. 2024). The difference between the two
  functionals is left in this comparison.

The metals are the elements of the alloy data whose ground state is bcc or fcc. Each
model's E(V) is evaluated on the conventional cubic cell at 11 volumes, 0.90 to 1.10
times the PBEsol volume, and fitted with a Birch-Murnaghan equation of state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms

#: element -> (structure, PBEsol lattice constant (Å), PBE bulk modulus (GPa)), the
#: all-electron averages of the ACWF verification set (see the module docstring)
REFERENCES = {
    "V": ("bcc", 2.9588, 182.0),
    "Cr": ("bcc", 2.8143, 258.4),
    "Fe": ("bcc", 2.7231, 268.1),
    "Nb": ("bcc", 3.2720, 169.6),
    "Mo": ("bcc", 3.1299, 259.2),
    "Ta": ("bcc", 3.2812, 193.0),
    "W": ("bcc", 3.1546, 301.5),
    "Ni": ("fcc", 3.4577, 202.1),
    "Cu": ("fcc", 3.5635, 141.0),
    "Rh": ("fcc", 3.7806, 256.8),
    "Pd": ("fcc", 3.8759, 168.0),
    "Ag": ("fcc", 4.0538, 91.0),
    "Ir": ("fcc", 3.8310, 347.2),
    "Pt": ("fcc", 3.9191, 247.4),
    "Au": ("fcc", 4.0835, 139.6),
}
VOLUME_FACTORS = np.linspace(0.90, 1.10, 11)
GPA = 160.21766208  # eV/Å^3 in GPa


def metals(elements: Sequence[str]) -> list[str]:
    """The elements of ``elements`` that have a reference (bcc/fcc ground state)."""
    return [e for e in REFERENCES if e in set(elements)]


def eos_frames(element: str) -> list[Atoms]:
    """The element's conventional cubic cell at :data:`VOLUME_FACTORS` times the PBEsol
    volume."""
    from ase.build import bulk

    crystal, a, _ = REFERENCES[element]
    frames = []
    for f in VOLUME_FACTORS:
        atoms = bulk(element, crystal, a=a * f ** (1 / 3), cubic=True)
        frames.append(atoms)
    return frames


def metal_properties(
    energies_of: Callable[[list[Atoms]], np.ndarray], elements: Sequence[str]
) -> dict:
    """Lattice constant and bulk modulus of each metal from ``energies_of`` (total
    energies, eV, of a list of structures), with their relative errors.

    Returns ``{element: {"a": Å, "a_err": fraction, "B": GPa, "B_err": fraction,
    "inside": whether the minimum lies inside the volume window}}`` and, under
    ``"summary"``, over the metals with a minimum inside the window, the mean and max
    absolute lattice-constant errors, the mean absolute bulk-modulus error and the counts
    within 2 % and 30 %, and the number of metals without a minimum there.
    """
    from ase.eos import EquationOfState

    out = {}
    for element in metals(elements):
        frames = eos_frames(element)
        crystal, a_ref, b_ref = REFERENCES[element]
        energy = np.asarray(energies_of(frames), dtype=float)
        volume = np.array([a.get_volume() for a in frames])
        try:
            v0, _, b0 = EquationOfState(volume, energy, eos="birchmurnaghan").fit()
        except (RuntimeError, ValueError):  # no minimum the fit can find
            out[element] = {"a": float("nan"), "a_err": float("nan"), "B": float("nan"),
                            "B_err": float("nan"), "inside": False}  # fmt: skip
            continue
        a0 = float(v0 ** (1 / 3))  # the conventional cubic cell
        b = float(b0 * GPA)
        out[element] = {
            "a": a0, "a_err": a0 / a_ref - 1, "B": b, "B_err": b / b_ref - 1,
            "inside": bool(volume.min() <= v0 <= volume.max()),
        }  # fmt: skip
    # a metal whose E(V) has no minimum in the window counts as outside every tolerance
    # and is left out of the means (its fitted numbers are an extrapolation)
    found = [r for r in out.values() if r["inside"]]
    a_err = np.abs([r["a_err"] for r in found])
    b_err = np.abs([r["B_err"] for r in found])
    out["summary"] = {
        "a_mae": float(np.mean(a_err)) if found else float("nan"),
        "a_max": float(np.max(a_err)) if found else float("nan"),
        "B_mae": float(np.mean(b_err)) if found else float("nan"),
        "n": len(out), "n_no_minimum": len(out) - len(found),
        "a_within_2pct": int(np.sum(a_err <= 0.02)), "B_within_30pct": int(np.sum(b_err <= 0.30)),
    }  # fmt: skip
    return out
