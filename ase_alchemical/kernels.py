"""Kernels and kernel ridge regression solves (full and sparse), all differentiable torch.

Structure features are the compressed power spectra summed over atoms, either normalised
to unit length (``"normalized"``: kernel of the *average* environment, a cosine
similarity) or divided by the number of atoms (``"mean"``: additive, un-normalised).
The kernel is polynomial, ``K = (X Y^T)^zeta``.

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
    "polynomial_kernel",
    "random_projection",
    "sparse_krr_weights",
    "structure_features",
]

NORMALIZATIONS = ("normalized", "mean")


def structure_features(
    power_spectrum: torch.Tensor, n_atoms: torch.Tensor, normalization: str = "normalized"
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
    """
    if normalization == "normalized":
        norm = torch.linalg.vector_norm(power_spectrum, dim=1, keepdim=True)
        return power_spectrum / norm.clamp_min(torch.finfo(power_spectrum.dtype).tiny)
    if normalization == "mean":
        return power_spectrum / n_atoms.to(power_spectrum).unsqueeze(1)
    raise ValueError(f"unknown normalization {normalization!r}; use one of {NORMALIZATIONS}")


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, zeta: int = 1) -> torch.Tensor:
    """Polynomial kernel ``(x y^T)^zeta`` between two feature matrices."""
    k = x @ y.T
    return k if zeta == 1 else k**zeta


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
