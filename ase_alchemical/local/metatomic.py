"""The local potential as a TorchScript module for metatomic
(:func:`ase_alchemical.export.export_metatomic`): each atom's normalised compressed power
spectrum against the support environments, plus its element's reference energy and
the two-body term where the model has one;
per-atom energies are an output, and ``selected_atoms`` (domain decomposition) selects
the atoms whose energies are summed. Imports the optional metatomic stack."""

from typing import List, Optional, Tuple

import torch
from featomic.torch import SphericalExpansion
from metatensor.torch import Labels, TensorMap
from metatomic.torch import System

from ..core.hypers import basis_shapes
from ..core.kernels import polynomial_kernel
from ..core.metatomic import EnergyModule, atoms_of, dense_expansion, energy_map, system_samples

__all__ = ["LocalPotential"]


class LocalPotential(EnergyModule):
    """Energy and per-atom energies of a local potential (:class:`.AlchemicalPotential`),
    as TorchScript."""

    species: List[int]

    def __init__(self, model) -> None:
        super().__init__(model.species)
        state = model.state_
        hypers = model.hypers_
        self.expansion = SphericalExpansion(**hypers)
        shape = basis_shapes(hypers)[0]
        self.lmax1, self.n_radial = int(shape[0]), int(shape[1])
        # one U per radial function (N, n_species, d_J) when radially resolved
        u = state.compression.U.detach().cpu().to(torch.float64)
        self.radial = u.dim() == 3
        self.register_buffer("U", u if self.radial else u[None])
        self.register_buffer("support", state.support_features.detach().cpu().to(torch.float64))
        self.register_buffer("weights", state.weights.detach().cpu().to(torch.float64))
        self.register_buffer("e0", state.reference_energies.detach().cpu().to(torch.float64))
        self.zeta = int(model.zeta)
        self.energy_scale = float(state.energy_scale)
        # the two-body term: its (d_J, d_J, N) weights on the compressed l = 0 coefficients
        pair = model._pair_term()
        d_j = int(state.compression.U.shape[-1])
        self.has_pair = pair is not None
        table = torch.zeros((d_j, d_j, self.n_radial), dtype=torch.float64)
        if pair is not None:
            table = pair.weight_table(state.pair_weights.detach().cpu().to(torch.float64))
        self.register_buffer("pair", table)

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
        compressed: List[torch.Tensor] = []
        for c in coefficients:
            # (atoms, m, J, N); a U of one channel serves every n
            u = self.U if self.radial else self.U.expand(self.n_radial, -1, -1)
            ct = torch.einsum("akmn,nkj->amjn", c, u)
            compressed.append(ct)
            ct = ct.flatten(2)  # (atoms, m, J N)
            flat.append((ct.transpose(1, 2) @ ct).flatten(1))
        p = torch.cat(flat, dim=1)
        x = p / torch.linalg.vector_norm(p, dim=1, keepdim=True).clamp_min(self.tiny)
        local = polynomial_kernel(x, self.support, self.zeta) @ self.weights * self.energy_scale
        energies = local + self.e0[rows]
        if self.has_pair:
            # sum_{J, K, n} U_n[a_i, J] V[J, K, n] ct_i[K, n, 0]
            centre = self.U[:, rows].expand(self.n_radial, -1, -1)  # (N, atoms, J)
            ct0 = compressed[0][:, 0]  # (atoms, K, N)
            energies = energies + torch.einsum("naj,jkn,akn->a", centre, self.pair, ct0)
        return energies, system_index, atom_index

    def energy(
        self, systems: List[System], per_atom: bool, selected_atoms: Optional[Labels]
    ) -> TensorMap:
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
        if per_atom:
            samples = Labels(
                ["system", "atom"],
                torch.stack([system_index, atom_index], dim=1).to(torch.int32),
            )
            return energy_map(energies, samples)
        total = torch.zeros(len(systems), dtype=energies.dtype, device=device)
        total = total.index_add(0, system_index, energies)
        return energy_map(total, system_samples(len(systems), device))
