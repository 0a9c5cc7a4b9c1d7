"""A linear two-body term over pseudo-elements: pair potentials that transfer to pairs of
elements the training frames never showed together.

The kernel term sees each environment through its *normalised* power spectrum, which by
construction does not change when the whole neighbour density is scaled: how much a
metal's energy rises as it is compressed is left to the shape of the radial
distribution, and a few near-equilibrium frames pin that down poorly. The two-body term
of GAP fills that role. Here it is linear in the l = 0 expansion coefficients, mixed by
the same U as the kernel's,

    E_2(A) = sum_i sum_{J, K, n} U[a_i, J] V[J, K, n] ct_i[K, n, l=0] / s,
    ct_i[K, n, 0] = sum_b U[b, K] c_i[b, n, 0]

that is, a sum over neighbour pairs (i, j) of ``sum_n W[a_i, a_j, n] g_n(r_ij)`` with the
pair weights ``W[a, b, n] = sum_{J, K} U[a, J] V[J, K, n] U[b, K]``: a pair potential for
every pair of elements on the N radial functions of the expansion (its cutoff and
smoothing), built from d_J x d_J x N weights V. A pair of elements no training frame
holds together still gets the pair potential its elements' rows of U imply, as the
kernel term does; one weight per pair of elements would leave it at zero. The weights V
are solved with the kernel weights under a Gaussian prior of standard deviation
``two_body`` (eV) each; ``s``, the root-mean-square norm of the training environments'
features under the initial U, makes that the scale of the term's energy per atom.

With one U per radial function (``radially_resolved``), each n mixes by its own U_n, the
centre's row included: ``sum U_n[a_i, J] V[J, K, n] ct_i[K, n, 0]``.

Everything is linear in the coefficients, so the term's energy, force and virial rows
come from featomic's coefficient gradients directly (:meth:`PairTerm.rows`), and in
prediction it is part of each atom's energy (forces by the same autograd as the kernel
term's). It is differentiable with respect to U, which is learned through it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.compression import AlchemicalCompression
from .environments import Environments

__all__ = ["PairTerm"]


@dataclass
class PairTerm:
    """The two-body features of a compression.

    Attributes
    ----------
    d_j
        Number of pseudo-elements (U's columns).
    n_radial
        Radial functions N of the expansion.
    scale
        s: the features over s have a root-mean-square norm of 1 on the training
        environments (under the initial U).
    """

    d_j: int
    n_radial: int
    scale: float = 1.0

    @property
    def n_features(self) -> int:
        """The number of weights V, d_J x d_J x N."""
        return self.d_j * self.d_j * self.n_radial

    @staticmethod
    def _u_rows(env: Environments, compression: AlchemicalCompression, u):
        """U's rows of each row's centre (rows, [N,] d_J) and of its K channels
        (rows, K, [N,] d_J); the N axis for a radially resolved U."""
        return compression.mixing_rows(env.centers, u), compression.mixing_rows(env.species, u)

    def _outer(self, centre: torch.Tensor, c0: torch.Tensor, channels: torch.Tensor):
        """``U[a_i] (x) ct_i[., n, 0]`` over s, flattened: (X, ..., d_J d_J N) for
        ``c0`` (X, ..., K, N) and the rows of U of the centre (X, [N,] d_J) and channels
        (X, K, [N,] d_J). With one U per radial function n, the centre's row is that
        of the same n: ``U_n[a_i, J] V[J, K, n] ct_i[K, n, 0]``."""
        if centre.dim() == 2:
            ct = torch.einsum("x...kn,xkd->x...dn", c0.to(channels.dtype), channels)
            out = torch.einsum("xj,x...dn->x...jdn", centre, ct)
        else:
            ct = torch.einsum("x...kn,xknd->x...dn", c0.to(channels.dtype), channels)
            out = torch.einsum("xnj,x...dn->x...jdn", centre, ct)
        return out.flatten(-3) / self.scale

    def features(
        self, env: Environments, compression: AlchemicalCompression, u=None
    ) -> torch.Tensor:
        """(rows, n_features) two-body features of each environment, differentiable with
        respect to ``env.coefficients`` and U (or ``u`` in its place)."""
        centre, channels = self._u_rows(env, compression, u)
        return self._outer(centre, env.coefficients[0][:, 0], channels)

    def rows(
        self, env: Environments, compression: AlchemicalCompression, u=None, strain=False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The term's design rows for the structures of ``env``: energies (S, P) (the sums
        of the atoms' features), their position derivatives (n_atoms, 3, P) where ``env``
        has position gradients and, with ``strain``, strain derivatives (S, 9, P)."""
        centre, channels = self._u_rows(env, compression, u)
        phi = self._outer(centre, env.coefficients[0][:, 0], channels)
        energy = phi.new_zeros((env.n_structures, phi.shape[1])).index_add(0, env.structure, phi)
        d_pos = d_strain = None
        if env.position_gradients is not None:
            g = env.gradient_rows
            per_sample = self._outer(centre[g], env.position_gradients[0][:, :, 0], channels[g])
            d_pos = per_sample.new_zeros((int(env.n_atoms.sum()), 3, phi.shape[1]))
            d_pos = d_pos.index_add(0, env.gradient_atoms, per_sample)
        if strain:
            per_row = self._outer(centre, env.strain_gradients[0][:, :, 0], channels)
            d_strain = per_row.new_zeros((env.n_structures, 9, phi.shape[1]))
            d_strain = d_strain.index_add(0, env.structure, per_row)
        return energy, d_pos, d_strain

    def weight_table(self, weights: torch.Tensor) -> torch.Tensor:
        """V over s as a (d_J, d_J, N) array: the atomic two-body energy is
        ``sum U[a_i, J] V[J, K, n] ct_i[K, n, 0] / s`` (the form the TorchScript export
        evaluates)."""
        return weights.reshape(self.d_j, self.d_j, self.n_radial) / self.scale

    def fitted_scale(
        self, envs: list[Environments], compression: AlchemicalCompression
    ) -> PairTerm:
        """This term with s set to the root-mean-square norm of the features of ``envs``
        under ``compression``'s U."""
        with torch.no_grad():
            unit = PairTerm(self.d_j, self.n_radial, 1.0)
            total = sum(float(unit.features(e, compression).pow(2).sum()) for e in envs)
            count = sum(e.n_rows for e in envs)
        scale = (total / max(count, 1)) ** 0.5
        return PairTerm(self.d_j, self.n_radial, scale if scale > 0 else 1.0)
