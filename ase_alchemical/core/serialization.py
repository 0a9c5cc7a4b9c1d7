"""Serialization: the versioned model-file format, read safely and upgraded explicitly.

A model file is one ``torch.save`` of a dict of plain containers and tensors::

    {"format": "ase-alchemical-model", "format_version": 4, "package_version": "...",
     "params": "<JSON of the hyperparameters>", "hypers": "<JSON of the featomic hypers>",
     "state": {name: value, ...}}

``state`` holds the fitted state, one entry per field; values are tensors, numbers,
strings, ``None``, or encoded containers: ``{"__json__": text}`` for dicts and lists,
``{"__frames__": {...}}`` for a list of structures (concatenated numbers and positions,
cells, pbc, atom counts). Files are read with ``torch.load(weights_only=True)``, which
admits tensors and plain containers only.

Older format versions are brought to the current one by explicit upgrade functions
(:data:`UPGRADES`), one per version step, each tested against files of that version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from .._version import __version__
from ..errors import ModelFileError
from .fileio import atomic_write

__all__ = [
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "UPGRADES",
    "ModelFileError",
    "decode_state",
    "encode_state",
    "file_kind",
    "model_file_info",
    "read_model_file",
    "write_model_file",
]

MODEL_FORMAT = "ase-alchemical-model"
MODEL_FORMAT_VERSION = 4


def file_kind(params: dict) -> str:
    """The model kind of a file's hyperparameters: ``params["kernel"]``, absent (as
    written by version 1 and 2 files of structure kernels) for ``"structure"``."""
    return params.get("kernel", "structure")


# ------------------------------------------------------------------ values
def _pack_frames(frames: list[Atoms]) -> dict:
    return {
        "numbers": torch.as_tensor(np.concatenate([a.numbers for a in frames])),
        "positions": torch.as_tensor(np.concatenate([a.positions for a in frames])),
        "cells": torch.as_tensor(np.stack([a.cell.array for a in frames])),
        "pbc": torch.as_tensor(np.stack([a.pbc for a in frames])),
        "n_atoms": torch.as_tensor([len(a) for a in frames]),
    }


def _unpack_frames(packed: dict) -> list[Atoms]:
    frames, start = [], 0
    for i, n in enumerate(packed["n_atoms"].tolist()):
        frames.append(
            Atoms(
                numbers=packed["numbers"][start : start + n].numpy(),
                positions=packed["positions"][start : start + n].numpy(),
                cell=packed["cells"][i].numpy(),
                pbc=packed["pbc"][i].numpy(),
            )
        )
        start += n
    return frames


def _is_frames(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(a, Atoms) for a in value)


def encode_state(state: dict) -> dict:
    """Encode fitted-state values for a file: tensors (copied to the CPU), scalars and
    ``None`` as they are, lists of structures packed, other dicts and lists as JSON."""
    out = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            out[name] = value.detach().cpu().clone()
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif _is_frames(value):
            out[name] = {"__frames__": _pack_frames(value)}
        elif isinstance(value, (dict, list, tuple)):
            out[name] = {"__json__": json.dumps(value)}
        else:
            raise TypeError(f"cannot store state field {name!r} of type {type(value).__name__}")
    return out


def decode_state(encoded: dict) -> dict:
    """The inverse of :func:`encode_state`."""
    out = {}
    for name, value in encoded.items():
        if isinstance(value, dict) and "__frames__" in value:
            out[name] = _unpack_frames(value["__frames__"])
        elif isinstance(value, dict) and "__json__" in value:
            out[name] = json.loads(value["__json__"])
        else:
            out[name] = value
    return out


# ------------------------------------------------------------------ upgrades
def upgrade_v1_to_v2(raw: dict) -> dict:
    """Version 1 (ase-alchemical 0.1) -> 2.

    Version 1 kept the fitted state as top-level keys (``y_mean``, ``y_std``, ``support``
    packed, ``loss_history`` and ``metadata`` as JSON) and left out keys of options
    added later: ``scale_weights`` (one scale), ``gram`` and ``uncertainty_scale``
    (files from before uncertainties), hyperparameters ``center_resolved``,
    ``radially_resolved``, ``lr_schedule``. Each absent value is filled with the one
    that reproduces how that file was fitted, never with a current default.
    """
    params = json.loads(raw["params"])
    for name, value in _V1_PARAMS.items():
        params.setdefault(name, value)
    metadata = json.loads(raw["metadata"])
    scale_weights = raw.get("scale_weights")
    state = {
        "species": list(raw["species"]),
        "U": raw["U"],
        "weights": raw["weights"],
        "support": {"__frames__": raw["support"]},
        "regularizer": float(raw["regularizer"]),
        "scale_weights": torch.ones(1, dtype=torch.float64) if scale_weights is None
        else scale_weights,
        "target_mean": float(raw["y_mean"]),
        "target_std": float(raw["y_std"]),
        "projection": raw.get("projection"),
        "gram": raw.get("gram"),
        "uncertainty_scale": raw.get("uncertainty_scale"),
        "loss_history": {"__json__": raw["loss_history"]},
        "best_step": metadata.get("best_step"),
        "metadata": {"__json__": raw["metadata"]},
    }  # fmt: skip
    return {
        "format": MODEL_FORMAT,
        "format_version": 2,
        "package_version": raw.get("package_version"),
        "params": json.dumps(params),
        "hypers": raw["hypers"],
        "state": state,
    }


#: Hyperparameters a version-1 file may lack, with the values its fit used.
_V1_PARAMS = {
    "center_resolved": False,
    "radially_resolved": False,
    "lr_schedule": "constant",
    "rotation": False,
    "n_folds": 5,
}


def upgrade_v2_to_v3(raw: dict) -> dict:
    """Version 2 -> 3: a local potential gained a two-body term (``two_body``, on by
    default since version 3); a version-2 local file was fitted without one, so its
    ``two_body`` is ``None``. Structure-kernel files are unchanged."""
    params = json.loads(raw["params"])
    if file_kind(params) == "local":
        params.setdefault("two_body", None)
    return {**raw, "format_version": 3, "params": json.dumps(params)}


def upgrade_v3_to_v4(raw: dict) -> dict:
    """Version 3 -> 4: a structure kernel's ``zeta`` may list candidate exponents (or be
    ``"auto"``), so its state records the exponent the fit used (``zeta``); a version-3
    structure file has one integer ``zeta``, which is that exponent. Local-potential
    files are unchanged."""
    params = json.loads(raw["params"])
    if file_kind(params) != "structure":
        return {**raw, "format_version": 4}
    return {**raw, "format_version": 4, "state": {**raw["state"], "zeta": int(params["zeta"])}}


#: ``UPGRADES[v]`` turns a raw version-v file dict into a version v + 1 one.
UPGRADES = {1: upgrade_v1_to_v2, 2: upgrade_v2_to_v3, 3: upgrade_v3_to_v4}


# ------------------------------------------------------------------ files
def write_model_file(
    path: str | os.PathLike, params: dict, hypers: dict | list, state: dict
) -> Path:
    """Write a model file atomically (the old file, or none, survives a crash)."""
    raw = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "package_version": __version__,
        "params": json.dumps(params),
        "hypers": json.dumps(hypers),
        "state": encode_state(state),
    }
    return atomic_write(path, lambda tmp: torch.save(raw, tmp))


def _read_raw(path: Path) -> tuple[dict, int]:
    """A model file's dict, safely loaded, checked to be ours and upgraded; and the
    format version it was written in."""
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise ModelFileError(
            f"{path} is not a readable ase-alchemical model file (truncated, corrupted "
            f"or not a torch file): {type(e).__name__}: {str(e)[:200]}"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is a torch file but not an ase-alchemical model")
    version = raw.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format version {version}, but this ase-alchemical "
            f"({__version__}) reads versions 1 to {MODEL_FORMAT_VERSION}; written by "
            f"ase-alchemical {raw.get('package_version')}: upgrade ase-alchemical"
        )
    try:
        while raw["format_version"] < MODEL_FORMAT_VERSION:
            raw = UPGRADES[raw["format_version"]](raw)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(
            f"{path} is an incomplete version-{version} model file: {type(e).__name__}: {e}"
        ) from None
    return raw, version


def read_model_file(path: str | os.PathLike) -> dict:
    """Read a model file of any supported version as current-version data.

    Returns
    -------
    dict
        ``params`` and ``hypers`` (decoded JSON), ``state`` (decoded values),
        ``format_version`` (of the file as written) and ``package_version``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ModelFileError
        The file is not an ase-alchemical model, is truncated or corrupted, is of an
        unknown format version, or lacks entries.
    """
    path = Path(path)
    raw, version = _read_raw(path)
    try:
        return {
            "params": json.loads(raw["params"]),
            "hypers": json.loads(raw["hypers"]),
            "state": decode_state(raw["state"]),
            "format_version": version,
            "package_version": raw.get("package_version"),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{path} is an incomplete or inconsistent model file: {e}") from None


def model_file_info(path: str | os.PathLike) -> dict:
    """Hyperparameters, elements, support size and provenance of a model file, read
    without building the model (loading one featurizes its support structures).

    Raises the same errors as :func:`.read_model_file`.
    """
    data = read_model_file(path)
    try:
        params = dict(data["params"], hypers=data["hypers"])
        state = data["state"]
        return {
            "params": params,
            "species": " ".join(chemical_symbols[int(z)] for z in state["species"]),
            "n_support": int(state["weights"].shape[0]),
            "metadata": state.get("metadata", {}),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{path} is an incomplete or inconsistent model file: {e}") from None
