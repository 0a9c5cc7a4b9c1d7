"""The design of the local potential's solve: labels, reference energies, support
environments, the weighted rows of energies, forces and stress, and the solve.

The weights solve the projected-process (subset-of-regressors) problem of GAP,

    min_w  sum_s (e_s - delta k_s w)^2 / sigma_E^2 + sum_f (F_f - delta K_f w)^2 / sigma_F^2
           + sum_v (v_v - delta K_v w)^2 / sigma_S^2 + w^T K_MM w

where e_s is structure s's energy per atom after the per-element reference energies,
k_s its mean environment-kernel row, K_f the force rows (minus the derivatives of the
kernel sums), v_v the virial per atom (stress times volume over the number of atoms) and
delta the energy scale of the prior: ``w = (K_MM + Phi^T Phi)^-1 Phi^T t`` with the rows
``Phi`` and targets ``t`` divided by their sigmas (:func:`solve_weights`).

Corrections to the reference energies and the weights of the two-body term
(:mod:`~ase_alchemical.local.pair`) can be solved with w, as further columns of the rows
under diagonal Gaussian priors (:meth:`LocalProblem.prior_precision`).

The rows are differentiable with respect to U, so the same solve serves the optimization
of U (:mod:`~ase_alchemical.local.fit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.compression import AlchemicalCompression
from ..core.linalg import spd_solve
from ..core.sampling import farthest_point_sampling
from .environments import Environments
from .kernel import derivative_rows, environment_features, kernel_rows
from .pair import PairTerm

__all__ = [
    "Labels",
    "LocalProblem",
    "StructureData",
    "concatenate_rows",
    "reference_energies",
    "select_support",
    "solve_weights",
    "atomic_energy_fn",
    "normal_equations",
]

_VOIGT = [0, 4, 8, 5, 2, 1]  # xx yy zz yz xz xy in a flattened 3 x 3


@dataclass
class Labels:
    """Labels of one structure: total energy (eV), forces (eV/Å), stress (eV/Å^3)."""

    energy: float
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None
    volume: float | None = None


@dataclass
class StructureData:
    """One structure's environments and labels."""

    env: Environments
    labels: Labels
    n_atoms: int
    reference: float = 0.0  # sum of the reference energies of its atoms
    counts: torch.Tensor | None = None  # atoms of each element (in U's row order)

    @property
    def residual_per_atom(self) -> float:
        return (self.labels.energy - self.reference) / self.n_atoms


def reference_energies(counts: np.ndarray, energies: np.ndarray, ridge: float = 1e-8) -> np.ndarray:
    """Per-element reference energies e0 by least squares on element counts.

    ``counts`` (S, n_species), ``energies`` (S,) totals: minimises
    ``|counts e0 - energies|^2 + ridge |e0|^2`` (the tiny ridge fixes elements whose
    counts are collinear, e.g. always in equal numbers).
    """
    a = counts.T @ counts + ridge * np.eye(counts.shape[1]) * max(np.trace(counts.T @ counts), 1)
    return np.linalg.solve(a, counts.T @ energies)


def concatenate_rows(parts: Sequence[tuple[Environments, torch.Tensor]]) -> Environments:
    """The given rows of several environment batches as one (no derivatives), padding
    their local-type axes to the largest K."""
    k = max(env.species.shape[1] for env, _ in parts)
    coefficients, species, centers = None, [], []
    for env, rows in parts:
        pad = k - env.species.shape[1]
        cs = [c[rows] for c in env.coefficients]
        if pad:
            cs = [torch.nn.functional.pad(c, (0, 0, 0, pad)) for c in cs]
        coefficients = cs if coefficients is None else [
            torch.cat([a, b]) for a, b in zip(coefficients, cs)
        ]  # fmt: skip
        species.append(torch.nn.functional.pad(env.species[rows], (0, pad)))
        centers.append(env.centers[rows])
    species = torch.cat(species)
    n = len(species)
    idx = torch.arange(n, device=species.device)
    return Environments(
        coefficients, species, torch.cat(centers), idx, idx,
        torch.ones(n, dtype=torch.long, device=species.device),
    )  # fmt: skip


