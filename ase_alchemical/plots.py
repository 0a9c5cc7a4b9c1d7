"""Plots of a learned compression U (elements in pseudo-element space, periodic tables)
and of the calibration of predicted uncertainties.

U is defined up to an orthogonal transformation (and a scale, for normalised features):
the kernel only sees ``U U^T``. :func:`aligned_u` therefore rotates U onto its principal
axes (PCA of the rows, signs fixed by the heaviest-loading element) so that plots of
different fits are comparable and reproducible.
"""

from __future__ import annotations

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

__all__ = [
    "aligned_u",
    "calibration_curve",
    "element_similarity",
    "group_coherence",
    "nearest_elements",
    "parity",
    "periodic_table_position",
    "plot_calibration",
    "plot_elements",
    "plot_periodic_table",
    "plot_similarity",
    "save_parity_plot",
    "spread_labels",
]


def aligned_u(u: np.ndarray) -> np.ndarray:
    """Rotate U (n_species x d_J) onto the principal axes of its rows, unit overall scale."""
    u = np.asarray(u, dtype=float)
    _, _, vt = np.linalg.svd(u - u.mean(axis=0), full_matrices=False)
    aligned = u @ vt.T
    signs = np.sign(aligned[np.argmax(np.abs(aligned), axis=0), np.arange(aligned.shape[1])])
    aligned = aligned * np.where(signs == 0, 1.0, signs)
    return aligned / np.abs(aligned).max()


def periodic_table_position(symbol_or_number) -> tuple[int, int]:
    """(period, group) of a main-group or transition element, 1-based (no f-block)."""
    z = symbol_or_number if isinstance(symbol_or_number, int) else atomic_numbers[symbol_or_number]
    starts = [1, 3, 11, 19, 37, 55, 87]
    period = max(i + 1 for i, s in enumerate(starts) if z >= s)
    offset = z - starts[period - 1]
    if period == 1:
        return 1, 1 if z == 1 else 18
    if period <= 3:
        return period, offset + 1 if offset < 2 else offset + 11
    if period >= 6 and offset >= 3:
        offset -= 14  # skip the lanthanides / actinides
        if offset < 2:
            raise ValueError(f"f-block element Z={z} has no group")
    return period, offset + 1


def spread_labels(points: np.ndarray, min_distance: float = 0.06, n_iter: int = 200) -> np.ndarray:
    """Label positions near ``points`` (n, 2) that keep at least ``min_distance`` apart
    and from the other points, in units of the data's extent: a few hundred steps of
    pairwise repulsion, each label tied to its point by a spring."""
    points = np.asarray(points, dtype=float)
    scale = np.ptp(points, axis=0)
    scale[scale == 0] = 1.0
    anchor = points / scale
    labels = anchor + np.array([0.0, 0.03])  # start just above each point
    for _ in range(n_iter):
        moved = False
        for i in range(len(labels)):
            others = np.vstack([np.delete(labels, i, axis=0), np.delete(anchor, i, axis=0)])
            delta = labels[i] - others
            dist = np.linalg.norm(delta, axis=1)
            close = dist < min_distance
            if close.any():
                push = (delta[close] / np.maximum(dist[close], 1e-9)[:, None]
                        * (min_distance - dist[close])[:, None]).sum(axis=0)  # fmt: skip
                labels[i] += 0.5 * push
                moved = True
            labels[i] += 0.05 * (anchor[i] + np.array([0.0, 0.03]) - labels[i])
        if not moved:
            break
    return labels * scale


