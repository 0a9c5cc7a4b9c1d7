"""The fitted state of a model: one dataclass per model kind, on one base.

Everything a fit produces is one dataclass whose fields are also the model's fitted
attributes (``model.weights_`` ...). Saving, loading, moving to a device and those
attributes all go over the fields (:class:`StateBase`), so a new field needs only its
line in its kind's state.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import torch
from ase import Atoms

from .compression import AlchemicalCompression

__all__ = ["StateBase", "bare_copies", "derived"]


def derived(default=None):
    """A field of a fitted state that is rebuilt, not saved (``saved=False``)."""
    return field(default=default, metadata={"saved": False})


@dataclass(kw_only=True)
class StateBase:
    """What every fitted state (a dataclass whose first field is its ``compression``)
    shares: the
    record of the fit (keyword-only fields, after each kind's own), its saved fields,
    loading from them, moving to a device.

    Attributes
    ----------
    uncertainty_scale
        Calibration factor of the predictive variance, or ``None`` (uncalibrated).
    loss_history
        One record per optimization step of U.
    best_step
        The optimization step whose U was kept (``None``: U not optimised).
    optimization
        How U was chosen (:func:`~ase_alchemical.core.optimize.optimization_summary`).
    metadata
        Provenance (training report, data checksum, ...).
    fit_time
        Seconds the fit took.
    """

    uncertainty_scale: float | None = None
    loss_history: list[dict] = field(default_factory=list)
    best_step: int | None = None
    optimization: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    fit_time: float | None = None

    @classmethod
    @functools.cache
    def field_names(cls) -> frozenset[str]:
        """Names of every field (saved or derived); computed once per class (the model's
        attribute access asks on every fitted attribute)."""
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_saved(cls, saved: dict, compression: AlchemicalCompression) -> StateBase:
        """The state from the saved fields (``species`` and ``U`` already turned into
        ``compression``); an unknown field is a ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls) if f.metadata.get("saved", True)}
        unknown = set(saved) - known
        if unknown:
            raise ValueError(f"unknown state entries {sorted(unknown)}")
        return cls(compression=compression, **saved)

    def saved(self) -> dict:
        """The saved fields as a dict, the compression as ``species`` and ``U``."""
        out = {"species": list(self.compression.species), "U": self.compression.U.detach()}
        for f in dataclasses.fields(self):
            if f.metadata.get("saved", True) and f.name != "compression":
                out[f.name] = getattr(self, f.name)
        return out

    def to(self, device: torch.device, dtype: torch.dtype | None = None) -> None:
        """Move every tensor field (floating ones also to ``dtype``) in place."""
        self.compression.to(device=device, dtype=dtype)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                cast = dtype if value.is_floating_point() else None
                setattr(self, f.name, value.to(device=device, dtype=cast))


def bare_copies(frames) -> list[Atoms]:
    """Copies of structures without calculators (what a model keeps and saves)."""
    out = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = None
        out.append(atoms)
    return out
