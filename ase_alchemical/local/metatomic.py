"""The local potential as a TorchScript module for metatomic
(:func:`ase_alchemical.export.export_metatomic`): each atom's normalised compressed power
spectrum against the support environments, plus its element's reference energy;
per-atom energies are an output, and ``selected_atoms`` (domain decomposition) selects
the atoms whose energies are summed. Imports the optional metatomic stack."""

from typing import Dict, List, Optional, Tuple

import torch
from featomic.torch import SphericalExpansion
from metatensor.torch import Labels, TensorMap
from metatomic.torch import ModelOutput, System

from ..core.hypers import basis_shapes
from ..core.kernels import polynomial_kernel
from ..core.metatomic import (
    TINY,
    atoms_of,
    dense_expansion,
    energy_map,
    species_lookup,
    system_samples,
)

__all__ = ["LocalPotential"]


class LocalPotential(torch.nn.Module):
    """Energy and per-atom energies of a local potential (:class:`.AlchemicalPotential`),
    as TorchScript."""

    species: List[int]

    def __init__(self, model) -> None:
        super().__init__()
        state = model.state_
        hypers = model.hypers_
        self.expansion = SphericalExpansion(**hypers)
        shape = basis_shapes(hypers)[0]
        self.lmax1, self.n_radial = int(shape[0]), int(shape[1])
        self.species = [int(z) for z in model.species]
        self.register_buffer("lookup", species_lookup(self.species))
        self.register_buffer("U", state.compression.U.detach().cpu().to(torch.float64))
        self.register_buffer("support", state.support_features.detach().cpu().to(torch.float64))
        self.register_buffer("weights", state.weights.detach().cpu().to(torch.float64))
        self.register_buffer("e0", state.reference_energies.detach().cpu().to(torch.float64))
        self.zeta = int(model.zeta)
        self.energy_scale = float(state.energy_scale)
        self.tiny = TINY

    def atomic_energies(
        self, systems: List[System]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        system_index, atom_index, types, offsets, n_total = atoms_of(systems)
        rows = self.lookup[types]
        if bool((rows < 0).any()):
            raise ValueError("this structure holds an element the model does not know")
        coefficients = dense_expansion(
            self.expansion(systems), offsets, n_total, self.lookup, len(self.species),
            self.lmax1, self.n_radial,
        )  # fmt: skip
        flat: List[torch.Tensor] = []
        for c in coefficients:
            ct = torch.einsum("akmn,kj->amjn", c, self.U).flatten(2)  # (atoms, m, J N)
            flat.append((ct.transpose(1, 2) @ ct).flatten(1))
        p = torch.cat(flat, dim=1)
        x = p / torch.linalg.vector_norm(p, dim=1, keepdim=True).clamp_min(self.tiny)
        local = polynomial_kernel(x, self.support, self.zeta) @ self.weights * self.energy_scale
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
                energies[keep],
                system_index[keep],
                atom_index[keep],
            )
        if outputs["energy"].sample_kind == "atom":
            samples = Labels(
                ["system", "atom"],
                torch.stack([system_index, atom_index], dim=1).to(torch.int32),
            )
            results["energy"] = energy_map(energies, samples)
            return results
        total = torch.zeros(len(systems), dtype=energies.dtype, device=device)
        total = total.index_add(0, system_index, energies)
        results["energy"] = energy_map(total, system_samples(len(systems), device))
        return results
