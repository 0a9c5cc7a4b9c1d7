"""TorchScript pieces of the metatomic export shared by the model kinds: featomic-torch's
expansion as dense per-l tensors, atom bookkeeping of metatomic systems, energy maps.

Imports the optional metatomic stack (featomic-torch, metatensor-torch, metatomic-torch):
only the export imports this module.
"""

from typing import Dict, List, Optional, Tuple

import featomic.torch  # noqa: F401  (registers featomic's TorchScript classes)
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, System

__all__ = [
    "TINY", "EnergyModule", "atoms_of", "dense_expansion", "energy_map", "species_lookup",
    "system_samples",
]  # fmt: skip

#: The smallest normal float64, as torch.finfo(torch.float64).tiny (which TorchScript lacks)
TINY = 2.2250738585072014e-308


def species_lookup(species: List[int]) -> torch.Tensor:
    """Atomic number (0..118) -> row of U, -1 for an element the model does not know."""
    lookup = torch.full((119,), -1, dtype=torch.long)
    lookup[torch.tensor(species)] = torch.arange(len(species))
    return lookup


def dense_expansion(
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


def system_samples(n_systems: int, device: torch.device) -> Labels:
    values = torch.arange(n_systems, dtype=torch.int32, device=device).reshape(-1, 1)
    return Labels(["system"], values)


def energy_map(values: torch.Tensor, samples: Labels) -> TensorMap:
    block = TensorBlock(
        values=values.reshape(-1, 1), samples=samples,
        components=torch.jit.annotate(List[Labels], []),
        properties=Labels(["energy"], torch.zeros((1, 1), dtype=torch.int32, device=values.device)),
    )  # fmt: skip
    keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=values.device))
    return TensorMap(keys, [block])


def atoms_of(
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


class EnergyModule(torch.nn.Module):
    """Base of the kinds' TorchScript modules: metatomic's ``forward`` for the one output
    they define, ``"energy"``, and the element bookkeeping. A kind implements
    :meth:`energy`.

    Parameters
    ----------
    species
        The model's atomic numbers, in the order of the rows of U.
    """

    species: List[int]

    def __init__(self, species: List[int]) -> None:
        super().__init__()
        self.species = [int(z) for z in species]
        self.register_buffer("lookup", species_lookup(self.species))
        self.tiny = TINY

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        results: Dict[str, TensorMap] = {}
        if "energy" in outputs and len(systems) > 0:
            per_atom = outputs["energy"].sample_kind == "atom"
            results["energy"] = self.energy(systems, per_atom, selected_atoms)
        return results

    def energy(
        self, systems: List[System], per_atom: bool, selected_atoms: Optional[Labels]
    ) -> TensorMap:
        """The energy of each system (``per_atom``: of each atom), of the atoms in
        ``selected_atoms`` where given (domain decomposition)."""
        raise NotImplementedError("a model kind's module implements energy()")