def plot_elements(model_or_u, species=None, components=(0, 1), ax=None):
    """Scatter the elements in the plane of two aligned pseudo-element coordinates,
    coloured by group of the periodic table (one colour for each group present, so no
    colour is spent on groups the elements do not cover), labels kept apart.

    Parameters
    ----------
    model_or_u
        A fitted :class:`~ase_alchemical.structure.model.AlchemicalKRR` or an array U.
    species
        Atomic numbers of U's rows (taken from the model when given one).
    components
        Which two aligned components to plot.
    ax
        Matplotlib axes (default: a new figure).
    """
    import matplotlib.pyplot as plt

    u, species = _u_and_species(model_or_u, species)
    a = aligned_u(u)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6.5))
    i, j = components
    xy = a[:, [i, j]]
    groups = np.array([periodic_table_position(int(z))[1] for z in species])
    present = sorted(set(groups.tolist()))
    palette = plt.get_cmap("tab10" if len(present) <= 10 else "tab20")
    for k, group in enumerate(present):
        mask = groups == group
        ax.scatter(xy[mask, 0], xy[mask, 1], s=70, color=palette(k), label=f"group {group}",
                   edgecolor="black", linewidth=0.4, zorder=3)  # fmt: skip
    for (x, y), (lx, ly), z in zip(xy, spread_labels(xy), species):
        ax.annotate(chemical_symbols[int(z)], (x, y), xytext=(lx, ly), fontsize=10,
                    ha="center", va="center", zorder=4,
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})  # fmt: skip
    ax.set_xlabel(f"pseudo-element coordinate {i + 1} (aligned, arb. units)")
    ax.set_ylabel(f"pseudo-element coordinate {j + 1} (aligned, arb. units)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="periodic table")
    return ax


def plot_periodic_table(model_or_u, species=None, component: int | str = 0, ax=None, cmap="RdBu_r"):
    """Periodic table with each known element coloured by its aligned U coordinates.

    Parameters
    ----------
    model_or_u, species
        As in :func:`plot_elements`.
    component
        An aligned coordinate (int, coloured with ``cmap``), or ``"rgb"``: the first three
        aligned coordinates as red, green and blue (the style of Willatt et al. 2018;
        missing coordinates are held at mid-scale).
    ax
        Matplotlib axes (default: a new figure).
    """
    import matplotlib.pyplot as plt

    u, species = _u_and_species(model_or_u, species)
    aligned = aligned_u(u)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.5))
    if component == "rgb":
        rgb = np.full((len(species), 3), 0.5)
        k = min(3, aligned.shape[1])
        rgb[:, :k] = (aligned[:, :k] + 1.0) / 2.0
        colours = [tuple(c) for c in rgb]
        dark = [0.299 * r + 0.587 * g + 0.114 * b < 0.5 for r, g, b in rgb]
    else:
        norm = plt.Normalize(-1, 1)
        colormap = plt.get_cmap(cmap)
        values = aligned[:, int(component)]
        colours = [colormap(norm(v)) for v in values]
        dark = [abs(v) > 0.6 for v in values]
    for z, colour, is_dark in zip(species, colours, dark):
        period, group = periodic_table_position(int(z))
        ax.add_patch(plt.Rectangle((group - 0.5, period - 0.5), 0.95, 0.95, color=colour))
        ax.text(group - 0.02, period - 0.02, chemical_symbols[int(z)], ha="center", va="center",
                fontsize=10, color="white" if is_dark else "black")  # fmt: skip
    ax.set_xlim(0.4, 18.6)
    ax.set_ylim(7.6, 0.4)
    ax.set_xticks(range(1, 19))
    ax.set_yticks(range(1, 8))
    ax.set_xlabel("group")
    ax.set_ylabel("period")
    ax.set_aspect("equal")
    if component != "rgb":
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=colormap)
        ax.figure.colorbar(mappable, ax=ax, label=f"aligned U coordinate {int(component) + 1}",
                           shrink=0.8)  # fmt: skip
    return ax


def element_similarity(model_or_u, species=None) -> tuple[np.ndarray, list[int]]:
    """Cosine similarity of the rows of U, ``(n, n)``, with the elements ordered by group
    of the periodic table, then period (the order a chemist reads groups in).

    Free of the rotation gauge (it depends on ``U U^T`` only) and of U's overall scale.
    Returns the matrix and the atomic numbers in its order.
    """
    u, species = _u_and_species(model_or_u, species)
    position = [periodic_table_position(int(z)) for z in species]  # (period, group)
    order = sorted(range(len(species)), key=lambda i: (position[i][1], position[i][0]))
    rows = np.asarray(u, dtype=float)[order]
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms == 0, 1.0, norms)
    return unit @ unit.T, [int(species[i]) for i in order]


def nearest_elements(model_or_u, species=None) -> dict[str, str]:
    """Each element's nearest neighbour in U: the other element whose row has the largest
    cosine similarity with its own (free of U's rotation gauge and scale, as the kernel
    is), as ``{symbol: symbol}``."""
    similarity, ordered = element_similarity(model_or_u, species)
    np.fill_diagonal(similarity, -np.inf)
    symbols = [chemical_symbols[z] for z in ordered]
    return {symbols[i]: symbols[int(np.argmax(row))] for i, row in enumerate(similarity)}


def group_coherence(model_or_u, species=None) -> float:
    """Fraction of the elements whose nearest neighbour in U (:func:`nearest_elements`)
    is in their own group of the periodic table: 1 when every group is a cluster of its
    own; a random U scores what chance gives for the groups present."""
    neighbours = nearest_elements(model_or_u, species)
    group = {s: periodic_table_position(s)[1] for s in neighbours}
    return float(np.mean([group[s] == group[t] for s, t in neighbours.items()]))


