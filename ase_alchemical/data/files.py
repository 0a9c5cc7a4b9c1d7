"""Structure files of the user's own data: any format :func:`ase.io.read` reads, with
energies, forces and stress read through :mod:`ase_alchemical.core.targets` and
converted to eV, eV/Å and eV/Å^3."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from ..core.targets import (
    energy_label,
    force_label,
    has_label,
    stress_label,
    total_energies,
)
from ..errors import LabelError, StructureFileError

__all__ = ["ENERGY_UNITS", "read_frames", "read_structures"]


def read_frames(path: str | os.PathLike, index: str = ":") -> list[Atoms]:
    """Every structure of a file :func:`ase.io.read` understands, as a list.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    StructureFileError
        ASE cannot read it: the message names the file and what ASE found wrong.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure file {path} does not exist")
    try:
        frames = ase.io.read(path, index=index)
    except Exception as e:  # ASE raises many types (XYZError, ValueError, KeyError, ...)
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise StructureFileError(
            f"{path} is not a readable structure file ({type(e).__name__}"
            + (f": {detail}" if detail else "")
            + "); give extended XYZ, CIF or another format ase.io.read understands"
        ) from None
    frames = [frames] if isinstance(frames, Atoms) else list(frames)
    if not frames:
        raise StructureFileError(f"{path} holds no structures")
    return frames


#: Energy units a structure file may declare (``info["energy_units"]`` or
#: ``info["units"]``), in eV.
ENERGY_UNITS = ("eV", "meV", "Hartree", "Ry", "kcal/mol", "kJ/mol")
_UNIT_KEYS = ("energy_units", "units")


def _energy_unit_factor(name: str) -> float:
    from ase import units

    table = {
        "eV": 1.0, "meV": 1e-3, "Hartree": units.Hartree, "Ry": units.Ry,
        "kcal/mol": units.kcal / units.mol, "kJ/mol": units.kJ / units.mol,
    }  # fmt: skip
    if name not in table:
        raise ValueError(f"unknown energy unit {name!r}; use one of {sorted(table)}")
    return table[name]


def _declared_unit(frames: Sequence[Atoms], path) -> str | None:
    declared = {str(atoms.info[key]) for atoms in frames for key in _UNIT_KEYS if key in atoms.info}
    undeclared = sum(not any(k in a.info for k in _UNIT_KEYS) for a in frames)
    if len(declared) > 1 or (declared and undeclared):
        raise ValueError(
            f"{path} mixes energy units ({sorted(declared)}"
            + (f" and {undeclared} structures without a unit" if undeclared else "")
            + "): convert the file to one unit, or read the parts separately"
        )
    return declared.pop() if declared else None


def read_structures(
    path: str | os.PathLike,
    energy_key: str = "energy",
    index: str = ":",
    *,
    forces: bool = False,
    stress: bool = False,
    forces_key: str = "forces",
    stress_key: str = "stress",
    energy_unit: str | None = None,
) -> list[Atoms]:
    """Read labelled structures from any ASE format: energies, and forces and stress.

    Extended XYZ is the intended format. Each label is taken from the key the caller
    names (``info[energy_key]``, ``arrays[forces_key]``, ``info[stress_key]``) or, when
    the frame has none, from the single-point calculator ASE attaches to it (e.g.
    ``energy=... stress="..."`` and a ``forces`` column). The results are stored as
    ``info["energy"]`` (total energy, eV), ``arrays["forces"]`` (eV/Å) and
    ``info["stress"]`` (eV/Å^3, Voigt, ASE's sign): the labels
    :mod:`ase_alchemical.core.targets` reads.

    Parameters
    ----------
    path
        File readable by :func:`ase.io.read`.
    energy_key
        Name of the per-structure energy in ``atoms.info``.
    index
        ASE index string of the frames to read.
    forces, stress
        Require forces / stress (a frame without them is an error); where a frame has
        them they are read either way.
    forces_key, stress_key
        Their names in ``atoms.arrays`` / ``atoms.info``.
    energy_unit
        The unit of the energies in the file (``"eV"``, ``"meV"``, ``"Hartree"``, ``"Ry"``,
        ``"kcal/mol"``, ``"kJ/mol"``); forces and stress are converted with it (lengths
        in Å). ``None``: the unit the file declares (``info["energy_units"]`` or
        ``info["units"]``, the same in every frame), else eV.

    Raises
    ------
    ase_alchemical.errors.LabelError
        A frame lacks a requested label, or a label has the wrong shape or NaN values.
    ValueError
        The file mixes energy units, or declares one other than ``energy_unit``.
    """
    frames = read_frames(path, index=index)
    declared = _declared_unit(frames, path)
    if energy_unit is not None and declared is not None and declared != energy_unit:
        raise ValueError(
            f"{path} declares energies in {declared!r} but energy_unit={energy_unit!r} was "
            "given: drop the argument or fix the file"
        )
    factor = _energy_unit_factor(energy_unit or declared or "eV")
    try:
        for i, atoms in enumerate(frames):
            # read through the labels' one reader, converted, stored where models read them
            atoms.info["energy"] = energy_label(atoms, i, energy_key) * factor
            if forces or has_label(atoms, "forces", forces_key):
                atoms.arrays["forces"] = force_label(atoms, i, forces_key) * factor
            if stress or has_label(atoms, "stress", stress_key):
                atoms.info["stress"] = stress_label(atoms, i, stress_key) * factor
            atoms.calc = None
        total_energies(frames)  # NaN / inf energies
    except LabelError as e:
        raise LabelError(f"{path}: {e}") from None
    return frames
