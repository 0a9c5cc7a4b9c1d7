"""The structure kernel, :class:`.AlchemicalKRR`: one feature vector per structure,
kernel ridge regression on per-atom energies, U learned through the solve.

Modules, in the order data flows: :mod:`.representation` (structure features under U),
:mod:`.solvers` (full and sparse KRR), :mod:`.optimize` (the joint objective and the
sets of each step), :mod:`.fit` (from structures to a :class:`.FittedState`),
:mod:`.uncertainty` (GP variance), :mod:`.model` (the estimator), and the recipes on top:
:mod:`.training` (the elpasolite models) and :mod:`.screening`.
"""

from .model import AlchemicalKRR

__all__ = ["AlchemicalKRR"]
