"""Registry of the models shipped inside the package: names, files, and resolving a
name, a path or a model object to a fitted model of either kind (structure kernel or
local potential)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch

from .core.serialization import read_model_file
from .local.model import AlchemicalPotential, load_potential
from .structure import model as _structure
from .structure.model import AlchemicalKRR

__all__ = [
    "DEFAULT_MODEL",
    "available_models",
    "load_model",
    "model_path",
    "resolve_model",
    "resolve_model_path",
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


def load_model(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    *,
    cache: bool | None = None,
) -> AlchemicalKRR | AlchemicalPotential:
    """Load a model file of either kind: an :class:`.AlchemicalKRR` (structure kernel) or
    an :class:`.AlchemicalPotential` (local), as the file says. ``cache``: whether a
    structure kernel's support features come from the
    :mod:`~ase_alchemical.core.feature_cache` (``None``: unless ``ASE_ALCHEMICAL_NO_CACHE=1``).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ase_alchemical.core.serialization.ModelFileError
        The file is not an ase-alchemical model, is truncated or corrupted, or was
        written by an incompatible format version.
    """
    if read_model_file(path)["params"].get("kernel") == "local":
        return load_potential(path, device=device)
    return _structure.load_model(path, device=device, cache=cache)


def resolve_model(
    model=None, device: str | torch.device | None = None
) -> AlchemicalKRR | AlchemicalPotential:
    """A fitted model from ``None`` (the shipped default), a shipped name, a file or itself
    (a model object is returned as it is, on its own device)."""
    if isinstance(model, (AlchemicalKRR, AlchemicalPotential)):
        return model
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(resolve_model_path(model), device=device)
    raise TypeError(
        "model must be None, a name, a path, an AlchemicalKRR or an AlchemicalPotential, "
        f"not {type(model)}"
    )
