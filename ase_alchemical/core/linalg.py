"""One symmetric positive-definite factorisation for every solve and variance.

Kernel matrices are positive *semi*-definite in exact arithmetic and can lose
definiteness to rounding. :func:`spd_factor` adds a jitter relative to the mean of the
diagonal, growing tenfold per try, and raises :class:`~ase_alchemical.errors.FittingError`
when six tries fail: never a silently wrong factor. Everything is torch and
differentiable (``torch.cholesky_solve`` is), so gradients flow through the solves.
"""

from __future__ import annotations

import torch

from ..errors import FittingError

__all__ = ["cholesky", "spd_factor", "spd_solve"]

#: Tries of :func:`spd_factor`, the jitter growing tenfold per try.
TRIES = 6


def spd_factor(
    a: torch.Tensor, jitter: float, fix: str = "increase the regularizer"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factor of ``a + j s I``: ``s`` the mean of ``a``'s diagonal, ``j`` the
    first of ``jitter``, ``10 jitter``, ... that makes it positive definite.

    Returns the factor ``L`` and the jittered matrix (``L L^T``).

    Raises
    ------
    FittingError
        ``a`` is not positive definite even with ``10^5 jitter``; ``fix`` says what to
        change.
    """
    eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    scale = a.diagonal().mean().detach()
    for attempt in range(TRIES):
        a_j = a + (jitter * 10**attempt) * scale * eye
        factor, info = torch.linalg.cholesky_ex(a_j)
        if int(info) == 0:
            return factor, a_j
    raise FittingError(
        f"a {a.shape[0]} x {a.shape[0]} matrix of the fit is not positive definite even "
        f"with a relative jitter of {jitter * 10 ** (TRIES - 1):g}: {fix}"
    )


def spd_solve(
    a: torch.Tensor, b: torch.Tensor, jitter: float, fix: str = "increase the regularizer"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``a x = b`` through :func:`spd_factor`; returns ``x`` and the jittered
    ``a``."""
    factor, a_j = spd_factor(a, jitter, fix)
    return torch.cholesky_solve(b.unsqueeze(-1), factor).squeeze(-1), a_j


def cholesky(a: torch.Tensor, fix: str = "refit the model with a larger regularizer"):
    """Cholesky factor of ``a`` as it is (already jittered), or a
    :class:`~ase_alchemical.errors.FittingError` naming ``fix``."""
    factor, info = torch.linalg.cholesky_ex(a)
    if int(info) != 0:
        raise FittingError(
            f"a {a.shape[0]} x {a.shape[0]} matrix of the model is not positive definite: {fix}"
        )
    return factor
