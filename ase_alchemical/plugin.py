"""ASE plugin registration for the alchemical calculator.

Two mechanisms, both supported:

* ``ase.plugins`` entry point (this module, via ``__ase_plugins__``): ASE's experimental
  v4 plugin system, which ``ase info --plugins`` lists. Its import path is private, so the
  import is guarded: with an ASE without it, ``__ase_plugins__`` is empty.
* :func:`register`: ``ase.calculators.calculator.register_calculator_class`` so that
  ``get_calculator_class("alchemical")`` works. Call it once where that lookup is wanted:
  importing ``ase_alchemical`` changes no global state, ASE's name table included.
"""

from __future__ import annotations

import sys

CITATION = (
    "M. J. Willatt, F. Musil, M. Ceriotti, Phys. Chem. Chem. Phys. 20, 29661 (2018), "
    "doi:10.1039/C8CP05921G"
)

try:
    from ase._4.plugins.plugin import CalculatorPlugin
except ImportError:  # an ASE without the experimental v4 plugin system
    __ase_plugins__: set = set()
else:
    __ase_plugins__ = {
        CalculatorPlugin(
            "alchemical",
            citation=CITATION,
            module=sys.modules[__package__],  # the package; no import back up
            implementation="ase_alchemical.calculator.AlchemicalCalculator",
        )
    }


def register() -> None:
    """Register ``"alchemical"`` with ASE's calculator-name lookup (idempotent)."""
    from ase.calculators import calculator as ase_calculator

    from .calculator import AlchemicalCalculator

    if ase_calculator.external_calculators.get("alchemical") is not AlchemicalCalculator:
        ase_calculator.external_calculators.pop("alchemical", None)
        if "alchemical" in ase_calculator.names:
            ase_calculator.names.remove("alchemical")
        ase_calculator.register_calculator_class("alchemical", AlchemicalCalculator)
