"""Fitting: from labelled structures to the :class:`~ase_alchemical.structure.state.FittedState`
of an :class:`~ase_alchemical.structure.model.AlchemicalKRR`.

The model holds the hyperparameters and predicts; this module checks the hyperparameters
and runs the fit: spectra -> a new compression -> support points -> the joint
optimisation of U (:mod:`~ase_alchemical.structure.optimize`) -> the final solve -> the
uncertainty calibration. Functions take the estimator for its hyperparameters and
helpers (``pair_spectrum``, ``torch_device``), never reaching into a fitted state that
is not theirs to build.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from ..core.compression import AlchemicalCompression
from ..core.features import PairSpectrum
from ..core.gp import calibration_scale
from ..core.hypers import basis_shapes, hypers_list
from ..core.kernels import PolynomialKernel
from ..core.optimize import LR_SCHEDULES, optimization_summary, rotates
from ..core.sampling import random_projection
from ..core.state import bare_copies
from ..core.targets import TargetScaler, per_atom_energies
from .optimize import (
    GRADIENT_FLOWS,
    FixedSets,
    OptimizationResult,
    RotatingSets,
    optimize_compression,
)
from .representation import NORMALIZATIONS, Representation, fit_projection
from .solvers import SOLVERS, FullSolver
from .state import FittedState
from .uncertainty import VarianceFactors, mean_and_raw_variance

__all__ = [
    "ZETA_CHOICES",
    "ZETA_CHOICE_BELOW",
    "ZETA_LARGE",
    "STEPS_BY_SIZE",
    "STEPS_LARGE",
    "check_params",
    "steps_for",
    "fit_state",
    "selection_rmse",
    "zeta_candidates",
    "kernel_for",
    "new_compression",
    "refit_state",
]


def check_params(model) -> None:
    """Raise a ``ValueError`` naming the fix for an invalid or inconsistent
    hyperparameter of ``model`` (an :class:`~ase_alchemical.structure.model.AlchemicalKRR`)."""
    n_scales = len(hypers_list(model.hypers))
    if n_scales > 1 and model.basis_components is not None:
        raise ValueError(
            "basis_components mixes the (l, n, n') channels of all scales; it cannot be "
            "combined with multi-scale hypers"
        )
    if model.radially_resolved and (model.center_resolved or model.basis_components):
        raise ValueError(
            "radially_resolved needs the plain (l, n, n') channels summed over centres: "
            "it cannot be combined with center_resolved or basis_components"
        )
    if model.scale_weights is not None:
        w = np.asarray(model.scale_weights, dtype=float)
        if w.shape != (n_scales,) or not np.all(w > 0):
            raise ValueError(
                f"scale_weights must be {n_scales} positive numbers (one per scale of "
                f"hypers), got {model.scale_weights}"
            )
    choices = {
        "normalization": NORMALIZATIONS, "gradient_flow": GRADIENT_FLOWS,
        "lr_schedule": LR_SCHEDULES, "solver": SOLVERS,
    }  # fmt: skip
    for name, allowed in choices.items():
        if getattr(model, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(model, name)!r}")
    zeta_candidates(model.zeta)  # checks the value
    steps_for(model.n_steps)  # checks the value
    if model.basis_components is not None and int(model.basis_components) < 1:
        raise ValueError(f"basis_components must be >= 1 or None, got {model.basis_components}")
    if not model.regularizer > 0:
        raise ValueError(f"regularizer must be > 0, got {model.regularizer}")
    if model.learn_regularizer and model.gradient_flow != "full":
        raise ValueError(
            f"learn_regularizer=True needs gradient_flow='full': with "
            f"{model.gradient_flow!r} no gradient reaches the regulariser"
        )
    rotates(model.rotation, 0, 0)  # checks the value
    if int(model.n_folds) != model.n_folds or model.n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {model.n_folds}")


def new_compression(model, species: Sequence[int], d_j: int, init) -> AlchemicalCompression:
    """A compression with ``model``'s layout (centre- or radially resolved), on its device."""
    radial = basis_shapes(model.hypers_) if model.radially_resolved else None
    return AlchemicalCompression(
        species, d_j, init, model.seed, bool(model.center_resolved), radial
    ).to(model.torch_device)


#: ``zeta="auto"``: the exponents tried below :data:`ZETA_CHOICE_BELOW` training
#: structures, and the one used from there on (or when nothing can choose).
ZETA_CHOICES, ZETA_LARGE = (2, 3), 3
#: Training structures from which ``zeta="auto"`` fits zeta 3 alone: on the elpasolites
#: the better exponent varies with d_J and the draw below it, and zeta 3 wins from there
#: on (``benchmarks/studies/small_zeta.py``), where one fit costs the most.
ZETA_CHOICE_BELOW = 3000


