"""Features: featomic's spherical expansion, reduced to per-structure species-pair spectra.

For every structure we need, for any compression U, the compressed power spectrum summed
over atoms::

    P[J, J', n, n', l] = sum_i sum_m c_i[J, n, l, m] c_i[J', n', l, m]
                       = sum_{a, b} U[a, J] U[b, J'] rho[a, b, l, n, n']

with the *species-pair spectrum*

    rho[a, b, l, n, n'] = sum_i sum_m c_i[a, n, l, m] c_i[b, n', l, m]

(a, b = neighbour species present in the structure). ``rho`` does not depend on U, so it
is computed once with featomic and every optimization step is a small tensor contraction
(:mod:`ase_alchemical.core.compression`), never a featomic call. Only the species *present in
each structure* are stored (at most 4 for an elpasolite), padded to a common count K.

To keep featomic fast, each structure's elements are relabelled to local types 1..K
before the call: featomic's blocks are dense over the (center, neighbour) types of the
whole batch, so with 39 real elements a batch would be mostly zeros; with local types it
is dense. The expansion has no per-element parameters, so the result is unchanged.

*Multi-scale* features: ``hypers`` may be a list of hypers dicts (e.g. cutoffs 3, 5 and
7 Å) sharing one radial basis size. Their spectra are stacked along the l axis, one block
per scale (:func:`.scale_sizes`), so a compression U acts on all scales at once and a
multi-scale kernel can weight the blocks (:mod:`ase_alchemical.core.kernels`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

# the hypers helpers are defined in .hypers; re-exported here, where they were first
from .hypers import (
    DEFAULT_HYPERS,
    DEFAULT_SCALING,
    basis_shape,
    basis_shapes,
    hypers_list,
    make_hypers,
    scale_sizes,
)

__all__ = [
    "DEFAULT_HYPERS",
    "DEFAULT_SCALING",
    "PairSpectrum",
    "basis_shapes",
    "check_structure",
    "compute_pair_spectrum",
    "GeometryGradients",
    "differentiable_pair_spectrum",
    "expansion_calculator",
    "hypers_list",
    "make_hypers",
    "merged_blocks",
    "pair_spectrum_from_tensormap",
    "relabel_to_local_types",
    "scale_sizes",
]


@dataclass
class PairSpectrum:
    """Species-pair power spectra of a set of structures, summed over their atoms.

    Attributes
    ----------
    values
        ``(S, C, K, K, L, N, N)``: ``rho[s, c, a, b, l, n, n']``, the power spectrum of
        the neighbour species pair (a, b) of each structure's K local species (padding
        entries are zero), summed over the atoms of central species c
        (``center_resolved``, C = K) or over all atoms (C = 1). With multi-scale hypers
        the l axis holds the l channels of every scale, one block after the other.
    numbers
        ``(S, K)`` atomic number of each local species, 0 for padding.
    n_atoms
        ``(S,)`` number of atoms of each structure.
    """

    values: torch.Tensor
    numbers: torch.Tensor
    n_atoms: torch.Tensor
    center_resolved: bool = False

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, index) -> PairSpectrum:
        """Select structures (int tensor, slice or list of indices)."""
        if isinstance(index, (list, np.ndarray)):
            index = torch.as_tensor(index, dtype=torch.long)
        return PairSpectrum(
            self.values[index], self.numbers[index], self.n_atoms[index], self.center_resolved
        )

    def to(self, device=None, dtype=None) -> PairSpectrum:
        """Copy to a device and/or floating dtype."""
        return PairSpectrum(
            self.values.to(device=device, dtype=dtype),
            self.numbers.to(device=device),
            self.n_atoms.to(device=device),
            self.center_resolved,
        )

    @staticmethod
    def concatenate(parts: Sequence[PairSpectrum]) -> PairSpectrum:
        """Join spectra computed in batches, padding to the largest K."""
        k = max(p.values.shape[2] for p in parts)
        resolved = parts[0].center_resolved
        values, numbers = [], []
        for p in parts:
            pad = k - p.values.shape[2]
            v, z = p.values, p.numbers
            if pad:
                pad_c = pad if resolved else 0
                v = torch.nn.functional.pad(v, (0, 0, 0, 0, 0, 0, 0, pad, 0, pad, 0, pad_c))
                z = torch.nn.functional.pad(z, (0, pad))
            values.append(v)
            numbers.append(z)
        return PairSpectrum(
            torch.cat(values),
            torch.cat(numbers),
            torch.cat([p.n_atoms for p in parts]),
            resolved,
        )


def check_structure(atoms: Atoms, index: int | None = None) -> None:
    """Raise a specific ``ValueError`` for a structure features cannot be computed on.

    Checks: not an ``ase.Atoms``, no atoms, non-finite positions, a periodic direction
    with a zero-length cell vector, a degenerate (zero-volume) fully periodic cell.
    """
    where = "structure" if index is None else f"structure {index}"
    if not isinstance(atoms, Atoms):
        raise TypeError(f"{where} is a {type(atoms).__name__}, expected ase.Atoms")
    if len(atoms) == 0:
        raise ValueError(f"{where} is empty (no atoms)")
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError(f"{where} ({atoms.get_chemical_formula()}) has NaN or inf positions")
    if np.any(atoms.pbc):
        lengths = np.linalg.norm(atoms.cell.array, axis=1)
        if not np.all(np.isfinite(atoms.cell.array)):
            raise ValueError(f"{where} has a non-finite cell")
        if np.any(lengths[atoms.pbc] < 1e-8):
            raise ValueError(
                f"{where} is periodic along an axis whose cell vector is zero: "
                f"pbc={atoms.pbc.tolist()}, cell lengths={lengths.round(6).tolist()}"
            )
        if np.all(atoms.pbc) and abs(np.linalg.det(atoms.cell.array)) < 1e-6:
            raise ValueError(f"{where} has a degenerate (zero-volume) cell")


@functools.lru_cache(maxsize=8)
def _spherical_expansion(hypers_json: str):
    """featomic calculator for the hypers (creating one costs ~20 ms: reuse it)."""
    import featomic

    return featomic.SphericalExpansion(**json.loads(hypers_json))


def expansion_calculator(hypers: dict):
    """The featomic ``SphericalExpansion`` of one scale's hypers (cached)."""
    return _spherical_expansion(json.dumps(hypers, sort_keys=True))


