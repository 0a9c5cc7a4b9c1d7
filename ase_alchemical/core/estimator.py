"""The estimator base class every model kind derives from, and the protocol the
calculator, the files and the command line use.

A kind (:class:`~ase_alchemical.structure.model.AlchemicalKRR`,
:class:`~ase_alchemical.local.model.AlchemicalPotential`, ...) declares its name
(:attr:`AlchemicalModel.kind`), its hyperparameters (the constructor's keyword
arguments, stored by ``_store_params``) and its fitted-state dataclass (``_STATE``), and
implements ``fit``, ``predict`` / ``predict_per_atom`` / ``predict_std``,
``energy_and_derivatives`` and ``_install`` (what a loaded state needs rebuilt). This
class gives it, once for all kinds: scikit-learn's ``get_params`` / ``set_params``,
fitted attributes read *and written* through the state (``model.weights_ = w`` updates
the state, and on an unfitted model raises
:class:`~ase_alchemical.errors.NotFittedError`), ``to``, ``save`` / ``load``, ``score``
on energies, forces and stress, and ``calculate``, the one call of
:class:`~ase_alchemical.calculator.AlchemicalCalculator`.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import ModelFileError, NotFittedError
from .compression import AlchemicalCompression
from .devices import resolve_device
from .hypers import DEFAULT_HYPERS
from .serialization import file_kind, read_model_file, write_model_file
from .state import StateBase
from .targets import optional_labels, total_energies

__all__ = ["AlchemicalModel", "as_frames", "error_summary", "voigt_stress"]


def as_frames(frames: Atoms | Sequence[Atoms]) -> list[Atoms]:
    """A list of structures from one ``Atoms`` or a sequence of them."""
    return [frames] if isinstance(frames, Atoms) else list(frames)


def voigt_stress(virial: np.ndarray, atoms: Atoms) -> np.ndarray:
    """Stress (eV/Å^3, Voigt order, ASE's sign) from a virial ``dE/dstrain`` (eV)."""
    return full_3x3_to_voigt_6_stress(virial / atoms.get_volume())


def error_summary(predicted: np.ndarray, reference: np.ndarray, name: str) -> dict:
    """``{name}_mae`` and ``{name}_rmse`` of the differences."""
    err = np.asarray(predicted) - np.asarray(reference)
    return {
        f"{name}_mae": float(np.abs(err).mean()),
        f"{name}_rmse": float(np.sqrt((err**2).mean())),
    }


@functools.cache
def _constructor_arguments(cls: type) -> tuple[str, ...]:
    """The names of the keyword arguments of ``cls.__init__``, in order."""
    parameters = inspect.signature(cls.__init__).parameters
    return tuple(n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY)


class AlchemicalModel:
    """Base class of the model kinds (see the module docstring).

    Attributes
    ----------
    kind
        The kind's name in model files and the registry
        (:data:`ase_alchemical.registry.KINDS`).
    implemented_properties
        What :meth:`calculate` returns (ASE property names).
    derivatives_with_energy
        Whether :meth:`calculate` computes the energy through
        ``energy_and_derivatives`` even when no derivative is asked for (a local
        potential gets them at little extra cost).
    """

    kind: ClassVar[str] = ""
    implemented_properties: ClassVar[tuple[str, ...]] = (
        "energy", "free_energy", "forces", "stress", "energy_uncertainty",
    )  # fmt: skip
    derivatives_with_energy: ClassVar[bool] = False
    #: Constructor arguments that say where and how a model runs, not what it is: not
    #: hyperparameters, so neither saved nor compared.
    _RUNTIME: ClassVar[tuple[str, ...]] = ("device", "progress")
    _STATE: ClassVar[type[StateBase]] = StateBase
    #: Fitted attributes (``name_``) that are state fields of another name.
    _ALIASES: ClassVar[dict[str, str]] = {}

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> tuple[str, ...]:
        """The hyperparameters: the constructor's arguments but the runtime ones
        (scikit-learn's rule, so that the signature is the one list of them)."""
        return tuple(n for n in _constructor_arguments(cls) if n not in cls._RUNTIME)

    def _store_params(self, arguments: dict) -> None:
        """Store the constructor's ``arguments`` (its ``locals()``) as attributes of the
        same names. As in scikit-learn, nothing is checked here: ``fit`` checks, so that
        ``set_params`` and the constructor behave alike."""
        for name in _constructor_arguments(type(self)):
            setattr(self, name, arguments[name])

    def get_params(self) -> dict:
        """Hyperparameters as a dict (scikit-learn style; no device or progress)."""
        # plain data is copied so that editing the dict leaves the model alone; objects
        # (a prior's calculator, with a neural network in it) are given as they are
        return {
            name: copy.deepcopy(v) if isinstance(v, (dict, list, np.ndarray)) else v
            for name, v in ((n, getattr(self, n)) for n in self._param_names())
        }

    def set_params(self, **params) -> AlchemicalModel:
        """Set hyperparameters (scikit-learn style); they take effect at the next fit."""
        for name, value in params.items():
            if name not in _constructor_arguments(type(self)):
                raise ValueError(f"unknown parameter {name!r} of {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if k != "hypers"}
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    # ------------------------------------------------------------------ fitted state
    @classmethod
    def _state_field(cls, name: str) -> str | None:
        """The state field behind the fitted attribute ``name`` (``None``: not one)."""
        if not name.endswith("_") or name.startswith("_") or name == "state_":
            return None
        field = cls._ALIASES.get(name, name[:-1])
        return field if field in cls._STATE.field_names() else None

    def __getattr__(self, name: str):
        # only called when normal lookup fails: fitted attributes are the state's fields
        field = type(self)._state_field(name)
        if field is not None:
            state = self.__dict__.get("state_")
            if state is None:
                raise NotFittedError(
                    f"{name}: this {type(self).__name__} is not fitted: call fit() or load_model()"
                )
            return getattr(state, field)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        # a fitted attribute is written to the state, never shadowed by an attribute
        # that predictions would not read
        field = type(self)._state_field(name)
        if field is None:
            super().__setattr__(name, value)
            return
        if self.__dict__.get("state_") is None:
            raise NotFittedError(f"cannot set {name}: this {type(self).__name__} is not fitted")
        setattr(self.state_, field, value)
        self._state_changed(field)

    #: Caches derived from the fitted state (rebuilt on first use), dropped whenever the
    #: state changes.
    _CACHES: ClassVar[tuple[str, ...]] = ("_variance",)

    def _state_changed(self, field: str) -> None:
        """A state field was assigned: drop what was derived from it."""
        self._drop_caches()

    def _drop_caches(self) -> None:
        for name in self._CACHES:
            self.__dict__[name] = None

    def _set_state(self, state: StateBase) -> None:
        """Install a fitted state (kinds rebuild their derived objects here)."""
        self.__dict__["state_"] = state
        self._drop_caches()

    def __getstate__(self) -> dict:
        # the caches (the variance factors: a Cholesky factor of M x M) are rebuilt on
        # first use: not worth pickling to a dask worker
        return {**self.__dict__, **dict.fromkeys(self._CACHES)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def _check_fitted(self) -> None:
        if self.__dict__.get("state_") is None:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted: call fit() or load_model()"
            )

    @property
    def is_fitted(self) -> bool:
        """Whether the model holds a fitted state."""
        return self.__dict__.get("state_") is not None

    # ------------------------------------------------------------------ common properties
    @property
    def hypers_(self) -> dict | list[dict]:
        """The spherical-expansion hypers in use (the default filled in)."""
        hypers = getattr(self, "hypers", None)
        return DEFAULT_HYPERS if hypers is None else hypers

    @property
    def torch_device(self) -> torch.device:
        """The torch device of the model's tensors (``device`` resolved)."""
        return resolve_device(getattr(self, "device", None))

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the fitted tensors."""
        self._check_fitted()
        return self.state_.weights.dtype

    @property
    def species(self) -> list[int]:
        """Atomic numbers the fitted model knows."""
        self._check_fitted()
        return list(self.state_.compression.species)

    @property
    def U(self) -> np.ndarray:
        """The learned compression matrix (n_species x d_J; radially resolved, one per
        radial channel), as numpy."""
        self._check_fitted()
        return self.state_.compression.U.detach().cpu().numpy().copy()

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        """Move the fitted state to a torch device and/or float dtype (in place);
        returns self."""
        self._check_fitted()
        if device is not None:
            self.device = device
        self.state_.to(self.torch_device, dtype)
        self._set_state(self.state_)
        return self

    # ------------------------------------------------------------------ predictions
    def _uncertainty_scale(self) -> float:
        """The calibration factor of the predictive variance, or an error that says how
        to get one."""
        self._check_fitted()
        scale = self.state_.uncertainty_scale
        if scale is None:
            raise RuntimeError(
                f"this {type(self).__name__} has no calibrated uncertainty (fitted without "
                "held-out structures, or saved before uncertainties): call "
                "model.calibrate_uncertainty(frames)"
            )
        return scale

    def predict_std(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Calibrated predictive standard deviation of each total energy (eV)."""
        return self.predict(as_frames(frames), return_std=True)[1]

    def forces(self, frames: Sequence[Atoms]) -> list[np.ndarray]:
        """Predicted forces (eV/Å), one (n_atoms, 3) array per structure."""
        _, gradients, _ = self.energy_and_derivatives(as_frames(frames), strain=False)
        return [-g for g in gradients]

    def stresses(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Predicted stress (eV/Å^3, Voigt order, ASE's sign), one row per structure
        (each 3D-periodic)."""
        frames = as_frames(frames)
        _, _, virials = self.energy_and_derivatives(frames, strain=True)
        return np.array([voigt_stress(v, a) for v, a in zip(virials, frames)])

    def score(self, frames: Sequence[Atoms]) -> dict:
        """Errors on labelled structures: energy per atom (eV/atom; ``mae`` and ``rmse``
        too), and forces (eV/Å, per component) and stress (eV/Å^3) where every structure
        has them (labels read by :func:`~ase_alchemical.core.targets.total_energies`
        and its siblings: ``info`` / ``arrays`` or a single-point calculator)."""
        self._check_fitted()
        frames = as_frames(frames)
        n_atoms = np.array([len(a) for a in frames], dtype=float)
        reference = total_energies(frames) / n_atoms
        forces, stresses = optional_labels(frames)
        if forces is None and stresses is None:
            predicted = self.predict(frames) / n_atoms
        else:
            energies, gradients, virials = self.energy_and_derivatives(
                frames, strain=stresses is not None
            )
            predicted = energies / n_atoms
        out = {**error_summary(predicted, reference, "energy"), "n": len(frames)}
        if forces is not None:
            out.update(error_summary(
                np.concatenate([-g.ravel() for g in gradients]),
                np.concatenate([f.ravel() for f in forces]), "force",
            ))  # fmt: skip
        if stresses is not None:
            predicted_s = np.array([voigt_stress(v, a) for v, a in zip(virials, frames)])
            out.update(error_summary(predicted_s, stresses, "stress"))
        out["mae"], out["rmse"] = out["energy_mae"], out["energy_rmse"]
        return out

    def domain_warnings(self, atoms: Atoms) -> list[str]:
        """Why a structure is outside the model's domain where its uncertainty cannot
        show it (kinds override; none by default)."""
        return []

    def calculate(self, atoms: Atoms, properties: Sequence[str], uncertainty: bool) -> dict:
        """The ASE results of one structure: ``properties`` (of
        :attr:`implemented_properties`) and, with ``uncertainty``, the calibrated
        ``energy_uncertainty`` (eV)."""
        self._check_fitted()
        want_stress = "stress" in properties
        stds = None
        if "forces" in properties or want_stress or self.derivatives_with_energy:
            energies, gradients, virials = self.energy_and_derivatives([atoms], strain=want_stress)
            results = {"forces": -gradients[0]}
            if want_stress:
                results["stress"] = voigt_stress(virials[0], atoms)
        else:
            results = {}
            if uncertainty:
                energies, stds = self.predict([atoms], return_std=True)
            else:
                energies = self.predict([atoms])
        results["energy"] = results["free_energy"] = float(energies[0])
        if "energies" in properties:
            results["energies"] = self.atomic_energies([atoms])[0]
        if uncertainty:
            stds = self.predict_std([atoms]) if stds is None else stds
            results["energy_uncertainty"] = float(stds[0])
        return results

    def metatomic_module(self) -> torch.nn.Module:
        """The model as a TorchScript module for
        :func:`~ase_alchemical.export.export_metatomic` (kinds that export override)."""
        raise ValueError(f"a {self.kind!r} model has no metatomic export")

    # ------------------------------------------------------------------ files
    def _file_params(self) -> dict:
        """The hyperparameters as the file stores them (an array ``init`` as
        ``"array"``: U itself is saved; the kind under ``"kernel"``)."""
        params = self.get_params()
        params.pop("hypers", None)
        if not isinstance(params.get("init", ""), str):
            params["init"] = "array"
        if self.kind != "structure":  # version-2 files of structure kernels have no key
            params["kernel"] = self.kind
        return params

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Save the fitted model to one versioned file, atomically: hyperparameters,
        hypers and every saved field of the fitted state; ``metadata`` (provenance)
        replaces the model's own ``metadata_``."""
        self._check_fitted()
        state = self.state_.saved()
        if metadata is not None:
            state["metadata"] = metadata
        return write_model_file(path, self._file_params(), self.hypers_, state)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        *,
        cache: bool | None = None,
        **params,
    ):
        """Load a file written by :meth:`save` for this kind (torch's safe loading;
        older format versions upgraded explicitly). ``params``: hyperparameters that
        replace the file's, for what a file cannot hold (a local potential's ``prior``
        when it was an ASE calculator in memory).

        Raises
        ------
        FileNotFoundError
            The file does not exist.
        ase_alchemical.errors.ModelFileError
            The file is not an ase-alchemical model, holds another kind, is truncated or
            corrupted, or was written by an incompatible format version.
        """
        return cls.from_file_data(read_model_file(path), path, device, cache=cache, **params)

    @classmethod
    def from_file_data(
        cls, data: dict, path, device=None, *, cache: bool | None = None, **params
    ):  # fmt: skip
        """The model of a read model file (:func:`.read_model_file`); ``cache``: whether
        derived features may come from the :mod:`~ase_alchemical.core.feature_cache`
        (``None``: unless ``ASE_ALCHEMICAL_NO_CACHE=1``); ``params`` replace the
        file's hyperparameters (see :meth:`load`)."""
        unknown = sorted(set(params) - set(cls._param_names()))
        if unknown:
            raise ValueError(f"{cls.__name__} has no hyperparameters {unknown}")
        kind = file_kind(data["params"])
        if kind != cls.kind:
            raise ModelFileError(
                f"{path} holds a {kind!r} model, not a {cls.kind!r} one: load it with "
                "ase_alchemical.load_model"
            )
        params = {
            **{k: v for k, v in data["params"].items() if k not in ("kernel", "hypers")},
            **cls._loaded_params(data["params"], params),
        }
        if params.get("init") == "array":
            params["init"] = "elements"  # U itself is in the state
        try:
            model = cls(**params, hypers=data["hypers"], device=device)
            saved = dict(data["state"])
            u, species = saved.pop("U"), saved.pop("species")
            state = cls._STATE.from_saved(saved, model._loaded_compression(species, u))
            state.to(model.torch_device)
            model._install(state, Path(path), cache=cache)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(
                f"{path} is an incomplete or inconsistent {cls.kind} model file: {e}"
            ) from None
        support = getattr(state, "support_features", None)  # kinds with support points
        if support is not None and support.shape[0] != state.weights.shape[0]:
            raise ModelFileError(
                f"{path}: {state.weights.shape[0]} weights for {support.shape[0]} support points"
            )
        return model

    @classmethod
    def _loaded_params(cls, stored: dict, given: dict) -> dict:
        """The hyperparameters ``given`` at load that replace the ``stored`` ones (kinds
        whose parameters need checking against the file override this)."""
        return given

    def _loaded_compression(self, species: list[int], u: torch.Tensor) -> AlchemicalCompression:
        """The compression of a loaded file, of this model's layout."""
        return AlchemicalCompression(species, u.shape[-1], init=u)

    def _install(self, state: StateBase, path: Path, cache: bool | None = None) -> None:
        """Rebuild what a loaded state does not store (from the feature cache where a
        kind has one and ``cache`` allows), check it, and set it."""
        self._set_state(state)
