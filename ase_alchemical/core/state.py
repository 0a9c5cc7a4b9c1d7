"""The fitted states of the models, each defined once.

Everything an :class:`~ase_alchemical.structure.model.AlchemicalKRR` fit produces is one
:class:`.FittedState`; everything an :class:`~ase_alchemical.local.model.AlchemicalPotential`
fit produces is one :class:`.PotentialState`. Saving, loading, moving to a
device and the model's fitted attributes (``model.weights_`` ...) all go over its fields,
so a new field needs only its line here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from ase import Atoms

from .compression import AlchemicalCompression
from .targets import TargetScaler

__all__ = ["FittedState", "PotentialState", "bare_copies"]


def _derived(default=None):
    """A field of the fitted state that is rebuilt, not saved (``saved=False``)."""
    return field(default=default, metadata={"saved": False})


@dataclass
class FittedState:
    """Everything :meth:`.AlchemicalKRR.fit` learns; saved and loaded as one.

    Each field is also an attribute of the fitted model with a trailing underscore
    (``model.weights_``, ``model.loss_history_``), scikit-learn style; ``compression_``
    is the compression, ``y_mean_`` / ``y_std_`` the target standardisation. A new
    field needs only its line here: saving, loading, ``to`` and the model's attributes
    all go over the fields.

    Attributes
    ----------
    compression
        The learned species compression U (saved as ``species`` and ``U``).
    weights
        KRR weights of the support points (standardised units).
    support
        The support structures (their features are recomputed at load).
    regularizer
        Relative regulariser of the final solve.
    scale_weights
        Weights of the kernel's scales (one 1 for a single scale).
    target_mean, target_std
        Standardisation of the per-atom training energies (eV/atom).
    projection
        The fixed (l, n, n') projection (``basis_components``), or ``None``.
    gram
        ``K_MN K_NM`` of the sparse solve (for the predictive variance), or ``None``.
    uncertainty_scale
        Calibration factor of the predictive variance, or ``None`` (uncalibrated).
    loss_history
        One record per optimization step (see
        :class:`~ase_alchemical.structure.optimize.OptimizationResult`).
    best_step
        The optimization step whose U was kept (``None``: U not optimised).
    optimization
        How U was chosen: set sizes, mixing weights, whether it stopped early and
        whether the optimization set is small for the compression.
    metadata
        Provenance (training report, data checksum, ...).
    fit_time
        Seconds the fit took.
    support_features
        Features of the support structures (rebuilt at load).
    support_index
        Indices of the support points in the training set of the fit (not saved).
    """

    compression: AlchemicalCompression
    weights: torch.Tensor
    support: list[Atoms]
    regularizer: float
    scale_weights: torch.Tensor
    target_mean: float
    target_std: float
    projection: torch.Tensor | None = None
    gram: torch.Tensor | None = None
    uncertainty_scale: float | None = None
    loss_history: list[dict] = field(default_factory=list)
    best_step: int | None = None
    optimization: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    fit_time: float | None = None
    support_features: torch.Tensor | None = _derived()
    support_index: torch.Tensor | None = _derived()

    @property
    def targets(self) -> TargetScaler:
        """The target standardisation."""
        return TargetScaler(self.target_mean, self.target_std)

    @classmethod
    def from_saved(cls, saved: dict, compression: AlchemicalCompression) -> FittedState:
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


@dataclass
class PotentialState:
    """Everything :meth:`.AlchemicalPotential.fit` learns; saved and loaded as one.

    Attributes
    ----------
    compression
        The learned species compression U (saved as ``species`` and ``U``).
    weights
        GPR weights of the support environments.
    support_coefficients
        Compressed expansion coefficients of the support environments, (M, Q): each l's
        ``(2l + 1, d_J N)`` block flattened, l after l. Their features are rebuilt from
        them at load, with no featomic call.
    support_centers
        Atomic number of each support environment's central atom.
    reference_energies
        Per-element reference energies e0 (eV), in the row order of U.
    energy_scale
        delta, the prior energy scale of the local term (eV/atom).
    sigmas
        Energy (eV/atom), force (eV/Å) and virial (eV/atom) noise of the solve.
    precision
        ``A = K_MM + Phi^T Phi``, the posterior precision of the weights (for the
        predictive variance).
    uncertainty_scale
        Calibration factor of the predictive variance, or ``None``.
    loss_history, best_step, optimization, metadata, fit_time
        As in :class:`.FittedState`.
    support_features
        (M, F) features of the support environments (rebuilt at load).
    """

    compression: AlchemicalCompression
    weights: torch.Tensor
    support_coefficients: torch.Tensor
    support_centers: torch.Tensor
    reference_energies: torch.Tensor
    energy_scale: float
    sigmas: list
    precision: torch.Tensor
    uncertainty_scale: float | None = None
    loss_history: list[dict] = field(default_factory=list)
    best_step: int | None = None
    optimization: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    fit_time: float | None = None
    support_features: torch.Tensor | None = _derived()

    from_saved = classmethod(FittedState.from_saved.__func__)
    saved = FittedState.saved
    to = FittedState.to


#: Model attributes (``name_``) that are fields of the fitted state under another name.
STATE_ALIASES = {"y_mean_": "target_mean", "y_std_": "target_std"}
STATE_FIELDS = {f.name for f in dataclasses.fields(FittedState)}




def bare_copies(frames) -> list[Atoms]:
    """Copies of structures without calculators (what a model keeps and saves)."""
    out = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = None
        out.append(atoms)
    return out
