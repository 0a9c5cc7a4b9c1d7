"""Choosing support points: farthest-point sampling on randomly projected features."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["farthest_point_sampling", "random_projection"]


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
