"""The local (atom-centred) kernel: environment features under U and their derivatives.

Each atom's expansion coefficients (:mod:`ase_alchemical.local.environments`) are compressed
by U onto d_J pseudo-elements, ``ct[J, n, l, m] = sum_a U[a, J] c[a, n, l, m]``, and its
power spectrum is kept per l as the symmetric matrix

    P[l] = ct[l]^T ct[l]        ((J, n) x (J', n'), summed over m)

so that the dot product of two environments is ``sum_l <P[l], P'[l]>`` (Frobenius). The
environment feature is ``x = P / |P|`` and the kernel between environments
``k(x, x') = (x . x')^zeta``. A structure's energy is a sum of atomic terms,

    E(A) = sum_i [ e0(a_i) + delta * sum_m w_m k(x_i, x_m) ]

over M support environments x_m (:class:`~ase_alchemical.local.model.AlchemicalPotential`).

Fitting forces needs, for every support environment m, the derivative of
``sum_i k(x_i, x_m)`` with respect to every position: a (3 n_atoms, M) block of the design
matrix. With ``H_im[l] = dk(x_i, x_m)/dct_i[l]
= 2 zeta (x_i . x_m)^(zeta - 1) ct_i[l] (X_m[l] - (x_i . x_m) x_i[l]) / |P_i|``, each
position-gradient sample (i, j) of featomic contributes ``dct_i/dr_j . H_im``: one batched
matrix product per row block (:func:`derivative_rows`). Everything is torch and
differentiable with respect to U, so the same rows serve the solve inside the
optimization of U.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from ..core.compression import AlchemicalCompression
from .environments import Environments

__all__ = [
    "compress",
    "derivative_rows",
    "energy_and_gradients",
    "environment_features",
    "features_from_compressed",
    "kernel_rows",
    "split_support",
]


#: contraction of coefficients (rows, m, K, N) with U's rows of their K species channels:
#: (rows, K, d_J), or (rows, K, N, d_J) for a radially resolved U (one U per n)
_MIX = {3: "rmkn,rkd->rmdn", 4: "rmkn,rknd->rmdn"}
#: the same for gradient samples (g, 3 or 9, m, K, N)
_MIX_GRAD = {3: "gamkn,gkd->gamdn", 4: "gamkn,gknd->gamdn"}


def compress(
    env: Environments, compression: AlchemicalCompression, u: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Compressed coefficients per l, ``(rows, 2l + 1, d_J N)``, with U or ``u``."""
    u_rows = compression.mixing_rows(env.species, u)  # (R, K, [N,] d_J)
    out = []
    for c in env.coefficients:
        ct = torch.einsum(_MIX[u_rows.dim()], c.to(u_rows.dtype), u_rows)
        out.append(ct.reshape(ct.shape[0], ct.shape[1], -1))
    return out


