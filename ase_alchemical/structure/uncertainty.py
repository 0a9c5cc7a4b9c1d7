"""Uncertainty: the Gaussian-process predictive variance of a KRR model, and its calibration.

KRR with kernel K and regulariser lambda is the posterior mean of a Gaussian process with
prior covariance K (amplitude 1 on standardised targets) and noise variance lambda. Its
predictive variance at features x, with k_* = k(x, support), is

* full KRR:   ``k(x, x) - k_*^T (K + lambda I)^-1 k_* + lambda``;
* sparse (projected process / DTC on M support points):
  ``k(x, x) - k_*^T K_MM^-1 k_* + lambda k_*^T (K_MN K_NM + lambda K_MM)^-1 k_* + lambda``.

Both are computed from Cholesky factors built once per model (:class:`VarianceFactors`).
One scale factor, fitted on held-out structures, calibrates the variances: the mean
squared standardised error over the predicted variance is 1 there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.features import PairSpectrum
from ..core.gp import quadratic_form
from ..core.kernels import PolynomialKernel
from ..core.linalg import cholesky
from .representation import Representation
from .solvers import FullSolver
from .state import FittedState

__all__ = [
    "VarianceFactors",
    "calibrated_mean_and_std",
    "mean_and_raw_variance",
    "predictive_variance",
]


@dataclass
class VarianceFactors:
    """Cholesky factors of the GP posterior of one fitted model.

    Attributes
    ----------
    factor
        Full KRR: ``L L^T = K + lambda I``. Sparse: ``L L^T = K_MM``.
    factor_a
        Sparse only: ``L_A L_A^T = K_MN K_NM + lambda K_MM``; ``None`` for full KRR.
    noise
        The absolute regulariser lambda (the noise variance).
    """

    factor: torch.Tensor
    factor_a: torch.Tensor | None
    noise: float

    @classmethod
    def build(
        cls,
        kernel: PolynomialKernel,
        support_features: torch.Tensor,
        regularizer: float,
        gram: torch.Tensor | None,
    ) -> VarianceFactors:
        """Factors for support features, the relative regulariser and, for the sparse
        solver, the Gram matrix ``K_MN K_NM`` (``None``: full KRR)."""
        k_mm = kernel(support_features, support_features)
        eye = torch.eye(len(k_mm), dtype=k_mm.dtype, device=k_mm.device)
        mean_diagonal = float(k_mm.diagonal().mean())
        lam = regularizer * mean_diagonal
        jitter = 1e-10 * mean_diagonal
        if gram is None:
            return cls(cholesky(k_mm + (lam + jitter) * eye), None, lam)
        return cls(
            cholesky(k_mm + jitter * eye), cholesky(gram.to(k_mm) + lam * k_mm + jitter * eye), lam
        )

    @classmethod
    def for_state(
        cls, state: FittedState, kernel: PolynomialKernel, solver: FullSolver
    ) -> VarianceFactors:
        """Factors of a fitted state (its solver says whether it is sparse)."""
        sparse = not solver.all_points_are_support
        if sparse and state.gram is None:
            raise RuntimeError(
                "this sparse model was saved without the Gram matrix the predictive "
                "variance needs (a file from before uncertainties); refit it"
            )
        gram = state.gram if sparse else None
        return cls.build(kernel, state.support_features, state.regularizer, gram)


def mean_and_raw_variance(
    representation: Representation,
    kernel: PolynomialKernel,
    factors: VarianceFactors,
    support_features: torch.Tensor,
    weights: torch.Tensor,
    spectrum: PairSpectrum,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised prediction and raw variance of (projected) spectra, from one kernel
    row per structure, in chunks of structures."""

    def mean_and_var(x: torch.Tensor) -> torch.Tensor:
        k = kernel(x, support_features)
        return torch.stack([k @ weights, predictive_variance(factors, kernel, x, k)], 1)

    out = representation.map_chunks(spectrum, mean_and_var)
    return out[:, 0], out[:, 1]


def predictive_variance(
    factors: VarianceFactors, kernel: PolynomialKernel, x: torch.Tensor, k_star: torch.Tensor
) -> torch.Tensor:
    """Raw GP predictive variance (standardised units, before calibration) at features
    ``x`` whose kernel row against the support points is ``k_star``."""
    prior = kernel.diagonal(x)
    var = prior - quadratic_form(factors.factor, k_star.T) + factors.noise
    if factors.factor_a is not None:
        var = var + factors.noise * quadratic_form(factors.factor_a, k_star.T)
    return var.clamp_min(factors.noise)


def calibrated_mean_and_std(model, spectrum: PairSpectrum, scale: float):
    """Per-atom energies and calibrated standard deviations (eV/atom) of a fitted
    :class:`~ase_alchemical.structure.model.AlchemicalKRR` at projected spectra; the
    variance factors are built on the model's first call and kept until its state
    changes."""
    state = model.state_
    factors = model.__dict__.get("_variance")
    if factors is None:
        factors = VarianceFactors.for_state(state, model.kernel_, model.solver_)
        model.__dict__["_variance"] = factors
    mean, var = mean_and_raw_variance(
        model.representation_, model.kernel_, factors, state.support_features, state.weights,
        spectrum,
    )  # fmt: skip
    return state.targets.inverse(mean), torch.sqrt(var * scale) * state.target_std
