"""Prior models under a potential: an ASE calculator whose energies, forces and stress a
model corrects instead of learning them from zero.

A prior is named (``"emt"``, ``"chgnet"``, ``"sevenn"``: ``PRIOR_NAMES``; the last
two are optional extras whose wheels ship their weights, so they run offline) or any ASE
calculator in memory. :class:`Prior` gives its labels on structures, computed once and
kept: in memory, and for a named prior also in the user cache directory, under a key of
the prior's name, package version and :meth:`Prior.fingerprint` (its energy of one fixed
structure), so that a refit or a second command-line run does not evaluate it again.

A model records :meth:`Prior.record` in its file; :func:`resolve_prior` rebuilds a named
prior from it and warns when the installed package version differs from the recorded
one (and, at first use, when its fingerprint does).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.stress import voigt_6_to_full_3x3_stress

from ..errors import ModelFileError, PriorMismatchWarning
from .fileio import atomic_write
from .targets import energy_label, force_label, stress_label

__all__ = ["PRIOR_NAMES", "Prior", "PriorLabels", "resolve_prior", "structure_key"]

_log = logging.getLogger(__name__)


def _emt():
    from ase.calculators.emt import EMT

    return EMT()


def _chgnet():
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(use_device="cpu", on_isolated_atoms="ignore")


def _sevenn():
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator("7net-0", device="cpu")


#: Named priors: name -> (the package whose version is recorded, its extra, a factory).
_NAMED: dict[str, tuple[str, str, Callable[[], object]]] = {
    "emt": ("ase", "", _emt),
    "chgnet": ("chgnet", "chgnet", _chgnet),
    "sevenn": ("sevenn", "sevenn", _sevenn),
}
PRIOR_NAMES = tuple(_NAMED)


def _package_version(package: str, extra: str) -> str:
    try:
        module = importlib.import_module(package)
    except ImportError as err:
        raise ImportError(
            f"the {package!r} prior needs the {package} package: "
            f"pip install 'ase-alchemical[{extra}]'"
        ) from err
    return str(getattr(module, "__version__", "unknown"))


def structure_key(atoms: Atoms) -> str:
    """A hash of what a prior's labels depend on: numbers, positions, cell, pbc."""
    digest = hashlib.sha256()
    for array in (atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass
class PriorLabels:
    """A prior's labels on some structures: total energies (eV), forces (eV/Å), and
    stress (eV/Å^3, ASE's Voigt order; ``None`` for a structure that is not periodic)."""

    energies: np.ndarray
    forces: list[np.ndarray]
    stresses: list[np.ndarray | None]


#: The fingerprint structure: 4-atom fcc Cu, slightly strained and displaced, so that
#: energy, forces and stress all enter (every named prior knows copper).
def _fingerprint_structure() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.62, cubic=True)
    atoms.positions[0] += (0.05, -0.03, 0.02)
    atoms.set_cell(atoms.cell.array * np.diag([1.01, 0.99, 1.0]), scale_atoms=True)
    return atoms


