"""The errors and warnings of ase-alchemical: one base class, :class:`AlchemicalError`.

Each error also derives from the built-in exception a caller would expect
(``ValueError`` for bad input, ``FileNotFoundError`` for a missing file, ...), so code
written against those keeps working, and ``except AlchemicalError`` catches every error
this package raises on purpose.
"""

from __future__ import annotations

import torch

__all__ = [
    "AlchemicalError",
    "DataNotFoundError",
    "DeviceError",
    "FittingError",
    "LabelError",
    "ModelFileError",
    "NotFittedError",
    "OutOfDomainWarning",
    "PriorMismatchWarning",
    "StructureFileError",
    "UnknownElementError",
]


class AlchemicalError(Exception):
    """Base class of every error ase-alchemical raises on purpose."""


class NotFittedError(AlchemicalError, ValueError, AttributeError):
    """A model was used before ``fit`` (or ``load_model``). An ``AttributeError`` too, so
    that ``hasattr(model, "weights_")`` is ``False`` before fitting (scikit-learn's
    convention)."""


class ModelFileError(AlchemicalError, ValueError):
    """A model file is corrupted, of another kind, or of an incompatible version."""


class LabelError(AlchemicalError, ValueError):
    """A structure lacks a label a fit asks for, or the label is malformed."""


class DeviceError(AlchemicalError, ValueError):
    """A torch device was asked for that this machine or this torch build does not have."""


class UnknownElementError(AlchemicalError, ValueError):
    """A structure holds an element the model's compression has no row for."""


class DataNotFoundError(AlchemicalError, FileNotFoundError):
    """A data file was not found where it was looked for."""


class StructureFileError(AlchemicalError, ValueError):
    """A structure file cannot be read, or holds inconsistent labels."""


class FittingError(AlchemicalError, torch.linalg.LinAlgError):
    """A linear system of a fit or a variance is not positive definite, even with
    jitter: raise the regulariser (or the noise sigmas)."""


class OutOfDomainWarning(UserWarning):
    """A structure the model was not trained for: an uncertainty above the calculator's
    ``uncertainty_threshold``, or (structure kernels) an atom without neighbours."""


class PriorMismatchWarning(UserWarning):
    """A loaded model's prior is not the one it was fitted on (another package version,
    or another energy of the fingerprint structure): its corrections may not fit it."""
