"""ASE calculator wrapping a trained :class:`~ase_alchemical.model.AlchemicalKRR`.

>>> from ase_alchemical import AlchemicalCalculator
>>> atoms.calc = AlchemicalCalculator()          # the shipped default model
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Forces and stress are exact derivatives of the predicted energy: torch autograd from the
energy back to the spherical-expansion coefficients (through the kernel and the
compression U), then featomic's analytical gradients of the coefficients with respect to
positions and strain.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from .features import check_structure
from .model import AlchemicalKRR, load_model

__all__ = [
    "DEFAULT_MODEL",
    "AlchemicalCalculator",
    "available_models",
    "model_path",
    "resolve_model",
]

#: Name of the shipped default model.
DEFAULT_MODEL = "elpasolite-dj4"


def available_models() -> list[str]:
    """Names of the models shipped inside the package."""
    folder = resources.files("ase_alchemical") / "models"
    return sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".pt"))


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of a shipped model, by name."""
    path = Path(str(resources.files("ase_alchemical") / "models" / f"{name}.pt"))
    if not path.is_file():
        raise ValueError(f"no shipped model named {name!r}; available: {available_models()}")
    return path


def resolve_model_path(model: str | os.PathLike | None = None) -> Path:
    """The file of ``None`` (the shipped default), a model file, or a shipped model's name."""
    if model is None:
        return model_path(DEFAULT_MODEL)
    if Path(model).is_file():
        return Path(model)
    if isinstance(model, str) and not model.endswith(".pt") and os.sep not in model:
        return model_path(model)  # a name: an unknown one is an error listing the shipped
    raise FileNotFoundError(f"model file {model} does not exist")


def resolve_model(model=None, device: str | torch.device | None = None) -> AlchemicalKRR:
    """A fitted model from ``None`` (the shipped default), a shipped name, a file or itself."""
    if isinstance(model, AlchemicalKRR):
        return model
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(resolve_model_path(model), device=device)
    raise TypeError(f"model must be None, a name, a path or an AlchemicalKRR, not {type(model)}")


class AlchemicalCalculator(Calculator):
    """ASE calculator for an alchemical-compression SOAP KRR model.

    Parameters
    ----------
    model
        ``None`` (the shipped default), a shipped model's name, a model file path, or a
        fitted :class:`~ase_alchemical.model.AlchemicalKRR`.
    device
        Torch device; ``None`` picks CUDA when available, else CPU.
    dtype
        Floating dtype of U, the support features and the kernel (float64 default;
        float32 trades precision for speed on GPUs: the KRR weights amplify the kernel's
        rounding, to up to 5e-4 eV/atom for the shipped model over 200 crystals).
    uncertainty
        Also put ``"energy_uncertainty"`` (the calibrated predictive standard deviation
        of the energy, eV; see :meth:`AlchemicalKRR.predict_per_atom`) in ``results`` at
        every calculation. Without it the value is computed only when asked for, with
        ``calc.get_property("energy_uncertainty", atoms)``. The first one builds a
        Cholesky factor of the support kernel (seconds for thousands of support points).
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator` (e.g. ``label``).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energy_uncertainty"]
    name = "alchemical"

    def __init__(
        self,
        model=None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
        uncertainty: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.uncertainty = bool(uncertainty)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = resolve_model(model, self.device)
        if self.model._device != self.device or self.model.weights_.dtype != dtype:
            self.model = self.model.to(self.device, dtype)

    @property
    def elements(self) -> list[str]:
        """Element symbols the model knows."""
        return list(self.model.compression_.symbols)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Compute the requested properties (ASE calls this through ``get_*``)."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        check_structure(atoms)
        want_stress = "stress" in properties
        if want_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                f"stress needs a 3D-periodic cell; this structure has pbc={atoms.pbc.tolist()}"
            )
        want_std = self.uncertainty or "energy_uncertainty" in properties
        if "forces" not in properties and not want_stress:
            if want_std:
                energies, stds = self.model.predict([atoms], return_std=True)
            else:
                energies, stds = self.model.predict([atoms]), None
            energy = float(energies[0])
            self.results = {"energy": energy, "free_energy": energy}
        else:
            # strain derivatives only when stress is asked for (as ASE's EMT does): a
            # call that wants forces only is cheaper (benchmarks/calculator_speed.py)
            energies, gradients, virials = self.model.energy_and_derivatives(
                [atoms], strain=want_stress
            )
            energy = float(energies[0])
            self.results = {"energy": energy, "free_energy": energy, "forces": -gradients[0]}
            if want_stress:
                virial = 0.5 * (virials[0] + virials[0].T) / atoms.get_volume()
                self.results["stress"] = virial.flat[[0, 4, 8, 5, 2, 1]]
            stds = self.model.predict([atoms], return_std=True)[1] if want_std else None
        if stds is not None:
            self.results["energy_uncertainty"] = float(stds[0])

    def get_energies(
        self, frames: Sequence[Atoms], return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Total energies (eV) of many structures, evaluated in batches.

        With ``return_std`` also their predictive standard deviations (eV).
        """
        return self.model.predict(list(frames), return_std=return_std)
