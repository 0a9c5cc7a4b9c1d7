"""Representation: the U-dependent map from species-pair spectra to structure features.

For a compression U (:class:`~ase_alchemical.core.compression.AlchemicalCompression`) a
structure's feature vector is its compressed power spectrum summed over atoms, then

* normalised: to unit length (``"normalized"``: the kernel compares *average*
  environments, a cosine similarity) or divided by the number of atoms (``"mean"``:
  additive, un-normalised), scale by scale for multi-scale hypers;
* reduced to the columns without the symmetric (n, n') duplicates of the J = J' blocks
  (:meth:`.AlchemicalCompression.unique_columns`), which changes no dot product.

An optional fixed linear map of the (l, n, n') channels (``projection``, principal
components of the training spectra) shortens every feature vector; it is applied to the
spectra once, before any U (:meth:`Representation.project`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..core.compression import AlchemicalCompression
from ..core.features import PairSpectrum
from ..core.hypers import basis_shapes, hypers_list, scale_sizes

__all__ = [
    "NORMALIZATIONS",
    "Representation",
    "fit_projection",
    "scale_widths",
    "structure_features",
]

NORMALIZATIONS = ("normalized", "mean")


def _structure_features_one(
    power_spectrum: torch.Tensor, n_atoms: torch.Tensor, normalization: str
) -> torch.Tensor:
    if normalization == "normalized":
        norm = torch.linalg.vector_norm(power_spectrum, dim=1, keepdim=True)
        return power_spectrum / norm.clamp_min(torch.finfo(power_spectrum.dtype).tiny)
    if normalization == "mean":
        return power_spectrum / n_atoms.to(power_spectrum).unsqueeze(1)
    raise ValueError(f"unknown normalization {normalization!r}; use one of {NORMALIZATIONS}")


def structure_features(
    power_spectrum: torch.Tensor,
    n_atoms: torch.Tensor,
    normalization: str = "normalized",
    scale_sizes: list[int] | None = None,
) -> torch.Tensor:
    """Turn summed power spectra (S, F) into structure features.

    Parameters
    ----------
    power_spectrum
        Power spectra summed over the atoms of each structure.
    n_atoms
        Number of atoms of each structure.
    normalization
        ``"normalized"`` (unit norm) or ``"mean"`` (divide by the number of atoms).
    scale_sizes
        Multi-scale spectra: the (l, n, n') block length of each scale, the fastest axis
        of ``power_spectrum`` being their concatenation. The result holds each scale's
        features, normalised on their own, one after the other
        (:func:`.scale_widths` gives their lengths). ``None``: one scale.
    """
    if scale_sizes is None or len(scale_sizes) == 1:
        return _structure_features_one(power_spectrum, n_atoms, normalization)
    s = power_spectrum.shape[0]
    parts = power_spectrum.reshape(s, -1, sum(scale_sizes)).split(list(scale_sizes), dim=2)
    return torch.cat(
        [_structure_features_one(p.reshape(s, -1), n_atoms, normalization) for p in parts], 1
    )


def scale_widths(n_features: int, scale_sizes: list[int]) -> list[int]:
    """Length of each scale's part of a structure feature vector of ``n_features``."""
    total = sum(scale_sizes)
    if n_features % total:
        raise ValueError(f"{n_features} features do not split into scales {scale_sizes}")
    return [n_features // total * size for size in scale_sizes]


def fit_projection(spectrum: PairSpectrum, n_components: int) -> torch.Tensor:
    """Leading eigenvectors of the uncentred second moment of the (l, n, n') channels of
    ``spectrum``: a (L N N, n_components) projection, largest component first."""
    v = spectrum.values.flatten(-3)
    v = v.reshape(-1, v.shape[-1])
    n = min(int(n_components), v.shape[1])
    _, vectors = torch.linalg.eigh(v.T @ v)
    return vectors[:, -n:].flip(1).contiguous()


class Representation:
    """Structure features of spectra for a compression U.

    Parameters
    ----------
    compression
        The species compression U.
    hypers
        The spherical-expansion hypers the spectra were computed with (one dict or a
        list of them, one per scale).
    normalization
        ``"normalized"`` or ``"mean"`` (see the module docstring).
    projection
        Optional fixed (L N N, P) map of the (l, n, n') channels (:func:`fit_projection`);
        ``None``: the plain channels.
    """

    def __init__(
        self,
        compression: AlchemicalCompression,
        hypers: dict | Sequence[dict],
        normalization: str = "normalized",
        projection: torch.Tensor | None = None,
    ) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
        self.compression = compression
        self.hypers = hypers
        self.normalization = normalization
        self.projection = projection
        self.n_scales = len(hypers_list(hypers))
        self._columns: tuple | None = None  # (key, index, weights, widths), per device/dtype
        #: Length of each scale's columns in a feature row (``None`` with a projection,
        #: which multi-scale hypers cannot have): what a multi-scale kernel splits.
        self.scale_widths: list[int] | None = None
        if projection is None:
            self.scale_widths = compression.unique_columns(basis_shapes(hypers))[2]

    def to(self, device=None, dtype=None) -> Representation:
        """Move the projection (the compression is moved by its owner) in place."""
        if self.projection is not None:
            self.projection = self.projection.to(device=device, dtype=dtype)
        self._columns = None
        return self

    def project(self, spectrum: PairSpectrum) -> PairSpectrum:
        """Apply the (l, n, n') projection (the spectrum itself when there is none)."""
        p = self.projection
        if p is None:
            return spectrum
        values = spectrum.values.flatten(-3) if spectrum.values.dim() == 7 else spectrum.values
        return PairSpectrum(
            values.to(p.dtype) @ p, spectrum.numbers, spectrum.n_atoms, spectrum.center_resolved
        )

    def features(self, spectrum: PairSpectrum, u: torch.Tensor | None = None) -> torch.Tensor:
        """Structure features (S, F) of *projected* spectra, with the compression's U or,
        differentiably, with ``u`` in its place."""
        compressed = (
            self.compression(spectrum) if u is None
            else torch.func.functional_call(self.compression, {"U": u}, (spectrum,))
        )  # fmt: skip
        sizes = scale_sizes(self.hypers) if self.n_scales > 1 else None
        x = structure_features(compressed, spectrum.n_atoms, self.normalization, sizes)
        columns = self._unique_columns(x.device, x.dtype)
        return x if columns is None else x[:, columns[0]] * columns[1]

    def transform(self, spectrum: PairSpectrum, chunk: int = 1000) -> torch.Tensor:
        """Features of raw (unprojected) spectra, built in chunks of structures."""
        return self.map_chunks(self.project(spectrum), lambda x: x, chunk)

    def map_chunks(
        self, spectrum: PairSpectrum, fn: Callable[[torch.Tensor], torch.Tensor], chunk: int = 1000
    ) -> torch.Tensor:
        """``fn(features)`` over chunks of (projected) structures, concatenated: bounds the
        memory of wide features (plain SOAP over 39 elements has 140k per structure)."""
        parts = [
            fn(self.features(spectrum[start : start + chunk]))
            for start in range(0, len(spectrum), chunk)
        ]
        return torch.cat(parts)

    def widths(self, x: torch.Tensor) -> list[int]:
        """Length of each scale's columns in the feature rows ``x``."""
        columns = self._unique_columns(x.device, x.dtype)
        if columns is not None:
            return columns[2]
        if self.n_scales == 1:
            return [x.shape[1]]
        return scale_widths(x.shape[1], scale_sizes(self.hypers))

    def _unique_columns(self, device, dtype) -> tuple | None:
        """(index, weights, widths) of the columns kept without the symmetric (n, n')
        duplicates; ``None`` with a projection, whose components have no such duplicates."""
        if self.projection is not None:
            return None
        key = (str(device), dtype)
        if self._columns is None or self._columns[0] != key:
            index, weights, widths = self.compression.unique_columns(basis_shapes(self.hypers))
            self._columns = (key, index.to(device), weights.to(device=device, dtype=dtype), widths)
        return self._columns[1:]
