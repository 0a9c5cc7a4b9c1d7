"""Registries: the model kinds (:data:`KINDS`: a kind's name in model files -> its
class) and the models shipped inside the package; loading a file of any kind, and
resolving a name, a path or a model object to a fitted model.

A new kind is one sub-package with a class derived from
:class:`~ase_alchemical.core.estimator.AlchemicalModel`, plus its line in :data:`KINDS`
(or :func:`register_kind`)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch

from .core.estimator import AlchemicalModel
from .core.serialization import file_kind, read_model_file
from .errors import ModelFileError
from .local.model import AlchemicalPotential
from .structure.model import AlchemicalKRR

__all__ = [
    "DEFAULT_MODEL",
    "KINDS",
    "register_kind",
    "available_models",
    "load_model",
    "model_path",
    "resolve_model",
    "resolve_model_path",
]

#: Name of the shipped default model.
DEFAULT_MODEL = "elpasolite-dj4"

#: The model kinds, each kind's name (``params["kernel"]`` of its files) -> its class.
KINDS: dict[str, type[AlchemicalModel]] = {
    AlchemicalKRR.kind: AlchemicalKRR,
    AlchemicalPotential.kind: AlchemicalPotential,
}


def register_kind(cls: type[AlchemicalModel]) -> type[AlchemicalModel]:
    """Add a model kind (a class derived from
    :class:`~ase_alchemical.core.estimator.AlchemicalModel`, with its own ``kind``
    name) to :data:`KINDS`; returns the class, so it can decorate it."""
    if not (isinstance(cls, type) and issubclass(cls, AlchemicalModel)) or not cls.kind:
        raise TypeError(f"{cls!r} is not an AlchemicalModel subclass with a kind name")
    if KINDS.get(cls.kind, cls) is not cls:
        raise ValueError(f"a different class is registered for the kind {cls.kind!r}")
    KINDS[cls.kind] = cls
    return cls


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
    **params,
) -> AlchemicalModel:
    """Load a model file of any registered kind (:data:`KINDS`), as the file says: an
    :class:`.AlchemicalKRR` (structure kernel), an :class:`.AlchemicalPotential`
    (local), ... ``cache``: whether a structure kernel's support features come from the
    :mod:`~ase_alchemical.core.feature_cache` (``None``: unless
    ``ASE_ALCHEMICAL_NO_CACHE=1``). ``params`` replace the file's hyperparameters, for
    what a file cannot hold: ``load_model(path, prior=calculator)`` for a local
    potential fitted over an ASE calculator held in memory.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ase_alchemical.errors.ModelFileError
        The file is not an ase-alchemical model, is of an unknown kind, is truncated or
        corrupted, or was written by an incompatible format version.
    """
    data = read_model_file(path)
    kind = file_kind(data["params"])
    if kind not in KINDS:
        raise ModelFileError(
            f"{path} holds a model of kind {kind!r}, which this ase-alchemical does not "
            f"know (known: {sorted(KINDS)})"
        )
    return KINDS[kind].from_file_data(data, path, device, cache=cache, **params)


def resolve_model(model=None, device: str | torch.device | None = None) -> AlchemicalModel:
    """A fitted model from ``None`` (the shipped default), a shipped name, a file or itself
    (a model object is returned as it is, on its own device)."""
    if isinstance(model, AlchemicalModel):
        return model
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(resolve_model_path(model), device=device)
    raise TypeError(
        f"model must be None, a name, a path or a fitted model (one of {sorted(KINDS)}), "
        f"not {type(model)}"
    )
