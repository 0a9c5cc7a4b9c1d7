"""Training recipes: data -> split -> joint fit -> held-out evaluation -> saved model.

These tie :mod:`~ase_alchemical.data.datasets` and
:class:`~ase_alchemical.structure.model.AlchemicalKRR` together with provenance, for the CLI,
the benchmarks and the book.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..core.features import PairSpectrum
from ..core.targets import per_atom_energies
from ..data.datasets import (
    ELPASOLITE_CSV_SHA256,
    ELPASOLITE_PKL_SHA256,
    _resolve_data_file,
    load_elpasolites,
    split,
)
from .model import AlchemicalKRR

__all__ = [
    "device_name",
    "evaluate_on_test_split",
    "refit_elpasolite_model",
    "regularizer_scan",
    "train_elpasolite_model",
]

#: Size of the fixed held-out test split used for every reported number.
DEFAULT_N_TEST = 1000

#: Factors of the learned regulariser tried for the final solve (``choose_regularizer``).
REGULARIZER_FACTORS = (3.0, 1.0, 0.5, 0.3, 0.2, 0.1, 0.03)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_elpasolite_model(
    n_train: int = 6000,
    n_opt: int = 2000,
    n_test: int = DEFAULT_N_TEST,
    split_seed: int = 0,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    frames: list | None = None,
    refit_on_opt: bool = False,
    refit_on_all: bool = False,
    choose_regularizer: bool = False,
    **model_params,
) -> tuple[AlchemicalKRR, dict]:
    """Fit an :class:`.AlchemicalKRR` on the elpasolites and evaluate it on the test split.

    Parameters
    ----------
    n_train, n_opt, n_test
        Split sizes (see :func:`ase_alchemical.data.datasets.split`); the test split depends
        only on ``split_seed`` and ``n_test``, so it is shared by every fit.
    split_seed
        Seed of the split.
    data
        Data file or directory (default: ``$ASE_ALCHEMICAL_DATA``, then the cache).
    out
        Where to save the model (atomically); ``None`` to not save.
    frames
        Already loaded elpasolites (skips reading ``data`` again).
    refit_on_opt
        Once U is learned, solve the final weights on the training *and* optimization
        sets (:meth:`.AlchemicalKRR.refit`), so the model uses every labelled crystal but
        the test set; the uncertainty stays calibrated on the optimization set before it.
    refit_on_all
        Once U is learned, solve the final weights on *every* crystal outside the test
        split: training, optimization and the rest the split left unused (see
        :func:`refit_elpasolite_model`). Overrides ``refit_on_opt``.
    choose_regularizer
        Once U is learned, choose the regulariser of the final solve: the weights are
        solved on the training set with the learned value times each of
        :data:`.REGULARIZER_FACTORS`, and the one with the lowest MAE on the crystals the
        split leaves in no set (neither training, optimization nor test) is kept, for
        the refits too. The learned value suits the per-step solves on
        ``step_train_size`` crystals; a solve on more may want less.
    **model_params
        Passed to :class:`.AlchemicalKRR`.

    Returns
    -------
    model, report
        The fitted model and a dict with test MAE/RMSE (eV/atom), timings and provenance
        (also stored in the model file's metadata).
    """
    if (refit_on_opt or refit_on_all) and n_opt <= 0:
        raise ValueError(
            "a refit once U is learned needs an optimization set (n_opt > 0); without one "
            "U is not learned: fit on the crystals you want with n_train instead"
        )
    data_file = _resolve_data_file(data)
    frames = load_elpasolites(data_file) if frames is None else frames
    train, opt, test = split(frames, n_train, n_opt, n_test, seed=split_seed)
    model = AlchemicalKRR(**model_params)
    unused = _unused(frames, n_train, n_opt, n_test, split_seed) if choose_regularizer else []
    t0 = time.perf_counter()
    refit = {"opt": refit_on_opt, "all": refit_on_all, "split": (n_opt, n_test, split_seed)}
    scan, n_weights = _fit_then_refit(model, frames, train, opt, unused, refit)
    fit_time = time.perf_counter() - t0
    report = {
        **_data_record(data_file, split_seed, n_train, n_opt, n_test),
        "refit_on_opt": bool(refit_on_opt or refit_on_all),
        "refit_on_all": bool(refit_on_all),
        "n_weights": n_weights,
        **_test_errors(model, test),
        "fit_time_s": fit_time,
        **_model_record(model, scan),
    }
    model.state_.metadata = report
    if out is not None:
        model.save(out, metadata=report)
    return model, report


def _unused(frames, n_train: int, n_opt: int, n_test: int, split_seed: int) -> list:
    """The crystals of the split in no set (neither training, optimization nor test)."""
    non_test, n_train_all = _non_test(frames, n_opt, n_test, split_seed)
    unused = non_test[n_train:n_train_all]  # the split nests training sets
    if not unused:
        raise ValueError(
            "choose_regularizer needs crystals outside the training, optimization and "
            f"test sets; n_train + n_opt + n_test = {n_train + n_opt + n_test} leaves none "
            f"of the {len(frames)}"
        )
    return unused


def _data_record(data_file: Path, split_seed: int, n_train: int, n_opt: int, n_test: int):
    """Provenance of a fit's data: the file, its checksum and the split."""
    return {
        "dataset": "elpasolites (Faber et al. 2016), hard-sphere prototype geometries",
        "data_file": data_file.name,
        "data_sha256": _sha256(data_file),
        "split_seed": split_seed,
        "n_train": n_train,
        "n_opt": n_opt,
        "n_test": n_test,
    }


def _model_record(model: AlchemicalKRR, scan: list | None) -> dict:
    """What the fit chose (kept step, optimization summary, regulariser and its scan)
    and where it ran."""
    return {
        "best_step": model.best_step_,
        "zeta": model.zeta_,
        "optimization": model.optimization_,
        "regularizer": model.regularizer_,
        "regularizer_scan": scan,
        "device": device_name(model.torch_device),
        "package_version": __version__,
    }


def _test_errors(model: AlchemicalKRR, test: list) -> dict:
    """MAE and RMSE (eV/atom) of the model on the test crystals, and the seconds their
    prediction took (featurization included)."""
    t0 = time.perf_counter()
    predicted = model.predict_from_spectrum(model.pair_spectrum(test)).detach().cpu().numpy()
    seconds = time.perf_counter() - t0
    err = predicted - per_atom_energies(test)
    return {
        "test_mae_ev_per_atom": float(np.abs(err).mean()),
        "test_rmse_ev_per_atom": float(np.sqrt((err**2).mean())),
        "test_predict_time_s": seconds,
    }


def _fit_then_refit(model, frames, train, opt, unused, refit: dict) -> tuple[list | None, int]:
    """Fit; then, as asked, choose the final regulariser on ``unused`` (when given) and
    solve the final weights on training + optimization (``refit["opt"]``) or every
    crystal outside the test split (``refit["all"]``). The spectra are computed once and
    serve every solve. Returns the regulariser scan (or ``None``) and the number of
    weights."""
    rho_t = model.pair_spectrum(train)
    rho_o = model.pair_spectrum(opt) if opt else None
    model.fit(train, opt or None, train_spectrum=rho_t, opt_spectrum=rho_o)
    scan, rho_unused = None, None
    if unused:
        rho_unused = model.pair_spectrum(unused)  # also serves the refit on all
        scan = regularizer_scan(model, train, rho_t, {"val": (unused, rho_unused)})
        best = min(scan, key=lambda row: row["val_mae"])
        model.refit(train, spectrum=rho_t, regularizer=best["regularizer"])
        if model.uncertainty_scale_ is not None:  # new weights: calibrate as fit did
            model.calibrate_uncertainty(opt, spectrum=rho_o)
    if refit["all"]:
        n_opt, n_test, split_seed = refit["split"]
        everything = _refit_on_all(model, frames, n_opt, n_test, split_seed, rho_t, rho_o,
                                   rho_unused)  # fmt: skip
        return scan, len(everything)
    if refit["opt"]:
        model.refit(train + opt, spectrum=PairSpectrum.concatenate([rho_t, rho_o]))
        return scan, len(train) + len(opt)
    return scan, len(train)


def regularizer_scan(
    model: AlchemicalKRR,
    train: list,
    train_spectrum: PairSpectrum,
    scored: dict[str, list | tuple[list, PairSpectrum]],
    factors=REGULARIZER_FACTORS,
) -> list[dict]:
    """Errors with the weights re-solved on ``train`` for each factor of the learned
    regulariser (U and scale weights kept).

    Parameters
    ----------
    model
        A fitted model; left solved on ``train`` with the last factor's regulariser.
    train, train_spectrum
        The structures to solve on and their :meth:`.AlchemicalKRR.pair_spectrum`.
    scored
        Named sets of structures to score, e.g. ``{"val": held_out}``, each optionally
        with its precomputed spectrum: ``{"val": (held_out, spectrum)}``.
    factors
        Multiples of the learned regulariser to try.

    Returns
    -------
    list of dict
        One row per factor: ``factor``, ``regularizer`` and ``<name>_mae`` /
        ``<name>_rmse`` (eV/atom) for each scored set.
    """
    learned = model.regularizer_
    spectra, targets = {}, {}
    for name, entry in scored.items():
        frames, rho = entry if isinstance(entry, tuple) else (entry, None)
        spectra[name] = rho if rho is not None else model.pair_spectrum(frames)
        targets[name] = per_atom_energies(frames)
    rows = []
    for factor in factors:
        model.refit(train, spectrum=train_spectrum, regularizer=factor * learned)
        row = {"factor": float(factor), "regularizer": factor * learned}
        for name, rho in spectra.items():
            with torch.no_grad():
                err = model.predict_from_spectrum(rho).cpu().numpy() - targets[name]
            row[f"{name}_mae"] = float(np.abs(err).mean())
            row[f"{name}_rmse"] = float(np.sqrt((err**2).mean()))
        rows.append(row)
    return rows


def device_name(device: torch.device) -> str:
    """``cpu``, or ``cuda (<GPU name>)``: the timings in a report depend on it."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _recorded_split(model: AlchemicalKRR, instead: str) -> dict:
    """A copy of the model's metadata, checked to hold the split it was trained on."""
    meta = dict(getattr(model, "metadata_", {}) or {})
    if not all(k in meta for k in ("split_seed", "n_train", "n_opt", "n_test", "data_sha256")):
        raise ValueError(
            "this model has no elpasolite split in its metadata (it was not trained by "
            f"`ase-alchemical train`); {instead}"
        )
    return meta


def _checked_data_file(data: str | os.PathLike | None, meta: dict) -> Path:
    """The data file, checked to be the one the model's split was drawn from."""
    data_file = _resolve_data_file(data)
    # the CSV and the pickle are the same published data under two checksums
    published = {ELPASOLITE_CSV_SHA256, ELPASOLITE_PKL_SHA256}
    digest = _sha256(data_file)
    if digest != meta["data_sha256"] and not {digest, meta["data_sha256"]} <= published:
        raise ValueError(f"{data_file} is not the data file this model was trained on")
    return data_file


def _non_test(frames: list, n_opt: int, n_test: int, split_seed: int) -> tuple[list, int]:
    """Every crystal outside the test split, ordered training set first (the split nests
    training sets), then the unused rest, then the optimization set; and the number of
    training + rest crystals."""
    train_all, opt, _ = split(frames, len(frames) - n_opt - n_test, n_opt, n_test, split_seed)
    return train_all + opt, len(train_all)


def _refit_on_all(
    model, frames, n_opt, n_test, split_seed, rho_train=None, rho_opt=None, rho_rest=None
):
    """Refit ``model`` on every non-test crystal; reuses the training, optimization (and
    unused rest) spectra when given, featurizing only what is missing."""
    everything, n_train_all = _non_test(frames, n_opt, n_test, split_seed)
    spectrum = None
    if rho_train is not None and rho_opt is not None:
        rest = everything[len(rho_train) : n_train_all]
        if rest and rho_rest is None:
            rho_rest = model.pair_spectrum(rest)
        parts = [rho_train] + ([rho_rest] if rest else []) + [rho_opt]
        spectrum = PairSpectrum.concatenate(parts)
    model.refit(everything, spectrum=spectrum)
    return everything


def refit_elpasolite_model(
    model: AlchemicalKRR,
    data: str | os.PathLike | None = None,
    frames: list | None = None,
    out: str | os.PathLike | None = None,
) -> tuple[AlchemicalKRR, dict]:
    """Solve a trained model's weights again on every crystal outside its test split.

    U, the regulariser, the scale weights and the uncertainty scale are kept; the
    training set of the recorded split, the optimization set and the crystals the split
    left unused (10,590 - n_train - n_opt - n_test) all enter the solve. The test
    split is unchanged, so the new test MAE compares directly with the recorded one.

    Parameters
    ----------
    model
        A model trained by :func:`train_elpasolite_model` (its metadata holds the split);
        it is modified in place. With the full solver every non-test crystal becomes a
        support point; the sparse solver keeps its support points and solves on them all.
    data, frames
        As in :func:`train_elpasolite_model`.
    out
        Where to save the refitted model (atomically); ``None`` to not save.

    Returns
    -------
    model, report
        The refitted model and its updated metadata (test MAE/RMSE after the refit, the
        one recorded before it, ``n_weights``, the refit time).
    """
    meta = _recorded_split(model, "its test crystals are unknown: use model.refit(frames)")
    data_file = _checked_data_file(data, meta)
    frames = load_elpasolites(data_file) if frames is None else frames
    t0 = time.perf_counter()
    everything = _refit_on_all(model, frames, meta["n_opt"], meta["n_test"], meta["split_seed"])
    refit_time = time.perf_counter() - t0
    scores = evaluate_on_test_split(model, data=data_file, frames=frames)
    meta.update({
        "refit_on_all": True,
        "n_weights": len(everything),
        "test_mae_before_refit_on_all": meta.get("test_mae_ev_per_atom"),
        "test_mae_ev_per_atom": scores["test_mae_ev_per_atom"],
        "test_rmse_ev_per_atom": scores["test_rmse_ev_per_atom"],
        "refit_time_s": refit_time,
        "package_version": __version__,
    })  # fmt: skip
    model.state_.metadata = meta
    if out is not None:
        model.save(out, metadata=meta)
    return model, meta


def evaluate_on_test_split(
    model: AlchemicalKRR, data: str | os.PathLike | None = None, frames: list | None = None
) -> dict:
    """MAE / RMSE (eV/atom) of a model on the held-out test split recorded in its metadata.

    Raises
    ------
    ValueError
        If the model has no split provenance (it was not trained by
        :func:`train_elpasolite_model`) or the data file differs from the one it was
        trained on.
    """
    meta = _recorded_split(model, "evaluate it on your own structures with model.score()")
    data_file = _checked_data_file(data, meta)
    frames = load_elpasolites(data_file) if frames is None else frames
    _, _, test = split(frames, meta["n_train"], meta["n_opt"], meta["n_test"], meta["split_seed"])
    scores = model.score(test)
    return {
        "test_mae_ev_per_atom": scores["mae"],
        "test_rmse_ev_per_atom": scores["rmse"],
        "n_test": scores["n"],
        "recorded_test_mae_ev_per_atom": meta.get("test_mae_ev_per_atom"),
    }