def plot_similarity(model_or_u, species=None, ax=None):
    """Heat map of :func:`element_similarity`, group boundaries drawn: elements that the
    energies made alike form bright blocks, and a block on the diagonal is a group."""
    import matplotlib.pyplot as plt

    similarity, ordered = element_similarity(model_or_u, species)
    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 7.5))
    image = ax.imshow(similarity, cmap="magma", vmin=-1, vmax=1)
    labels = [chemical_symbols[z] for z in ordered]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    groups = [periodic_table_position(z)[1] for z in ordered]
    for k in range(1, len(groups)):
        if groups[k] != groups[k - 1]:
            ax.axhline(k - 0.5, color="white", lw=0.6)
            ax.axvline(k - 0.5, color="white", lw=0.6)
    ax.figure.colorbar(image, ax=ax, label="cosine similarity of the rows of U", shrink=0.8)
    return ax


def _u_and_species(model_or_u, species):
    if hasattr(model_or_u, "compression_"):
        u = model_or_u.U  # a copy: read it once
        if u.ndim == 3:
            raise ValueError(
                "this model's U is radially resolved (one U per radial function): plot one "
                "radial channel with model.U[n] and species=model.species"
            )
        return u, list(model_or_u.species)
    if species is None:
        raise ValueError("pass species= (atomic numbers of the rows) with an array U")
    u = np.asarray(model_or_u)
    if u.shape[0] != len(species):
        raise ValueError(f"U has {u.shape[0]} rows but {len(species)} species were given")
    return u, list(species)


def calibration_curve(
    errors: np.ndarray, sigmas: np.ndarray, n: int = 61
) -> tuple[np.ndarray, np.ndarray]:
    """Expected and observed coverage of Gaussian intervals +-k sigma, for k in [0, 3].

    Returns
    -------
    expected, observed
        ``erf(k / sqrt(2))`` and the fraction of ``|errors| <= k * sigmas``.
    """
    from math import erf, sqrt

    z = np.abs(np.asarray(errors, dtype=float)) / np.asarray(sigmas, dtype=float)
    ks = np.linspace(0.0, 3.0, n)
    expected = np.array([erf(k / sqrt(2.0)) for k in ks])
    observed = np.array([(z <= k).mean() for k in ks])
    return expected, observed


def plot_calibration(errors, sigmas, ax=None, label: str | None = None):
    """Observed against expected coverage of +-k sigma intervals (the diagonal is ideal)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    expected, observed = calibration_curve(errors, sigmas)
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    ax.plot(expected, observed, label=label)
    ax.set(
        xlabel="expected fraction within +-k sigma", ylabel="observed fraction",
        xlim=(0, 1), ylim=(0, 1), aspect="equal",
    )  # fmt: skip
    return ax


def parity(ax, reference, predicted, label: str, unit: str) -> None:
    """One parity panel: predicted against reference, the diagonal, and the MAE."""
    reference, predicted = np.asarray(reference).ravel(), np.asarray(predicted).ravel()
    lo = float(min(reference.min(), predicted.min()))
    hi = float(max(reference.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
    ax.scatter(reference, predicted, s=6, alpha=0.6)
    mae = float(np.abs(predicted - reference).mean())
    ax.set_xlabel(f"reference {label} ({unit})")
    ax.set_ylabel(f"predicted {label} ({unit})")
    ax.set_title(f"{label}: MAE {mae:.3g} {unit}")


def save_parity_plot(model, frames, path):
    """Energy-per-atom and force-component parity plots of a local potential on labelled
    ``frames``, saved to ``path`` (atomically); returns the path."""
    from matplotlib.figure import Figure

    from .core.fileio import atomic_write
    from .core.targets import LabelError, forces_of, per_atom_energies

    frames = list(frames)
    try:
        forces = forces_of(frames)
    except LabelError:
        forces = None
    n_atoms = np.array([len(a) for a in frames], dtype=float)
    fig = Figure(figsize=(9, 4) if forces is not None else (4.5, 4))
    axes = fig.subplots(1, 2 if forces is not None else 1, squeeze=False)
    if forces is None:
        energies = model.predict(frames)
    else:
        energies, gradients, _ = model.energy_and_derivatives(frames, strain=False)
        predicted = np.concatenate([-g.ravel() for g in gradients])
        parity(axes[0, 1], np.concatenate([f.ravel() for f in forces]), predicted, "force",
               "eV/Å")  # fmt: skip
    parity(axes[0, 0], per_atom_energies(frames), energies / n_atoms, "energy", "eV/atom")
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
