"""How strongly a potential corrects its prior: the noise sigmas of the solve scaled by
factors chosen by cross-validation (:func:`choose_correction_strength`).

A correction fitted to what a prior model leaves can make things worse where the prior is
already as good as the data allow (the residual is noise, or a level-of-theory offset
the per-element reference energies already carry). Larger sigmas keep the kernel term
closer to zero, and so the model closer to the prior; the factors are chosen on
held-out folds, separately for the energy rows and the force and stress rows.

Scaling the sigmas of one kind of row by f divides its part of the normal equations by
f^2, so each structure's design rows are built once, and every pair of factors and every
fold is one small solve.
"""

from __future__ import annotations

import itertools

import torch

from ..core.optimize import fold_indices
from .design import LocalProblem, solve_weights
from .kernel import kernel_rows

__all__ = ["CORRECTION_SIGMA_FACTORS", "choose_correction_strength"]

#: The factors tried on each sigma. The larger, the less the kernel term moves away
#: from the prior; at 1000 it is nearly off, leaving the prior and the per-element
#: reference energies.
CORRECTION_SIGMA_FACTORS = (1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)


def choose_correction_strength(
    model, problem: LocalProblem, structures: list
) -> tuple[dict, list[dict]]:
    """Scale ``problem.sigmas``: the energy sigma by one factor of
    :data:`CORRECTION_SIGMA_FACTORS`, the force and stress sigmas by another, the pair
    with the lowest cross-validated loss over ``model.n_folds`` folds of ``structures``.

    The loss is the one U is learned on: the mean squared energy error per atom over
    the variance of the energy labels per atom, plus ``model.force_weight`` times the
    mean squared force error over the mean squared force label, on the held-out fold.
    Returns the chosen pair's record and every pair's.
    """
    sig_e, sig_f, _ = problem.sigmas
    with torch.no_grad():
        x_support = problem.support_features()
        k_mm = problem.prior_precision(kernel_rows(x_support, x_support, problem.zeta))
        blocks = [_blocks(problem, d, x_support) for d in structures]
        k = min(int(model.n_folds), len(structures))
        folds = fold_indices(len(structures), k, int(model.seed))
        parts = [_normal_parts(blocks, fold) for fold in folds]
        totals = [sum(p[i] for p in parts) for i in range(4)]
        scales = _label_scales(blocks, sig_e, sig_f)
        scores = []
        for f_e, f_d in itertools.product(CORRECTION_SIGMA_FACTORS, repeat=2):
            err_e, err_f, n_e, n_f = 0.0, 0.0, 0, 0
            for fold, part in zip(folds, parts):
                n = [total - own for total, own in zip(totals, part)]
                w, _ = solve_weights(
                    k_mm, n[0] / f_e**2 + n[2] / f_d**2, n[1] / f_e**2 + n[3] / f_d**2
                )
                for i in fold.tolist():
                    (phi_e, t_e), (phi_f, t_f), _ = blocks[i]
                    err_e += float(((phi_e @ w - t_e) * sig_e).pow(2).sum())
                    err_f += float(((phi_f @ w - t_f) * sig_f).pow(2).sum())
                    n_e, n_f = n_e + len(t_e), n_f + len(t_f)
            loss_e = err_e / n_e / scales[0]
            loss_f = err_f / max(n_f, 1) / scales[1]
            scores.append({
                "energy_factor": f_e, "force_factor": f_d,
                "loss": loss_e + float(model.force_weight) * loss_f,
                "energy_rmse": (err_e / n_e) ** 0.5, "force_rmse": (err_f / max(n_f, 1)) ** 0.5,
            })  # fmt: skip
    best = min(scores, key=lambda r: r["loss"])
    f_e, f_d = best["energy_factor"], best["force_factor"]
    problem.sigmas = (problem.sigmas[0] * f_e, problem.sigmas[1] * f_d, problem.sigmas[2] * f_d)
    return best, scores


def _blocks(problem: LocalProblem, data, x_support: torch.Tensor) -> tuple:
    """A structure's weighted design rows and targets, split into its energy row, its
    force rows and its stress rows (``problem.rows`` stacks them in that order)."""
    phi, t = problem.rows(data, x_support)
    n_f = 3 * data.n_atoms if problem.use_forces and data.labels.forces is not None else 0
    return (phi[:1], t[:1]), (phi[1 : 1 + n_f], t[1 : 1 + n_f]), (phi[1 + n_f :], t[1 + n_f :])


def _normal_parts(blocks: list, fold: torch.Tensor) -> tuple:
    """Over the structures of ``fold``: ``Phi^T Phi`` and ``Phi^T t`` of the energy rows,
    then of the force and stress rows."""
    energy = [blocks[i][0] for i in fold.tolist()]
    derivative = [part for i in fold.tolist() for part in blocks[i][1:]]
    out = []
    for rows in (energy, derivative):
        phi = torch.cat([p for p, _ in rows])
        t = torch.cat([t for _, t in rows])
        out += [phi.T @ phi, phi.T @ t]
    return tuple(out)


def _label_scales(blocks: list, sig_e: float, sig_f: float) -> tuple[float, float]:
    """The variance of the energy labels per atom and the mean squared force label (of
    what the kernel term is fitted to), which scale the two terms of the loss."""
    energies = torch.cat([t * sig_e for (_, t), _, _ in blocks])
    forces = torch.cat([t * sig_f for _, (_, t), _ in blocks])
    var_e = float(energies.var()) if len(energies) > 1 else 1.0
    var_f = float(forces.pow(2).mean()) if len(forces) else 1.0
    return var_e or 1.0, var_f or 1.0
