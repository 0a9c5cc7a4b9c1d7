"""Reference labels from a quantum method: elpasolite configurations labelled with GFN1-xTB.

The elpasolite data hold one DFT formation energy per composition and no geometries, so
they cannot train or test a potential's forces. This module generates a dense reference
set instead: for each composition the prototype crystal, its relaxation with the reference
method (positions and cell), the relaxed crystal, rattled copies of it and strained ones,
each labelled with energy, forces and stress. The default method is GFN1-xTB through
`tblite <https://tblite.readthedocs.io>`_ (``pip install tblite``); any ASE calculator can
stand in (``calculator=``).

The labels are cached outside the repository, one extended-XYZ file per composition,
each written atomically once all its frames are labelled, so an interrupted run resumes
where it stopped (``label_elpasolites`` skips the compositions it finds) and a run never
leaves a half-written file. A composition the method fails on (no SCF convergence) is
recorded with its error in ``failed/`` and skipped, not retried, on resumption; when the
method fails part-way through a relaxation, or on one displaced copy, the frames it did
label are kept. A crash that kills the process (tblite's compiled code can abort) leaves
the composition marked as failed, so that rerunning the same call goes on past it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..core.fileio import atomic_write
from .datasets import build_elpasolite

__all__ = [
    "LabelRecipe",
    "xtb_calculator",
    "label_elpasolites",
    "read_labelled",
    "composition_name",
    "default_label_dir",
    "plausible_labels",
]

#: What ``failed/<name>.txt`` says of a composition whose labelling killed the process.
CRASH_MESSAGE = "the process died while this composition was labelled (a crash of the method)\n"

#: The reference method of the generated data.
XTB_METHOD = "GFN1-xTB"


@dataclass(frozen=True)
class LabelRecipe:
    """What is generated for each composition (all lengths in Å).

    Parameters
    ----------
    relax_fmax
        Force threshold (eV/Å) of the reference relaxation; the cell is relaxed with the
        positions (``FrechetCellFilter``), its stress threshold is the same number in eV/Å³
        scaled by the filter.
    relax_steps
        Most BFGS steps of the relaxation; one that does not converge keeps its last frame.
    n_path
        Frames of the relaxation path kept besides the prototype and the relaxed crystal,
        evenly spaced over it.
    n_rattled, rattle
        Copies of the relaxed crystal with Gaussian displacements of standard deviation
        ``rattle`` per Cartesian component.
    n_strained, strain
        Copies with a random symmetric strain (components uniform in ``±strain``) and a
        small rattle (``rattle / 4``).
    seed
        Seed of the random displacements and strains; a composition's frames depend on it
        and on the composition only, so a resumed run generates the same data.
    """

    relax_fmax: float = 0.05
    relax_steps: int = 40
    n_path: int = 2
    n_rattled: int = 3
    rattle: float = 0.08
    n_strained: int = 3
    strain: float = 0.04
    seed: int = 0


def xtb_calculator(method: str = XTB_METHOD, **kwargs):
    """A tblite ASE calculator for ``method`` (quiet: ``verbosity=0``).

    Raises
    ------
    ImportError
        When tblite is not installed, with the command that installs it.
    """
    try:
        from tblite.ase import TBLite
    except ImportError as err:
        raise ImportError(
            "reference labels with GFN1-xTB need tblite: pip install tblite "
            "(or pip install 'ase-alchemical[xtb]')"
        ) from err
    kwargs.setdefault("verbosity", 0)
    return TBLite(method=method, **kwargs)


def default_label_dir(method: str = XTB_METHOD) -> Path:
    """Where the generated labels are cached by default: the user cache of the package."""
    from .datasets import elpasolite_cache_dir

    return elpasolite_cache_dir() / f"elpasolites-{method}"


def composition_name(sites: Sequence[str]) -> str:
    """File-name key of a composition: ``"K-Na-Al-F"`` for sites A, B, C, D."""
    return "-".join(sites)


def _labelled(atoms: Atoms, calc, config: str, sites: Sequence[str]) -> Atoms:
    """A copy of ``atoms`` carrying the reference energy, forces and stress."""
    atoms = atoms.copy()
    atoms.calc = calc
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces())
    stress = np.array(atoms.get_stress(voigt=True))
    if not (np.isfinite(energy) and np.isfinite(forces).all() and np.isfinite(stress).all()):
        raise FloatingPointError(f"non-finite labels for {config}")
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, energy=energy, forces=forces, stress=stress)
    out.info.update(config=config, sites=",".join(sites))
    return out


def _relax(atoms: Atoms, calc, recipe: LabelRecipe) -> tuple[list[Atoms], bool]:
    """The reference relaxation of ``atoms`` (positions and cell): its frames, converged.

    A relaxation the method fails on part-way (no SCF convergence at a step's geometry)
    ends at its last labelled frame, as not converged.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calc
    path = []
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    converged = False
    try:
        for done in opt.irun(fmax=recipe.relax_fmax, steps=recipe.relax_steps):
            converged = done
            path.append(atoms.copy())
    except Exception:
        if not path:  # the starting geometry itself fails: nothing to keep
            raise
        converged = False
    return path, bool(converged)


def _composition_frames(sites: Sequence[str], calc, recipe: LabelRecipe) -> list[Atoms]:
    """All labelled frames of one composition (see :class:`LabelRecipe`)."""
    # a seed per composition, so frames do not depend on the order of the run
    key = [recipe.seed] + [ord(c) for c in composition_name(sites)]
    rng = np.random.default_rng(key)
    prototype = build_elpasolite(*sites)
    path, converged = _relax(prototype, calc, recipe)
    relaxed = path[-1]
    frames = [_labelled(path[0], calc, "prototype", sites)]
    if len(path) > 2 and recipe.n_path:
        # interior points of the path, evenly spaced (the first step is nearly the start)
        fractions = np.arange(1, recipe.n_path + 1) / (recipe.n_path + 1)
        picks = np.unique((1 + fractions * (len(path) - 2)).astype(int))
        frames += [_labelled(path[i], calc, "relaxation", sites) for i in picks]
    if len(path) > 1:
        last = _labelled(relaxed, calc, "relaxed" if converged else "relaxation", sites)
        last.info["relax_converged"] = converged
        frames.append(last)
    perturbed = []
    for _ in range(recipe.n_rattled):
        atoms = relaxed.copy()
        atoms.positions += rng.normal(0.0, recipe.rattle, atoms.positions.shape)
        perturbed.append((atoms, "rattled"))
    for _ in range(recipe.n_strained):
        eps = rng.uniform(-recipe.strain, recipe.strain, (3, 3))
        eps = 0.5 * (eps + eps.T)
        atoms = relaxed.copy()
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        atoms.positions += rng.normal(0.0, recipe.rattle / 4, atoms.positions.shape)
        perturbed.append((atoms, "strained"))
    for atoms, config in perturbed:
        # a displaced geometry the method fails on is left out, the others kept
        try:
            frames.append(_labelled(atoms, calc, config, sites))
        except Exception:
            continue
    return frames


def _check_meta(directory: Path, meta: dict) -> None:
    """Write the run's settings, or check them against those of the cached labels."""
    path = directory / "meta.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != meta:
            raise ValueError(
                f"{directory} holds labels made with other settings ({old}); "
                f"use another directory for {meta}, or delete this one"
            )
        return
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1, sort_keys=True)))


