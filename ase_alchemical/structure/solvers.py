"""Kernel ridge regression solvers of the structure kernel, full and sparse, all
differentiable torch (the solves go through :func:`ase_alchemical.core.linalg.spd_solve`,
so gradients flow through them)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..core.kernels import PolynomialKernel
from ..core.linalg import spd_solve
from ..core.sampling import farthest_point_sampling

__all__ = [
    "SOLVERS",
    "FullSolver",
    "SparseSolver",
    "full_krr_weights",
    "make_solver",
    "sparse_krr_weights",
]

#: Names of the solvers (:func:`make_solver`).
SOLVERS = ("sparse", "full")


def full_krr_weights(
    k_train: torch.Tensor, y: torch.Tensor, regularizer: float, jitter: float = 1e-10
) -> torch.Tensor:
    """Full KRR weights ``(K + lambda I)^-1 y``.

    ``regularizer`` is relative to the mean of the kernel's diagonal, so that it has
    the same meaning for normalised and un-normalised features.
    """
    scale = k_train.diagonal().mean().detach()
    eye = torch.eye(k_train.shape[0], dtype=k_train.dtype, device=k_train.device)
    return spd_solve(k_train + regularizer * scale * eye, y, jitter)[0]


def sparse_krr_weights(
    k_nm: torch.Tensor,
    k_mm: torch.Tensor,
    y: torch.Tensor,
    regularizer: float,
    jitter: float = 1e-10,
) -> torch.Tensor:
    """Sparse (projected-process / subset-of-regressors) KRR weights on M support points.

    Solves ``(K_MN K_NM + lambda K_MM) w = K_MN y``; predictions are ``K_*M w``.
    ``regularizer`` is relative to the mean diagonal of ``K_MM``, as in
    :func:`full_krr_weights`; with M = N and support = training points both agree.
    """
    scale = k_mm.diagonal().mean().detach()
    a = k_nm.T @ k_nm + (regularizer * scale) * k_mm
    return spd_solve(a, k_nm.T @ y, jitter)[0]


class FullSolver:
    """Full KRR: every training structure is a support point, ``(K + lambda I) w = y``."""

    name = "full"
    #: Every structure solved on becomes a support point (a refit replaces them all).
    all_points_are_support = True

    def select_support(self, n: int, features: Callable[[], torch.Tensor], seed: int = 0):
        """Indices of the support points among ``n`` training structures: all of them."""
        return torch.arange(n)

    def weights(
        self,
        kernel: PolynomialKernel,
        x_train: torch.Tensor,
        support: torch.Tensor,
        y: torch.Tensor,
        regularizer,
        scale_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weights on the support rows of ``x_train`` (differentiable in every input)."""
        x_sup = x_train[support]
        return full_krr_weights(kernel(x_sup, x_sup, scale_weights), y, regularizer)

    def final_weights(
        self, kernel: PolynomialKernel, k_nm: Callable[[], torch.Tensor], x_sup, y, regularizer
    ) -> tuple[torch.Tensor, None]:
        """The model's weights (no Gram matrix: the variance needs only K_MM)."""
        return full_krr_weights(kernel(x_sup, x_sup), y, regularizer), None


class SparseSolver(FullSolver):
    """Projected-process KRR on ``n_support`` points chosen by farthest-point sampling:
    ``(K_MN K_NM + lambda K_MM) w = K_MN y``; scales to many thousands of structures."""

    name = "sparse"
    all_points_are_support = False

    def __init__(self, n_support: int = 1500) -> None:
        if int(n_support) < 1:
            raise ValueError(f"n_support must be >= 1, got {n_support}")
        self.n_support = int(n_support)

    def select_support(self, n: int, features: Callable[[], torch.Tensor], seed: int = 0):
        """Farthest-point sampling on randomly projected features (``features()``, built
        only here, in chunks by the caller)."""
        with torch.no_grad():
            x0 = features()
        return farthest_point_sampling(x0, min(self.n_support, n))

    def weights(self, kernel, x_train, support, y, regularizer, scale_weights=None):
        x_sup = x_train[support]
        return sparse_krr_weights(
            kernel(x_train, x_sup, scale_weights), kernel(x_sup, x_sup, scale_weights), y,
            regularizer,
        )  # fmt: skip

    def final_weights(self, kernel, k_nm, x_sup, y, regularizer):
        """The model's weights and ``K_MN K_NM``, which the predictive variance needs."""
        k = k_nm()
        weights = sparse_krr_weights(k, kernel(x_sup, x_sup), y, regularizer)
        return weights, k.T @ k


def make_solver(name: str, n_support: int = 1500) -> FullSolver:
    """The solver called ``name`` (``"full"`` or ``"sparse"``, see :data:`SOLVERS`)."""
    if name == "full":
        return FullSolver()
    if name == "sparse":
        return SparseSolver(n_support)
    raise ValueError(f"solver must be one of {SOLVERS}, got {name!r}")
