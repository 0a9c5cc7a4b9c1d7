"""Export to metatomic: a fitted model as a TorchScript ``AtomisticModel``.

The exported file runs wherever metatomic models run (its ASE calculator, i-PI, LAMMPS'
``pair_style metatomic``, ...) without this package: featomic-torch computes the
spherical expansion from the engine's neighbour list, and everything after it is plain
torch, so forces and stress come from autograd through featomic-torch's gradients.

* **Structure kernel** (:class:`.AlchemicalKRR`): the compressed power spectrum of every
  atom, summed over the structure, normalised (scale by scale), the symmetric
  duplicates dropped, the kernel against the stored support features, the weights and
  the target scaling: the energy of :meth:`.AlchemicalKRR.predict` times the number of
  atoms. It defines no per-atom energies.
* **Local potential** (:class:`.AlchemicalPotential`): each atom's normalised
  compressed power spectrum against the support environments, plus its element's
  reference energy; per-atom energies are an output, and ``selected_atoms`` (domain
  decomposition) selects the atoms whose energies are summed.

Both are float64 and take U, the support features and the weights as fixed buffers;
models with a ``basis_components`` projection are not exported.

The metatomic stack (featomic-torch, metatomic-torch) is an optional dependency, imported
by this module: ``pip install 'ase-alchemical[metatomic]'``.
"""

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import featomic.torch  # noqa: F401  (registers featomic's TorchScript classes)
import torch
from featomic.torch import SphericalExpansion
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    System,
)

from ._version import __version__
from .core.fileio import atomic_write
from .core.hypers import basis_shapes, hypers_list
from .local.model import AlchemicalPotential
from .structure.model import AlchemicalKRR

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


#: The smallest normal float64, as torch.finfo(torch.float64).tiny (which TorchScript lacks)
_TINY = 2.2250738585072014e-308


def _lookup(species: List[int]) -> torch.Tensor:
    """Atomic number (0..118) -> row of U, -1 for an element the model does not know."""
    lookup = torch.full((119,), -1, dtype=torch.long)
    lookup[torch.tensor(species)] = torch.arange(len(species))
    return lookup


def _dense_expansion(
    tensor: TensorMap, offsets: torch.Tensor, n_atoms: int, lookup: torch.Tensor,
    n_species: int, lmax1: int, n_radial: int,
) -> List[torch.Tensor]:  # fmt: skip
    """Per l, (atoms, species, 2l + 1, N) expansion coefficients (zero for neighbour
    species that are absent)."""
    keys = tensor.keys
    lambdas = keys.column("o3_lambda")
    neighbours = keys.column("neighbor_type")
    dtype = tensor.block_by_id(0).values.dtype
    device = tensor.block_by_id(0).values.device
    out: List[torch.Tensor] = []
    for lam in range(lmax1):
        out.append(torch.zeros((n_atoms * n_species, 2 * lam + 1, n_radial),
                               dtype=dtype, device=device))  # fmt: skip
    for i in range(len(keys)):
        lam = int(lambdas[i])
        if lam >= lmax1:
            continue
        block = tensor.block_by_id(i)
        atom = offsets[block.samples.column("system")] + block.samples.column("atom")
        row = atom * n_species + lookup[neighbours[i]]
        out[lam] = out[lam].index_add(0, row, block.values)
    return [o.reshape(n_atoms, n_species, 2 * lam + 1, n_radial) for lam, o in enumerate(out)]

def _system_samples(n_systems: int, device: torch.device) -> Labels:
    values = torch.arange(n_systems, dtype=torch.int32, device=device).reshape(-1, 1)
    return Labels(["system"], values)


def _energy_map(values: torch.Tensor, samples: Labels) -> TensorMap:
    block = TensorBlock(
        values=values.reshape(-1, 1), samples=samples,
        components=torch.jit.annotate(List[Labels], []),
        properties=Labels(["energy"], torch.zeros((1, 1), dtype=torch.int32, device=values.device)),
    )  # fmt: skip
    keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=values.device))
    return TensorMap(keys, [block])

