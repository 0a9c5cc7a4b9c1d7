"""ase-alchemical: alchemical-compression SOAP kernels for ASE.

The public API is small: :class:`.AlchemicalKRR` (a structure kernel: fit / predict with
uncertainties / save), :class:`.AlchemicalPotential` (a local potential fitted to energies,
forces and stress), :func:`~ase_alchemical.registry.load_model` (either kind),
:class:`.AlchemicalCalculator`, :func:`.screen_elpasolites`, and the submodules for those
who want the parts, in the order data flows through them:
:mod:`~ase_alchemical.data.datasets` and :mod:`~ase_alchemical.core.targets` (structures and
labels), :mod:`~ase_alchemical.core.hypers` and :mod:`~ase_alchemical.core.features` (featomic's
expansion reduced to species-pair spectra), :mod:`~ase_alchemical.core.compression` (U),
:mod:`~ase_alchemical.structure.representation` (structure features), :mod:`~ase_alchemical.core.kernels`
(kernel and solvers), :mod:`~ase_alchemical.structure.optimize` and
:mod:`~ase_alchemical.structure.uncertainty`, :mod:`~ase_alchemical.structure.model`,
:mod:`~ase_alchemical.core.serialization` and :mod:`~ase_alchemical.registry` (files and
shipped models), :mod:`~ase_alchemical.calculator` (the ASE face).
"""

import logging

from ._version import __version__
from .calculator import AlchemicalCalculator
from .core.compression import AlchemicalCompression, UnknownElementError
from .core.devices import DeviceError
from .core.serialization import ModelFileError
from .local.model import AlchemicalPotential
from .plugin import register as _register
from .registry import load_model
from .structure.model import AlchemicalKRR
from .structure.screening import screen_elpasolites

# a library's logger gets no handler but the null one (the logging HOWTO): the CLI shows
# its INFO messages on stderr, an application or notebook decides for itself
logging.getLogger(__name__).addHandler(logging.NullHandler())
_register()  # makes ase.calculators.calculator.get_calculator_class("alchemical") work

__all__ = [
    "AlchemicalCalculator",
    "AlchemicalCompression",
    "AlchemicalKRR",
    "AlchemicalPotential",
    "DeviceError",
    "ModelFileError",
    "UnknownElementError",
    "__version__",
    "load_model",
    "screen_elpasolites",
]
