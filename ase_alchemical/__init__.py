"""ase-alchemical: alchemical-compression SOAP kernels for ASE.

The public API: two model kinds on one base,
:class:`.AlchemicalKRR` (a structure kernel: fit / predict with uncertainties / save) and
:class:`.AlchemicalPotential` (a local potential fitted to energies, forces and stress);
:func:`.load_model` (a file of any kind), :class:`.AlchemicalCalculator` (the ASE face),
:func:`.export_metatomic` (i-PI, LAMMPS, metatomic-ase), :func:`.screen_elpasolites`,
and the errors, all derived from :class:`.AlchemicalError`.

The sub-packages, lower layers never importing upper ones:
:mod:`ase_alchemical.core` (what every kind shares: hypers, featomic's expansion, the
compression U, kernels, the SPD solve, the Adam loop on U, GP calibration, labels, the
estimator base class, fitted states, the file format), :mod:`ase_alchemical.data`
(data sets, reference labels), :mod:`ase_alchemical.structure` and
:mod:`ase_alchemical.local` (one per model kind, independent of each other), and on top
:mod:`~ase_alchemical.registry` (kinds and shipped models),
:mod:`~ase_alchemical.calculator`, :mod:`~ase_alchemical.export`,
:mod:`~ase_alchemical.plots` and :mod:`ase_alchemical.cli`.
"""

import logging

from . import errors
from ._version import __version__
from .calculator import AlchemicalCalculator
from .core.compression import AlchemicalCompression
from .errors import *  # noqa: F403  (every error is public: the list is errors.__all__)
from .local.model import AlchemicalPotential
from .registry import load_model
from .structure.model import AlchemicalKRR
from .structure.screening import screen_elpasolites


def __getattr__(name: str):
    # export_metatomic needs the optional metatomic stack: imported when first asked for
    if name == "export_metatomic":
        from .export import export_metatomic

        return export_metatomic
    raise AttributeError(f"module 'ase_alchemical' has no attribute {name!r}")


# a library's logger gets no handler but the null one (the logging HOWTO): the CLI shows
# its INFO messages on stderr, an application or notebook decides for itself
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AlchemicalCalculator",
    "AlchemicalCompression",
    "AlchemicalKRR",
    "AlchemicalPotential",
    "__version__",
    "export_metatomic",  # noqa: F405  (the module __getattr__ gives it)
    "load_model",
    "screen_elpasolites",
    *errors.__all__,
]