def _atoms_of(
    systems: List[System],
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Per-atom system index, atom index, types, and each system's first atom."""
    counts = [len(s) for s in systems]
    device = systems[0].positions.device
    offsets = torch.zeros(len(systems), dtype=torch.long, device=device)
    system_index: List[torch.Tensor] = []
    atom_index: List[torch.Tensor] = []
    total = 0
    for i, n in enumerate(counts):
        offsets[i] = total
        total += n
        system_index.append(torch.full((n,), i, dtype=torch.long, device=device))
        atom_index.append(torch.arange(n, dtype=torch.long, device=device))
    types = torch.cat([s.types.to(torch.long) for s in systems])
    return torch.cat(system_index), torch.cat(atom_index), types, offsets, total

class StructureKernel(torch.nn.Module):
    """Energy of a structure-kernel model (:class:`.AlchemicalKRR`), as TorchScript."""

    shapes: List[List[int]]
    species: List[int]
    widths: List[int]
    normalization: str

    def __init__(self, model: AlchemicalKRR) -> None:
        super().__init__()
        comp, rep, kernel, state = (
            model.compression_, model.representation_, model.kernel_, model.state_
        )
        if rep.projection is not None:
            raise ValueError(
                "a model with basis_components (a projection of the (l, n, n') "
                "channels) cannot be exported to metatomic"
            )
        scales = hypers_list(model.hypers_)
        self.expansions = torch.nn.ModuleList([SphericalExpansion(**h) for h in scales])
        self.shapes = [[int(a), int(b)] for a, b in basis_shapes(model.hypers_)]
        self.species = list(comp.species)
        self.register_buffer("lookup", _lookup(self.species))
        u = comp.U.detach().cpu().to(torch.float64)
        self.radial = comp.radial_shapes is not None
        self.center_resolved = bool(comp.center_resolved)
        self.register_buffer("U", u)
        self.register_buffer("pair_i", comp._pair_i.clone())
        self.register_buffer("pair_j", comp._pair_j.clone())
        self.register_buffer("pair_weight", comp._pair_weight.to(torch.float64).clone())
        index, weights, widths = rep._unique_columns(torch.device("cpu"), torch.float64)
        self.register_buffer("columns", index.clone())
        self.register_buffer("column_weights", weights.clone())
        self.normalization = rep.normalization
        self.zeta = int(kernel.zeta)
        self.widths = [int(w) for w in widths] if kernel.widths is not None else []
        scale_w = kernel.weights if kernel.widths is not None else torch.ones(1)
        self.register_buffer("scale_weights", scale_w.detach().cpu().to(torch.float64).clone())
        self.register_buffer("support", state.support_features.detach().cpu().to(torch.float64))
        self.register_buffer("weights", state.weights.detach().cpu().to(torch.float64))
        self.mean = float(state.targets.mean)
        self.std = float(state.targets.std)
        self.tiny = _TINY

    def _features(self, systems: List[System]) -> torch.Tensor:
        system_index, _, types, offsets, n_total = _atoms_of(systems)
        n_species = len(self.species)
        center_rows = self.lookup[types]
        parts: List[torch.Tensor] = []
        c0 = 0
        for s, expansion in enumerate(self.expansions):
            lmax1, n_radial = self.shapes[s][0], self.shapes[s][1]
            coefficients = _dense_expansion(
                expansion(systems), offsets, n_total, self.lookup, n_species, lmax1, n_radial
            )
            per_l: List[torch.Tensor] = []
            for c in coefficients:
                if self.radial:
                    ct = torch.einsum("akmn,nkj->ajmn", c, self.U[c0 : c0 + n_radial])
                else:
                    ct = torch.einsum("akmn,kj->ajmn", c, self.U)
                p = torch.einsum("ajmn,akmq->ajknq", ct, ct)  # (atoms, J, J', N, N')
                p = p[:, self.pair_i, self.pair_j] * self.pair_weight[None, :, None, None]
                per_l.append(p)
            p = torch.stack(per_l, dim=2)  # (atoms, pairs, L, N, N)
            if self.center_resolved:
                p = self.U[center_rows][:, :, None, None, None, None] * p[:, None]
            summed = torch.zeros((len(systems),) + p.shape[1:], dtype=p.dtype,
                                 device=p.device).index_add(0, system_index, p)  # fmt: skip
            flat = summed.reshape(len(systems), -1)
            if self.normalization == "normalized":
                norm = torch.linalg.vector_norm(flat, dim=1, keepdim=True)
                flat = flat / norm.clamp_min(self.tiny)
            else:
                counts = torch.tensor([len(x) for x in systems], dtype=flat.dtype,
                                      device=flat.device)  # fmt: skip
                flat = flat / counts[:, None]
            parts.append(flat)
            c0 += n_radial
        x = torch.cat(parts, dim=1)
        return x[:, self.columns] * self.column_weights

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        results: Dict[str, TensorMap] = {}
        if "energy" not in outputs or len(systems) == 0:
            return results
        if outputs["energy"].sample_kind != "system":
            raise ValueError("a structure kernel defines no per-atom energies")
        if selected_atoms is not None:
            raise ValueError(
                "a structure kernel is not a sum over atoms: it cannot compute the "
                "energy of selected atoms (domain decomposition)"
            )
        for system in systems:
            if bool((self.lookup[system.types.to(torch.long)] < 0).any()):
                raise ValueError("this structure holds an element the model does not know")
        x = self._features(systems)
        if len(self.widths) == 0:
            k = (x @ self.support.T) ** self.zeta
        else:
            k = torch.zeros((x.shape[0], self.support.shape[0]), dtype=x.dtype,
                            device=x.device)  # fmt: skip
            start = 0
            for s, width in enumerate(self.widths):
                xs = x[:, start : start + width]
                ys = self.support[:, start : start + width]
                k = k + self.scale_weights[s] * (xs @ ys.T) ** self.zeta
                start += width
        per_atom = (k @ self.weights) * self.std + self.mean
        counts = torch.tensor([len(s) for s in systems], dtype=x.dtype, device=x.device)
        results["energy"] = _energy_map(per_atom * counts, _system_samples(len(systems), x.device))
        return results

class LocalPotential(torch.nn.Module):
    """Energy and per-atom energies of a local potential (:class:`.AlchemicalPotential`),
    as TorchScript."""

    species: List[int]

    def __init__(self, model: AlchemicalPotential) -> None:
        super().__init__()
        state = model.state_
        hypers = model.hypers_
        self.expansion = SphericalExpansion(**hypers)
        shape = basis_shapes(hypers)[0]
        self.lmax1, self.n_radial = int(shape[0]), int(shape[1])
        self.species = [int(z) for z in model.species]
        self.register_buffer("lookup", _lookup(self.species))
        self.register_buffer("U", state.compression.U.detach().cpu().to(torch.float64))
        self.register_buffer("support", state.support_features.detach().cpu().to(torch.float64))
        self.register_buffer("weights", state.weights.detach().cpu().to(torch.float64))
        self.register_buffer("e0", state.reference_energies.detach().cpu().to(torch.float64))
        self.zeta = int(model.zeta)
        self.energy_scale = float(state.energy_scale)
        self.tiny = _TINY

    def atomic_energies(
        self, systems: List[System]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        system_index, atom_index, types, offsets, n_total = _atoms_of(systems)
        rows = self.lookup[types]
        if bool((rows < 0).any()):
            raise ValueError("this structure holds an element the model does not know")
        coefficients = _dense_expansion(
            self.expansion(systems), offsets, n_total, self.lookup, len(self.species),
            self.lmax1, self.n_radial,
        )  # fmt: skip
        flat: List[torch.Tensor] = []
        for c in coefficients:
            ct = torch.einsum("akmn,kj->amjn", c, self.U).flatten(2)  # (atoms, m, J N)
            flat.append((ct.transpose(1, 2) @ ct).flatten(1))
        p = torch.cat(flat, dim=1)
        x = p / torch.linalg.vector_norm(p, dim=1, keepdim=True).clamp_min(self.tiny)
        local = ((x @ self.support.T) ** self.zeta) @ self.weights * self.energy_scale
        return local + self.e0[rows], system_index, atom_index

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        results: Dict[str, TensorMap] = {}
        if "energy" not in outputs or len(systems) == 0:
            return results
        energies, system_index, atom_index = self.atomic_energies(systems)
        device = energies.device
        if selected_atoms is not None:
            n_max = max([len(s) for s in systems]) + 1
            wanted = selected_atoms.column("system").to(torch.long) * n_max + (
                selected_atoms.column("atom").to(torch.long)
            )
            keep = torch.isin(system_index * n_max + atom_index, wanted.to(device))
            energies, system_index, atom_index = (
                energies[keep], system_index[keep], atom_index[keep]
            )
        if outputs["energy"].sample_kind == "atom":
            samples = Labels(
                ["system", "atom"],
                torch.stack([system_index, atom_index], dim=1).to(torch.int32),
            )
            results["energy"] = _energy_map(energies, samples)
            return results
        total = torch.zeros(len(systems), dtype=energies.dtype, device=device)
        total = total.index_add(0, system_index, energies)
        results["energy"] = _energy_map(total, _system_samples(len(systems), device))
        return results



def export_metatomic(
    model: AlchemicalKRR | AlchemicalPotential,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    description: str | None = None,
    authors: List[str] | None = None,
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
    if not isinstance(model, (AlchemicalKRR, AlchemicalPotential)):
        raise TypeError(f"cannot export {type(model).__name__}: a fitted model is needed")
    model._check_fitted()
    local = isinstance(model, AlchemicalPotential)
    module = LocalPotential(model) if local else StructureKernel(model)
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
    d_j = model.d_j if local else model.compression_.d_j
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
