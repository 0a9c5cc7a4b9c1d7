"""Environments: featomic's atom-centred spherical expansion, one row per atom.

A *local* (atom-centred) model needs the expansion coefficients of every atom's
environment, ``c_i[a, n, l, m]`` (a = neighbour species, the central atom included as
its own neighbour at the origin, featomic's ``center_atom_weight``), and, for forces and
stress, their analytical derivatives with respect to the positions of the atoms within
the cutoff and to the cell strain. :func:`compute_environments` gets them from featomic
for a batch of structures and keeps them as dense torch tensors:

* each structure's elements are relabelled to local types 1..K (as in
  :mod:`ase_alchemical.core.features`), so a batch of alloys with 3 elements each is dense
  over K = 3 channels rather than sparse over 25;
* every l channel is one tensor ``(rows, 2l + 1, K, N)``; ``species[r]`` names the
  element of each of row r's K channels, so a compression U maps them to pseudo-elements
  (:mod:`ase_alchemical.local.kernel`).

Nothing here depends on U: the expansion is computed once per structure, and every
optimization step of U is tensor algebra on these arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..core.features import check_structure, expansion_calculator, relabel_to_local_types
from ..core.hypers import DEFAULT_HYPERS, basis_shape

__all__ = ["Environments", "compute_environments", "environment_batches"]


@dataclass
class Environments:
    """Expansion coefficients of the atoms of a batch of structures (and derivatives).

    Attributes
    ----------
    coefficients
        One tensor per l, ``(rows, 2l + 1, K, N)``: ``c_r[k, n, l, m]`` for the K local
        neighbour types of each row's structure.
    species
        ``(rows, K)`` atomic number of each local type of the row's structure (0: padding).
    centers
        ``(rows,)`` atomic number of the central atom.
    atom
        ``(rows,)`` index of the central atom in the batch (structures one after the other).
    structure
        ``(rows,)`` index of the row's structure in the batch.
    n_atoms
        ``(S,)`` number of atoms of each structure.
    gradient_rows, gradient_atoms
        ``(G,)`` for every position-gradient sample: the row whose coefficients move and
        the batch index of the atom that moves (``None`` without position gradients).
        Sorted by row.
    position_gradients
        One tensor per l, ``(G, 3, 2l + 1, K, N)``: ``d c_row / d r_atom``.
    strain_gradients
        One tensor per l, ``(rows, 9, 2l + 1, K, N)``: ``d c_row / d strain`` (the 3 x 3
        strain flattened), or ``None``.
    """

    coefficients: list[torch.Tensor]
    species: torch.Tensor
    centers: torch.Tensor
    atom: torch.Tensor
    structure: torch.Tensor
    n_atoms: torch.Tensor
    gradient_rows: torch.Tensor | None = None
    gradient_atoms: torch.Tensor | None = None
    position_gradients: list[torch.Tensor] | None = None
    strain_gradients: list[torch.Tensor] | None = None

    @property
    def n_rows(self) -> int:
        return int(self.centers.shape[0])

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    def to(self, device=None, dtype=None) -> Environments:
        """Copy to a device and/or floating dtype."""

        def move(values):
            if values is None:
                return None
            return [v.to(device=device, dtype=dtype) for v in values]

        def move_index(t):
            return None if t is None else t.to(device=device)

        return Environments(
            move(self.coefficients), move_index(self.species), move_index(self.centers),
            move_index(self.atom), move_index(self.structure), move_index(self.n_atoms),
            move_index(self.gradient_rows), move_index(self.gradient_atoms),
            move(self.position_gradients), move(self.strain_gradients),
        )  # fmt: skip

    def select_rows(self, rows: torch.Tensor) -> Environments:
        """The given rows only, without derivatives (e.g. the support environments)."""
        index = torch.arange(len(rows), device=rows.device)
        return Environments(
            [c[rows] for c in self.coefficients], self.species[rows], self.centers[rows],
            index, index, torch.ones(len(rows), dtype=torch.long, device=rows.device),
        )  # fmt: skip


def _scatter_blocks(
    tensormap,
    offset: np.ndarray,
    n_total: int,
    k: int,
    lmax1: int,
    n_radial: int,
    gradients: Sequence[str],
):
    """featomic's blocks, one per (l, centre type, neighbour type), scattered into dense
    arrays: per l, coefficients ``(atoms, 2l + 1, K, N)``, position gradients
    ``(pairs, 3, 2l + 1, K, N)`` over the union of (row, atom) pairs of all blocks (sorted,
    returned as ``row * n_total + atom``) and strain gradients ``(atoms, 9, 2l + 1, K, N)``.

    A direct scatter: metatensor's generic keys_to_properties / keys_to_samples took over
    half of an energy + forces call on hundreds of atoms, growing faster than linearly.
    Blocks featomic omits (no such neighbour in any cutoff) stay zero.
    """
    names = list(tensormap.keys.names)
    i_l, i_n = names.index("o3_lambda"), names.index("neighbor_type")
    blocks = []
    for key, block in zip(np.asarray(tensormap.keys.values), tensormap.blocks()):
        samples = np.asarray(block.samples.values)
        rows = offset[samples[:, 0]] + samples[:, 1]
        blocks.append((int(key[i_l]), int(key[i_n]) - 1, rows, block))
    coefficients = [np.zeros((n_total, 2 * lam + 1, k, n_radial)) for lam in range(lmax1)]
    for lam, b, rows, block in blocks:
        coefficients[lam][rows, :, b, :] = np.asarray(block.values)
    pos_grads, strain_grads, keys = [], [], None
    if "positions" in gradients:
        grads = [block.gradient("positions") for _, _, _, block in blocks]
        pair_keys = []
        for (_, _, rows, _), grad in zip(blocks, grads):
            g = np.asarray(grad.samples.values)
            pair_keys.append(rows[g[:, 0]] * n_total + offset[g[:, 1]] + g[:, 2])
        keys = np.unique(np.concatenate(pair_keys)) if pair_keys else np.zeros(0, np.int64)
        pos_grads = [np.zeros((len(keys), 3, 2 * lam + 1, k, n_radial)) for lam in range(lmax1)]
        for (lam, b, _, _), grad, pk in zip(blocks, grads, pair_keys):
            pos_grads[lam][np.searchsorted(keys, pk), :, :, b, :] = np.asarray(grad.values)
    if "strain" in gradients:
        strain_grads = [np.zeros((n_total, 9, 2 * lam + 1, k, n_radial)) for lam in range(lmax1)]
        for lam, b, rows, block in blocks:
            grad = block.gradient("strain")
            g = np.asarray(grad.samples.values)
            values = np.asarray(grad.values)
            strain_grads[lam][rows[g[:, 0]], :, :, b, :] = values.reshape(
                len(g), 9, 2 * lam + 1, n_radial
            )
    return coefficients, pos_grads, strain_grads, keys


def compute_environments(
    frames: Sequence[Atoms],
    hypers: dict | None = None,
    gradients: Sequence[str] = (),
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Environments:
    """Atom-centred expansion coefficients of ``frames``, with ``gradients`` among
    ``"positions"`` and ``"strain"`` (strain needs every structure 3D-periodic).

    Parameters
    ----------
    frames
        Structures, each checked by :func:`ase_alchemical.core.features.check_structure`.
    hypers
        One featomic ``SphericalExpansion`` hypers dict (default
        :data:`~ase_alchemical.core.hypers.DEFAULT_HYPERS`).
    gradients
        Derivatives to compute with featomic (analytical).
    dtype, device
        Of the returned tensors.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("no structures given")
    for i, atoms in enumerate(frames):
        check_structure(atoms, i)
    hypers = DEFAULT_HYPERS if hypers is None else hypers
    if not isinstance(hypers, dict):
        raise ValueError("a local model takes one hypers dict (multi-scale hypers are not "
                         "supported for atom-centred features)")  # fmt: skip
    gradients = list(gradients)
    unknown = set(gradients) - {"positions", "strain"}
    if unknown:
        raise ValueError(f"unknown gradients {sorted(unknown)}: use 'positions' and/or 'strain'")
    if "strain" in gradients and not all(a.pbc.all() for a in frames):
        raise ValueError("strain derivatives need every structure to be 3D-periodic")
    lmax1, n_radial = basis_shape(hypers)
    relabelled, numbers = relabel_to_local_types(frames)
    k = max(len(u) for u in numbers)
    species = torch.zeros((len(frames), k), dtype=torch.long)
    for s, u in enumerate(numbers):
        species[s, : len(u)] = torch.as_tensor(u)
    n_atoms = torch.tensor([len(a) for a in frames])
    offset = torch.cumsum(n_atoms, 0) - n_atoms
    tensormap = expansion_calculator(hypers).compute(relabelled, gradients=gradients)
    n_total = int(n_atoms.sum())
    atom = torch.arange(n_total)  # one row per atom, in structure then atom order
    rows_system = torch.repeat_interleave(torch.arange(len(frames)), n_atoms)
    coefficients, pos_grads, strain_grads, grad_keys = _scatter_blocks(
        tensormap, offset.numpy(), n_total, k, lmax1, n_radial, gradients
    )
    all_numbers = torch.as_tensor(np.concatenate([a.numbers for a in frames]))
    env = Environments(
        coefficients=[torch.as_tensor(c, dtype=dtype) for c in coefficients],
        species=species[rows_system],
        centers=all_numbers.to(torch.long),
        atom=atom,
        structure=rows_system,
        n_atoms=n_atoms,
    )
    if "positions" in gradients:
        env.gradient_rows = torch.as_tensor(grad_keys // n_total, dtype=torch.long)
        env.gradient_atoms = torch.as_tensor(grad_keys % n_total, dtype=torch.long)
        env.position_gradients = [torch.as_tensor(g, dtype=dtype) for g in pos_grads]
    if "strain" in gradients:
        env.strain_gradients = [torch.as_tensor(g, dtype=dtype) for g in strain_grads]
    return env.to(device=device)


def environment_batches(
    frames: Sequence[Atoms],
    hypers: dict | None = None,
    gradients: Sequence[str] = (),
    batch_size: int = 8,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> list[Environments]:
    """:func:`compute_environments` over batches of ``batch_size`` structures."""
    from tqdm.auto import tqdm

    frames = list(frames)
    starts = range(0, len(frames), batch_size)
    return [
        compute_environments(frames[s : s + batch_size], hypers, gradients, dtype, device)
        for s in tqdm(starts, desc="expanding", unit="batch", disable=not progress)
    ]
