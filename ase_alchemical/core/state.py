"""The fitted state of a model: one dataclass per model kind, on one base.

Everything a fit produces is one dataclass whose fields are also the model's fitted
attributes (``model.weights_`` ...). Saving, loading, moving to a device and those
attributes all go over the fields (:class:`StateBase`), so a new field needs only its
line in its kind's state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field

import torch
from ase import Atoms

from .compression import AlchemicalCompression

__all__ = ["StateBase", "bare_copies", "derived"]


def derived(default=None):
    """A field of a fitted state that is rebuilt, not saved (``saved=False``)."""
    return field(default=default, metadata={"saved": False})


class StateBase:
    """What every fitted state (a dataclass with a ``compression`` field) shares:
    its saved fields, loading from them, moving to a device."""

    compression: AlchemicalCompression

    @classmethod
    def field_names(cls) -> set[str]:
        """Names of every field (saved or derived)."""
        return {f.name for f in dataclasses.fields(cls)}

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
