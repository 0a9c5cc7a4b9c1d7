"""Environments: featomic's atom-centred spherical expansion, one row per atom.

A *local* (atom-centred) model needs the expansion coefficients of every atom's
environment, ``c_i[a, n, l, m]`` (a = neighbour species, the central atom included as
its own neighbour at the origin, featomic's ``center_atom_weight``), and, for forces and
stress, their analytical derivatives with respect to the positions of the atoms within
the cutoff and to the cell strain. :func:`compute_environments` gets them from featomic
for a batch of structures and keeps them as dense torch tensors:

* each structure's elements are relabelled to local types 1..K (as in
  :mod:`ase_alchemical.features`), so a batch of alloys with 3 elements each is dense
  over K = 3 channels rather than sparse over 25;
* every l channel is one tensor ``(rows, 2l + 1, K, N)``; ``species[r]`` names the
  element of each of row r's K channels, so a compression U maps them to pseudo-elements
  (:mod:`ase_alchemical.local_kernel`).

Nothing here depends on U: the expansion is computed once per structure, and every
optimization step of U is tensor algebra on these arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from .features import check_structure, expansion_calculator, merged_blocks, relabel_to_local_types
from .hypers import DEFAULT_HYPERS, basis_shape

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


def _as_long(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=torch.long)


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
        Structures, each checked by :func:`ase_alchemical.features.check_structure`.
    hypers
        One featomic ``SphericalExpansion`` hypers dict (default
        :data:`~ase_alchemical.hypers.DEFAULT_HYPERS`).
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
    tensormap = merged_blocks(tensormap, k)
    names = list(tensormap.keys.names)
    i_l = names.index("o3_lambda")
    by_l = {int(key[i_l]): block for key, block in zip(tensormap.keys, tensormap.blocks())}
    first = by_l[0].samples.values
    rows_system = _as_long(first[:, 0])
    rows_atom = _as_long(first[:, 1])
    coefficients, pos_grads, strain_grads = [], [], []
    grad_samples = None
    for lam in range(lmax1):
        block = by_l.get(lam)
        if block is None:  # featomic omits a block no atom contributes to
            shape = (len(first), 2 * lam + 1, k, n_radial)
            coefficients.append(torch.zeros(shape, dtype=dtype))
            if "positions" in gradients:
                pos_grads.append(None)
            if "strain" in gradients:
                strain_grads.append(torch.zeros((len(first), 9) + shape[1:], dtype=dtype))
            continue
        if not np.array_equal(block.samples.values, first):
            raise RuntimeError("featomic's merged blocks list the atoms in different orders")
        values = torch.as_tensor(np.asarray(block.values), dtype=dtype)
        coefficients.append(values.reshape(len(first), 2 * lam + 1, k, n_radial))
        if "positions" in gradients:
            grad = block.gradient("positions")
            samples = grad.samples.values
            if grad_samples is None:
                grad_samples = samples
            elif not np.array_equal(samples, grad_samples):
                raise RuntimeError("featomic's merged blocks have different gradient samples")
            g = torch.as_tensor(np.asarray(grad.values), dtype=dtype)
            pos_grads.append(g.reshape(len(samples), 3, 2 * lam + 1, k, n_radial))
        if "strain" in gradients:
            grad = block.gradient("strain")
            if not np.array_equal(grad.samples.values[:, 0], np.arange(len(first))):
                raise RuntimeError("featomic's strain gradients do not list every atom once")
            g = torch.as_tensor(np.asarray(grad.values), dtype=dtype)
            strain_grads.append(g.reshape(len(first), 9, 2 * lam + 1, k, n_radial))
    atom = offset[rows_system] + rows_atom
    all_numbers = torch.as_tensor(np.concatenate([a.numbers for a in frames]))
    env = Environments(
        coefficients=coefficients,
        species=species[rows_system],
        centers=all_numbers[atom].to(torch.long),
        atom=atom,
        structure=rows_system,
        n_atoms=n_atoms,
    )
    if "positions" in gradients:
        rows = _as_long(grad_samples[:, 0])
        if len(rows) > 1 and bool((rows[1:] < rows[:-1]).any()):
            raise RuntimeError("featomic's position gradients are not sorted by sample")
        env.gradient_rows = rows
        env.gradient_atoms = offset[_as_long(grad_samples[:, 1])] + _as_long(grad_samples[:, 2])
        env.position_gradients = [
            torch.zeros((len(rows), 3) + c.shape[1:], dtype=dtype) if g is None else g
            for g, c in zip(pos_grads, coefficients)
        ]
    if "strain" in gradients:
        env.strain_gradients = strain_grads
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