@dataclass
class Prior:
    """A prior model: its name, the version of its package, and its calculator.

    Parameters
    ----------
    name
        ``"emt"``, ``"chgnet"``, ``"sevenn"``, or for a calculator in memory its class
        name.
    version
        The version of the package that computes it (``"in memory"`` for a calculator
        given as an object: it cannot be rebuilt from a file).
    calculator
        The ASE calculator (built on first use for a named prior).
    """

    name: str
    version: str
    calculator: object | None = None
    named: bool = False
    recorded_fingerprint: str | None = None
    _memory: dict[str, tuple] = field(default_factory=dict, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)

    @classmethod
    def by_name(cls, name: str) -> Prior:
        """A named prior (``PRIOR_NAMES``); its package must be installed."""
        if name not in _NAMED:
            raise ValueError(f"unknown prior {name!r}: one of {PRIOR_NAMES}, or an ASE calculator")
        package, extra, _ = _NAMED[name]
        return cls(name, _package_version(package, extra), named=True)

    def get_calculator(self):
        if self.calculator is None:
            self.calculator = _NAMED[self.name][2]()
        return self.calculator

    def _compute(self, atoms: Atoms) -> tuple:
        copy = atoms.copy()
        copy.calc = self.get_calculator()
        energy = float(copy.get_potential_energy())
        forces = np.asarray(copy.get_forces(), dtype=float)
        stress = np.asarray(copy.get_stress(), dtype=float) if atoms.pbc.all() else None
        return energy, forces, stress

    def fingerprint(self) -> str:
        """The prior's energy of a fixed structure, in eV to 1e-6, as text."""
        if self._fingerprint is None:
            self._fingerprint = f"{self._compute(_fingerprint_structure())[0]:.6f}"
        return self._fingerprint

    def record(self) -> dict:
        """What a model file stores of its prior."""
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint()}

    def check_fingerprint(self) -> None:
        """Warn when this prior's fingerprint is not the one a model was fitted with."""
        if self.recorded_fingerprint not in (None, self.fingerprint()):
            warnings.warn(
                f"the {self.name!r} prior gives {self.fingerprint()} eV on the fingerprint "
                f"structure, the model was fitted with one that gave "
                f"{self.recorded_fingerprint} eV: its corrections may not fit this prior",
                PriorMismatchWarning,
                stacklevel=3,
            )
            self.recorded_fingerprint = None  # said once

    def _disk_entry(self, key: str) -> Path | None:
        if not self.named:
            return None
        from .feature_cache import cache_directory, cache_enabled

        if not cache_enabled():
            return None
        folder = f"{self.name}-{self.version}-{self.fingerprint()}"
        return cache_directory("prior-labels") / folder / f"{key}.npz"

    def _cached(self, atoms: Atoms) -> tuple:
        key = structure_key(atoms)
        if key in self._memory:
            return self._memory[key]
        entry = self._disk_entry(key)
        if entry is not None and entry.is_file():
            with np.load(entry, allow_pickle=False) as data:
                stress = data["stress"] if data["stress"].size else None
                value = (float(data["energy"]), data["forces"], stress)
        else:
            value = self._compute(atoms)
            if entry is not None:
                _store(entry, value)
        self._memory[key] = value
        return value

    def residuals(self, frames: Sequence[Atoms], forces: bool, stress: bool) -> list[Atoms]:
        """Bare copies of ``frames`` labelled with what the prior leaves: their energies
        (and forces, stress where asked for) minus the prior's, in ``info`` / ``arrays``."""
        frames = list(frames)
        prior = self.labels(frames)
        out = []
        for i, atoms in enumerate(frames):
            copy = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            copy.info["energy"] = energy_label(atoms, i) - prior.energies[i]
            if forces:
                copy.arrays["forces"] = force_label(atoms, i) - prior.forces[i]
            if stress and prior.stresses[i] is not None:
                copy.info["stress"] = stress_label(atoms, i) - prior.stresses[i]
            out.append(copy)
        return out

    def energy_and_derivatives(self, atoms: Atoms, strain: bool) -> tuple:
        """The prior's energy (eV), ``dE/dpositions`` and, with ``strain``, ``dE/dstrain``
        (3 x 3, eV) of one structure, as a model's derivatives are given (not cached:
        a trajectory would fill the memory)."""
        energy, forces, stress = self._compute(atoms)
        virial = None
        if strain:
            virial = voigt_6_to_full_3x3_stress(stress) * atoms.get_volume()
        return energy, -forces, virial

    def labels(self, frames: Sequence[Atoms]) -> PriorLabels:
        """The prior's energies, forces and stress on ``frames`` (cached)."""
        values = [self._cached(a) for a in frames]
        return PriorLabels(
            energies=np.array([v[0] for v in values], dtype=float),
            forces=[v[1] for v in values],
            stresses=[v[2] for v in values],
        )


def _store(entry: Path, value: tuple) -> None:
    energy, forces, stress = value
    stress = np.zeros(0) if stress is None else stress

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, energy=np.float64(energy), forces=forces, stress=stress)

    try:
        atomic_write(entry, write)
    except OSError as e:  # a cache that cannot be written costs time, not correctness
        warnings.warn(f"could not write the prior-label cache: {e}", stacklevel=4)


def resolve_prior(spec) -> Prior | None:
    """The :class:`Prior` of a model's ``prior`` parameter: ``None``, a name, an ASE
    calculator, a :class:`Prior`, or the record a model file stores.

    Raises
    ------
    ValueError
        An unknown name, or an object that is no ASE calculator.
    ImportError
        A named prior whose package is not installed (the message says which extra).
    ase_alchemical.errors.ModelFileError
        A recorded prior that was a calculator in memory: it must be given again.
    """
    if spec is None or isinstance(spec, Prior):
        return spec
    if isinstance(spec, str):
        return Prior.by_name(spec)
    if isinstance(spec, dict):
        return _from_record(spec)
    if hasattr(spec, "get_potential_energy") and hasattr(spec, "calculate"):
        return Prior(type(spec).__name__, "in memory", calculator=spec)
    raise ValueError(
        f"prior must be None, one of {PRIOR_NAMES} or an ASE calculator, not {type(spec).__name__}"
    )


def _from_record(record: dict) -> Prior:
    name = record.get("name")
    if name not in _NAMED:
        raise ModelFileError(
            f"this model was fitted on a prior calculator held in memory ({name}); give it "
            "again when loading: load_model(path, prior=calculator)"
        )
    prior = Prior.by_name(name)
    if prior.version != record.get("version"):
        warnings.warn(
            f"this model was fitted on {name} {record.get('version')}, and {name} "
            f"{prior.version} is installed: its corrections may not fit this prior",
            PriorMismatchWarning,
            stacklevel=4,
        )
    prior.recorded_fingerprint = record.get("fingerprint")
    return prior
