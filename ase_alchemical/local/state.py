"""The fitted state of :class:`~ase_alchemical.local.model.AlchemicalPotential`."""

from __future__ import annotations

from dataclasses import dataclass

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
    uncertainty_scale, loss_history, best_step, optimization, metadata, fit_time
        The record of the fit every kind keeps (:class:`~ase_alchemical.core.state.StateBase`).
    support_features
        (M, F) features of the support environments (rebuilt at load).
    pair_weights, pair_scale
        Weights and feature scale of the two-body term
        (:mod:`~ase_alchemical.local.pair`), ``None`` without one (and in files written
        before it existed).
    """

    compression: AlchemicalCompression
    weights: torch.Tensor
    support_coefficients: torch.Tensor
    support_centers: torch.Tensor
    reference_energies: torch.Tensor
    energy_scale: float
    sigmas: list
    precision: torch.Tensor
    support_features: torch.Tensor | None = derived()
    pair_weights: torch.Tensor | None = None
    pair_scale: float | None = None
