"""Fitting the local potential: from labelled structures to its
:class:`~ase_alchemical.local.state.PotentialState`.

The steps: each structure's environments and labels (:func:`structure_data`), the
per-element reference energies, the support environments (farthest-point sampling under
the initial U), the prior energy scale, U learned on the held-out loss through the solve
(:func:`optimize_potential_u`, on the shared Adam loop of
:mod:`~ase_alchemical.core.optimize`), and the final solve on every training row
(:func:`solve`). The model (:class:`~ase_alchemical.local.model.AlchemicalPotential`)
holds the hyperparameters; these functions read them and build the state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from ..core.compression import AlchemicalCompression
from ..core.hypers import basis_shape, basis_shapes
from ..core.linalg import spd_factor
from ..core.optimize import (
    AdamRun,
    Step,
    adam_on_u,
    check_rotation,
    fold_indices,
    optimization_summary,
    rotates,
)
from ..core.targets import forces_of, stresses_of, total_energies
from .correction import choose_correction_strength
from .design import (
    Labels,
    LocalProblem,
    StructureData,
    atomic_energy_fn,
    concatenate_rows,
    normal_equations,
    reference_energies,
    select_support,
    solve_weights,
)
from .environments import Environments, compute_environments
from .kernel import (
    compress,
    derivative_rows,
    energy_and_gradients,
    environment_features,
    kernel_rows,
)
from .pair import PairTerm
from .state import PotentialState

__all__ = [
    "energy_scale",
    "fit_state",
    "held_out_loss",
    "optimize_potential_u",
    "solve",
    "structure_data",
]


def structure_data(
    model, frames: Sequence[Atoms], forces: bool, stress: bool
) -> list[StructureData]:
    """Environments (with position and strain gradients where the labels need them) and
    labels of each structure."""
    from tqdm.auto import tqdm

    energies = total_energies(frames)
    force_labels = forces_of(frames) if forces else [None] * len(frames)
    stress_labels = stresses_of(frames) if stress else [None] * len(frames)
    wanted = (["positions"] if forces or stress else []) + (["strain"] if stress else [])
    device = model.torch_device
    out = []
    for atoms, e, f, s in tqdm(
        list(zip(frames, energies, force_labels, stress_labels)), desc="expanding",
        unit="struct", disable=not model.progress,
    ):  # fmt: skip
        env = compute_environments([atoms], model.hypers_, wanted, device=device)
        labels = Labels(
            energy=float(e),
            forces=None if f is None else torch.as_tensor(f, device=device),
            stress=None if s is None else torch.as_tensor(s, device=device),
            volume=float(atoms.get_volume()) if s is not None else None,
        )
        out.append(StructureData(env, labels, len(atoms)))
    return out


def element_counts(frames: Sequence[Atoms], index: dict) -> np.ndarray:
    """(S, n_species) number of atoms of each element."""
    counts = np.zeros((len(frames), len(index)))
    for s, atoms in enumerate(frames):
        for z in atoms.numbers:
            counts[s, index[int(z)]] += 1
    return counts


def _set_references(model, species, frames, data, n_train: int) -> torch.Tensor:
    """Per-element reference energies (least squares on element counts over the first
    ``n_train`` structures, the training ones; or one mean energy per atom for every
    element, when the kernel is to learn the rest); each structure's reference and counts
    are set. Returns e0 with a trailing 0 (the padding row of U)."""
    index = {z: i for i, z in enumerate(species)}
    counts = element_counts(frames, index)
    train = slice(0, n_train)
    totals = np.array([d.labels.energy for d in data])
    if model.baseline == "elements":
        e0 = reference_energies(counts[train], totals[train])
    else:
        e0 = np.full(len(species), totals[train].sum() / counts[train].sum())
    for d, atoms, c in zip(data, frames, counts):
        d.reference = float(sum(e0[index[int(z)]] for z in atoms.numbers))
        d.counts = torch.as_tensor(c, device=model.torch_device)
    return torch.as_tensor(np.append(e0, 0.0), device=model.torch_device)


def support_environments(model, train_data, compression) -> Environments:
    """The support environments: farthest-point sampling on the training environments'
    features under the initial U (per central element with ``per_element_support``)."""
    with torch.no_grad():
        x0 = torch.cat([environment_features(d.env, compression) for d in train_data])
        centers = torch.cat([d.env.centers for d in train_data])
        chosen = select_support(x0, centers, model.n_support, model.per_element_support).cpu()
    owner = torch.cat([torch.full((d.env.n_rows,), i) for i, d in enumerate(train_data)])
    local = torch.cat([torch.arange(d.env.n_rows) for d in train_data])
    parts = []
    for i in sorted(set(owner[chosen].tolist())):
        rows = local[chosen][owner[chosen] == i]
        parts.append((train_data[i].env, rows.to(model.torch_device)))
    return concatenate_rows(parts)


def pair_term(model, compression, train_data) -> PairTerm | None:
    """The two-body term of ``model`` (``None`` when ``two_body`` is), its feature scale
    from the training environments under the initial U."""
    if model.two_body is None:
        return None
    term = PairTerm(compression.d_j, basis_shape(model.hypers_)[1])
    return term.fitted_scale([d.env for d in train_data], compression)


def energy_scale(model, train_data, compression, support_env, forces: bool) -> float:
    """delta: given, else matched to the force labels (the prior force RMS of the kernel
    equals the RMS training force), else the spread of the residual energies per atom
    (floored: reference energies that interpolate a few training structures exactly
    leave none)."""
    if model.energy_scale is not None:
        return float(model.energy_scale)
    zeta = int(model.zeta)
    if forces:
        with torch.no_grad():
            x_sup = environment_features(support_env, compression)
            factor = spd_factor(kernel_rows(x_sup, x_sup, zeta), 1e-8)[0]
            prior, labels = [], []
            for data in train_data[:3]:
                d_pos, _ = derivative_rows(data.env, compression, x_sup, zeta)
                half = torch.linalg.solve_triangular(factor, d_pos.flatten(0, 1).T, upper=False)
                prior.append(half.pow(2).sum(0))
                labels.append(data.labels.forces.flatten())
            prior_rms = float(torch.cat(prior).mean().sqrt())
            label_rms = float(torch.cat(labels).pow(2).mean().sqrt())
        if prior_rms > 0 and label_rms > 0:
            return label_rms / prior_rms
    per_atom = np.array([d.labels.energy / d.n_atoms for d in train_data])
    residual = np.array([d.residual_per_atom for d in train_data])
    spread = float(per_atom.std()) if len(per_atom) > 1 else 1.0
    delta = float(residual.std()) if len(residual) > 1 else spread
    return max(delta, 0.1 * spread) or 1.0


def solve(problem: LocalProblem, structures, e0: torch.Tensor, progress: bool = False):
    """Weights (and reference energies) from every row of ``structures``; returns the
    weights, e0 (with the trailing 0), the posterior precision and the support
    features."""
    from tqdm.auto import tqdm

    with torch.no_grad():
        x_support = problem.support_features()
        k_mm = kernel_rows(x_support, x_support, problem.zeta)
        bar = tqdm(total=len(structures), desc="solving", unit="struct", disable=not progress)
        normal, rhs = normal_equations(problem, structures, x_support, progress=bar.update)
        bar.close()
        solved, precision = solve_weights(problem.prior_precision(k_mm), normal, rhs)
        weights, correction, pair_weights = problem.split(solved, len(x_support))
    e0 = e0 + torch.cat([correction, correction.new_zeros(1)])
    return weights, e0, pair_weights, precision, x_support


def fit_state(
    model, train: Sequence[Atoms], opt: Sequence[Atoms], forces: bool, stress: bool
) -> tuple[PotentialState, LocalProblem, list, list, torch.Tensor]:
    """The fitted state of ``model``'s hyperparameters on ``train`` (weights) and ``opt``
    (U), before calibration; also the problem, the structures' data and e0, which a
    solve on more structures needs (see :meth:`.AlchemicalPotential.fit`)."""
    t0 = time.perf_counter()
    species = sorted({int(z) for a in train + opt for z in a.numbers})
    d_j, init = model.d_j, model.init
    if d_j is None:
        d_j, init = len(species), "identity"
    radial = basis_shapes(model.hypers_) if model.radially_resolved else None
    compression = AlchemicalCompression(
        species, d_j, init=init, seed=model.seed, radial_shapes=radial
    )
    compression.to(model.torch_device)
    train_data = structure_data(model, train, forces, stress)
    opt_data = structure_data(model, opt, forces, False) if opt else []
    e0 = _set_references(model, species, train + opt, train_data + opt_data, len(train))
    support_env = support_environments(model, train_data, compression)
    problem = LocalProblem(
        compression, support_env, int(model.zeta),
        energy_scale(model, train_data, compression, support_env, forces),
        (float(model.energy_sigma), float(model.force_sigma), float(model.stress_sigma)),
        use_forces=forces, use_stress=stress,
        e0_prior=None if model.e0_prior is None else float(model.e0_prior),
        pair=pair_term(model, compression, train_data),
        pair_prior=None if model.two_body is None else float(model.two_body),
    )  # fmt: skip
    n_weights = int(compression.U.numel())
    rotated = rotates(model.rotation, len(opt), n_weights)
    learn = model.n_steps > 0 and model.d_j is not None and (bool(opt) or rotated)
    if learn and rotated:
        check_rotation(len(train) + len(opt), model.n_folds)
    run = None
    if learn:
        run = optimize_potential_u(model, problem, train_data, opt_data, e0, rotated)
        with torch.no_grad():
            compression.U.copy_(run.best)
    strengths = {}  # the record of the correction's strength, with a prior
    if model.prior is not None:
        best, scores = choose_correction_strength(model, problem, train_data + opt_data)
        strengths = {
            "correction_sigma_factors": [best["energy_factor"], best["force_factor"]],
            "correction_strengths": scores,
        }
    weights, e0_final, pair_weights, precision, x_support = solve(
        problem, train_data, e0, model.progress
    )
    with torch.no_grad():
        ct = compress(support_env, compression)
    summary = optimization_summary(
        n_train=len(train), n_opt=len(opt), n_mixing_weights=n_weights, rotated=rotated,
        n_folds=int(model.n_folds), learned=learn, run=run,
    )  # fmt: skip
    state = PotentialState(
        compression=compression, weights=weights,
        support_coefficients=torch.cat([c.flatten(1) for c in ct], 1),
        support_centers=support_env.centers.clone(), reference_energies=e0_final[:-1].clone(),
        energy_scale=float(problem.energy_scale), sigmas=list(problem.sigmas),
        precision=precision, loss_history=[] if run is None else run.history,
        best_step=None if run is None else run.best_step,
        optimization={**summary, "solved_on": len(train), **strengths},
        fit_time=time.perf_counter() - t0,
        support_features=x_support,
        pair_weights=pair_weights,
        pair_scale=None if problem.pair is None else problem.pair.scale,
    )  # fmt: skip
    return state, problem, train_data, opt_data, e0


def held_out_loss(
    problem: LocalProblem,
    solve_on: Sequence[StructureData],
    held: Sequence[StructureData],
    e0: torch.Tensor,
    u: torch.Tensor,
    force_subset: set[int] | None = None,
    use_forces: bool = True,
    force_weight: float = 1.0,
    var_e: float = 1.0,
    var_f: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loss of one optimization step as a differentiable function of ``u``: weights
    solved on ``solve_on`` (force and stress rows of ``force_subset`` only, if given),
    errors on ``held`` (energies per atom over ``var_e``, force components over
    ``var_f``). Returns (loss, energy term, force term)."""
    x_support = problem.support_features(u)
    k_mm = kernel_rows(x_support, x_support, problem.zeta)
    normal, rhs = normal_equations(problem, solve_on, x_support, u, force_subset)
    solved, _ = solve_weights(problem.prior_precision(k_mm), normal, rhs)
    weights, correction, pair_weights = problem.split(solved, len(x_support))
    e0 = e0 + torch.cat([correction, correction.new_zeros(1)])
    pair = None if pair_weights is None else (problem.pair, pair_weights)
    energy_fn = atomic_energy_fn(
        problem.compression, x_support, weights, problem.zeta, problem.energy_scale, e0, u, pair
    )
    loss_e, loss_f = x_support.new_zeros(()), x_support.new_zeros(())
    n_f = 0
    for data in held:
        if use_forces:
            _, total, grad, _ = energy_and_gradients(data.env, energy_fn, create_graph=True)
            loss_f = loss_f + (-grad - data.labels.forces.to(grad)).pow(2).sum()
            n_f += grad.numel()
        else:
            total = energy_fn(data.env).sum()[None]
        err = (total[0] - data.labels.energy) / data.n_atoms
        loss_e = loss_e + err.pow(2)
    loss_e = loss_e / len(held) / var_e
    loss_f = loss_f / max(n_f, 1) / var_f
    loss = loss_e + force_weight * loss_f if use_forces else loss_e
    return loss, loss_e, loss_f


