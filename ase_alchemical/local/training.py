"""Training a local potential on a labelled structure file: the split, the fit, the report.

The split is by frame index in file order (``i % 10 == 9``: test, ``i % 10 == 8``:
held-out structures U is learned on, the rest: training), the rule of the HEA data in
``shared/data``; :func:`split_by_index` applies it to any list. The report (test errors
of energies and forces, timings, provenance) is stored in the model file's metadata.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from .._version import __version__
from ..data.files import read_structures
from .model import AlchemicalPotential

__all__ = ["split_by_index", "train_potential"]


def split_by_index(frames: Sequence[Atoms], period: int = 10) -> tuple[list, list, list]:
    """(training, held-out, test) by frame index: test ``i % period == period - 1``,
    held-out ``i % period == period - 2``, training the rest."""
    if period < 3:
        raise ValueError(f"period must be >= 3, got {period}")
    frames = list(frames)
    test = [a for i, a in enumerate(frames) if i % period == period - 1]
    opt = [a for i, a in enumerate(frames) if i % period == period - 2]
    train = [a for i, a in enumerate(frames) if i % period < period - 2]
    return train, opt, test


def train_potential(
    data: str | os.PathLike,
    *,
    forces: bool = True,
    stress: bool = False,
    n_train: int | None = None,
    solve_on_opt: bool = False,
    out: str | os.PathLike | None = None,
    **params,
) -> tuple[AlchemicalPotential, dict]:
    """Fit an :class:`.AlchemicalPotential` on a labelled file and evaluate it on its test
    frames.

    Parameters
    ----------
    data
        Structure file with energies (and forces / stress), read by
        :func:`~ase_alchemical.data.files.read_structures`; split by :func:`split_by_index`.
    forces, stress
        Fit forces / stress as well as energies.
    n_train
        Use only the first ``n_train`` training frames (a learning curve).
    solve_on_opt
        Solve the final weights on the training and held-out frames
        (:meth:`.AlchemicalPotential.fit`).
    out
        Where to save the model (atomically); ``None``: not saved.
    **params
        Passed to :class:`.AlchemicalPotential`.

    Returns
    -------
    model, report
    """
    path = Path(data)
    frames = read_structures(path, forces=forces, stress=stress)
    train, opt, test = split_by_index(frames)
    if n_train is not None:
        train = train[: int(n_train)]
    if not train or not test:
        raise ValueError(f"{path} has too few frames for a training and a test split")
    model = AlchemicalPotential(**params)
    t0 = time.perf_counter()
    model.fit(train, opt, forces=forces, stress=stress, solve_on_opt=solve_on_opt)
    fit_time = time.perf_counter() - t0
    score = model.score(test)
    report = {
        "dataset": path.name,
        "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "split": "by frame index: test i % 10 == 9, held-out i % 10 == 8, training the rest",
        "n_train": len(train),
        "n_opt": len(opt),
        "n_test": len(test),
        "fit_forces": bool(forces),
        "fit_stress": bool(stress),
        "solved_on": model.optimization_["solved_on"],
        "test": score,
        "fit_time_s": fit_time,
        "best_step": model.best_step_,
        "optimization": model.optimization_,
        "package_version": __version__,
    }
    model.state_.metadata = report
    if out is not None:
        model.save(out, metadata=report)
    return model, report
