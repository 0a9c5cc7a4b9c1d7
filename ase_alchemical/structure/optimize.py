"""Joint optimisation of the compression U: the loss of one step and the Adam loop.

Every step builds the training features from the current U, solves for the KRR weights
on the training set, predicts the optimization set and takes an Adam step on U (and on
log lambda and the scale weights, when they are learned) from the squared error there.
With ``gradient_flow="full"`` the gradient also flows through the solve;
``"detach_weights"`` holds the weights constant within a step (the support features
in the optimization kernel still move with U); ``"detach"`` holds the weights and the
training features constant, so that only the optimization features move.

The U kept is the one of the best step. A small optimization set is easily fitted by U
alone; with *rotation* the roles of training and optimization structures rotate instead:
the union of both sets is cut into k folds and step t optimizes on fold t mod k, solving
on the rest, so that every labelled structure informs U and no step judges U on the
structures it was solved on. The best step is then the one whose mean loss over the last
k folds (one rotation) is lowest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.features import PairSpectrum
from ..core.kernels import PolynomialKernel
from ..core.optimize import LR_SCHEDULES, Step, adam_on_u, fold_indices
from .representation import Representation
from .solvers import FullSolver

__all__ = [
    "GRADIENT_FLOWS",
    "LR_SCHEDULES",
    "FixedSets",
    "OptimizationResult",
    "RotatingSets",
    "Snapshot",
    "StepLoss",
    "StepSubsets",
    "fitted_step_loss",
    "joint_loss",
    "optimize_compression",
]

GRADIENT_FLOWS = ("full", "detach_weights", "detach")


@dataclass
class StepLoss:
    """One evaluation of the joint objective.

    Attributes
    ----------
    loss
        Mean squared (standardised) error on the optimization spectra, differentiable.
    weights
        The KRR weights solved in this step.
    support_features
        Features of the support points of this step (as the weights see them).
    train_prediction
        Standardised predictions of the training spectra (no gradient).
    """

    loss: torch.Tensor
    weights: torch.Tensor
    support_features: torch.Tensor
    train_prediction: torch.Tensor


def joint_loss(
    u: torch.Tensor,
    representation: Representation,
    kernel: PolynomialKernel,
    solver: FullSolver,
    train_spectrum: PairSpectrum,
    y_train: torch.Tensor,
    opt_spectrum: PairSpectrum,
    y_opt: torch.Tensor,
    support: torch.Tensor,
    regularizer: float | torch.Tensor,
    scale_weights: torch.Tensor | None = None,
    gradient_flow: str = "full",
) -> StepLoss:
    """The joint-training objective as a function of U, from explicit inputs.

    Parameters
    ----------
    u
        Compression matrix (n_species x d_J, or channels x n_species x d_J when
        radially resolved), typically requiring gradients.
    representation, kernel, solver
        The feature map, the kernel and the solver of the model.
    train_spectrum, y_train
        (Projected) training spectra and their standardised per-atom targets.
    opt_spectrum, y_opt
        (Projected) optimization spectra and their standardised per-atom targets.
    support
        Indices of the support points in ``train_spectrum``.
    regularizer
        Relative regulariser (a tensor to learn it).
    scale_weights
        Weights of the scales of a multi-scale kernel (a tensor to learn them);
        ``None``: the kernel's own.
    gradient_flow
        ``"full"``, ``"detach_weights"`` or ``"detach"`` (see the module docstring).
    """
    if gradient_flow not in GRADIENT_FLOWS:
        raise ValueError(f"gradient_flow must be one of {GRADIENT_FLOWS}, got {gradient_flow!r}")
    x_t = representation.features(train_spectrum, u)
    x_o = representation.features(opt_spectrum, u)
    if gradient_flow == "detach":
        x_t = x_t.detach()
    weights = solver.weights(kernel, x_t, support, y_train, regularizer, scale_weights)
    if gradient_flow != "full":
        weights = weights.detach()
    x_sup = x_t[support]
    loss = torch.mean((kernel(x_o, x_sup, scale_weights) @ weights - y_opt) ** 2)
    with torch.no_grad():
        train_prediction = kernel(x_t, x_sup, scale_weights) @ weights
    return StepLoss(loss, weights, x_sup, train_prediction.detach())


def fitted_step_loss(
    model,
    u: torch.Tensor,
    train_spectrum: PairSpectrum,
    y_train: torch.Tensor,
    opt_spectrum: PairSpectrum,
    y_opt: torch.Tensor,
    support: torch.Tensor | None = None,
    log_regularizer: torch.Tensor | None = None,
    scale_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The joint objective of a fitted
    :class:`~ase_alchemical.structure.model.AlchemicalKRR` as a function of ``u``: its
    representation, kernel, solver and ``gradient_flow`` given to :func:`joint_loss`.
    ``support``, ``log_regularizer`` and ``scale_logits`` default to the fitted values,
    as constants. Returns the loss and the training predictions."""
    model._check_fitted()
    state = model.state_
    out = joint_loss(
        u, model.representation_, model.kernel_, model.solver_, train_spectrum, y_train,
        opt_spectrum, y_opt, state.support_index if support is None else support,
        state.regularizer if log_regularizer is None else torch.exp(log_regularizer),
        None if scale_logits is None else torch.softmax(scale_logits, 0), model.gradient_flow,
    )  # fmt: skip
    return out.loss, out.train_prediction


