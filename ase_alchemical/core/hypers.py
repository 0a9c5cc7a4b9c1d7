"""Hyperparameters of the spherical expansion: featomic hypers as plain dicts.

One scale is one featomic ``SphericalExpansion`` hypers dict; a *multi-scale* model takes
a list of them (e.g. cutoffs 5 and 7 Å) sharing one radial basis size, whose spectra are
stacked along the l axis (:mod:`ase_alchemical.core.features`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence

__all__ = [
    "DEFAULT_HYPERS",
    "DEFAULT_SCALING",
    "basis_shape",
    "basis_shapes",
    "hypers_list",
    "make_hypers",
    "multiscale_hypers",
    "scale_sizes",
]

#: Default radial scaling of the density, u(r) = c / (c + (r / r0)^m) (Willatt, Musil,
#: Ceriotti 2018; featomic's "Willatt2018"): c = 1, r0 = 3 Å, m = 6.
DEFAULT_SCALING: dict = {"type": "Willatt2018", "rate": 1.0, "scale": 3.0, "exponent": 6}


def make_hypers(
    cutoff: float = 5.0,
    max_radial: int = 5,
    max_angular: int = 4,
    density_width: float = 0.3,
    smoothing_width: float = 0.5,
    scaling: dict | None = DEFAULT_SCALING,
) -> dict:
    """Spherical-expansion hypers as a plain featomic dict (featomic >= 0.6 format).

    Parameters
    ----------
    cutoff
        Cutoff radius in Å.
    max_radial
        Largest radial index of the GTO basis (``max_radial + 1`` functions).
    max_angular
        Largest angular momentum l.
    density_width
        Width of the Gaussian atom density in Å.
    smoothing_width
        Width of the shifted-cosine cutoff smoothing in Å.
    scaling
        featomic density ``scaling`` dict (radial scaling); ``None`` for none.
    """
    hypers = {
        "cutoff": {
            "radius": float(cutoff),
            "smoothing": {"type": "ShiftedCosine", "width": float(smoothing_width)},
        },
        "density": {"type": "Gaussian", "width": float(density_width)},
        "basis": {
            "type": "TensorProduct",
            "max_angular": int(max_angular),
            "radial": {"type": "Gto", "max_radial": int(max_radial)},
        },
    }
    if scaling is not None:
        hypers["density"]["scaling"] = copy.deepcopy(dict(scaling))
    return hypers


#: The default spherical-expansion hypers, cutoff 5 Å with the default radial scaling, GTO
#: basis with max_radial 5 and max_angular 4, density width 0.3 Å. Chosen on the
#: optimization set (``benchmarks/studies/hypers_study.py`` for the basis and widths,
#: ``benchmarks/studies/radial_scaling.py`` for the cutoff and scaling; results in
#: ``benchmarks/results``).
DEFAULT_HYPERS: dict = make_hypers()


def multiscale_hypers(cutoffs: float | Sequence[float], **kwargs) -> dict | list[dict]:
    """Hypers for one cutoff or several: a dict for one, a list of dicts (a multi-scale
    kernel) for several, every scale with the same other settings.

    Parameters
    ----------
    cutoffs
        Cutoff radius in Å, or a sequence of them (e.g. ``[5, 7]``).
    **kwargs
        The other arguments of :func:`make_hypers` (``max_radial``, ``scaling``, ...).
    """
    if isinstance(cutoffs, (int, float)):
        return make_hypers(float(cutoffs), **kwargs)
    cutoffs = [float(c) for c in cutoffs]
    if not cutoffs:
        raise ValueError("multiscale_hypers needs at least one cutoff")
    scales = [make_hypers(c, **kwargs) for c in cutoffs]
    return scales[0] if len(scales) == 1 else scales


def basis_shape(hypers: dict) -> tuple[int, int]:
    """(number of l channels, number of radial functions) of one hypers dict."""
    try:
        return (
            int(hypers["basis"]["max_angular"]) + 1,
            int(hypers["basis"]["radial"]["max_radial"]) + 1,
        )
    except (KeyError, TypeError) as e:
        raise ValueError(
            "hypers must be featomic SphericalExpansion hypers with "
            "basis.max_angular and basis.radial.max_radial; got "
            f"{json.dumps(hypers)[:200]}"
        ) from e


def hypers_list(hypers: dict | Sequence[dict] | None) -> list[dict]:
    """The hypers of each scale: one dict, a list of dicts (multi-scale) or ``None``
    (the default). Checks that every scale has the same number of radial functions
    (their spectra are stacked along l)."""
    if hypers is None:
        return [DEFAULT_HYPERS]
    scales = [hypers] if isinstance(hypers, dict) else list(hypers)
    if not scales or not all(isinstance(h, dict) for h in scales):
        raise ValueError("hypers must be a featomic hypers dict or a non-empty list of them")
    radial = {basis_shape(h)[1] for h in scales}
    if len(radial) > 1:
        raise ValueError(
            "multi-scale hypers must share basis.radial.max_radial (the scales are stacked "
            f"along l); got {sorted(r - 1 for r in radial)}"
        )
    return scales


def basis_shapes(hypers: dict | Sequence[dict] | None) -> list[tuple[int, int]]:
    """(number of l channels, number of radial functions) of each scale of ``hypers``."""
    return [basis_shape(h) for h in hypers_list(hypers)]


def scale_sizes(hypers: dict | Sequence[dict] | None) -> list[int]:
    """Length L * N * N of the (l, n, n') block of each scale of ``hypers``."""
    out = []
    for h in hypers_list(hypers):
        lmax1, n_radial = basis_shape(h)
        out.append(lmax1 * n_radial**2)
    return out