def _long(values) -> torch.Tensor:
    """Labels values (numpy or torch, any device) as a torch long tensor."""
    if isinstance(values, torch.Tensor):
        return values.to(torch.long)
    return torch.as_tensor(np.asarray(values), dtype=torch.long)


def _local_types(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique atomic numbers and each atom's local type (1-based)."""
    unique = np.unique(numbers)
    return unique, np.searchsorted(unique, numbers) + 1


def _validated(frames: Sequence[Atoms], hypers) -> tuple[list, list[dict]]:
    """Frames as a checked list and the hypers of each scale (default filled in)."""
    scales = hypers_list(hypers)
    frames = list(frames)
    if len(frames) == 0:
        raise ValueError("no structures given")
    for i, atoms in enumerate(frames):
        check_structure(atoms, i)
    return frames, scales


def relabel_to_local_types(frames: Sequence[Atoms]) -> tuple[list[Atoms], list[np.ndarray]]:
    """Copies with elements relabelled to local types 1..K, and each one's elements."""
    relabelled, numbers = [], []
    for atoms in frames:
        unique, local = _local_types(atoms.numbers)
        relabelled.append(
            Atoms(numbers=local, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        )
        numbers.append(unique)
    return relabelled, numbers


def _numbers_tensor(numbers: list[np.ndarray], device="cpu") -> torch.Tensor:
    """(S, K) atomic numbers of each structure's local types, 0-padded."""
    z = torch.zeros((len(numbers), max(len(u) for u in numbers)), dtype=torch.long)
    for s, u in enumerate(numbers):
        z[s, : len(u)] = torch.as_tensor(u)
    return z.to(device)


def merged_blocks(tensormap, k: int):
    """One block per l: neighbour types moved to properties (dense over local types 1..K,
    neighbour-major), centre types to samples. Native metatensor operations; reading 5
    blocks instead of ~80 from Python made a single 10-atom call 3x faster."""
    from metatensor import Labels

    neighbors = Labels(["neighbor_type"], np.arange(1, k + 1, dtype=np.int32).reshape(-1, 1))
    return tensormap.keys_to_properties(neighbors).keys_to_samples("center_type")


def pair_spectrum_from_tensormap(
    tensormap,
    atom_offset: torch.Tensor,
    n_rows: int,
    n_systems: int,
    k: int,
    lmax1: int,
    n_radial: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    block_values: list[torch.Tensor] | None = None,
    center_resolved: bool = False,
) -> torch.Tensor:
    """Reduce a merged spherical-expansion TensorMap (all blocks merged into one) to rho
    (S, C, K, K, L, N, N).

    C = K slots per structure, one per central species, with ``center_resolved``;
    otherwise C = 1 (every atom adds to its structure's one slot: 1/K of the memory).

    ``block_values`` replaces the blocks' values (e.g. by leaf tensors that require
    gradients); the reduction is differentiable with respect to them.

    Every l channel is zero-padded to 2 lmax + 1 values of m, so that one batched
    matrix product contracts all of them over m and one sum puts the atoms into their
    slots: a handful of torch operations per call instead of a handful per l, which
    were most of the fixed cost of a single-structure call.
    """
    names = list(tensormap.keys.names)
    i_l = names.index("o3_lambda")
    index_of_l = {int(key[i_l]): i for i, key in enumerate(_long(tensormap.keys.values).tolist())}
    blocks = list(tensormap.blocks())
    n_m = 2 * lmax1 - 1
    values, samples = {}, {}
    for lam, i in index_of_l.items():
        if lam >= lmax1:
            continue
        v = block_values[i] if block_values is not None else torch.as_tensor(blocks[i].values)
        if v.shape[1:] != (2 * lam + 1, k * n_radial):
            raise RuntimeError(f"unexpected shape of the l={lam} block: {tuple(v.shape)}")
        values[lam] = v.to(device=device, dtype=dtype)
        samples[lam] = blocks[i].samples.values  # (system, atom, center_type)
    first = next(iter(samples.values()), np.zeros((n_rows, 3), dtype=np.int32))
    # the merged blocks list every atom once, in the same order (keys_to_samples of
    # the same sample sets): checked here on numpy views, not assumed
    if len(first) != n_rows or not all(np.array_equal(s, first) for s in samples.values()):
        raise RuntimeError(
            "featomic's merged spherical-expansion blocks do not list every atom in the same "
            f"order ({[len(s) for s in samples.values()]} samples for {n_rows} atoms)"
        )
    rows_samples = _long(first).to(device)
    per_l = [
        torch.nn.functional.pad(values[lam], (0, 0, 0, n_m - 2 * lam - 1)) if lam in values
        else torch.zeros((n_rows, n_m, k * n_radial), dtype=dtype, device=device)
        for lam in range(lmax1)
    ]  # fmt: skip
    dense = torch.stack(per_l, dim=1)  # (rows, L, m, K N)
    atom_rho = dense.transpose(-1, -2) @ dense  # summed over m: (rows, L, K N, K N)
    n_slots = k if center_resolved else 1
    if n_systems * n_slots == 1:
        rho = atom_rho.sum(0, keepdim=True)
    else:
        slot = rows_samples[:, 0] * n_slots
        if center_resolved:  # each atom adds to the (structure, its own local type) slot
            slot = slot + rows_samples[:, 2] - 1
        rho = atom_rho.new_zeros((n_systems * n_slots,) + atom_rho.shape[1:])
        rho = rho.index_add(0, slot, atom_rho)
    # (S C, L, K, N, K, N) -> (S, C, K, K, L, N, N)
    rho = rho.unflatten(3, (k, n_radial)).unflatten(2, (k, n_radial))
    return rho.permute(0, 2, 4, 1, 3, 5).contiguous().unflatten(0, (n_systems, n_slots))


def compute_pair_spectrum(
    frames: Sequence[Atoms],
    hypers: dict | Sequence[dict] | None = None,
    batch_size: int = 100,
    progress: bool = False,
    dtype: torch.dtype = torch.float64,
    center_resolved: bool = False,
) -> PairSpectrum:
    """Compute species-pair spectra of structures with featomic (no gradients).

    Parameters
    ----------
    frames
        Structures; each is validated by :func:`check_structure`.
    hypers
        featomic ``SphericalExpansion`` hypers (default :data:`.DEFAULT_HYPERS`), or a
        list of them for multi-scale features.
    batch_size
        Structures per featomic call.
    progress
        Show a tqdm progress bar.
    dtype
        Floating dtype of the result.
    center_resolved
        Keep the sums over the atoms of each central species apart (needed by a
        center-resolved compression; K times the memory).

    Returns
    -------
    PairSpectrum
    """
    from tqdm.auto import tqdm

    frames, scales = _validated(frames, hypers)
    parts = []
    bar = tqdm(total=len(frames), desc="featurizing", unit="struct", disable=not progress)
    for start in range(0, len(frames), batch_size):
        batch = frames[start : start + batch_size]
        relabelled, numbers = relabel_to_local_types(batch)
        z = _numbers_tensor(numbers)
        n_atoms = torch.tensor([len(a) for a in batch])
        offset = torch.cumsum(n_atoms, 0) - n_atoms
        values = []
        for h in scales:
            lmax1, n_radial = basis_shape(h)
            tensormap = merged_blocks(expansion_calculator(h).compute(relabelled), z.shape[1])
            values.append(pair_spectrum_from_tensormap(
                tensormap, offset, int(n_atoms.sum()), len(batch), z.shape[1], lmax1, n_radial,
                dtype, center_resolved=center_resolved,
            ))  # fmt: skip
        parts.append(PairSpectrum(torch.cat(values, dim=4), z, n_atoms, center_resolved))
        bar.update(len(batch))
    bar.close()
    return PairSpectrum.concatenate(parts)


class GeometryGradients:
    """Chain rule from d(output)/d(expansion coefficients) to positions and strain.

    featomic computes the analytical gradients of every coefficient with respect to
    positions and strain; :meth:`backward` contracts them with the gradient of a
    scalar with respect to the coefficients (the leaf tensors in ``leaves``, one
    list per scale). For one 10-atom cell this took ~6 ms where autograd through
    featomic-torch's backward node took ~0.6 s in our measurement (README, "Forces and
    stress").
    """

    def __init__(self, tensormaps, leaves, atom_offset, n_atoms, with_strain, device, dtype):
        self.tensormaps = list(tensormaps)
        self.leaves = [list(per_scale) for per_scale in leaves]
        self.atom_offset = atom_offset
        self.n_atoms = n_atoms
        self.with_strain = with_strain
        self.device = device
        self.dtype = dtype

    def backward(self, output: torch.Tensor) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """Gradients of the scalar ``output`` w.r.t. positions (and strain) per structure.

        Returns
        -------
        position_gradients
            ``d output / d positions``, one (n_atoms, 3) array per structure.
        virials
            ``d output / d strain``, one (3, 3) array per structure (None without strain).
        """
        flat = [leaf for per_scale in self.leaves for leaf in per_scale]
        d_flat = list(torch.autograd.grad(output, flat, allow_unused=True))
        n_total = int(self.n_atoms.sum())
        d_pos = torch.zeros((n_total, 3), dtype=self.dtype, device=self.device)
        d_strain = torch.zeros((len(self.n_atoms), 3, 3), dtype=self.dtype, device=self.device)
        for tensormap, per_scale in zip(self.tensormaps, self.leaves):
            d_values, d_flat = d_flat[: len(per_scale)], d_flat[len(per_scale) :]
            pairs = [
                (block, dv) for block, dv in zip(tensormap.blocks(), d_values) if dv is not None
            ]
            if not pairs:
                continue
            samples, contrib = self._contract(pairs, "positions")  # (sample, system, atom)
            d_pos.index_add_(0, self.atom_offset[samples[:, 1]] + samples[:, 2], contrib)
            if self.with_strain:
                samples, contrib = self._contract(pairs, "strain")  # (sample,)
                system = _long(pairs[0][0].samples.values).to(self.device)[samples[:, 0], 0]
                d_strain.index_add_(0, system, contrib.unflatten(1, (3, 3)))
        split = torch.split(d_pos, self.n_atoms.tolist())
        positions = [p.cpu().numpy() for p in split]
        virials = [v.cpu().numpy() for v in d_strain] if self.with_strain else None
        return positions, virials

    def _contract(self, pairs, parameter: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum over the blocks of sum_{m,n} d(values)/d(parameter) * d(output)/d(values).

        Returns the gradient samples and one row of 3 (positions) or 9 (strain) numbers
        per gradient sample. The merged blocks of one scale share their gradient samples
        (checked), so their contributions are added before a single ``index_add``.
        """
        total, first = None, None
        for block, dv in pairs:
            grad = block.gradient(parameter)
            samples = grad.samples.values  # (sample, system, atom) or (sample,)
            if first is None:
                first = samples
            elif not np.array_equal(samples, first):
                raise RuntimeError(
                    f"featomic's merged blocks have different {parameter} gradient samples"
                )
            g = torch.as_tensor(grad.values).to(device=self.device, dtype=self.dtype)
            d = dv[_long(samples[:, 0]).to(self.device)]  # (g, m, n) for each gradient row
            term = torch.bmm(g.flatten(-2).flatten(1, -2), d.flatten(1).unsqueeze(2)).squeeze(2)
            total = term if total is None else total + term
        return _long(first).to(self.device), total


def differentiable_pair_spectrum(
    frames: Sequence[Atoms],
    hypers: dict | Sequence[dict] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    center_resolved: bool = False,
    strain: bool | None = None,
) -> tuple[PairSpectrum, GeometryGradients]:
    """Species-pair spectra whose derivatives with respect to geometry are available.

    The expansion is computed once per scale by featomic with analytical ``positions``
    (and, with ``strain``, ``strain``) gradients. ``strain=None`` means "when every
    structure is 3D-periodic"; ``False`` skips them, which is cheaper when only forces
    are wanted. The returned
    spectrum is differentiable with respect to the expansion coefficients; pass any
    scalar computed from it to :meth:`GeometryGradients.backward` to get its
    derivatives with respect to the positions and the strain of each structure.

    Returns
    -------
    spectrum, gradients
    """
    frames, scales = _validated(frames, hypers)
    periodic = all(atoms.pbc.all() for atoms in frames)
    if strain and not periodic:
        raise ValueError("strain derivatives need every structure to be 3D-periodic")
    with_strain = periodic if strain is None else bool(strain)
    relabelled, numbers = relabel_to_local_types(frames)
    gradients = ["positions", "strain"] if with_strain else ["positions"]
    z = _numbers_tensor(numbers, device)
    n_atoms = torch.tensor([len(a) for a in frames], device=device)
    offset = torch.cumsum(n_atoms, 0) - n_atoms
    tensormaps, leaves, values = [], [], []
    for h in scales:
        lmax1, n_radial = basis_shape(h)
        tensormap = expansion_calculator(h).compute(relabelled, gradients=gradients)
        tensormap = merged_blocks(tensormap, z.shape[1])
        scale_leaves = [
            torch.tensor(block.values, dtype=dtype, device=device, requires_grad=True)
            for block in tensormap.blocks()
        ]
        values.append(pair_spectrum_from_tensormap(
            tensormap, offset, int(n_atoms.sum()), len(frames), z.shape[1], lmax1, n_radial,
            dtype, device, block_values=scale_leaves, center_resolved=center_resolved,
        ))  # fmt: skip
        tensormaps.append(tensormap)
        leaves.append(scale_leaves)
    grads = GeometryGradients(tensormaps, leaves, offset, n_atoms, with_strain, device, dtype)
    return PairSpectrum(torch.cat(values, dim=4), z, n_atoms, center_resolved), grads