class StepSubsets:
    """The training structures of each optimization step: a fresh random subset of
    ``size`` per step, so that a step costs the same whatever the training-set size.

    With a solver whose every training point is a support point (full KRR) the subset is
    all support points of its step; otherwise (sparse) the fixed support points plus
    random others. ``size=None`` or ``size >= n``: every structure, every step.
    """

    def __init__(
        self, n: int, support: torch.Tensor, size: int | None, solver: FullSolver, seed: int
    ) -> None:
        self.n, self.support = n, support
        self.active = size is not None and size < n
        self.size = int(size) if self.active else n
        self.all_support = solver.all_points_are_support
        if self.active:
            self.generator = torch.Generator().manual_seed(seed)
            others = torch.ones(n, dtype=torch.bool, device=support.device)
            others[support] = False
            self.others = others.nonzero().squeeze(1)
            self.n_extra = max(self.size - len(support), 0)

    def draw(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(indices of this step's structures or ``None`` for all, support indices
        within them)."""
        device = self.support.device
        if not self.active:
            return None, self.support
        if self.all_support:
            idx = torch.randperm(self.n, generator=self.generator)[: self.size].to(device)
            return idx, torch.arange(len(idx), device=device)
        pick = torch.randperm(len(self.others), generator=self.generator)[: self.n_extra]
        idx = torch.cat([self.support, self.others[pick.to(device)]])
        return idx, torch.arange(len(self.support), device=device)


class FixedSets:
    """The sets of every step when the roles stay fixed: the optimization set, and the
    training set's :class:`StepSubsets`.

    Parameters
    ----------
    train, opt
        (spectra, standardised targets) of the training and optimization sets.
    support
        Support indices in the training spectra.
    size, solver, seed
        As in :class:`StepSubsets`.
    """

    rotating = False
    n_folds = 1

    def __init__(self, train, opt, support, size, solver, seed) -> None:
        self.train, self.opt = train, opt
        self.subsets = StepSubsets(len(train[0]), support, size, solver, seed)

    def draw(self, step: int) -> tuple:
        """(train spectra, train targets, support indices in them, opt spectra, opt
        targets) of ``step``."""
        idx, support = self.subsets.draw()
        rho, y = self.train
        if idx is not None:
            rho, y = rho[idx], y[idx]
        return rho, y, support, self.opt[0], self.opt[1]


class RotatingSets:
    """The sets of step t when the roles rotate: fold t mod k of the pooled structures
    is the optimization set, the other folds (as :class:`StepSubsets` would draw them,
    support points of the sparse solver kept) the training set.

    Parameters
    ----------
    pool
        (spectra, standardised targets) of the training and the optimization structures
        together, training first.
    support
        Support indices of the sparse solver in the pool (ignored by the full solver).
    n_folds
        Number of folds k.
    size, solver, seed
        As in :class:`StepSubsets`.
    """

    rotating = True

    def __init__(self, pool, support, n_folds, size, solver, seed) -> None:
        n = len(pool[0])
        self.pool, self.n_folds = pool, int(n_folds)
        device = pool[1].device
        self.folds = [f.to(device) for f in fold_indices(n, self.n_folds, seed)]
        fold = torch.empty(n, dtype=torch.long)
        for f, idx in enumerate(self.folds):
            fold[idx.cpu()] = f
        self.subsets = []
        for f in range(self.n_folds):
            rest = (fold != f).nonzero().squeeze(1).to(device)
            in_rest = torch.zeros(n, dtype=torch.bool, device=device)
            in_rest[rest] = True
            # support points of this fold's solves: the pool's, where they are not held out
            local = torch.full((n,), -1, dtype=torch.long, device=device)
            local[rest] = torch.arange(len(rest), device=device)
            if solver.all_points_are_support:
                fold_support = torch.arange(len(rest), device=device)
            else:
                fold_support = local[support[in_rest[support]]]
            subsets = StepSubsets(len(rest), fold_support, size, solver, seed + f)
            self.subsets.append((rest, subsets))

    def draw(self, step: int) -> tuple:
        f = step % self.n_folds
        rest, subsets = self.subsets[f]
        idx, support = subsets.draw()
        rows = rest if idx is None else rest[idx]
        held = self.folds[f]
        rho, y = self.pool
        return rho[rows], y[rows], support, rho[held], y[held]


def _monitored_errors(
    representation, kernel, scale_weights, out: StepLoss, monitor
) -> tuple[float, float]:
    """RMSE and MAE (standardised) of the monitored structures under this step's U and
    weights: the RMSE is the loss's own measure, the MAE the one learning curves report."""
    spectrum, y = monitor
    with torch.no_grad():
        predicted = representation.map_chunks(
            spectrum, lambda x: kernel(x, out.support_features, scale_weights) @ out.weights
        )
        error = predicted - y
        return float(torch.sqrt(torch.mean(error**2))), float(torch.mean(torch.abs(error)))


@dataclass
class Snapshot:
    """The values of the best step so far."""

    U: torch.Tensor
    log_regularizer: float
    scale_logits: torch.Tensor


@dataclass
class OptimizationResult:
    """What :func:`optimize_compression` found.

    Attributes
    ----------
    best
        The snapshot of the kept step (:func:`ase_alchemical.core.optimize.adam_on_u`
        says which step is kept).
    best_step
        Its index.
    history
        One record per step: ``step``, ``opt_rmse``, ``train_rmse`` (eV/atom), ``loss``,
        ``regularizer``, ``learning_rate``, ``seconds``; with rotation ``fold``,
        ``rotation_loss`` and ``rotation_rmse`` (over the last k folds); multi-scale
        ``scale_weights``; with watched structures (``monitor``) their ``eval_rmse`` and
        ``eval_mae``.
    """

    best: Snapshot
    best_step: int | None
    history: list[dict] = field(default_factory=list)


def _parameters(u, regularizer, learn_regularizer, scale_logits, learn_scale_weights):
    """log lambda and the scale logits as tensors (leaves requiring gradients where
    learned), and the list of what Adam moves, U first."""
    log_reg = torch.tensor(
        float(np.log(regularizer)), dtype=u.dtype, device=u.device,
        requires_grad=bool(learn_regularizer),
    )  # fmt: skip
    if scale_logits is None:
        scale_logits = torch.zeros(1, dtype=u.dtype, device=u.device)
    logits = scale_logits.to(u).clone().requires_grad_(bool(learn_scale_weights))
    params = [u] + [log_reg] * bool(learn_regularizer) + [logits] * bool(learn_scale_weights)
    return log_reg, logits, params


def optimize_compression(
    u: torch.Tensor,
    representation: Representation,
    kernel: PolynomialKernel,
    solver: FullSolver,
    sets: FixedSets | RotatingSets,
    *,
    n_steps: int,
    learning_rate: float,
    lr_schedule: str = "constant",
    regularizer: float = 1e-3,
    learn_regularizer: bool = True,
    scale_logits: torch.Tensor | None = None,
    learn_scale_weights: bool = False,
    gradient_flow: str = "full",
    target_std: float = 1.0,
    progress: bool = False,
    monitor: tuple[PairSpectrum, torch.Tensor] | None = None,
) -> OptimizationResult:
    """Adam on U (in place: ``u`` ends at the kept step's value) and on log lambda and
    the scale logits when learned, through :func:`ase_alchemical.core.optimize.adam_on_u`.

    Parameters
    ----------
    u
        The compression's parameter tensor (a leaf requiring gradients).
    sets
        The training and optimization sets of every step: :class:`FixedSets`, or
        :class:`RotatingSets` to rotate their roles.
    target_std
        Standard deviation of the targets (eV/atom), to report RMSEs in eV/atom.
    monitor
        (spectra, standardised targets) of structures that are only watched: each step
        records their RMSE and MAE under that step's U and weights as ``eval_rmse`` and
        ``eval_mae``. They never
        enter a gradient or the choice of the kept step.
    """
    log_reg, logits, params = _parameters(
        u, regularizer, learn_regularizer, scale_logits, learn_scale_weights
    )
    multiscale = kernel.widths is not None

    def step(t: int) -> Step:
        rho_s, y_s, sup_s, rho_o, y_o = sets.draw(t)
        weights = torch.softmax(logits, 0) if multiscale else None
        out = joint_loss(
            u, representation, kernel, solver, rho_s, y_s, rho_o, y_o, sup_s,
            torch.exp(log_reg), weights, gradient_flow,
        )  # fmt: skip
        value = float(out.loss.detach())
        train_rmse = float(torch.sqrt(torch.mean((out.train_prediction - y_s) ** 2)))
        record = {
            "opt_rmse": value**0.5 * target_std,
            "train_rmse": train_rmse * target_std,
            "regularizer": float(torch.exp(log_reg.detach())),
        }
        if sets.rotating:
            record["fold"] = t % sets.n_folds
        if multiscale:
            record["scale_weights"] = torch.softmax(logits.detach(), 0).tolist()
        if monitor is not None:
            rmse, mae = _monitored_errors(representation, kernel, weights, out, monitor)
            record["eval_rmse"], record["eval_mae"] = rmse * target_std, mae * target_std
        return Step(out.loss, record)

    run = adam_on_u(
        params, step, n_steps=n_steps, learning_rate=learning_rate, lr_schedule=lr_schedule,
        n_folds=sets.n_folds if sets.rotating else 1, progress=progress,
        snapshot=lambda: Snapshot(u.detach().clone(), float(log_reg.detach()),
                                  logits.detach().clone()),
        postfix=lambda r: f"opt_rmse={r['opt_rmse']:.4f}",
    )  # fmt: skip
    for record in run.history:
        if "rotation_loss" in record:
            record["rotation_rmse"] = record["rotation_loss"] ** 0.5 * target_std
    with torch.no_grad():
        u.copy_(run.best.U)
    return OptimizationResult(best=run.best, best_step=run.best_step, history=run.history)