def _integer_from(value, low: int) -> bool:
    """Whether ``value`` is an integer (numpy's too, not a bool) of at least ``low``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def zeta_candidates(zeta, n_train: int = 0, chooses: bool = True) -> tuple[int, ...]:
    """The exponents a fit on ``n_train`` training structures tries: ``zeta`` itself
    (an integer), each of a sequence of them, or for ``"auto"`` :data:`ZETA_CHOICES`
    below :data:`ZETA_CHOICE_BELOW` training structures when an optimization set can
    choose (``chooses``), else :data:`ZETA_LARGE`. A ``ValueError`` unless each is a
    positive integer, once."""
    if isinstance(zeta, str) and zeta == "auto":
        return ZETA_CHOICES if chooses and n_train < ZETA_CHOICE_BELOW else (ZETA_LARGE,)
    values = tuple(zeta) if isinstance(zeta, (list, tuple)) else (zeta,)
    ok = values and all(_integer_from(z, 1) for z in values)
    if not ok or len(set(values)) != len(values):
        raise ValueError(
            "zeta must be a positive integer, a sequence of distinct ones or 'auto', got "
            f"{zeta!r}"
        )
    return tuple(int(z) for z in values)


#: ``n_steps="auto"``: (training structures below which, Adam steps) in increasing
#: order, and the steps from the last size on. On the elpasolites
#: (``benchmarks/studies/small_steps.py``, three training draws per point): at a constant
#: learning rate 250 steps left the optimization-set loss still falling below 1,000
#: training crystals, and of 250, 500, 750 and 1,000 steps 750 gave the lowest mean test
#: MAE there. With the cosine decay (the default schedule) 250 steps were on average behind the
#: constant rate at every size measured, 1,000 included, for d_J = 2 and 4, and 750
#: decaying steps did better than 250 at 1,000 for both. At 6,000 the decay's 250 steps
#: were level with the constant rate's (``benchmarks/studies/schedule.py``). The threshold
#: is the learning curves' next size, 3,000: no size between 1,000 and 6,000 was measured.
STEPS_BY_SIZE, STEPS_LARGE = ((3000, 750),), 250


def steps_for(n_steps, n_train: int = 0) -> int:
    """The Adam steps a fit on ``n_train`` training structures takes: ``n_steps`` itself
    (an integer >= 0), or for ``"auto"`` the first of :data:`STEPS_BY_SIZE` whose size
    ``n_train`` is below, else :data:`STEPS_LARGE`. A ``ValueError`` for anything else."""
    if isinstance(n_steps, str) and n_steps == "auto":
        return next((steps for size, steps in STEPS_BY_SIZE if n_train < size), STEPS_LARGE)
    if _integer_from(n_steps, 0):
        return int(n_steps)
    raise ValueError(f"n_steps must be an integer >= 0 or 'auto', got {n_steps!r}")


def kernel_for(
    model, representation: Representation, scale_weights, zeta: int
) -> PolynomialKernel:
    """``model``'s kernel of exponent ``zeta`` on the features of ``representation``."""
    widths = representation.scale_widths if model.n_scales > 1 else None
    return PolynomialKernel(int(zeta), widths, scale_weights)


def selection_rmse(state: FittedState) -> float:
    """The optimization-set RMSE (eV/atom) of the step whose U ``state`` kept: over
    the last folds with rotation; what chooses among candidate exponents."""
    if state.best_step is None:
        return float("nan")
    record = state.loss_history[state.best_step]
    return float(record.get("rotation_rmse", record["opt_rmse"]))


def _initial_scale_logits(model) -> torch.Tensor:
    w = np.ones(model.n_scales) if model.scale_weights is None else model.scale_weights
    w = np.asarray(w, dtype=float)
    return torch.as_tensor(np.log(w / w.sum()), dtype=torch.float64, device=model.torch_device)


def _fps_features(model, representation: Representation, spectrum: PairSpectrum):
    """Randomly projected features (256 columns at most) for farthest-point sampling."""
    n_feat = representation.features(spectrum[:1]).shape[1]
    proj = random_projection(n_feat, 256, model.seed).to(model.torch_device)
    return representation.map_chunks(spectrum, lambda x: x @ proj if n_feat > 256 else x)


