"""The fitted state of :class:`~ase_alchemical.structure.model.AlchemicalKRR`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ase import Atoms

from ..core.compression import AlchemicalCompression
from ..core.state import StateBase, derived
from ..core.targets import TargetScaler

__all__ = ["STATE_ALIASES", "FittedState"]


@dataclass
class FittedState(StateBase):
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
    zeta
        The kernel's exponent: the constructor's ``zeta``, or the candidate the fit chose
        (``None`` in files written before it was saved: the constructor's, then).
    uncertainty_scale, loss_history, best_step, optimization, metadata, fit_time
        The record of the fit every kind keeps (:class:`~ase_alchemical.core.state.StateBase`);
        the records of ``loss_history`` are those of
        :class:`~ase_alchemical.structure.optimize.OptimizationResult`.
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
    zeta: int | None = None
    support_features: torch.Tensor | None = derived()
    support_index: torch.Tensor | None = derived()

    @property
    def targets(self) -> TargetScaler:
        """The target standardisation."""
        return TargetScaler(self.target_mean, self.target_std)


#: Model attributes (``name_``) that are fields of the fitted state under another name.
STATE_ALIASES = {"y_mean_": "target_mean", "y_std_": "target_std"}