def label_elpasolites(
    compositions: Iterable[Sequence[str]],
    directory: str | os.PathLike,
    *,
    recipe: LabelRecipe | None = None,
    calculator: Callable[[], object] | None = None,
    method: str = XTB_METHOD,
    progress: bool = True,
) -> Path:
    """Label elpasolite configurations with a reference method, resumably.

    Parameters
    ----------
    compositions
        Site tuples (A, B, C, D), e.g. from
        :func:`~ase_alchemical.data.datasets.load_elpasolite_table`.
    directory
        Cache directory (outside the repository): ``frames/<A-B-C-D>.extxyz`` per
        labelled composition, ``failed/<A-B-C-D>.txt`` per failed one, ``meta.json``
        with the recipe and the method.
    recipe
        The frames per composition; default :class:`LabelRecipe`.
    calculator
        Factory of the reference ASE calculator; default :func:`xtb_calculator` for
        ``method``.
    method
        Name of the reference method, stored with the labels.
    progress
        Show a tqdm bar.

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    from ase.io import write
    from tqdm.auto import tqdm

    recipe = recipe or LabelRecipe()
    directory = Path(directory)
    (directory / "frames").mkdir(parents=True, exist_ok=True)
    (directory / "failed").mkdir(exist_ok=True)
    _check_meta(directory, {"method": method, "recipe": asdict(recipe)})
    calc = calculator() if calculator is not None else xtb_calculator(method)
    todo = []
    for sites in compositions:
        sites = tuple(str(s) for s in sites)
        if len(sites) != 4:
            raise ValueError(f"an elpasolite composition has 4 sites, got {sites}")
        build_elpasolite(*sites)  # an unknown element: a ValueError now, not a "failure"
        name = composition_name(sites)
        done = (directory / "frames" / f"{name}.extxyz").exists()
        if not done and not (directory / "failed" / f"{name}.txt").exists():
            todo.append(sites)
    for sites in tqdm(todo, desc=f"{method} labels", disable=not progress):
        name = composition_name(sites)
        marker = directory / "failed" / f"{name}.txt"
        # a marker first: if the method kills the process (a crash in compiled code), a
        # resumed run finds the composition recorded as failed instead of crashing again
        atomic_write(marker, lambda t: t.write_text(CRASH_MESSAGE))
        try:
            frames = _composition_frames(sites, calc, recipe)
        except Exception as err:  # the method's own failures (SCF) are data, not crashes
            message = f"{type(err).__name__}: {err}\n"
            atomic_write(marker, lambda t, m=message: t.write_text(m))
            calc = calculator() if calculator is not None else xtb_calculator(method)
            continue
        for atoms in frames:
            atoms.info["method"] = method
        atomic_write(
            directory / "frames" / f"{name}.extxyz",
            lambda tmp, fr=frames: write(tmp, fr, format="extxyz"),
        )
        marker.unlink()
    return directory


def plausible_labels(
    frames: Sequence[Atoms], max_force: float = 30.0, max_energy_spread: float = 3.0
) -> bool:
    """Whether a composition's labels look like a physical energy surface.

    GFN1-xTB converges on some exotic compositions to states whose energies run to
    thousands of eV per atom or beyond, along relaxations that blow the crystal up; such
    labels would dominate any fit. Kept: every frame with energy below zero and forces
    under ``max_force`` (eV/Å), and energies per atom over the composition's frames
    (prototype, relaxation, rattled, strained) within ``max_energy_spread`` (eV/atom).
    """
    energies = np.array([a.info["energy"] / len(a) for a in frames])
    forces = max(float(np.abs(a.arrays["forces"]).max()) for a in frames)
    return bool(energies.max() < 0 and np.ptp(energies) < max_energy_spread
                and forces < max_force)  # fmt: skip


def read_labelled(
    directory: str | os.PathLike, compositions: Iterable[Sequence[str]] | None = None
) -> dict[tuple[str, ...], list[Atoms]]:
    """The labelled frames of a :func:`label_elpasolites` directory, by composition.

    Parameters
    ----------
    directory
        The cache directory.
    compositions
        Only these (site tuples); default all labelled ones, in name order.

    Returns
    -------
    dict
        ``{(A, B, C, D): [frames]}``; frames carry energy, forces and stress (a
        single-point calculator) and ``info["config"]``.
    """
    from .files import read_structures

    frames_dir = Path(directory) / "frames"
    if not frames_dir.is_dir():
        raise FileNotFoundError(
            f"no labelled frames in {directory}: run label_elpasolites(compositions, "
            f"{str(directory)!r}) first (or benchmarks/accuracy/potential_xtb.py)"
        )
    if compositions is None:
        names = sorted(p.stem for p in frames_dir.glob("*.extxyz"))
    else:
        names = [composition_name(s) for s in compositions]
    out = {}
    for name in names:
        path = frames_dir / f"{name}.extxyz"
        if path.exists():
            out[tuple(name.split("-"))] = read_structures(path, forces=True, stress=True)
    return out