def fit_state(
    model, train: Sequence[Atoms], opt: Sequence[Atoms] | None, eval_set: Sequence[Atoms] | None,
    spectra: dict[str, PairSpectrum | None],
) -> FittedState:  # fmt: skip
    """The fitted state of ``model``'s hyperparameters on ``train`` (weights) and
    ``opt`` (U), ``eval_set`` watched at every step; ``spectra`` holds the precomputed
    pair spectra of these sets (keys ``"train"``, ``"opt"``, ``"eval"``; missing or
    ``None``: computed). With several candidate exponents (``zeta`` a sequence, or
    ``"auto"`` below :data:`ZETA_CHOICE_BELOW` training structures; :func:`zeta_candidates`)
    one fit per exponent, and the state with the lowest :func:`selection_rmse` is kept. See
    :meth:`AlchemicalKRR.fit <ase_alchemical.structure.model.AlchemicalKRR.fit>`."""
    check_params(model)
    train = list(train)
    opt = None if opt is None else list(opt)
    n_steps = steps_for(model.n_steps, len(train))
    chooses = bool(opt) and n_steps > 0
    candidates = zeta_candidates(model.zeta, len(train), chooses)
    t0 = time.perf_counter()
    spectra = dict(spectra)
    if len(candidates) > 1:
        if not chooses:
            raise ValueError(
                f"zeta={model.zeta!r} lists candidate exponents, which are chosen on the "
                "optimization set: pass an optimization set and n_steps > 0, or one zeta"
            )
        for name, frames in (("train", train), ("opt", opt), ("eval", eval_set)):
            if spectra.get(name) is None and frames:  # computed once for every fit
                spectra[name] = model.pair_spectrum(list(frames))
    if len(candidates) == 1:
        return _fit_one(model, candidates[0], n_steps, train, opt, eval_set, spectra)
    best, scores = None, []
    for zeta in candidates:  # one state held at a time beside the best
        state = _fit_one(model, zeta, n_steps, train, opt, eval_set, spectra)
        scores.append(selection_rmse(state))
        if best is None or scores[-1] < selection_rmse(best):
            best = state
    best.optimization["zeta_candidates"] = [[z, r] for z, r in zip(candidates, scores)]
    best.fit_time = time.perf_counter() - t0
    return best


def _fit_one(model, zeta: int, n_steps: int, train, opt, eval_set, spectra) -> FittedState:
    """The fitted state of ``model``'s hyperparameters with exponent ``zeta`` and
    ``n_steps`` Adam steps on U."""
    train_spectrum, opt_spectrum, eval_spectrum = (
        spectra.get(name) for name in ("train", "opt", "eval")
    )
    t0 = time.perf_counter()
    device = model.torch_device
    train = list(train)
    y_train = torch.as_tensor(per_atom_energies(train), device=device)
    rho_t = train_spectrum if train_spectrum is not None else model.pair_spectrum(train)
    rho_t = rho_t.to(device)  # a precomputed spectrum may be on another device
    targets = TargetScaler.fit(y_train)
    y_t = targets.transform(y_train)
    species = {int(z) for z in rho_t.numbers.unique().tolist() if z > 0}
    optimize = opt is not None and len(opt) > 0 and n_steps > 0
    if optimize:
        opt = list(opt)
        rho_o = opt_spectrum if opt_spectrum is not None else model.pair_spectrum(opt)
        rho_o = rho_o.to(device)
        species |= {int(z) for z in rho_o.numbers.unique().tolist() if z > 0}
        y_o = targets.standardised(opt, device)
    projection = None
    if model.basis_components is not None:
        projection = fit_projection(rho_t, int(model.basis_components))
    species = sorted(species)
    d_j = len(species) if model.d_j is None else model.d_j
    compression = new_compression(model, species, d_j, model.init)
    representation = Representation(compression, model.hypers_, model.normalization, projection)
    rho_t = representation.project(rho_t)
    solver = model.solver_
    support = solver.select_support(
        len(train), lambda: _fps_features(model, representation, rho_t), model.seed
    ).to(device)
    logits = _initial_scale_logits(model)
    regularizer, history, best_step = float(model.regularizer), [], None
    summary = optimization_summary(
        n_train=len(train), n_opt=len(opt or []), n_mixing_weights=int(compression.U.numel()),
        rotated=False, n_folds=1, learned=False,
    )  # fmt: skip
    if optimize:
        rho_o = representation.project(rho_o)
        monitor = _watched(model, representation, targets, eval_set, eval_spectrum)
        result, summary = _optimize(
            model, zeta, n_steps, representation, solver, (rho_t, y_t), (rho_o, y_o), support,
            logits, targets.std, monitor,
        )  # fmt: skip
        regularizer = float(np.exp(result.best.log_regularizer))
        logits, history, best_step = result.best.scale_logits, result.history, result.best_step
    scale_weights = torch.softmax(logits, 0)
    kernel = kernel_for(model, representation, scale_weights, zeta)
    with torch.no_grad():
        # in chunks: a whole set's uncompressed intermediates are several times the size of
        # its features (plain SOAP over 39 elements at 6,000 crystals ran out of 24 GB)
        x_sup = representation.map_chunks(rho_t[support], lambda x: x)
        weights, gram = solver.final_weights(
            kernel, lambda: representation.map_chunks(rho_t, lambda x: kernel(x, x_sup)),
            x_sup, y_t, regularizer,
        )  # fmt: skip
    state = FittedState(
        compression=compression, weights=weights,
        support=bare_copies(train[i] for i in support.cpu().numpy()),
        regularizer=regularizer, scale_weights=scale_weights,
        target_mean=targets.mean, target_std=targets.std, projection=projection, gram=gram,
        loss_history=history, best_step=best_step, optimization=summary,
        support_features=x_sup, support_index=support, zeta=int(zeta),
    )  # fmt: skip
    if optimize:
        state.uncertainty_scale = calibrate(state, representation, kernel, solver, rho_o, y_o)
    state.fit_time = time.perf_counter() - t0
    return state