def select_support(
    x: torch.Tensor, centers: torch.Tensor, m: int, per_element: bool = True
) -> torch.Tensor:
    """``m`` support environments by farthest-point sampling on their features.

    With ``per_element`` each central element gets a share of ``m`` in proportion to its
    number of environments (at least one each), picked by FPS among its own: rare
    elements keep support points that a global FPS could leave out.
    """
    n = x.shape[0]
    m = min(int(m), n)
    if not per_element:
        return farthest_point_sampling(x, m)
    elements, counts = torch.unique(centers, return_counts=True)
    if m < len(elements):
        return farthest_point_sampling(x, m)
    share = np.maximum(1, np.floor(counts.cpu().numpy() / n * m)).astype(int)
    order = np.argsort(-counts.cpu().numpy())
    i = 0
    while share.sum() < m:  # hand out what the rounding left, largest first
        j = order[i % len(order)]
        if share[j] < counts[j]:
            share[j] += 1
        i += 1
    chosen = []
    for element, k in zip(elements.tolist(), share.tolist()):
        idx = (centers == element).nonzero().squeeze(1)
        k = min(k, len(idx))
        chosen.append(idx[farthest_point_sampling(x[idx], k).to(idx.device)])
    return torch.cat(chosen)


@dataclass
class LocalProblem:
    """What the rows of a solve depend on: U, the support environments, the kernel."""

    compression: AlchemicalCompression
    support_env: Environments
    zeta: int
    energy_scale: float
    sigmas: tuple[float, float, float]  # energy (eV/atom), force (eV/Å), virial (eV/atom)
    use_forces: bool = True
    use_stress: bool = False
    block_rows: int = 48
    #: Prior standard deviation (eV) of corrections to the reference energies solved
    #: together with the weights (``None``: the reference energies stay fixed).
    e0_prior: float | None = None
    #: The two-body term solved with the weights (:mod:`~ase_alchemical.local.pair`), and
    #: the prior standard deviation (eV) of its weights.
    pair: PairTerm | None = None
    pair_prior: float | None = None

    @property
    def n_e0(self) -> int:
        """Number of reference-energy corrections solved (0 without ``e0_prior``)."""
        return 0 if self.e0_prior is None else len(self.compression.species)

    @property
    def n_pair(self) -> int:
        """Number of two-body weights solved (0 without ``pair``)."""
        return 0 if self.pair is None else self.pair.n_features

    def prior_precision(self, k_mm: torch.Tensor) -> torch.Tensor:
        """The prior precision of the solved parameters, block-diagonal: K_MM for the
        kernel weights, 1 / e0_prior^2 for each reference-energy correction and
        1 / pair_prior^2 for each two-body weight."""
        extra = [(self.n_e0, self.e0_prior), (self.n_pair, self.pair_prior)]
        diagonal = [torch.full((n,), 1 / p**2, dtype=k_mm.dtype, device=k_mm.device)
                    for n, p in extra if n]  # fmt: skip
        if not diagonal:
            return k_mm
        return torch.block_diag(k_mm, torch.diag(torch.cat(diagonal)))

    def split(
        self, solved: torch.Tensor, n_support: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(kernel weights, reference-energy corrections, two-body weights or ``None``) of
        a solved vector."""
        weights, e0, pair = solved.split([n_support, self.n_e0, self.n_pair])
        if not self.n_e0:
            e0 = solved.new_zeros(len(self.compression.species))
        return weights, e0, (pair if self.n_pair else None)

    def support_features(self, u: torch.Tensor | None = None) -> torch.Tensor:
        return environment_features(self.support_env, self.compression, u)

    def rows(
        self,
        data: StructureData,
        x_support: torch.Tensor,
        u: torch.Tensor | None = None,
        forces: bool | None = None,
        stress: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted design rows and targets of one structure (energy, forces, stress):
        columns the kernel weights, then the reference-energy corrections and the
        two-body weights when they are solved."""
        forces = self.use_forces if forces is None else forces
        stress = self.use_stress if stress is None else stress
        stress = stress and data.labels.stress is not None
        sig_e, sig_f, sig_s = self.sigmas
        delta = self.energy_scale
        env = data.env
        x = environment_features(env, self.compression, u)
        k = kernel_rows(x, x_support, self.zeta).sum(0) / data.n_atoms
        pair = None
        if self.pair is not None:
            pair = self.pair.rows(env, self.compression, u, strain=stress)
        kernel = [k[None] * (delta / sig_e)]
        e0 = [data.counts.to(x)[None] / data.n_atoms / sig_e] if self.n_e0 else []
        two_body = [pair[0].to(x) / data.n_atoms / sig_e] if pair is not None else []
        targets = [x.new_tensor([data.residual_per_atom / sig_e])]
        if forces or stress:
            d_pos, d_strain = derivative_rows(
                env, self.compression, x_support, self.zeta, u, self.block_rows, strain=stress
            )
            if forces:
                kernel.append(-d_pos.flatten(0, 1) * (delta / sig_f))
                if pair is not None:
                    two_body.append(-pair[1].to(x).flatten(0, 1) / sig_f)
                targets.append(data.labels.forces.to(x).flatten() / sig_f)
            if stress:
                kernel.append(d_strain[0][_VOIGT] / data.n_atoms * (delta / sig_s))
                if pair is not None:
                    two_body.append(pair[2][0].to(x)[_VOIGT] / data.n_atoms / sig_s)
                v = data.labels.stress.to(x) * data.labels.volume / data.n_atoms
                targets.append(v / sig_s)
        columns = [torch.cat(kernel)]
        if self.n_e0:  # the reference-energy corrections act on the energy row only
            columns.append(torch.cat([e0[0], x.new_zeros((len(columns[0]) - 1, self.n_e0))]))
        if pair is not None:
            columns.append(torch.cat(two_body))
        return torch.cat(columns, 1), torch.cat(targets)


def solve_weights(
    k_mm: torch.Tensor, normal: torch.Tensor, rhs: torch.Tensor, jitter: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """``w = (K_MM + Phi^T Phi)^-1 Phi^T t`` from ``normal = Phi^T Phi`` and ``rhs``.

    Returns the weights and the matrix ``A = K_MM + Phi^T Phi`` (with its jitter), the
    posterior precision the predictive variance needs.
    """
    return spd_solve(k_mm + normal, rhs, jitter, fix="raise the sigmas")


def normal_equations(
    problem: LocalProblem,
    structures: Sequence[StructureData],
    x_support: torch.Tensor,
    u: torch.Tensor | None = None,
    force_subset: set[int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Phi^T Phi`` and ``Phi^T t`` over structures (force and stress rows of all, or
    only of the structures in ``force_subset``: derivative rows through U's strain and
    position gradients are what a step of U costs)."""
    m = x_support.shape[0] + problem.n_e0 + problem.n_pair
    normal = x_support.new_zeros((m, m))
    rhs = x_support.new_zeros(m)
    for i, data in enumerate(structures):
        derivatives = force_subset is None or i in force_subset
        rows, targets = problem.rows(
            data, x_support, u, forces=problem.use_forces and derivatives,
            stress=problem.use_stress and derivatives,
        )  # fmt: skip
        normal = normal + rows.T @ rows
        rhs = rhs + rows.T @ targets
        if progress is not None:
            progress(1)
    return normal, rhs


def atomic_energy_fn(
    compression: AlchemicalCompression,
    x_support: torch.Tensor,
    weights: torch.Tensor,
    zeta: int,
    energy_scale: float,
    e0: torch.Tensor,
    u: torch.Tensor | None = None,
    pair: tuple[PairTerm, torch.Tensor] | None = None,
) -> Callable[[Environments], torch.Tensor]:
    """``env -> (rows,)`` atomic energies ``e0(a_i) + delta k(x_i, X_M) w`` (plus the
    two-body term ``phi_i . W`` with ``pair = (term, W)``)."""

    def energy(env: Environments) -> torch.Tensor:
        x = environment_features(env, compression, u)
        local = kernel_rows(x, x_support, zeta) @ weights * energy_scale
        out = local + e0[compression.rows(env.centers)]
        if pair is not None:
            out = out + pair[0].features(env, compression, u) @ pair[1]
        return out

    return energy