def features_from_compressed(ct: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit environment features ``x`` (rows, F) and the norms ``|P|`` (rows,) of the
    per-l power-spectrum matrices of compressed coefficients."""
    flat = torch.cat([(c.transpose(1, 2) @ c).flatten(1) for c in ct], dim=1)
    norm = torch.linalg.vector_norm(flat, dim=1).clamp_min(torch.finfo(flat.dtype).tiny)
    return flat / norm[:, None], norm


def environment_features(
    env: Environments, compression: AlchemicalCompression, u: torch.Tensor | None = None
) -> torch.Tensor:
    """Unit environment features (rows, F) of ``env`` under U (or ``u``)."""
    return features_from_compressed(compress(env, compression, u))[0]


def split_support(x_support: torch.Tensor, widths: list[int]) -> list[torch.Tensor]:
    """Support features as one ``(M, d_J N, d_J N)`` matrix per l."""
    parts = x_support.split([w * w for w in widths], dim=1)
    return [p.reshape(p.shape[0], w, w) for p, w in zip(parts, widths)]


def kernel_rows(x: torch.Tensor, x_support: torch.Tensor, zeta: int) -> torch.Tensor:
    """Environment kernel ``(x_i . x_m)^zeta``, (rows, M)."""
    k = x @ x_support.T
    return k if zeta == 1 else k**zeta


def _row_block_h(ct_rows, x_rows, norm_rows, x_support, zeta):
    """H_im for a block of rows, flattened to (rows, M, Q) with Q = sum_l (2l+1) d_J N."""
    widths = [c.shape[2] for c in ct_rows]
    support = split_support(x_support, widths)
    dots = x_rows @ x_support.T  # (r, M)
    coef = 2 * zeta * (dots ** (zeta - 1) if zeta > 1 else torch.ones_like(dots))
    coef = coef / norm_rows[:, None]
    xs = split_support(x_rows, widths)
    parts = []
    for c, s, xi in zip(ct_rows, support, xs):
        a = torch.einsum("rmp,Mpq->rMmq", c, s)
        b = c @ xi  # (r, 2l+1, dN)
        parts.append((a - dots[:, :, None, None] * b[:, None]).flatten(2))
    return torch.cat(parts, dim=2) * coef[:, :, None]


def _compressed_gradients(grads: list[torch.Tensor], u_rows: torch.Tensor) -> torch.Tensor:
    """Gradients of the coefficients compressed like them: (samples, D, Q)."""
    out = []
    for g in grads:
        t = torch.einsum(_MIX_GRAD[u_rows.dim()], g.to(u_rows.dtype), u_rows)
        out.append(t.flatten(2))
    return torch.cat(out, dim=2)


class _GradientLayout:
    """Where each position-gradient sample of ``env`` sits: its row, the rows' sample
    counts and first samples, and its place among its row's samples."""

    def __init__(self, env: Environments) -> None:
        self.rows = env.gradient_rows
        self.counts = torch.bincount(self.rows, minlength=env.n_rows)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.position = (
            torch.arange(len(self.rows), device=self.rows.device) - self.starts[self.rows]
        )

    def samples(self, r0: int, r1: int) -> tuple[int, int]:
        """The range of samples of rows ``r0 .. r1 - 1``."""
        return int(self.starts[r0]), int(self.starts[r1 - 1] + self.counts[r1 - 1])


def _block_rows(env, layout, zeta, strain, r0, r1, ct_b, x_b, norm_b, x_sup, u_b):
    """Position (and strain) derivative rows of the kernel sums for rows ``r0 .. r1``:
    the gradient samples, padded per row, times H in one batched product."""
    h = _row_block_h(list(ct_b), x_b, norm_b, x_sup, zeta)  # (r, M, Q)
    g0, g1 = layout.samples(r0, r1)
    rows_g, position = layout.rows[g0:g1], layout.position[g0:g1]
    grads = [g[g0:g1] for g in env.position_gradients]
    dct = _compressed_gradients(grads, u_b[rows_g])  # (g, 3, Q)
    width = int(layout.counts[r0:r1].max()) if r1 > r0 else 0
    padded = dct.new_zeros((r1 - r0, width, 3, dct.shape[2]))
    local = rows_g - r0
    padded[local, position] = dct
    out = torch.bmm(padded.flatten(1, 2), h.transpose(1, 2))  # (r, width 3, M)
    out = out.unflatten(1, (width, 3))[local, position]  # (g, 3, M)
    if not strain:
        return (out,)
    sgrads = [g[r0:r1] for g in env.strain_gradients]
    sct = _compressed_gradients(sgrads, u_b[r0:r1])  # (r, 9, Q)
    return out, torch.bmm(sct, h.transpose(1, 2))  # (r, 9, M)


def derivative_rows(
    env: Environments,
    compression: AlchemicalCompression,
    x_support: torch.Tensor,
    zeta: int,
    u: torch.Tensor | None = None,
    block_rows: int = 48,
    strain: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Derivatives of ``sum_i k(x_i, x_m)`` with respect to positions and strain.

    Parameters
    ----------
    env
        Environments with position gradients (and strain gradients with ``strain``).
    compression, u
        The compression (its U, or ``u`` in its place, differentiably).
    x_support
        (M, F) support features.
    zeta
        Kernel exponent.
    block_rows
        Rows per block: bounds the memory of H (block_rows x M x Q numbers); blocks are
        recomputed in the backward pass (checkpointing), so a differentiable call keeps
        only its inputs.
    strain
        Also the strain derivatives.

    Returns
    -------
    positions
        ``(n_atoms, 3, M)``: ``d sum_i k(x_i, x_m) / d r_j`` (forces rows are minus this).
    strains
        ``(S, 9, M)`` derivatives with respect to the 3 x 3 strain of each structure
        (virial rows; stress rows are these over the volume), or ``None``.
    """
    if env.position_gradients is None:
        raise ValueError("these environments were computed without position gradients")
    if strain and env.strain_gradients is None:
        raise ValueError("these environments were computed without strain gradients")
    u = compression.U if u is None else u
    u_rows = compression.mixing_rows(env.species, u)
    ct = compress(env, compression, u)
    x, norm = features_from_compressed(ct)
    n_support = x_support.shape[0]
    d_pos = x.new_zeros((int(env.n_atoms.sum()), 3, n_support))
    d_strain = x.new_zeros((env.n_structures, 9, n_support)) if strain else None
    layout = _GradientLayout(env)
    differentiable = torch.is_grad_enabled() and (u.requires_grad or x_support.requires_grad)
    for r0 in range(0, env.n_rows, block_rows):
        r1 = min(r0 + block_rows, env.n_rows)
        if layout.counts[r0:r1].sum() == 0:
            continue
        inputs = ([c[r0:r1] for c in ct], x[r0:r1], norm[r0:r1], x_support, u_rows)
        args = (tuple(inputs[0]), *inputs[1:])

        def run(ct_b, x_b, norm_b, x_sup, u_b, r0=r0, r1=r1):
            return _block_rows(env, layout, zeta, strain, r0, r1, ct_b, x_b, norm_b, x_sup, u_b)

        if differentiable:
            result = checkpoint(run, *args, use_reentrant=False)
        else:
            result = run(*args)
        g0, g1 = layout.samples(r0, r1)
        d_pos = d_pos.index_add(0, env.gradient_atoms[g0:g1], result[0])
        if strain:
            d_strain = d_strain.index_add(0, env.structure[r0:r1], result[1])
    return d_pos, d_strain


def energy_and_gradients(
    env: Environments,
    atomic_energy,
    strain: bool = False,
    create_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Atomic energies and the derivatives of their sum, by autograd to the coefficients
    and featomic's analytical coefficient gradients.

    Parameters
    ----------
    env
        Environments with position gradients (and strain gradients with ``strain``).
    atomic_energy
        ``atomic_energy(env_with_leaf_coefficients) -> (rows,)`` energies.
    strain
        Also the strain derivatives (virials).
    create_graph
        Keep the graph of the derivatives (for a loss on forces that is differentiated
        again, with respect to U).

    Returns
    -------
    energies
        ``(rows,)`` atomic energies (in row order; ``env.atom`` maps rows to atoms).
    structure_energies
        ``(S,)`` totals.
    gradients
        ``(n_atoms, 3)``: dE/dr (forces are minus this).
    virials
        ``(S, 3, 3)``: dE/dstrain, or ``None``.
    """
    leaves = [c.detach().requires_grad_(True) for c in env.coefficients]
    leaf_env = Environments(leaves, env.species, env.centers, env.atom, env.structure, env.n_atoms)
    with torch.enable_grad():
        energies = atomic_energy(leaf_env)
        # an energy need not use every l (a two-body term alone reads l = 0 only)
        d_c = torch.autograd.grad(
            energies.sum(), leaves, create_graph=create_graph, allow_unused=True,
            materialize_grads=True,
        )  # fmt: skip
    n_atoms = int(env.n_atoms.sum())
    rows_g = env.gradient_rows
    contrib = None
    for dc, g in zip(d_c, env.position_gradients):
        # a batched matrix-vector product: no (G, 3, ...) temporary of the product
        term = torch.bmm(g.flatten(2), dc[rows_g].flatten(1).unsqueeze(2)).squeeze(2)  # (G, 3)
        contrib = term if contrib is None else contrib + term
    gradients = contrib.new_zeros((n_atoms, 3)).index_add(0, env.gradient_atoms, contrib)
    virials = None
    if strain:
        v = None
        for dc, g in zip(d_c, env.strain_gradients):
            term = torch.bmm(g.flatten(2), dc.flatten(1).unsqueeze(2)).squeeze(2)  # (rows, 9)
            v = term if v is None else v + term
        virials = v.new_zeros((env.n_structures, 9)).index_add(0, env.structure, v)
        virials = virials.unflatten(1, (3, 3))
    totals = energies.new_zeros(env.n_structures).index_add(0, env.structure, energies)
    if not create_graph:
        energies, totals = energies.detach(), totals.detach()
    return energies, totals, gradients, virials
