"""The atom-centred potential, :class:`.AlchemicalPotential`: a sum of atomic terms,
sparse GPR on energies, forces and stress, U learned through the solve.

Modules, in the order data flows: :mod:`.environments` (featomic's per-atom expansion),
:mod:`.kernel` (environment features under U and their derivatives), :mod:`.pair` (the
two-body term on the compressed radial density), :mod:`.fit` (design
rows, the weighted solve, the loss U is learned on), :mod:`.model` (the estimator), and
the recipe on top: :mod:`.training`.
"""

from .model import AlchemicalPotential

__all__ = ["AlchemicalPotential"]
