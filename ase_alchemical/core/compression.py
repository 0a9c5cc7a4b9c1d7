"""Compression: the species-mixing matrix U and the compressed SOAP power spectrum.

Each element a is expanded on d_J pseudo-elements, ``|a> = sum_J U[a, J] |J>``, so the
expansion coefficients become ``c[J, n, l, m] = sum_a U[a, J] c[a, n, l, m]`` and the
power spectrum, summed over the atoms of a structure, is

    P[J, J', l, n, n'] = sum_{a, b} U[a, J] U[b, J'] rho[a, b, l, n, n']

(:mod:`ase_alchemical.core.features` computes rho). Each unordered pair J <= J' is kept once,
J < J' scaled by sqrt(2), so that dot products of compressed features equal those of the
full (J, J') tensors.

With ``center_resolved=True`` the sum over atoms is kept apart by the species c of the
central atom, which is compressed by the same U:

    P[I, J, J', l, n, n'] = sum_{c, a, b} U[c, I] U[a, J] U[b, J'] rho[c, a, b, l, n, n']

so a structure feature knows *which* (pseudo-)element sits at the centre of each
environment, as a multi-species SOAP kernel does (it only compares environments with
the same central species).

With ``radial_shapes`` given, U is *radially resolved*: one mixing matrix per radial
basis function n (of each scale), ``c[J, n, l, m] = sum_a U[n, a, J] c[a, n, l, m]``, so

    P[J, J', l, n, n'] = sum_{a, b} U[n, a, J] U[n', b, J'] rho[a, b, l, n, n']

Neighbours of one element can then look like one pseudo-element near the centre and
another farther out, at the same feature length; with every U[n] equal it is the
plain compression above.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase.data import chemical_symbols, covalent_radii

from ..errors import UnknownElementError
from .features import PairSpectrum

__all__ = [
    "AlchemicalCompression",
    "UnknownElementError",
    "element_properties",
    "element_init",
]

# Pauling electronegativities, Z = 1..86. Noble gases without a Pauling value (He, Ne,
# Ar, Rn) take Allen's values, so every element the data can hold has one.
_PAULING = [
    2.20, 4.16, 0.98, 1.57, 2.04, 2.55, 3.04, 3.44, 3.98, 4.79,  # H..Ne
    0.93, 1.31, 1.61, 1.90, 2.19, 2.58, 3.16, 3.24, 0.82, 1.00,  # Na..Ca
    1.36, 1.54, 1.63, 1.66, 1.55, 1.83, 1.88, 1.91, 1.90, 1.65,  # Sc..Zn
    1.81, 2.01, 2.18, 2.55, 2.96, 3.00, 0.82, 0.95, 1.22, 1.33,  # Ga..Zr
    1.60, 2.16, 1.90, 2.20, 2.28, 2.20, 1.93, 1.69, 1.78, 1.96,  # Nb..Sn
    2.05, 2.10, 2.66, 2.60, 0.79, 0.89, 1.10, 1.12, 1.13, 1.14,  # Sb..Nd
    1.13, 1.17, 1.20, 1.20, 1.10, 1.22, 1.23, 1.24, 1.25, 1.10,  # Pm..Yb
    1.27, 1.30, 1.50, 2.36, 1.90, 2.20, 2.20, 2.28, 2.54, 2.00,  # Lu..Hg
    1.62, 1.87, 2.02, 2.00, 2.20, 2.60,  # Tl..Rn
]  # fmt: skip


def element_properties(numbers: Sequence[int]) -> np.ndarray:
    """(n, 2) array of Pauling electronegativity and covalent radius (Å) per element."""
    out = []
    for z in numbers:
        if not 1 <= z <= len(_PAULING):
            raise ValueError(f"no electronegativity tabulated for Z={z}")
        out.append((_PAULING[z - 1], covalent_radii[z]))
    return np.asarray(out, dtype=float)


def element_init(numbers: Sequence[int], d_j: int, width: float = 1.0) -> np.ndarray:
    """Initial U from element properties (kernel PCA), as in Willatt et al. 2018.

    Elements are points (electronegativity, covalent radius), each standardised; the top
    d_J eigenvectors of their Gaussian similarity ``exp(-|x_a - x_b|^2 / (2 width^2))``,
    scaled by the square roots of the eigenvalues, are the rows of U (so that
    ``U U^T`` approximates the similarity). The similarity is not centred: its leading
    eigenvector is then all-positive, so no element starts with a zero row.
    """
    props = element_properties(numbers)
    std = props.std(axis=0)
    x = (props - props.mean(axis=0)) / np.where(std > 0, std, 1.0)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    evals, evecs = np.linalg.eigh(np.exp(-d2 / (2 * width**2)))
    order = np.argsort(evals)[::-1][:d_j]
    u = evecs[:, order] * np.sqrt(np.clip(evals[order], 1e-12, None))
    if u.shape[1] < d_j:  # fewer elements than pseudo-elements
        u = np.concatenate([u, np.zeros((len(numbers), d_j - u.shape[1]))], axis=1)
    return u


class AlchemicalCompression(torch.nn.Module):
    """Learnable species compression ``U`` (n_species x d_J) and the power spectrum.

    Parameters
    ----------
    species
        Atomic numbers the compression knows, in the row order of U.
    d_j
        Number of pseudo-elements. With ``init="identity"`` it must equal
        ``len(species)`` (plain multi-species SOAP).
    init
        ``"elements"`` (kernel PCA of electronegativity and radius), ``"random"``
        (seeded Gaussian), ``"identity"``, or an explicit (n_species, d_J) array.
    seed
        Seed of the random initialisation.
    center_resolved
        Resolve the power spectrum by the (compressed) species of the central atom.
    radial_shapes
        (number of l channels, number of radial functions) of each scale of the spectra
        (:func:`ase_alchemical.core.hypers.basis_shapes`): learn one U per radial function
        of each scale, a (channels, n_species, d_J) tensor whose every channel starts
        from ``init``. ``None``: one U for all.
    """

    def __init__(
        self,
        species: Sequence[int],
        d_j: int,
        init: str | np.ndarray | torch.Tensor = "elements",
        seed: int = 0,
        center_resolved: bool = False,
        radial_shapes: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        species = [int(z) for z in species]
        if len(set(species)) != len(species) or any(z <= 0 for z in species):
            raise ValueError(f"species must be distinct positive atomic numbers, got {species}")
        if d_j < 1:
            raise ValueError(f"d_j must be >= 1, got {d_j}")
        n = len(species)
        if isinstance(init, str):
            if init == "elements":
                u = element_init(species, d_j)
            elif init == "random":
                u = np.random.default_rng(seed).normal(size=(n, d_j)) / np.sqrt(n)
            elif init == "identity":
                if d_j != n:
                    raise ValueError(f"init='identity' needs d_j = n_species = {n}, got {d_j}")
                u = np.eye(n)
            else:
                raise ValueError(
                    f"unknown init {init!r}: use 'elements', 'random', 'identity' or an array"
                )
        else:
            u = np.asarray(torch.as_tensor(init).detach().cpu().numpy(), dtype=float)
        if radial_shapes is not None:
            radial_shapes = [(int(lmax1), int(n_radial)) for lmax1, n_radial in radial_shapes]
            if not radial_shapes or any(min(shape) < 1 for shape in radial_shapes):
                raise ValueError(
                    f"radial_shapes must be positive (L, N) pairs, got {radial_shapes}"
                )
            if center_resolved:
                raise ValueError("a radially resolved U cannot be combined with center_resolved")
            channels = sum(n_radial for _, n_radial in radial_shapes)
            if u.shape == (n, d_j):  # the same start for every radial channel
                u = np.repeat(u[None], channels, axis=0)
            expected = (channels, n, d_j)
        else:
            expected = (n, d_j)
        if u.shape != expected:
            raise ValueError(f"init array has shape {u.shape}, expected {expected}")
        self.radial_shapes = radial_shapes
        self.species = species
        self.d_j = int(d_j)
        self.center_resolved = bool(center_resolved)
        self.U = torch.nn.Parameter(torch.as_tensor(u, dtype=torch.float64))
        # atomic number -> row of U; row n is the zero row used for padding
        lookup = torch.full((max(species) + 1,), -1, dtype=torch.long)
        lookup[torch.tensor(species)] = torch.arange(n)
        self.register_buffer("_lookup", lookup, persistent=False)
        iu = torch.triu_indices(d_j, d_j)
        self.register_buffer("_pair_i", iu[0], persistent=False)
        self.register_buffer("_pair_j", iu[1], persistent=False)
        # float64 throughout: a float32 sqrt(2) is off by 2e-8
        weight = torch.full((len(iu[0]),), np.sqrt(2.0), dtype=torch.float64)
        weight[iu[0] == iu[1]] = 1.0
        self.register_buffer("_pair_weight", weight, persistent=False)

    @property
    def symbols(self) -> list[str]:
        """Element symbols of the rows of U."""
        return [chemical_symbols[z] for z in self.species]

    def n_features(self, lmax1: int, n_radial: int) -> int:
        """Length of the compressed power spectrum with both orders of every radial pair
        (n, n'), as featomic lays it out (1,800 at d_J = 4 with the default basis). The
        structure features drop the symmetric duplicates of the J = J' blocks
        (:meth:`unique_columns`: 1,500 of the 1,800)."""
        n = self.d_j * (self.d_j + 1) // 2 * lmax1 * n_radial**2
        return n * self.d_j if self.center_resolved else n

    def unique_columns(
        self, scale_shapes: Sequence[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Feature columns without the symmetric (n, n') duplicates of the J = J' pairs.

        For J = J', ``p[J, J, l, n, n'] = p[J, J, l, n', n]``: of the N^2 radial pairs of
        those blocks only N (N + 1) / 2 are distinct (1,500 of 1,800 features at d_J = 4
        with the default basis). Keeping n <= n' and weighting n < n' by sqrt(2) leaves
        every dot product, hence every norm and kernel, unchanged while the kernel
        matrices read 17 % fewer numbers.

        Parameters
        ----------
        scale_shapes
            (number of l channels, number of radial functions) of each scale; the
            features hold one (pairs, L, N, N) block per scale, scale after scale
            (:func:`ase_alchemical.structure.representation.structure_features`).

        Returns
        -------
        index, weights, widths
            Columns to keep, their weights (1 or sqrt 2, float64), and the number kept
            per scale.
        """
        n_pairs = len(self._pair_i)
        diagonal = (self._pair_i == self._pair_j).cpu()
        # centre-resolved rows are (central I, pair) flattened: the pair is row % n_pairs
        rows = torch.arange(n_pairs * (self.d_j if self.center_resolved else 1)) % n_pairs
        index, weights, widths, offset = [], [], [], 0
        for lmax1, n_radial in scale_shapes:
            n, k = torch.meshgrid(torch.arange(n_radial), torch.arange(n_radial), indexing="ij")
            upper = (n <= k).flatten().repeat(lmax1)  # over (l, n, n')
            double = (n < k).flatten().repeat(lmax1)
            block = lmax1 * n_radial**2
            keep = (~diagonal[rows, None]) | upper[None, :]  # (rows, block)
            weight = torch.ones((len(rows), block), dtype=torch.float64)
            weight[diagonal[rows, None] & double[None, :]] = np.sqrt(2.0)
            columns = offset + torch.arange(len(rows) * block).reshape(len(rows), block)
            index.append(columns[keep])
            weights.append(weight[keep])
            widths.append(int(keep.sum()))
            offset += len(rows) * block
        return torch.cat(index), torch.cat(weights), widths

    def rows(self, numbers: torch.Tensor) -> torch.Tensor:
        """Map atomic numbers (0 = padding) to rows of U; padding maps to the zero row.

        Raises
        ------
        UnknownElementError
            If a number is not in ``species``.
        """
        numbers = numbers.to(self._lookup.device)
        n = len(self.species)
        known = torch.zeros_like(numbers, dtype=torch.bool)
        inside = (numbers > 0) & (numbers < self._lookup.numel())
        known[inside] = self._lookup[numbers[inside]] >= 0
        unknown = (numbers > 0) & ~known
        if bool(unknown.any()):
            bad = sorted(
                {
                    chemical_symbols[int(z)] if int(z) < len(chemical_symbols) else str(int(z))
                    for z in numbers[unknown]
                }
            )
            raise UnknownElementError(
                f"element(s) {', '.join(bad)} unknown to this model; it knows "
                f"{len(self.species)}: {' '.join(self.symbols)}"
            )
        rows = torch.full_like(numbers, n)
        rows[known] = self._lookup[numbers[known]]
        return rows

    def mixing_rows(self, numbers: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """U's rows of atomic numbers (0 = padding, the zero row), differentiable with
        respect to U (or ``u`` in its place): shape ``numbers.shape + (d_J,)``, or
        ``numbers.shape + (C, d_J)`` for a radially resolved U (one row per radial
        channel C)."""
        u = self.U if u is None else u
        rows = self.rows(numbers)
        if u.dim() == 2:
            return torch.cat([u, u.new_zeros((1, u.shape[1]))])[rows]
        u_pad = torch.cat([u, u.new_zeros((u.shape[0], 1, u.shape[2]))], 1)
        return u_pad[:, rows].movedim(0, -2)

    def forward(self, spectrum: PairSpectrum) -> torch.Tensor:
        """Compressed power spectrum summed over atoms, shape (S, n_features)."""
        if self.radial_shapes is not None:
            return self._radial_forward(spectrum)
        u = self.U
        u_pad = torch.cat([u, u.new_zeros((1, u.shape[1]))])
        u_s = u_pad[self.rows(spectrum.numbers)]  # (S, K, d_J)
        s, k = u_s.shape[:2]
        # mixing weights of every local species pair (a, b) into every pair J <= J':
        # one batched matmul then reads rho once (5x faster than chained einsums)
        mix = u_s[:, :, None, self._pair_i] * u_s[:, None, :, self._pair_j]
        mix = mix * self._pair_weight.to(u.dtype)  # (S, K, K, n_pairs)
        values = spectrum.values.to(u.dtype)
        if self.center_resolved and not spectrum.center_resolved:
            raise ValueError(
                "this compression is center-resolved but the spectrum was summed over "
                "centres: compute it with center_resolved=True"
            )
        if self.center_resolved:  # (S, K, K, K, d_J, n_pairs): centre c -> I, too
            mix = (u_s[:, :, None, None, :, None] * mix[:, None, :, :, None, :]).reshape(
                s, k**3, -1
            )
        else:
            mix = mix.reshape(s, k * k, -1)
            values = values.sum(1)
        rho = values.reshape(s, mix.shape[1], -1)
        return torch.bmm(mix.transpose(1, 2), rho).reshape(s, -1)

    def _radial_forward(self, spectrum: PairSpectrum) -> torch.Tensor:
        """:meth:`forward` with one U per radial channel; same feature layout."""
        if spectrum.center_resolved:
            raise ValueError("a radially resolved U needs a spectrum summed over centres")
        values = spectrum.values.to(self.U.dtype).sum(1)  # (S, K, K, L, N, N)
        s, k, _, n_l, n_radial = values.shape[:5]
        if n_l != sum(lmax1 for lmax1, _ in self.radial_shapes) or any(
            n != n_radial for _, n in self.radial_shapes
        ):
            raise ValueError(
                f"the spectrum's (L, N) = {(n_l, n_radial)} does not match the radial "
                f"shapes of this compression, {self.radial_shapes}"
            )
        u = self.U
        u_pad = torch.cat([u, u.new_zeros((u.shape[0], 1, u.shape[2]))], 1)
        u_s = u_pad[:, self.rows(spectrum.numbers)].permute(1, 2, 0, 3)  # (S, K, C, d_J)
        a = u_s[..., self._pair_i] * self._pair_weight.to(u.dtype)  # (S, K, C, pairs)
        b = u_s[..., self._pair_j]
        out, l0, c0 = [], 0, 0
        for lmax1, n in self.radial_shapes:
            v = values[:, :, :, l0 : l0 + lmax1]
            # contract b, then a: 3x faster than one einsum over a per-(a, b) mixing
            w = torch.einsum("sablnk,sbkp->salnkp", v, b[:, :, c0 : c0 + n])
            out.append(torch.einsum("salnkp,sanp->splnk", w, a[:, :, c0 : c0 + n]))
            l0, c0 = l0 + lmax1, c0 + n
        return torch.cat(out, 2).reshape(s, -1)
