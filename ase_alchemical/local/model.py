"""AlchemicalPotential: an atom-centred alchemical potential fitted to energies, forces
and stress.

A structure's energy is a sum of atomic terms (locality and additivity),

    E(A) = sum_i [ e0(a_i) + delta * sum_m w_m (x_i . x_m)^zeta ]

with x_i the normalised compressed power spectrum of atom i's environment
(:mod:`~ase_alchemical.local.kernel`), e0 per-element reference energies (least squares
on element counts), and w the weights of M support environments from a sparse GPR solve
on energies, forces and stress (:mod:`~ase_alchemical.local.fit`). Forces and stress are
exact derivatives of that energy; the model is extensive and local (each atomic term sees
its cutoff sphere only) by construction.

>>> from ase_alchemical import AlchemicalPotential, AlchemicalCalculator
>>> model = AlchemicalPotential(d_j=4).fit(train, opt, forces=True)
>>> model.score(test)        # energy (eV/atom) and force (eV/Å) errors
>>> atoms.calc = AlchemicalCalculator(model)
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from ..core.compression import AlchemicalCompression
from ..core.devices import resolve_device
from ..core.gp import calibration_scale, quadratic_form
from ..core.hypers import DEFAULT_HYPERS, hypers_list
from ..core.linalg import cholesky, spd_factor
from ..core.serialization import ModelFileError, read_model_file, write_model_file
from ..core.state import PotentialState
from ..core.targets import LabelError, forces_of, stresses_of, total_energies
from .environments import Environments, compute_environments
from .fit import (
    Labels,
    LocalProblem,
    StructureData,
    atomic_energy_fn,
    concatenate_rows,
    normal_equations,
    optimize_potential_u,
    reference_energies,
    select_support,
    solve_weights,
)
from .kernel import (
    compress,
    derivative_rows,
    energy_and_gradients,
    environment_features,
    features_from_compressed,
    kernel_rows,
)

__all__ = ["AlchemicalPotential", "load_potential"]

#: Held-out structures per mixing weight of U below which ``rotation="auto"`` rotates
#: the training and held-out roles (as for the structure model).
STRUCTURES_PER_MIXING_WEIGHT = 5

_PARAMS = (
    "d_j", "hypers", "zeta", "n_support", "per_element_support", "baseline", "e0_prior",
    "energy_sigma", "force_sigma", "stress_sigma", "energy_scale", "init", "seed", "n_steps",
    "learning_rate", "lr_schedule", "force_weight", "step_force_structures", "rotation",
    "n_folds",
)  # fmt: skip


class AlchemicalPotential:
    """Atom-centred alchemical-compression potential (sparse GPR on energies and forces).

    Parameters (keyword-only)
    -------------------------
    d_j
        Number of pseudo-elements. ``None``: one per element with U = identity (plain
        multi-species SOAP, nothing learned).
    hypers
        featomic spherical-expansion hypers (one dict; default
        :data:`~ase_alchemical.core.hypers.DEFAULT_HYPERS`). The central atom is part of its
        own density (featomic's default ``center_atom_weight`` 1), which is how an
        environment knows its central element.
    zeta
        Exponent of the environment kernel ``(x_i . x_m)^zeta``.
    n_support
        Number of support environments M (farthest-point sampling on the features of
        the training environments under the initial U).
    per_element_support
        Share the support environments among the central elements in proportion to
        their environments (at least one each), each share by FPS among its own.
    baseline
        The reference energies e0 the kernel term is fitted on top of: ``"elements"``,
        one per element by least squares on element counts over the training set, or
        ``"mean"``, the mean training energy per atom for every element (the kernel,
        which sees the central element through U, then learns the element dependence
        and can carry it to compositions the counts cannot pin down).
    e0_prior
        Solve corrections to the reference energies together with the kernel weights,
        with this prior standard deviation (eV) each: the energy that the forces assign
        to the local term is then not also absorbed by the reference energies, which a
        least-squares fit on a few structures over many elements overfits. ``None``:
        the reference energies stay as first fitted.
    energy_sigma, force_sigma, stress_sigma
        Noise of the energy (eV/atom), force (eV/Å) and virial (eV/atom, stress times
        volume over the number of atoms) labels in the solve: the separate regularisers
        of GAP. Larger values fit less tightly.
    energy_scale
        delta, the prior scale of the local energy (eV/atom); ``None``: with forces,
        the scale at which the prior's force RMS equals the training forces' RMS, else
        the spread of the training energies per atom after the reference energies.
    init
        Initial U: ``"elements"`` (kernel PCA of electronegativity and radius),
        ``"random"``, ``"identity"`` or an array (see
        :class:`~ase_alchemical.core.compression.AlchemicalCompression`).
    seed
        Seed of the random parts (initial U, force subsets, folds).
    n_steps
        Adam steps on U (0: keep the initial U).
    learning_rate, lr_schedule
        Adam learning rate, ``"cosine"`` (decaying to zero) or ``"constant"``.
    force_weight
        Weight of the force term of the loss U is learned on (each term is over the
        variance of its training labels).
    step_force_structures
        Training structures whose force (and stress) rows enter each step's solve,
        drawn afresh per step (energies of all enter): bounds a step's cost. ``None``:
        all.
    rotation
        ``"auto"``, ``True`` or ``False``: rotate the training and held-out roles over
        ``n_folds`` folds while U is learned. ``"auto"`` rotates when the held-out set has
        fewer than 5 structures per mixing weight of U.
    n_folds
        Folds of the rotation.
    device
        Torch device (``None``: CUDA when available, else CPU).
    progress
        Show progress bars.

    Attributes (after ``fit``)
    --------------------------
    ``state_`` : PotentialState
        Everything the fit learned (U, support environments, weights, e0, ...).
    ``compression_``, ``weights_``, ``reference_energies_``, ``best_step_``, ``loss_history_``
        Fields of ``state_``.
    """

    #: The model's kind, "local" (energies are sums of atomic terms, so per-atom energies
    #: are defined).
    kind = "local"

    def __init__(
        self,
        *,
        d_j: int | None = 4,
        hypers: dict | None = None,
        zeta: int = 2,
        n_support: int = 500,
        per_element_support: bool = True,
        baseline: str = "elements",
        e0_prior: float | None = 1.0,
        energy_sigma: float = 0.02,
        force_sigma: float = 0.3,
        stress_sigma: float = 0.05,
        energy_scale: float | None = None,
        init: str | np.ndarray = "elements",
        seed: int = 0,
        n_steps: int = 20,
        learning_rate: float = 0.01,
        lr_schedule: str = "cosine",
        force_weight: float = 1.0,
        step_force_structures: int | None = 4,
        rotation: bool | str = "auto",
        n_folds: int = 5,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> None:
        self.d_j = d_j
        self.hypers = hypers
        self.zeta = zeta
        self.n_support = n_support
        self.per_element_support = per_element_support
        self.baseline = baseline
        self.e0_prior = e0_prior
        self.energy_sigma = energy_sigma
        self.force_sigma = force_sigma
        self.stress_sigma = stress_sigma
        self.energy_scale = energy_scale
        self.init = init
        self.seed = seed
        self.n_steps = n_steps
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.force_weight = force_weight
        self.step_force_structures = step_force_structures
        self.rotation = rotation
        self.n_folds = n_folds
        self.device = device
        self.progress = progress
        self.state_: PotentialState | None = None

    # ------------------------------------------------------------------ params
    def get_params(self) -> dict:
        """Hyperparameters as a dict (scikit-learn style; no device or progress)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in _PARAMS}

    def set_params(self, **params) -> AlchemicalPotential:
        for name, value in params.items():
            if name not in _PARAMS + ("device", "progress"):
                raise ValueError(f"unknown parameter {name!r}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        fitted = "" if self.state_ is None else ", fitted"
        return f"AlchemicalPotential(d_j={self.d_j}, zeta={self.zeta}{fitted})"

    def __getattr__(self, name: str):
        state = self.__dict__.get("state_")
        if name.endswith("_") and not name.startswith("_") and state is not None:
            field = name[:-1]
            if hasattr(state, field):
                return getattr(state, field)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def hypers_(self) -> dict:
        """The spherical-expansion hypers in use."""
        return DEFAULT_HYPERS if self.hypers is None else self.hypers

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the fitted tensors."""
        self._check_fitted()
        return self.state_.weights.dtype

    @property
    def species(self) -> list[int]:
        self._check_fitted()
        return list(self.state_.compression.species)

    @property
    def U(self) -> np.ndarray:
        """The learned compression U (n_species, d_J) as numpy."""
        self._check_fitted()
        return self.state_.compression.U.detach().cpu().numpy()

    def _check_fitted(self) -> None:
        if self.state_ is None:
            raise RuntimeError("this AlchemicalPotential is not fitted: call fit() first")

    def _check_params(self) -> None:
        if int(self.zeta) != self.zeta or self.zeta < 1:
            raise ValueError(f"zeta must be a positive integer, got {self.zeta}")
        for name in ("energy_sigma", "force_sigma", "stress_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(
                f"lr_schedule must be 'cosine' or 'constant', not {self.lr_schedule!r}"
            )
        if self.baseline not in ("elements", "mean"):
            raise ValueError(f"baseline must be 'elements' or 'mean', not {self.baseline!r}")
        if self.rotation not in ("auto", True, False):
            raise ValueError(f"rotation must be 'auto', True or False, not {self.rotation!r}")
        if int(self.n_support) < 1:
            raise ValueError(f"n_support must be >= 1, got {self.n_support}")
        hypers_list(self.hypers_)
        if not isinstance(self.hypers_, dict):
            raise ValueError("AlchemicalPotential takes one hypers dict, not a list of scales")

    # ------------------------------------------------------------------ data
    def _structures(
        self, frames: Sequence[Atoms], forces: bool, stress: bool, gradients: bool
    ) -> list[StructureData]:
        energies = total_energies(frames)
        force_labels = forces_of(frames) if forces else [None] * len(frames)
        stress_labels = stresses_of(frames) if stress else [None] * len(frames)
        wanted = (["positions"] if gradients or stress else []) + (["strain"] if stress else [])
        out = []
        from tqdm.auto import tqdm

        device = self.torch_device
        for atoms, e, f, s in tqdm(
            list(zip(frames, energies, force_labels, stress_labels)), desc="expanding",
            unit="struct", disable=not self.progress,
        ):  # fmt: skip
            env = compute_environments([atoms], self.hypers_, wanted, device=device)
            labels = Labels(
                energy=float(e),
                forces=None if f is None else torch.as_tensor(f, device=device),
                stress=None if s is None else torch.as_tensor(s, device=device),
                volume=float(atoms.get_volume()) if s is not None else None,
            )
            out.append(StructureData(env, labels, len(atoms)))
        return out

    @staticmethod
    def _counts(frames, index: dict) -> np.ndarray:
        """(S, n_species) number of atoms of each element."""
        counts = np.zeros((len(frames), len(index)))
        for s, atoms in enumerate(frames):
            for z in atoms.numbers:
                counts[s, index[int(z)]] += 1
        return counts

    def _energy_scale(self, train_data, compression, support_env, forces: bool) -> float:
        """delta: given, else matched to the force labels (the prior force RMS of the
        kernel equals the RMS training force), else the spread of the residual
        energies per atom (floored: reference energies that interpolate a few training
        structures exactly leave none)."""
        if self.energy_scale is not None:
            return float(self.energy_scale)
        if forces:
            with torch.no_grad():
                x_sup = environment_features(support_env, compression)
                k_mm = kernel_rows(x_sup, x_sup, int(self.zeta))
                eye = torch.eye(len(k_mm), dtype=k_mm.dtype, device=k_mm.device)
                factor = torch.linalg.cholesky(k_mm + 1e-8 * k_mm.diagonal().mean() * eye)
                prior, labels = [], []
                for data in train_data[:3]:
                    d_pos, _ = derivative_rows(data.env, compression, x_sup, int(self.zeta))
                    rows = d_pos.flatten(0, 1)
                    half = torch.linalg.solve_triangular(factor, rows.T, upper=False)
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

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Sequence[Atoms],
        opt: Sequence[Atoms] | None = None,
        *,
        forces: bool = True,
        stress: bool = False,
        solve_on_opt: bool = False,
    ) -> AlchemicalPotential:
        """Learn U, the reference energies and the GPR weights.

        Parameters
        ----------
        train
            Structures with energies (``info["energy"]``), and forces
            (``arrays["forces"]``) / stress (``info["stress"]``) when asked for: the
            solve uses them.
        opt
            Held-out structures whose loss (energies, and forces when ``forces``) U is
            learned on; they also calibrate the uncertainty. ``None``: U is learned only
            with ``rotation`` (folds of the training set), otherwise kept.
        forces, stress
            Fit forces / stress as well as energies.
        solve_on_opt
            Once U is learned and the uncertainty calibrated on ``opt``, solve the final
            weights on the training *and* held-out structures (their rows; stress from
            the training structures only): every labelled structure but a test set.
        """
        t0 = time.perf_counter()
        self._check_params()
        train, opt = list(train), list(opt or [])
        if not train:
            raise ValueError("fit needs at least one training structure")
        species = sorted({int(z) for a in train + opt for z in a.numbers})
        d_j, init = self.d_j, self.init
        if d_j is None:
            d_j, init = len(species), "identity"
        compression = AlchemicalCompression(species, d_j, init=init, seed=self.seed)
        compression.to(self.torch_device)
        train_data = self._structures(train, forces, stress, gradients=forces)
        opt_data = self._structures(opt, forces, False, gradients=forces) if opt else []

        # per-element reference energies by least squares on element counts
        index = {z: i for i, z in enumerate(species)}
        counts = self._counts(train, index)
        totals = np.array([d.labels.energy for d in train_data])
        if self.baseline == "elements":
            e0 = reference_energies(counts, totals)
        else:  # one mean energy per atom for every element: the kernel learns the rest
            e0 = np.full(len(species), totals.sum() / counts.sum())
        e0_t = torch.as_tensor(np.append(e0, 0.0), device=self.torch_device)
        every = train + opt
        for data, atoms, c in zip(train_data + opt_data, every, self._counts(every, index)):
            data.reference = float(sum(e0[index[int(z)]] for z in atoms.numbers))
            data.counts = torch.as_tensor(c, device=self.torch_device)
        # support environments: FPS on the features under the initial U
        with torch.no_grad():
            x0 = torch.cat([environment_features(d.env, compression) for d in train_data])
            centers = torch.cat([d.env.centers for d in train_data])
            chosen = select_support(x0, centers, self.n_support, self.per_element_support)
        owner = torch.cat([torch.full((d.env.n_rows,), i) for i, d in enumerate(train_data)])
        local = torch.cat([torch.arange(d.env.n_rows) for d in train_data])
        parts = []
        for i in sorted(set(owner[chosen.cpu()].tolist())):
            rows = local[chosen.cpu()][owner[chosen.cpu()] == i]
            parts.append((train_data[i].env, rows.to(self.torch_device)))
        support_env = concatenate_rows(parts)
        delta = self._energy_scale(train_data, compression, support_env, forces)
        problem = LocalProblem(
            compression, support_env, int(self.zeta), delta,
            (float(self.energy_sigma), float(self.force_sigma), float(self.stress_sigma)),
            use_forces=forces, use_stress=stress,
            e0_prior=None if self.e0_prior is None else float(self.e0_prior),
        )  # fmt: skip

        # U on the held-out loss
        n_weights = len(species) * d_j
        rotate = self.rotation
        if rotate == "auto":
            rotate = len(opt) < STRUCTURES_PER_MIXING_WEIGHT * n_weights
        learn = self.n_steps > 0 and self.d_j is not None and (bool(opt) or bool(rotate))
        optimization = {
            "n_train": len(train), "n_opt": len(opt), "mixing_weights": n_weights,
            "rotated": bool(rotate) and learn, "small_optimization_set":
            len(opt) < STRUCTURES_PER_MIXING_WEIGHT * n_weights, "learned_u": learn,
        }  # fmt: skip
        history, best_step = [], None
        if learn:
            if rotate and len(train) + len(opt) < 2 * self.n_folds:
                raise ValueError(
                    f"rotation over {self.n_folds} folds needs at least {2 * self.n_folds} "
                    f"structures, got {len(train) + len(opt)}: pass rotation=False"
                )
            result = optimize_potential_u(
                problem, train_data, opt_data, e0_t, n_steps=int(self.n_steps),
                learning_rate=float(self.learning_rate), lr_schedule=self.lr_schedule,
                force_weight=float(self.force_weight),
                step_force_structures=self.step_force_structures, rotation=bool(rotate),
                n_folds=int(self.n_folds), seed=int(self.seed), progress=self.progress,
            )  # fmt: skip
            with torch.no_grad():
                compression.U.copy_(result.U)
            history, best_step = result.history, result.best_step

        # final weights on every training structure's rows
        weights, e0_final, precision, x_support = self._solve(problem, train_data, e0_t)
        with torch.no_grad():
            ct = compress(support_env, compression)
        optimization["solved_on"] = len(train)
        self.state_ = PotentialState(
            compression=compression,
            weights=weights,
            support_coefficients=torch.cat([c.flatten(1) for c in ct], 1),
            support_centers=support_env.centers.clone(),
            reference_energies=e0_final[:-1].clone(),
            energy_scale=float(delta),
            sigmas=list(problem.sigmas),
            precision=precision,
            loss_history=history,
            best_step=best_step,
            optimization=optimization,
            fit_time=None,
            support_features=x_support,
        )
        self._variance = None
        if opt:
            self.calibrate_uncertainty(opt)
            if solve_on_opt:  # calibrated on them first, while they were held out
                weights, e0_final, precision, _ = self._solve(problem, train_data + opt_data, e0_t)
                self.state_.weights, self.state_.precision = weights, precision
                self.state_.reference_energies = e0_final[:-1].clone()
                optimization["solved_on"] = len(train) + len(opt)
                self._variance = None
        self.state_.fit_time = time.perf_counter() - t0
        return self

    def _solve(self, problem: LocalProblem, structures, e0: torch.Tensor):
        """Weights (and reference energies) from every row of ``structures``."""
        from tqdm.auto import tqdm

        with torch.no_grad():
            x_support = problem.support_features()
            k_mm = kernel_rows(x_support, x_support, problem.zeta)
            bar = tqdm(total=len(structures), desc="solving", unit="struct",
                       disable=not self.progress)  # fmt: skip
            normal, rhs = normal_equations(problem, structures, x_support, progress=bar.update)
            bar.close()
            solved, precision = solve_weights(problem.prior_precision(k_mm), normal, rhs)
            weights, correction = problem.split(solved, len(x_support))
        return weights, e0 + torch.cat([correction, correction.new_zeros(1)]), precision, x_support

    # ------------------------------------------------------------------ predict
    def _energy_fn(self):
        s = self.state_
        e0 = torch.cat([s.reference_energies, s.reference_energies.new_zeros(1)])
        return atomic_energy_fn(
            s.compression, s.support_features, s.weights, int(self.zeta), s.energy_scale, e0
        )

    def _environments(self, atoms: Atoms, gradients: Sequence[str] = ()) -> Environments:
        env = compute_environments(
            [atoms], self.hypers_, gradients, dtype=self.dtype, device=self.torch_device
        )
        self.state_.compression.rows(env.species)  # unknown elements: a clear error
        return env

    def atomic_energies(self, frames: Sequence[Atoms]) -> list[np.ndarray]:
        """Energy of each atom (eV): e0 of its element plus its local term, one array per
        structure (in atom order); they sum to :meth:`predict`."""
        self._check_fitted()
        frames = [frames] if isinstance(frames, Atoms) else list(frames)
        out = []
        with torch.no_grad():
            for atoms in frames:
                env = self._environments(atoms)
                rows = self._energy_fn()(env)
                energies = rows.new_zeros(len(atoms)).index_copy(0, env.atom, rows)
                out.append(energies.cpu().numpy())
        return out

    def predict(
        self, frames: Sequence[Atoms], return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Total energies (eV); with ``return_std`` also their calibrated predictive
        standard deviations (eV)."""
        self._check_fitted()
        frames = [frames] if isinstance(frames, Atoms) else list(frames)
        energies = np.array([e.sum() for e in self.atomic_energies(frames)])
        if not return_std:
            return energies
        return energies, self.predict_std(frames)

    def predict_per_atom(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Energies per atom (eV/atom)."""
        frames = [frames] if isinstance(frames, Atoms) else list(frames)
        return self.predict(frames) / np.array([len(a) for a in frames], dtype=float)

    def energy_and_derivatives(
        self, frames: Sequence[Atoms], strain: bool | None = None
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None]:
        """Total energies, ``dE/dpositions`` (forces are minus these) and ``dE/dstrain``
        (virials; stress is virial / volume) per structure, as
        :meth:`.AlchemicalKRR.energy_and_derivatives`."""
        self._check_fitted()
        frames = [frames] if isinstance(frames, Atoms) else list(frames)
        energies, gradients, virials = [], [], []
        for atoms in frames:
            want_strain = bool(atoms.pbc.all()) if strain is None else bool(strain)
            if want_strain and not atoms.pbc.all():
                raise ValueError("strain derivatives need a 3D-periodic structure")
            grads = ["positions"] + (["strain"] if want_strain else [])
            env = self._environments(atoms, grads)
            _, total, grad, virial = energy_and_gradients(env, self._energy_fn(), want_strain)
            energies.append(float(total[0]))
            gradients.append(grad.detach().cpu().numpy())
            virials.append(virial[0].detach().cpu().numpy() if want_strain else None)
        any_strain = any(v is not None for v in virials)
        return np.array(energies), gradients, (virials if any_strain else None)

    def forces(self, frames: Sequence[Atoms]) -> list[np.ndarray]:
        """Predicted forces (eV/Å), one (n_atoms, 3) array per structure."""
        _, gradients, _ = self.energy_and_derivatives(frames, strain=False)
        return [-g for g in gradients]

    def stresses(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Predicted stress (eV/Å^3, Voigt order, ASE's sign), one row per 3D-periodic
        structure."""
        from ase.stress import full_3x3_to_voigt_6_stress

        frames = [frames] if isinstance(frames, Atoms) else list(frames)
        _, _, virials = self.energy_and_derivatives(frames, strain=True)
        return np.array(
            [full_3x3_to_voigt_6_stress(v / a.get_volume()) for v, a in zip(virials, frames)]
        )

    # ------------------------------------------------------------------ uncertainty
    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cholesky factors of K_MM and of the posterior precision, built on first use."""
        if getattr(self, "_variance", None) is None:
            s = self.state_
            k_mm = kernel_rows(s.support_features, s.support_features, int(self.zeta))
            l_mm = spd_factor(k_mm, 1e-8, fix="refit with more distinct support environments")[0]
            self._variance = (l_mm, cholesky(s.precision))
        return self._variance

    def raw_variance(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Uncalibrated GP (projected-process) variance of each total energy (eV^2)."""
        self._check_fitted()
        s = self.state_
        l_mm, l_a = self._factors()
        out = []
        with torch.no_grad():
            for atoms in frames:
                x = environment_features(self._environments(atoms), s.compression)
                k_star = kernel_rows(x, s.support_features, int(self.zeta)).sum(0)
                k_ss = kernel_rows(x, x, int(self.zeta)).sum()
                v = k_star * s.energy_scale
                if len(s.precision) > len(k_star):  # reference-energy corrections solved too
                    counts = torch.zeros(len(s.precision) - len(k_star), dtype=v.dtype)
                    rows = s.compression.rows(torch.as_tensor(atoms.numbers))
                    counts = counts.index_add(0, rows.cpu(), torch.ones(len(atoms), dtype=v.dtype))
                    v = torch.cat([v, counts.to(v.device)])
                explained = quadratic_form(l_mm, k_star[:, None])[0]
                prior = (k_ss - explained).clamp_min(0) * s.energy_scale**2
                out.append(float(prior + quadratic_form(l_a, v[:, None])[0]))
        return np.array(out)

    def predict_std(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Calibrated predictive standard deviation of each total energy (eV)."""
        self._check_fitted()
        if self.state_.uncertainty_scale is None:
            raise RuntimeError(
                "this potential has no calibrated uncertainty (fitted without held-out "
                "structures): call model.calibrate_uncertainty(frames)"
            )
        frames = [frames] if isinstance(frames, Atoms) else list(frames)
        return np.sqrt(self.raw_variance(frames) * self.state_.uncertainty_scale)

    def calibrate_uncertainty(self, frames: Sequence[Atoms]) -> float:
        """Scale the variances so that the mean squared energy error over the predicted
        variance is 1 on ``frames`` (structures with energies); returns the scale."""
        self._check_fitted()
        frames = list(frames)
        if not frames:
            raise ValueError("calibrate_uncertainty needs at least one structure")
        scale = calibration_scale(
            self.predict(frames), self.raw_variance(frames), total_energies(frames)
        )
        self.state_.uncertainty_scale = scale
        return self.state_.uncertainty_scale

    # ------------------------------------------------------------------ score
    def score(self, frames: Sequence[Atoms]) -> dict:
        """Errors on labelled structures: energy per atom (eV/atom), and forces (eV/Å,
        per component) and stress (eV/Å^3) where every structure has them."""
        self._check_fitted()
        frames = list(frames)
        n_atoms = np.array([len(a) for a in frames], dtype=float)
        reference = total_energies(frames) / n_atoms
        try:
            force_labels = forces_of(frames)
        except LabelError:
            force_labels = None
        try:
            stress_labels = stresses_of(frames)
        except LabelError:
            stress_labels = None
        if force_labels is None and stress_labels is None:
            predicted = self.predict(frames) / n_atoms
        else:
            energies, gradients, virials = self.energy_and_derivatives(
                frames, strain=stress_labels is not None
            )
            predicted = energies / n_atoms
        err = predicted - reference
        out = {
            "energy_mae": float(np.abs(err).mean()),
            "energy_rmse": float(np.sqrt((err**2).mean())),
            "n": len(frames),
        }
        if force_labels is not None:
            f_err = np.concatenate([(-g - f).ravel() for g, f in zip(gradients, force_labels)])
            out["force_mae"] = float(np.abs(f_err).mean())
            out["force_rmse"] = float(np.sqrt((f_err**2).mean()))
        if stress_labels is not None:
            from ase.stress import full_3x3_to_voigt_6_stress

            predicted_s = np.array([
                full_3x3_to_voigt_6_stress(v / a.get_volume()) for v, a in zip(virials, frames)
            ])  # fmt: skip
            s_err = predicted_s - stress_labels
            out["stress_mae"] = float(np.abs(s_err).mean())
            out["stress_rmse"] = float(np.sqrt((s_err**2).mean()))
        out["mae"], out["rmse"] = out["energy_mae"], out["energy_rmse"]
        return out

    # ------------------------------------------------------------------ device
    def to(self, device=None, dtype=None) -> AlchemicalPotential:
        """Move the fitted state to a device and/or dtype (in place); returns self."""
        self._check_fitted()
        if device is not None:
            self.device = device
        self.state_.to(self.torch_device, dtype)
        self._variance = None
        return self

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Save the fitted potential to one versioned file, atomically."""
        self._check_fitted()
        params = dict(self.get_params(), kernel="local")
        if not isinstance(params["init"], str):
            params["init"] = "array"
        params.pop("hypers")
        state = self.state_.saved()
        if metadata is not None:
            state["metadata"] = metadata
        return write_model_file(path, params, self.hypers_, state)

    @classmethod
    def load(cls, path: str | os.PathLike, device=None) -> AlchemicalPotential:
        """Load a potential saved by :meth:`save` (see :func:`.load_potential`)."""
        return load_potential(path, device=device)


def _support_features(ct_flat: torch.Tensor, hypers: dict, d_j: int) -> torch.Tensor:
    from ..core.hypers import basis_shape

    lmax1, n_radial = basis_shape(hypers)
    sizes = [(2 * lam + 1) * d_j * n_radial for lam in range(lmax1)]
    if sum(sizes) != ct_flat.shape[1]:
        raise ModelFileError(
            f"support coefficients have {ct_flat.shape[1]} columns, expected {sum(sizes)}"
        )
    parts = ct_flat.split(sizes, dim=1)
    ct = [p.reshape(len(p), 2 * lam + 1, d_j * n_radial) for lam, p in enumerate(parts)]
    return features_from_compressed(ct)[0]


def load_potential(path: str | os.PathLike, device=None) -> AlchemicalPotential:
    """Load a file written by :meth:`.AlchemicalPotential.save` (safe torch loading).

    Raises
    ------
    FileNotFoundError, ModelFileError
        As :func:`ase_alchemical.structure.model.load_model`; also for a structure-model file.
    """
    path = Path(path)
    data = read_model_file(path)
    params = dict(data["params"])
    if params.pop("kernel", None) != "local":
        raise ModelFileError(f"{path} holds a structure model: load it with load_model")
    try:
        if params.get("init") == "array":
            params["init"] = "elements"
        model = AlchemicalPotential(**params, hypers=data["hypers"], device=device)
        saved = dict(data["state"])
        u = saved.pop("U")
        species = saved.pop("species")
        compression = AlchemicalCompression(species, u.shape[-1], init=u)
        state = PotentialState.from_saved(saved, compression)
        state.to(model.torch_device)
        state.support_features = _support_features(
            state.support_coefficients, model.hypers_, u.shape[-1]
        )
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(
            f"{path} is an incomplete or inconsistent potential file: {e}"
        ) from None
    if state.support_features.shape[0] != state.weights.shape[0]:
        raise ModelFileError(
            f"{path}: {state.weights.shape[0]} weights for "
            f"{state.support_features.shape[0]} support environments"
        )
    model.state_ = state
    model._variance = None
    return model
