"""Targets: the energies a model learns, read from structures, and their standardisation.

A structure's label is its total energy in eV, ``atoms.info["energy"]``; models learn the
energy per atom, standardised to zero mean and unit variance over the training set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

__all__ = ["TargetScaler", "per_atom_energies", "total_energies"]


def total_energies(frames: Sequence[Atoms], key: str = "energy") -> np.ndarray:
    """Total energies (eV) from ``atoms.info[key]``, checked present and finite.

    Raises
    ------
    ValueError
        A structure has no ``info[key]``, or an energy is NaN or infinite.
    """
    out = []
    for i, atoms in enumerate(frames):
        if key not in atoms.info:
            raise ValueError(f"structure {i} has no info[{key!r}] (total energy in eV)")
        out.append(float(atoms.info[key]))
    energies = np.asarray(out, dtype=float)
    bad = np.flatnonzero(~np.isfinite(energies))
    if len(bad):
        raise ValueError(f"energies of structures {bad[:5].tolist()} are NaN or inf")
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
