"""ASE calculator wrapping a trained model: a structure kernel
(:class:`~ase_alchemical.structure.model.AlchemicalKRR`) or a local potential
(:class:`~ase_alchemical.local.model.AlchemicalPotential`).

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
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from .core.devices import resolve_device
from .core.estimator import AlchemicalModel
from .core.features import check_structure
from .errors import OutOfDomainWarning
from .registry import DEFAULT_MODEL, resolve_model, resolve_model_path

__all__ = ["AlchemicalCalculator", "OutOfDomainWarning"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _dtype_name(dtype: torch.dtype | str) -> str:
    for name, value in _DTYPES.items():
        if dtype in (name, value):
            return name
    raise ValueError(f"dtype must be one of {list(_DTYPES)} or their torch dtypes, got {dtype}")


class AlchemicalCalculator(Calculator):
    """ASE calculator for an alchemical-compression model (structure kernel or local
    potential).

    Parameters
    ----------
    model
        ``None`` (the shipped default), a shipped model's name, a model file path, or a
        fitted :class:`~ase_alchemical.structure.model.AlchemicalKRR` or
        :class:`~ase_alchemical.local.model.AlchemicalPotential`.
    device
        Torch device; ``None`` picks CUDA when available, else CPU
        (:func:`~ase_alchemical.core.devices.resolve_device`).
    dtype
        Floating dtype of U, the support features and the kernel, ``"float64"`` (default)
        or ``"float32"`` (or the torch dtypes): float32 trades precision for speed on
        GPUs (the KRR weights amplify the kernel's rounding, to up to 5e-4 eV/atom for
        the shipped model over 200 crystals).
    uncertainty
        Also put ``"energy_uncertainty"`` (the calibrated predictive standard deviation
        of the energy, eV; see :meth:`.AlchemicalKRR.predict_per_atom`) in ``results`` at
        every calculation. Without it the value is computed only when asked for, with
        ``calc.get_property("energy_uncertainty", atoms)``. The first one builds a
        Cholesky factor of the support kernel (seconds for thousands of support points).
    uncertainty_threshold
        Warn (:class:`~ase_alchemical.errors.OutOfDomainWarning`) when the predicted
        standard deviation per atom
        (eV/atom) exceeds this value; ``None`` (default) never warns. Setting it computes
        the uncertainty at every calculation. The shipped default model gives about 0.1
        eV/atom on the prototype crystals and 0.58 eV/atom on a water molecule.
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator` (e.g. ``label``).

    Notes
    -----
    ``calc.parameters`` (and ``calc.todict()``) hold the options as resolved: the model's
    name or file (``"in-memory"`` for a model object), the device and the dtype name.
    A local potential's energy is a sum of atomic terms, which ``get_potential_energies``
    returns. A *structure* kernel (the elpasolite models) defines no per-atom energies:
    for it ``get_potential_energies`` raises
    :class:`ase.calculators.calculator.PropertyNotImplementedError`.

    With ``uncertainty_threshold`` set, a structure kernel also warns
    (:class:`~ase_alchemical.errors.OutOfDomainWarning`) for a structure with a larger
    share of atoms without a
    neighbour within the cutoff than any of its support structures had (at most 20 % in
    the shipped default: the large cells of the data have some), such as an isolated
    atom. Its predicted uncertainty cannot see this: the
    structure features are normalised, and a lone atom's own density term looks like
    the self terms that dominate the features of the sparsest crystals (an isolated Na
    atom's features have a cosine of 0.99 with those of a Na-rich training crystal, so
    its sigma is smaller than a dense crystal's). The check costs a neighbour list per
    call (about 2 ms for 10 atoms, a fifth of an energy call), hence only with the
    threshold; the first structure with a lone atom costs one scan of the support
    structures (seconds).
    """

    implemented_properties = [
        "energy", "free_energy", "energies", "forces", "stress", "energy_uncertainty",
    ]  # fmt: skip
    default_parameters = {
        "model": None, "device": None, "dtype": "float64", "uncertainty": False,
        "uncertainty_threshold": None,
    }  # fmt: skip
    name = "alchemical"

    def __init__(
        self,
        model=None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str = torch.float64,
        uncertainty: bool = False,
        uncertainty_threshold: float | None = None,
        **kwargs,
    ) -> None:
        self.model: AlchemicalModel | None = None
        super().__init__(model=model, device=device, dtype=dtype, uncertainty=uncertainty,
                         uncertainty_threshold=uncertainty_threshold, **kwargs)  # fmt: skip

    def set(self, **kwargs) -> dict:
        """Set parameters; a new model, device or dtype (re)loads the model."""
        model = kwargs.pop("model", self.parameters.get("model"))
        if "dtype" in kwargs:
            kwargs["dtype"] = _dtype_name(kwargs["dtype"])
        if "device" in kwargs:
            kwargs["device"] = str(resolve_device(kwargs["device"]))
        if "uncertainty" in kwargs:
            kwargs["uncertainty"] = bool(kwargs["uncertainty"])
        threshold = kwargs.get("uncertainty_threshold")
        if threshold is not None:
            if not float(threshold) > 0:
                raise ValueError(f"uncertainty_threshold must be > 0 eV/atom, got {threshold}")
            kwargs["uncertainty_threshold"] = float(threshold)
        changed = super().set(**kwargs)
        reload = self.model is None or "device" in changed or "dtype" in changed
        if isinstance(model, AlchemicalModel) or model != self.parameters.get("model"):
            reload = True
        if reload:
            self._load(model)
            self.reset()
        return changed

    def _load(self, model) -> None:
        device = torch.device(self.parameters["device"])
        dtype = _DTYPES[self.parameters["dtype"]]
        if isinstance(model, AlchemicalModel):
            label = "in-memory"
        elif model == "in-memory" and self.model is not None:
            model, label = self.model, "in-memory"
        else:
            path = resolve_model_path(model)
            label = DEFAULT_MODEL if model is None else os.fspath(model)
            model = resolve_model(path, device)
        if model.torch_device != device or model.dtype != dtype:
            model = model.to(device, dtype)
        self.model = model
        self.parameters["model"] = label

    @property
    def uncertainty(self) -> bool:
        """Whether every calculation also computes ``energy_uncertainty``."""
        return bool(self.parameters["uncertainty"])

    @property
    def device(self) -> torch.device:
        """The torch device of the model."""
        return torch.device(self.parameters["device"])

    @property
    def elements(self) -> list[str]:
        """Element symbols the model knows."""
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.model.species]

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
        missing = [p for p in properties if p not in self.model.implemented_properties]
        if missing:
            raise PropertyNotImplementedError(
                f"{type(self.model).__name__} (a {self.model.kind!r} model) does not compute "
                f"{missing}: per-atom energies ('energies') need a local potential "
                "(AlchemicalPotential), whose energy is a sum of atomic terms"
            )
        if "stress" in properties and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                f"stress needs a 3D-periodic cell; this structure has pbc={atoms.pbc.tolist()}"
            )
        threshold = self.parameters.get("uncertainty_threshold")
        want_std = self.uncertainty or threshold is not None or "energy_uncertainty" in properties
        if threshold is not None:
            for message in self.model.domain_warnings(atoms):
                warnings.warn(f"{atoms.get_chemical_formula()}: {message}",
                              OutOfDomainWarning, stacklevel=3)  # fmt: skip
        self.results = self.model.calculate(atoms, properties, uncertainty=want_std)
        self._check_uncertainty(atoms, threshold)

    def _check_uncertainty(self, atoms: Atoms, threshold: float | None) -> None:
        if threshold is None:
            return
        per_atom = self.results["energy_uncertainty"] / len(atoms)
        if per_atom > threshold:
            warnings.warn(
                f"{atoms.get_chemical_formula()}: predicted uncertainty {per_atom:.3f} "
                f"eV/atom exceeds uncertainty_threshold={threshold:g}: this structure is "
                "far from the model's training data",
                OutOfDomainWarning, stacklevel=4,
            )  # fmt: skip

    def get_energies(
        self, frames: Sequence[Atoms], return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Total energies (eV) of many structures, evaluated in batches.

        With ``return_std`` also their predictive standard deviations (eV).
        """
        return self.model.predict(list(frames), return_std=return_std)
