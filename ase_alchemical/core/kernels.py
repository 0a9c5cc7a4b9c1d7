"""Kernels between feature rows, for every model kind.

The kernel is polynomial, ``k(x, y) = (x . y)^zeta`` (:func:`polynomial_kernel`); over
multi-scale features (several cutoffs, :func:`ase_alchemical.core.hypers.scale_sizes`) a
weighted sum of one per scale, ``k = sum_s w_s (x_s . y_s)^zeta`` with ``w_s >= 0,
sum_s w_s = 1`` (so a normalised kernel still has unit diagonal and a relative
regulariser keeps its meaning) (:func:`multiscale_kernel`).

:class:`PolynomialKernel` is the protocol a model holds: its value (``kernel(x, y)``),
its diagonal, and its derivative with respect to the dot product. The module-level
functions are written for TorchScript too (no ``__future__`` annotations, typed
arguments): the exported metatomic models call the same code.
"""

from collections.abc import Sequence
from typing import List, Optional

import torch

__all__ = [
    "PolynomialKernel",
    "kernel_diagonal",
    "multiscale_kernel",
    "polynomial_kernel",
    "polynomial_kernel_derivative",
]


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, zeta: int) -> torch.Tensor:
    """Polynomial kernel ``(x y^T)^zeta`` between two feature matrices."""
    k = x @ y.T
    return k if zeta == 1 else k**zeta


def polynomial_kernel_derivative(dots: torch.Tensor, zeta: int) -> torch.Tensor:
    """``d (d)^zeta / d d = zeta d^(zeta - 1)`` at dot products ``dots``."""
    if zeta == 1:
        return torch.ones_like(dots)
    return zeta * dots ** (zeta - 1)


def multiscale_kernel(
    x: torch.Tensor, y: torch.Tensor, zeta: int, widths: List[int], weights: torch.Tensor
) -> torch.Tensor:
    """Weighted sum of polynomial kernels, ``sum_s weights[s] (x_s y_s^T)^zeta``, where
    ``x_s`` are the columns of scale s (``widths``)."""
    if len(widths) <= 1:
        return weights[0] * polynomial_kernel(x, y, zeta)
    xs = x.split(widths, 1)
    ys = y.split(widths, 1)
    k = weights[0] * polynomial_kernel(xs[0], ys[0], zeta)
    for s in range(1, len(widths)):
        k = k + weights[s] * polynomial_kernel(xs[s], ys[s], zeta)
    return k


def kernel_diagonal(
    x: torch.Tensor, zeta: int, widths: List[int], weights: torch.Tensor
) -> torch.Tensor:
    """``k(x_i, x_i)`` of :func:`multiscale_kernel` for every row, without the matrix."""
    xs = x.split(widths, 1)
    out = weights[0] * (xs[0] * xs[0]).sum(1) ** zeta
    for s in range(1, len(widths)):
        out = out + weights[s] * (xs[s] * xs[s]).sum(1) ** zeta
    return out


class PolynomialKernel:
    """``k(x, y) = sum_s w_s (x_s . y_s)^zeta`` between feature rows.

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
        self,
        zeta: int,
        widths: Optional[Sequence[int]] = None,
        weights: Optional[torch.Tensor] = None,
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
        self, x: torch.Tensor, y: torch.Tensor, weights: Optional[torch.Tensor] = None
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

    def derivative(self, dots: torch.Tensor) -> torch.Tensor:
        """Derivative of a single-scale kernel with respect to the dot product, at
        ``dots`` (``zeta dots^(zeta - 1)``)."""
        if self.widths is not None:
            raise ValueError("the derivative is defined scale by scale: one scale only")
        return polynomial_kernel_derivative(dots, self.zeta)
