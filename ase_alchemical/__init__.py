"""ase-alchemical: alchemical-compression SOAP kernels for ASE.

The public API is small: :class:`.AlchemicalKRR` (a structure kernel: fit / predict with
uncertainties / save), :class:`.AlchemicalPotential` (a local potential fitted to energies,
forces and stress), :func:`~ase_alchemical.registry.load_model` (either kind),
:class:`.AlchemicalCalculator`, :func:`.screen_elpasolites`, and the submodules for those
who want the parts, in the order data flows through them:
:mod:`~ase_alchemical.datasets` and :mod:`~ase_alchemical.targets` (structures and
labels), :mod:`~ase_alchemical.hypers` and :mod:`~ase_alchemical.features` (featomic's
expansion reduced to species-pair spectra), :mod:`~ase_alchemical.compression` (U),
:mod:`~ase_alchemical.representation` (structure features), :mod:`~ase_alchemical.kernels`
(kernel and solvers), :mod:`~ase_alchemical.optimize` and
:mod:`~ase_alchemical.uncertainty`, :mod:`~ase_alchemical.model`,
:mod:`~ase_alchemical.serialization` and :mod:`~ase_alchemical.registry` (files and
shipped models), :mod:`~ase_alchemical.calculator` (the ASE face).
"""

import logging

from ._version import __version__
from .calculator import AlchemicalCalculator
from .compression import AlchemicalCompression, UnknownElementError
from .devices import DeviceError
from .model import AlchemicalKRR
from .plugin import register as _register
from .potential import AlchemicalPotential
from .registry import load_model
from .screening import screen_elpasolites
from .serialization import ModelFileError

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
