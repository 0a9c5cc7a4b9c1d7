"""ase-alchemical: alchemical-compression SOAP kernels for ASE.

The public API is small: :class:`AlchemicalKRR` (fit / predict with uncertainties /
save), :func:`load_model`, :class:`AlchemicalCalculator`, :func:`screen_elpasolites`, and
the submodules :mod:`~ase_alchemical.datasets`, :mod:`~ase_alchemical.features`,
:mod:`~ase_alchemical.compression` and :mod:`~ase_alchemical.kernels` for those who want
the parts.
"""

__version__ = "0.1.0"

from .calculator import AlchemicalCalculator  # noqa: E402
from .compression import AlchemicalCompression, UnknownElementError  # noqa: E402
from .model import AlchemicalKRR, ModelFileError, load_model  # noqa: E402
from .plugin import register as _register  # noqa: E402
from .screening import screen_elpasolites  # noqa: E402

_register()  # makes ase.calculators.calculator.get_calculator_class("alchemical") work

__all__ = [
    "AlchemicalCalculator",
    "AlchemicalCompression",
    "AlchemicalKRR",
    "ModelFileError",
    "UnknownElementError",
    "__version__",
    "load_model",
    "screen_elpasolites",
]
