"""Targets: the labels a model learns, read from structures, and their standardisation.

A structure's energy label is its total energy in eV, ``atoms.info["energy"]``; the
structure model learns the energy per atom, standardised to zero mean and unit variance
over the training set. Force labels (eV/Å) are ``atoms.arrays["forces"]`` and stress
labels (eV/Å^3, ASE's Voigt order and sign) ``atoms.info["stress"]``
(:func:`ase_alchemical.data.files.read_structures` puts them there), or the results of a
single-point calculator attached to the structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..errors import LabelError

__all__ = [
    "LabelError",
    "TargetScaler",
    "energy_label",
    "force_label",
    "forces_of",
    "has_label",
    "optional_labels",
    "per_atom_energies",
    "stress_label",
    "stresses_of",
    "total_energies",
]


def total_energies(frames: Sequence[Atoms], key: str = "energy") -> np.ndarray:
    """Total energies (eV), checked present and finite.

    Read from ``atoms.info[key]``, else from the structure's single-point calculator
    (what ``ase.io.read`` attaches to a labelled frame), as forces and stress are.

    Raises
    ------
    LabelError
        A structure has no energy, or an energy is NaN or infinite.
    """
    energies = np.array([energy_label(a, i, key) for i, a in enumerate(frames)], dtype=float)
    bad = np.flatnonzero(~np.isfinite(energies))
    if len(bad):
        raise LabelError(f"energies of structures {bad[:5].tolist()} are NaN or inf")
    return energies


def per_atom_energies(frames: Sequence[Atoms], key: str = "energy") -> np.ndarray:
    """Energies per atom (eV/atom): :func:`total_energies` over the number of atoms."""
    frames = list(frames)
    return total_energies(frames, key) / np.array([len(a) for a in frames], dtype=float)


@dataclass(frozen=True)
class TargetScaler:
    """Per-atom energies standardised as ``(y - mean) / std``.

    Attributes
    ----------
    mean, std
        Mean and standard deviation (eV/atom) of the training targets.
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, y: torch.Tensor | np.ndarray) -> TargetScaler:
        """Mean and (sample) standard deviation of ``y``; std 1 for a single target."""
        y = torch.as_tensor(y, dtype=torch.float64)
        return cls(float(y.mean()), float(y.std()) if len(y) > 1 else 1.0)

    def transform(self, y: torch.Tensor) -> torch.Tensor:
        """Standardise per-atom energies."""
        return (y - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Per-atom energies (eV/atom) from standardised predictions."""
        return z * self.std + self.mean

    def standardised(self, frames: Sequence[Atoms], device=None) -> torch.Tensor:
        """Standardised per-atom energies of ``frames`` as a float64 tensor."""
        y = torch.as_tensor(per_atom_energies(frames), dtype=torch.float64, device=device)
        return self.transform(y)


#: Where each label is read first (``atoms.info`` or ``atoms.arrays``); a calculator's
#: results next, as ``ase.io.read`` attaches them to a labelled frame.
_PLACES = {"energy": "info", "forces": "arrays", "stress": "info"}


def _raw_label(atoms: Atoms, name: str, key: str):
    value = getattr(atoms, _PLACES[name]).get(key)
    if value is None:
        value = (getattr(atoms.calc, "results", None) or {}).get(name)
    return value


def _label(atoms: Atoms, i: int, name: str, key: str, hint: str):
    """Structure ``i``'s label ``name`` (read by :func:`_raw_label`), or a
    :class:`~ase_alchemical.errors.LabelError` that says where it was looked for."""
    value = _raw_label(atoms, name, key)
    if value is None:
        raise LabelError(
            f"structure {i} ({atoms.get_chemical_formula()}) has no {name} "
            f"({_PLACES[name]}[{key!r}] or a calculator result){hint}"
        )
    return value


def energy_label(atoms: Atoms, i: int = 0, key: str = "energy") -> float:
    """Structure ``i``'s total energy (eV), from ``info[key]`` or its calculator."""
    energy = _label(atoms, i, "energy", key, " (total energy in eV)")
    try:
        return float(energy)
    except (TypeError, ValueError):
        raise LabelError(f"structure {i} has a non-numeric energy {energy!r}") from None


def force_label(atoms: Atoms, i: int = 0, key: str = "forces") -> np.ndarray:
    """Structure ``i``'s forces (eV/Å), (n_atoms, 3), from ``arrays[key]`` or its
    calculator, checked for shape and finite values."""
    hint = ": fit with forces=False or add them"
    forces = np.asarray(_label(atoms, i, "forces", key, hint), dtype=float)
    if forces.shape != (len(atoms), 3):
        raise LabelError(f"structure {i} has forces of shape {forces.shape} for {len(atoms)} atoms")
    if not np.all(np.isfinite(forces)):
        raise LabelError(f"structure {i} has NaN or inf forces")
    return forces


def stress_label(atoms: Atoms, i: int = 0, key: str = "stress") -> np.ndarray:
    """Structure ``i``'s stress (eV/Å^3, Voigt xx yy zz yz xz xy, ASE's sign), from
    ``info[key]`` (6 Voigt or 3 x 3 values) or its calculator, checked."""
    from ase.stress import full_3x3_to_voigt_6_stress

    if not atoms.pbc.all():
        raise LabelError(f"structure {i} is not 3D-periodic: it has no stress")
    hint = ": fit with stress=False or add it"
    stress = np.asarray(_label(atoms, i, "stress", key, hint), dtype=float)
    if stress.shape == (3, 3):
        stress = full_3x3_to_voigt_6_stress(stress)
    if stress.shape != (6,):
        raise LabelError(f"structure {i} has a stress of shape {stress.shape}: give 6 or 3x3")
    if not np.all(np.isfinite(stress)):
        raise LabelError(f"structure {i} has a NaN or inf stress")
    return stress


def has_label(atoms: Atoms, name: str, key: str | None = None) -> bool:
    """Whether the structure carries the label ``name`` (``"energy"``, ``"forces"`` or
    ``"stress"``; a stress only on a 3D-periodic cell) under ``key`` or on its
    calculator, whether or not it is well-formed."""
    if name == "stress" and not atoms.pbc.all():
        return False
    return _raw_label(atoms, name, key or name) is not None


def forces_of(frames: Sequence[Atoms], key: str = "forces") -> list[np.ndarray]:
    """Force labels (eV/Å), one (n_atoms, 3) array per structure (:func:`force_label`).

    Raises
    ------
    LabelError
        A structure has no forces, forces of the wrong shape, or NaN/inf values.
    """
    return [force_label(atoms, i, key) for i, atoms in enumerate(frames)]


def stresses_of(frames: Sequence[Atoms], key: str = "stress") -> np.ndarray:
    """Stress labels (eV/Å^3, Voigt, ASE's sign), (S, 6) (:func:`stress_label`).

    Raises
    ------
    LabelError
        A structure is not 3D-periodic, has no stress, or a malformed one.
    """
    return np.asarray([stress_label(atoms, i, key) for i, atoms in enumerate(frames)])


def optional_labels(frames: Sequence[Atoms]) -> tuple[list[np.ndarray] | None, np.ndarray | None]:
    """Force and stress labels where every structure has them, else ``None`` each (a
    malformed label is still an error)."""
    frames = list(frames)
    has_forces = all(has_label(a, "forces") for a in frames)
    has_stress = all(has_label(a, "stress") for a in frames)
    return (forces_of(frames) if has_forces else None,
            stresses_of(frames) if has_stress else None)  # fmt: skip
