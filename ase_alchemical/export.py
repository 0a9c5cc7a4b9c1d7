"""Export to metatomic: a fitted model as a TorchScript ``AtomisticModel``.

The exported file runs wherever metatomic models run (its ASE calculator, i-PI, LAMMPS'
``pair_style metatomic``, ...) without this package: featomic-torch computes the
spherical expansion from the engine's neighbour list, and everything after it is plain
torch, so forces and stress come from autograd through featomic-torch's gradients.

Each model kind gives its own TorchScript module (``model.metatomic_module()``:
``StructureKernel`` (:mod:`ase_alchemical.structure.metatomic`), the energy of
:meth:`.AlchemicalKRR.predict`, no per-atom energies;
``LocalPotential`` (:mod:`ase_alchemical.local.metatomic`), per-atom energies and
``selected_atoms`` for domain decomposition); this module wraps it with metadata and
capabilities and writes it.

Both are float64 and take U, the support features and the weights as fixed buffers;
models with a ``basis_components`` projection are not exported.

The metatomic stack (featomic-torch, metatomic-torch) is an optional dependency, imported
by this module: ``pip install 'ase-alchemical[metatomic]'``.
"""

import json
import os
from pathlib import Path

from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput

from ._version import __version__
from .core.estimator import AlchemicalModel
from .core.fileio import atomic_write
from .core.hypers import hypers_list

__all__ = ["export_metatomic"]

_REFERENCES = {
    "architecture": [
        "M. J. Willatt, F. Musil, M. Ceriotti, Feature optimization for atomistic machine "
        "learning yields a data-driven construction of the periodic table of the "
        "elements, Phys. Chem. Chem. Phys. 20, 29661 (2018)",
        "N. Lopanitsyna, G. Fraux, M. A. Springer, S. De, M. Ceriotti, Modeling "
        "high-entropy transition metal alloys with alchemical compression, Phys. Rev. "
        "Materials 7, 045802 (2023)",
    ],
    "implementation": [f"ase-alchemical {__version__}"],
}
_ELPASOLITE_DATA = (
    "F. A. Faber, A. Lindmaa, O. A. von Lilienfeld, R. Armiento, Machine learning "
    "energies of 2 million elpasolite (ABC2D6) crystals, Phys. Rev. Lett. 117, 135502 (2016)"
)


def export_metatomic(
    model: AlchemicalModel,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    description: str | None = None,
    authors: list[str] | None = None,
    extensions_directory: str | os.PathLike | None = None,
) -> Path:
    """Write ``model`` as a metatomic ``AtomisticModel`` (TorchScript), atomically.

    Parameters
    ----------
    model
        A fitted structure-kernel model or local potential (moved to CPU, float64).
    path
        File to write (``.pt``); load it with ``metatomic.torch.load_atomistic_model``,
        ``metatomic_ase.MetatomicCalculator``, i-PI or LAMMPS.
    name, description, authors
        Metadata of the exported model (defaults: from the model's own metadata).
    extensions_directory
        Where to copy the TorchScript extensions the file needs (featomic-torch's
        libraries), for engines that do not import featomic-torch themselves: pass it as
        ``MetatomicCalculator(..., extensions_directory=)``, i-PI's ``extensions=`` or
        LAMMPS' ``extensions``. Default: ``<file stem>-extensions`` beside the file
        (replaced if it exists).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    RuntimeError
        featomic-torch or metatomic-torch is not installed.
    ValueError
        The model cannot be exported (a ``basis_components`` projection).
    """
    if not isinstance(model, AlchemicalModel):
        raise TypeError(f"cannot export {type(model).__name__}: a fitted model is needed")
    model._check_fitted()
    local = "energies" in model.implemented_properties  # a sum of atomic energies
    module = model.metatomic_module()
    cutoff = max(h["cutoff"]["radius"] for h in hypers_list(model.hypers_))
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(
            unit="eV", sample_kind="atom" if local else "system"
        )},
        atomic_types=list(module.species),
        interaction_range=float(cutoff),
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype="float64",
    )  # fmt: skip
    kind = "local alchemical potential" if local else "alchemical structure kernel"
    references = {key: list(value) for key, value in _REFERENCES.items()}
    if not local:
        references["model"] = [_ELPASOLITE_DATA]
    d_j = model.state_.compression.d_j
    provenance = getattr(model, "metadata_", None) or {}
    metadata = ModelMetadata(
        name=name or f"ase-alchemical {kind}",
        description=description or (
            f"{kind}: {len(module.species)} elements compressed onto d_J = {d_j} "
            f"pseudo-elements, cutoff {cutoff:g} Å, fitted with ase-alchemical"
        ),
        authors=list(authors or []),
        references=references,
        extra={"ase-alchemical-provenance": json.dumps(provenance, default=str)},
    )  # fmt: skip
    wrapper = AtomisticModel(module.eval(), metadata, capabilities)
    path = Path(path)
    if extensions_directory is None:
        extensions_directory = path.with_name(path.stem + "-extensions")
    atomic_write(path, lambda tmp: wrapper.save(str(tmp), str(extensions_directory)))
    return path