def _watched(model, representation, targets, frames, spectrum) -> tuple | None:
    """(projected spectra, standardised targets) of the structures watched while U is
    learned, or ``None``."""
    if frames is None or len(frames) == 0:
        return None
    frames = list(frames)
    spectrum = spectrum if spectrum is not None else model.pair_spectrum(frames)
    device = model.torch_device
    return (representation.project(spectrum.to(device)), targets.standardised(frames, device))


def calibrate(
    state: FittedState,
    representation: Representation,
    kernel: PolynomialKernel,
    solver: FullSolver,
    spectrum: PairSpectrum,
    y: torch.Tensor,
) -> float:
    """The uncertainty scale of ``state`` from (projected) spectra with standardised
    targets ``y`` (:func:`~ase_alchemical.core.gp.calibration_scale`)."""
    factors = VarianceFactors.for_state(state, kernel, solver)
    with torch.no_grad():
        mean, var = mean_and_raw_variance(
            representation, kernel, factors, state.support_features, state.weights, spectrum
        )
        return calibration_scale(mean, var, y)


def _optimize(
    model, zeta, n_steps, representation, solver, train, opt, support, logits, target_std,
    monitor,
):  # fmt: skip
    """Adam on U (and the learned regulariser and scale weights), the roles of the sets
    fixed or rotating (:func:`~ase_alchemical.core.optimize.rotates`); returns the
    optimization result and its summary for the fitted state."""
    u = representation.compression.U
    n_opt, n_weights = len(opt[0]), int(u.numel())
    rotated = rotates(model.rotation, n_opt, n_weights)
    size = model.step_train_size
    if rotated:
        pool = (PairSpectrum.concatenate([train[0], opt[0]]), torch.cat([train[1], opt[1]]))
        sets = RotatingSets(pool, support, int(model.n_folds), size, solver, model.seed)
    else:
        sets = FixedSets(train, opt, support, size, solver, model.seed)
    result: OptimizationResult = optimize_compression(
        u, representation, kernel_for(model, representation, torch.softmax(logits, 0), zeta),
        solver, sets,
        n_steps=n_steps, learning_rate=float(model.learning_rate),
        lr_schedule=model.lr_schedule, regularizer=float(model.regularizer),
        learn_regularizer=bool(model.learn_regularizer), scale_logits=logits,
        learn_scale_weights=bool(model.learn_scale_weights) and model.n_scales > 1,
        gradient_flow=model.gradient_flow, target_std=target_std, progress=model.progress,
        monitor=monitor,
    )  # fmt: skip
    summary = optimization_summary(
        n_train=len(train[0]), n_opt=n_opt, n_mixing_weights=n_weights, rotated=rotated,
        n_folds=sets.n_folds, learned=True, run=result,
    )  # fmt: skip
    return result, summary


def refit_state(
    model, frames: Sequence[Atoms], spectrum: PairSpectrum | None, regularizer: float | None
) -> None:
    """Solve ``model``'s weights again on ``frames``, in its fitted state (see
    :meth:`AlchemicalKRR.refit <ase_alchemical.structure.model.AlchemicalKRR.refit>`)."""
    if regularizer is not None and not regularizer > 0:
        raise ValueError(f"regularizer must be > 0, got {regularizer}")
    frames = list(frames)
    state, rep, solver = model.state_, model.representation_, model.solver_
    device = model.torch_device
    rho = spectrum if spectrum is not None else model.pair_spectrum(frames)
    rho = rep.project(rho.to(device))
    y = state.targets.standardised(frames, device)
    if regularizer is not None:
        state.regularizer = float(regularizer)
    with torch.no_grad():
        if solver.all_points_are_support:
            state.support = bare_copies(frames)
            state.support_features = rep.map_chunks(rho, lambda x: x)  # memory: as above
            state.support_index = torch.arange(len(frames), device=device)
        x_sup, kernel = state.support_features, model.kernel_
        state.weights, state.gram = solver.final_weights(
            kernel, lambda: rep.map_chunks(rho, lambda x: kernel(x, x_sup)), x_sup, y,
            state.regularizer,
        )  # fmt: skip
