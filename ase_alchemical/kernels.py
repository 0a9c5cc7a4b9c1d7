"""Kernels and kernel ridge regression solves (full and sparse), all differentiable torch.

Structure features are the compressed power spectra summed over atoms, either normalised
to unit length (``"normalized"``: kernel of the *average* environment, a cosine
similarity) or divided by the number of atoms (``"mean"``: additive, un-normalised).
The kernel is polynomial, ``K = (X Y^T)^zeta``.

Multi-scale features (several cutoffs, :func:`ase_alchemical.features.scale_sizes`) are
normalised scale by scale and compared by a weighted sum of kernels,
``K = sum_s w_s (X_s Y_s^T)^zeta`` with ``w_s >= 0, sum_s w_s = 1`` (so a normalised
kernel still has unit diagonal and the relative regulariser keeps its meaning).

Solves use a Cholesky factorisation with a relative jitter, so gradients flow through
them (``torch.cholesky_solve`` is differentiable).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "NORMALIZATIONS",
    "farthest_point_sampling",
    "full_krr_weights",
    "kernel_diagonal",
    "multiscale_kernel",
    "polynomial_kernel",
    "random_projection",
    "scale_widths",
    "sparse_krr_weights",
    "structure_features",
]

NORMALIZATIONS = ("normalized", "mean")


def _structure_features_one(
    power_spectrum: torch.Tensor, n_atoms: torch.Tensor, normalization: str
) -> torch.Tensor:
    if normalization == "normalized":
        norm = torch.linalg.vector_norm(power_spectrum, dim=1, keepdim=True)
        return power_spectrum / norm.clamp_min(torch.finfo(power_spectrum.dtype).tiny)
    if normalization == "mean":
        return power_spectrum / n_atoms.to(power_spectrum).unsqueeze(1)
    raise ValueError(f"unknown normalization {normalization!r}; use one of {NORMALIZATIONS}")


def structure_features(
    power_spectrum: torch.Tensor,
    n_atoms: torch.Tensor,
    normalization: str = "normalized",
    scale_sizes: list[int] | None = None,
) -> torch.Tensor:
    """Turn summed power spectra (S, F) into structure features.

    Parameters
    ----------
    power_spectrum
        Power spectra summed over the atoms of each structure.
    n_atoms
        Number of atoms of each structure.
    normalization
        ``"normalized"`` (unit norm) or ``"mean"`` (divide by the number of atoms).
    scale_sizes
        Multi-scale spectra: the (l, n, n') block length of each scale, the fastest axis
        of ``power_spectrum`` being their concatenation. The result holds each scale's
        features, normalised on their own, one after the other
        (:func:`scale_widths` gives their lengths). ``None``: one scale.
    """
    if scale_sizes is None or len(scale_sizes) == 1:
        return _structure_features_one(power_spectrum, n_atoms, normalization)
    s = power_spectrum.shape[0]
    parts = power_spectrum.reshape(s, -1, sum(scale_sizes)).split(list(scale_sizes), dim=2)
    return torch.cat(
        [_structure_features_one(p.reshape(s, -1), n_atoms, normalization) for p in parts], 1
    )


def scale_widths(n_features: int, scale_sizes: list[int]) -> list[int]:
    """Length of each scale's part of a structure feature vector of ``n_features``."""
    total = sum(scale_sizes)
    if n_features % total:
        raise ValueError(f"{n_features} features do not split into scales {scale_sizes}")
    return [n_features // total * size for size in scale_sizes]


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
    ``x_s`` are the columns of scale s (``widths``, see :func:`scale_widths`)."""
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