def _loss_terms(problem: LocalProblem, train: list, pool: list) -> tuple[bool, float, float]:
    """Whether the held-out loss has a force term (every structure of ``pool`` has
    forces), and the variances of the training labels that scale its energy and force
    terms."""
    var_e = float(np.array([d.residual_per_atom for d in train]).var()) or 1.0
    use_forces = problem.use_forces and all(d.labels.forces is not None for d in pool)
    var_f = 1.0
    if use_forces:
        var_f = float(torch.cat([d.labels.forces.flatten() for d in train]).pow(2).mean()) or 1.0
    return use_forces, var_e, var_f


def optimize_potential_u(
    model, problem: LocalProblem, train: list, opt: list, e0: torch.Tensor, rotation: bool
) -> AdamRun:
    """Adam on U (:func:`~ase_alchemical.core.optimize.adam_on_u`): each step solves for
    the weights on the training structures (energies of all, force rows of
    ``model.step_force_structures`` drawn at random) with the current U and takes the
    loss on the held-out ones,

        loss = mean((e_pred - e)^2) / var_e + force_weight * mean((F_pred - F)^2) / var_F

    (energies per atom, forces per component, each over its variance in the training
    labels), gradients flowing through the solve. With ``rotation`` the roles rotate
    over ``model.n_folds`` folds of their union. ``run.best`` is the kept U.
    """
    u = torch.nn.Parameter(problem.compression.U.detach().clone())
    pool = train + opt
    generator = np.random.default_rng(int(model.seed))
    folds = fold_indices(len(pool), int(model.n_folds), int(model.seed)) if rotation else None
    use_forces, var_e, var_f = _loss_terms(problem, train, pool)
    n_force = model.step_force_structures

    def step(t: int) -> Step:
        held, solve_on = opt, train
        if rotation:
            out = set(folds[t % len(folds)].tolist())
            held = [pool[i] for i in sorted(out)]
            solve_on = [d for i, d in enumerate(pool) if i not in out]
        subset = None
        if n_force is not None and n_force < len(solve_on):
            subset = set(generator.choice(len(solve_on), n_force, replace=False).tolist())
        loss, loss_e, loss_f = held_out_loss(
            problem, solve_on, held, e0, u, subset, use_forces, float(model.force_weight),
            var_e, var_f,
        )  # fmt: skip
        record = {"energy_loss": float(loss_e.detach()), "force_loss": float(loss_f.detach())}
        return Step(loss, record)

    return adam_on_u(
        [u], step, n_steps=int(model.n_steps), learning_rate=float(model.learning_rate),
        lr_schedule=model.lr_schedule, n_folds=len(folds) if rotation else 1,
        snapshot=lambda: u.detach().clone(), progress=model.progress,
        postfix=lambda r: f"loss={r['loss']:.4f}",
    )  # fmt: skip
