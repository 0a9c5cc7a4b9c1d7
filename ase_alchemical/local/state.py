"""The fitted state of :class:`~ase_alchemical.local.model.AlchemicalPotential`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..core.compression import AlchemicalCompression
from ..core.state import StateBase, derived

__all__ = ["PotentialState"]


@dataclass
class PotentialState(StateBase):
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
    support_features: torch.Tensor | None = derived()
