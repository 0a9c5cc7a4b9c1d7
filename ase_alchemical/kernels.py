"""Kernels and kernel ridge regression solvers (full and sparse), all differentiable torch.

The kernel between structure features (:mod:`ase_alchemical.representation`) is
polynomial, ``K = (X Y^T)^zeta`` (:class:`PolynomialKernel`). Multi-scale features
(several cutoffs, :func:`ase_alchemical.hypers.scale_sizes`) are normalised scale by
scale and compared by a weighted sum of kernels,
``K = sum_s w_s (X_s Y_s^T)^zeta`` with ``w_s >= 0, sum_s w_s = 1`` (so a normalised
kernel still has unit diagonal and the relative regulariser keeps its meaning).

Solves use a Cholesky factorisation with a relative jitter, so gradients flow through
them (``torch.cholesky_solve`` is differentiable).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

# structure features live in .representation; re-exported here, where they were first
from .representation import NORMALIZATIONS, scale_widths, structure_features

__all__ = [
    "NORMALIZATIONS",
    "SOLVERS",
    "FullSolver",
    "PolynomialKernel",
    "SparseSolver",
    "farthest_point_sampling",
    "full_krr_weights",
    "kernel_diagonal",
    "make_solver",
    "multiscale_kernel",
    "polynomial_kernel",
    "random_projection",
    "scale_widths",
    "sparse_krr_weights",
    "structure_features",
]

#: Names of the solvers (:func:`make_solver`).
SOLVERS = ("sparse", "full")

def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, zeta: int = 1) -> torch.Tensor:
    """Polynomial kernel ``(x y^T)^zeta`` between two feature matrices."""
    k = x @ y.T
    return k if zeta == 1 else k**zeta


def multiscale_kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    zeta: int,
    widths: list[int],
    weights: torch.Tensor,
) -> torch.Tensor:
    """Weighted sum of polynomial kernels, ``sum_s weights[s] (x_s y_s^T)^zeta``, where
    ``x_s`` are the columns of scale s (``widths``, see :func:`.scale_widths`)."""
    if len(widths) == 1:
        return weights[0] * polynomial_kernel(x, y, zeta)
    k = None
    for x_s, y_s, w in zip(x.split(widths, 1), y.split(widths, 1), weights):
        term = w * polynomial_kernel(x_s, y_s, zeta)
        k = term if k is None else k + term
    return k


def kernel_diagonal(
    x: torch.Tensor, zeta: int, widths: list[int], weights: torch.Tensor
) -> torch.Tensor:
    """``k(x_i, x_i)`` of :func:`multiscale_kernel` for every row, without the matrix."""
    return sum(w * (x_s * x_s).sum(1) ** zeta for x_s, w in zip(x.split(widths, 1), weights))


def _cholesky_solve(a: torch.Tensor, b: torch.Tensor, jitter: float) -> torch.Tensor:
    """Solve ``a w = b`` for symmetric positive (semi-)definite ``a``, robustly."""
    eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    scale = a.diagonal().mean().detach()
    for attempt in range(6):
        factor, info = torch.linalg.cholesky_ex(a + (jitter * 10**attempt) * scale * eye)
        if int(info) == 0:
            return torch.cholesky_solve(b.unsqueeze(-1), factor).squeeze(-1)
    raise torch.linalg.LinAlgError(
        "kernel matrix is not positive definite even with jitter; increase the regularizer"
    )


def full_krr_weights(
    k_train: torch.Tensor, y: torch.Tensor, regularizer: float, jitter: float = 1e-10
) -> torch.Tensor:
    """Full KRR weights ``(K + lambda I)^-1 y``.

    ``regularizer`` is relative to the mean of the kernel's diagonal, so that it has
    the same meaning for normalised and un-normalised features.
    """
    scale = k_train.diagonal().mean().detach()
    eye = torch.eye(k_train.shape[0], dtype=k_train.dtype, device=k_train.device)
    return _cholesky_solve(k_train + regularizer * scale * eye, y, jitter)


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
    return _cholesky_solve(a, k_nm.T @ y, jitter)


def random_projection(n_in: int, n_out: int, seed: int = 0) -> torch.Tensor:
    """Seeded Gaussian (n_in, n_out) projection that preserves distances on average."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.normal(size=(n_in, n_out)) / np.sqrt(n_out))


def farthest_point_sampling(
    x: torch.Tensor, m: int, first: int = 0, max_dim: int = 256, seed: int = 0
) -> torch.Tensor:
    """Indices of ``m`` rows of ``x`` chosen by farthest-point sampling (Euclidean).

    Greedy max-min distance selection spreads support points over feature space better
    than random picks. FPS is sequential (m passes over the data), so features wider
    than ``max_dim`` are first randomly projected to ``max_dim`` dimensions
    (Johnson-Lindenstrauss: distances kept to a few percent, which is all a support-point
    choice needs). Deterministic for given ``first`` and ``seed``.
    """
    n = x.shape[0]
    if not 0 < m <= n:
        raise ValueError(f"cannot select {m} support points from {n} structures")
    x = x.detach().cpu().double().numpy()
    if x.shape[1] > max_dim:
        x = x @ random_projection(x.shape[1], max_dim, seed).numpy()
    sq = np.einsum("ij,ij->i", x, x)
    chosen = np.empty(m, dtype=np.int64)
    chosen[0] = first
    dist = sq - 2 * x @ x[first] + sq[first]
    for i in range(1, m):
        nxt = int(np.argmax(dist))
        chosen[i] = nxt
        np.minimum(dist, sq - 2 * x @ x[nxt] + sq[nxt], out=dist)
    return torch.as_tensor(chosen)


class PolynomialKernel:
    """``k(x, y) = sum_s w_s (x_s . y_s)^zeta`` between structure-feature rows.

    Parameters
    ----------
    zeta
        Exponent (a positive integer).
    widths
        Length of each scale's columns in a feature row (multi-scale features);
        ``None``: one scale, all columns, no weight.
    weights
        Weights of the scales (``w_s >= 0``, summing to 1); only with ``widths``.
    """

    def __init__(
        self, zeta: int, widths: Sequence[int] | None = None, weights: torch.Tensor | None = None
    ) -> None:
        if int(zeta) != zeta or zeta < 1:
            raise ValueError(f"zeta must be a positive integer, got {zeta}")
        self.zeta = int(zeta)
        self.widths = None if widths is None or len(widths) == 1 else list(widths)
        if self.widths is not None and (weights is None or len(weights) != len(self.widths)):
            raise ValueError(f"a kernel over {len(self.widths)} scales needs as many weights")
        self.weights = weights

    def __repr__(self) -> str:
        scales = "" if self.widths is None else f", widths={self.widths}"
        return f"PolynomialKernel(zeta={self.zeta}{scales})"

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Kernel matrix between the rows of ``x`` and ``y``; ``weights`` in place of the
        scale weights (e.g. differentiable ones during training)."""
        if self.widths is None:
            return polynomial_kernel(x, y, self.zeta)
        w = self.weights if weights is None else weights
        return multiscale_kernel(x, y, self.zeta, self.widths, w.to(x.dtype))

    def diagonal(self, x: torch.Tensor) -> torch.Tensor:
        """``k(x_i, x_i)`` for every row, without the matrix."""
        if self.widths is None:
            return (x * x).sum(1) ** self.zeta
        return kernel_diagonal(x, self.zeta, self.widths, self.weights.to(x.dtype))


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
