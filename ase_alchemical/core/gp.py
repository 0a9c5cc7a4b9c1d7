"""Gaussian-process pieces shared by the model kinds: the variance terms of a
Cholesky-factored posterior, and one calibration factor.

A kernel model with prior covariance K and a noise (regulariser) is the posterior mean of
a Gaussian process; its predictive variance is a prior term minus what the support
points explain plus the posterior spread of the weights, each a quadratic form
``k^T A^-1 k = |L^-1 k|^2`` with ``L L^T = A`` (:func:`quadratic_form`). One scale
factor, fitted on held-out structures, calibrates the variances
(:func:`calibration_scale`): the mean squared error over the predicted variance is 1
there.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["calibration_scale", "quadratic_form"]


def quadratic_form(factor: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``v^T (L L^T)^-1 v`` for every column ``v`` of ``vectors`` (M, n), from the lower
    Cholesky factor ``L``: ``(n,)``."""
    half = torch.linalg.solve_triangular(factor, vectors, upper=False)
    return (half * half).sum(0)


def calibration_scale(mean, variance, y) -> float:
    """The factor that makes ``mean((mean - y)^2 / (factor variance))`` equal 1 (torch
    tensors or numpy arrays; variances are floored at the smallest positive double)."""
    if isinstance(mean, torch.Tensor):
        variance = variance.clamp_min(1e-300)
        return float(torch.mean((mean - y.to(mean)) ** 2 / variance))
    return float(np.mean((np.asarray(mean) - y) ** 2 / np.maximum(variance, 1e-300)))
