"""The structure kernel as a TorchScript module for metatomic
(:func:`ase_alchemical.export.export_metatomic`): the compressed power spectrum of every
atom, summed over the structure, normalised (scale by scale), the symmetric duplicates
dropped, the kernel against the stored support features, the weights and the target
scaling. It defines no per-atom energies. Imports the optional metatomic stack."""

from typing import List, Optional

import torch
from featomic.torch import SphericalExpansion
from metatensor.torch import Labels, TensorMap
from metatomic.torch import System

from ..core.hypers import basis_shapes, hypers_list
from ..core.kernels import multiscale_kernel, polynomial_kernel
from ..core.metatomic import EnergyModule, atoms_of, dense_expansion, energy_map, system_samples

__all__ = ["StructureKernel"]


class StructureKernel(EnergyModule):
    """Energy of a structure-kernel model (:class:`.AlchemicalKRR`), as TorchScript."""

    shapes: List[List[int]]
    species: List[int]
    widths: List[int]
    normalization: str

    def __init__(self, model) -> None:
        super().__init__(model.compression_.species)
        comp, rep, kernel, state = (
            model.compression_,
            model.representation_,
            model.kernel_,
            model.state_,
        )
        if rep.projection is not None:
            raise ValueError(
                "a model with basis_components (a projection of the (l, n, n') "
                "channels) cannot be exported to metatomic"
            )
        scales = hypers_list(model.hypers_)
        self.expansions = torch.nn.ModuleList([SphericalExpansion(**h) for h in scales])
        self.shapes = [[int(a), int(b)] for a, b in basis_shapes(model.hypers_)]
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

    def _features(self, systems: List[System]) -> torch.Tensor:
        system_index, _, types, offsets, n_total = atoms_of(systems)
        n_species = len(self.species)
        center_rows = self.lookup[types]
        parts: List[torch.Tensor] = []
        c0 = 0
        for s, expansion in enumerate(self.expansions):
            lmax1, n_radial = self.shapes[s][0], self.shapes[s][1]
            coefficients = dense_expansion(
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

    def energy(
        self, systems: List[System], per_atom: bool, selected_atoms: Optional[Labels]
    ) -> TensorMap:
        if per_atom:
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
            k = polynomial_kernel(x, self.support, self.zeta)
        else:
            k = multiscale_kernel(x, self.support, self.zeta, self.widths, self.scale_weights)
        per_structure = (k @ self.weights) * self.std + self.mean  # eV/atom
        counts = torch.tensor([len(s) for s in systems], dtype=x.dtype, device=x.device)
        return energy_map(per_structure * counts, system_samples(len(systems), x.device))
