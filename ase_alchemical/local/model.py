"""AlchemicalPotential: an atom-centred alchemical potential fitted to energies, forces
and stress.

A structure's energy is a sum of atomic terms (locality and additivity),

    E(A) = sum_i [ e0(a_i) + delta * sum_m w_m (x_i . x_m)^zeta + phi_i . V ]

with x_i the normalised compressed power spectrum of atom i's environment
(:mod:`~ase_alchemical.local.kernel`), e0 per-element reference energies (least squares
on element counts), w the weights of M support environments and V those of a two-body
term on the compressed radial density phi_i (:mod:`~ase_alchemical.local.pair`), both
from one sparse GPR solve on energies, forces and stress
(:mod:`~ase_alchemical.local.fit`). Forces and stress are
exact derivatives of that energy; the model is extensive and local (each atomic term sees
its cutoff sphere only) by construction.

>>> from ase_alchemical import AlchemicalPotential, AlchemicalCalculator
>>> model = AlchemicalPotential(d_j=4).fit(train, opt, forces=True)
>>> model.score(test)        # energy (eV/atom) and force (eV/Å) errors
>>> atoms.calc = AlchemicalCalculator(model)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from ..core.compression import AlchemicalCompression
from ..core.estimator import AlchemicalModel, as_frames
from ..core.gp import calibration_scale, quadratic_form
from ..core.hypers import basis_shape, basis_shapes, hypers_list
from ..core.linalg import cholesky, spd_factor
from ..core.optimize import LR_SCHEDULES, rotates
from ..core.priors import Prior, resolve_prior
from ..core.targets import total_energies
from ..errors import ModelFileError
from .design import atomic_energy_fn
from .environments import Environments, compute_environments
from .fit import fit_state, solve
from .kernel import (
    energy_and_gradients,
    environment_features,
    features_from_compressed,
    kernel_rows,
)
from .pair import PairTerm
from .state import PotentialState

__all__ = ["AlchemicalPotential"]


class AlchemicalPotential(AlchemicalModel):
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
    radially_resolved
        Learn one U per radial basis function n, ``ct[J, n, l, m] = sum_a U_n[a, J]
        c[a, n, l, m]`` (the species mixed at the density level per radial channel, as
        in Lopanitsyna et al., Phys. Rev. Mater. 7, 045802 (2023)), every U_n starting
        from ``init``; same feature length, N times the mixing weights. Needs ``d_j``.
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
        Folds of the rotation (and of the cross-validation that sets a correction's
        strength over a ``prior``).
    two_body
        Prior standard deviation (eV per atom) of a linear two-body term solved with the
        kernel weights: pair potentials on the expansion's radial functions, one per
        pair of elements through U (d_J x d_J x N weights,
        :mod:`~ase_alchemical.local.pair`), which give the energy the dependence on the
        density that the normalised kernel does not see. ``None``: no two-body term.
    prior
        A model whose energies, forces and stress the potential corrects instead of
        learning them from zero: ``"emt"``, ``"chgnet"`` or ``"sevenn"`` (the last two
        with their extras: ``pip install 'ase-alchemical[chgnet]'``), or any ASE
        calculator (:mod:`~ase_alchemical.core.priors`). The kernel term and the
        reference energies are fitted to what the prior leaves; predictions are prior +
        correction; the predictive variance is the correction's. The correction's
        strength (a factor on the sigmas) is chosen by cross-validation over
        ``n_folds`` folds of the training and held-out structures, so that where it
        cannot help the model returns to the prior (plus per-element reference
        energies). The prior's labels on the fitted structures are computed once
        (cached on disk for a named prior); the model file records the prior's name,
        version and :meth:`~ase_alchemical.core.priors.Prior.fingerprint`, and loading
        it with another version warns. A model with a prior has no per-atom energies and
        no metatomic export.
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

    #: The model's kind, ``"local"`` (energies are sums of atomic terms, so per-atom
    #: energies are defined, and the derivatives come with the energy).
    kind = "local"
    implemented_properties = AlchemicalModel.implemented_properties + ("energies",)
    derivatives_with_energy = True
    _STATE = PotentialState

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
        radially_resolved: bool = False,
        seed: int = 0,
        n_steps: int = 20,
        learning_rate: float = 0.01,
        lr_schedule: str = "cosine",
        force_weight: float = 1.0,
        step_force_structures: int | None = 4,
        rotation: bool | str = "auto",
        n_folds: int = 5,
        two_body: float | None = 1.0,
        prior: str | object | None = None,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> None:
        self._store_params(locals())

    def _prior(self) -> Prior | None:
        """The :class:`~ase_alchemical.core.priors.Prior` of ``prior``, resolved once
        (again when ``prior`` is set to another value)."""
        cached = self.__dict__.get("_resolved_prior")
        if cached is None or cached[0] is not self.prior:
            prior = resolve_prior(self.prior)
            if prior is not None:
                prior.check_fingerprint()
            self.__dict__["_resolved_prior"] = (self.prior, prior)
        return self.__dict__["_resolved_prior"][1]

    def _check_params(self) -> None:
        if int(self.zeta) != self.zeta or self.zeta < 1:
            raise ValueError(f"zeta must be a positive integer, got {self.zeta}")
        if self.radially_resolved and self.d_j is None:
            raise ValueError(
                "radially_resolved needs a compression (d_j): plain SOAP (d_j=None) has no "
                "U to resolve"
            )
        if self.two_body is not None and not self.two_body > 0:
            raise ValueError(f"two_body must be > 0 or None, got {self.two_body}")
        for name in ("energy_sigma", "force_sigma", "stress_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {self.lr_schedule!r}")
        if self.baseline not in ("elements", "mean"):
            raise ValueError(f"baseline must be 'elements' or 'mean', not {self.baseline!r}")
        rotates(self.rotation, 0, 0)  # checks the value
        resolve_prior(self.prior)  # a clear error for an unknown name or object
        if int(self.n_support) < 1:
            raise ValueError(f"n_support must be >= 1, got {self.n_support}")
        hypers_list(self.hypers_)
        if not isinstance(self.hypers_, dict):
            raise ValueError("AlchemicalPotential takes one hypers dict, not a list of scales")

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
        self._check_params()
        train, opt = list(train), list(opt or [])
        if not train:
            raise ValueError("fit needs at least one training structure")
        labelled_opt, prior = opt, self._prior()
        if prior is not None:  # the kernel learns what the prior leaves
            train = prior.residuals(train, forces, stress)
            opt = prior.residuals(opt, forces, False)
        state, problem, train_data, opt_data, e0 = fit_state(self, train, opt, forces, stress)
        self._set_state(state)
        if opt:
            self.calibrate_uncertainty(labelled_opt)
            if solve_on_opt:  # calibrated on them first, while they were held out
                weights, e0_final, pair_weights, precision, _ = solve(
                    problem, train_data + opt_data, e0, self.progress
                )
                state.weights, state.precision = weights, precision
                state.pair_weights = pair_weights
                state.reference_energies = e0_final[:-1].clone()
                state.optimization["solved_on"] = len(train) + len(opt)
                self._set_state(state)
        return self

    # ------------------------------------------------------------------ predict
    def _energy_fn(self):
        s = self.state_
        e0 = torch.cat([s.reference_energies, s.reference_energies.new_zeros(1)])
        pair = self._pair_term()
        return atomic_energy_fn(
            s.compression, s.support_features, s.weights, int(self.zeta), s.energy_scale, e0,
            pair=None if pair is None else (pair, s.pair_weights),
        )  # fmt: skip

    def _pair_term(self) -> PairTerm | None:
        """The fitted two-body term (``None`` without one)."""
        s = self.state_
        if s.pair_weights is None:
            return None
        n_radial = basis_shape(self.hypers_)[1]
        return PairTerm(s.compression.d_j, n_radial, float(s.pair_scale))

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
        frames = as_frames(frames)
        if self._prior() is not None:
            raise ValueError(
                f"a potential over the {self._prior().name!r} prior has no per-atom energies: "
                "the prior's energy is not split into atomic terms"
            )
        return self._correction_atomic_energies(frames)

    def _correction_atomic_energies(self, frames: list[Atoms]) -> list[np.ndarray]:
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
        frames = as_frames(frames)
        energies = np.array([e.sum() for e in self._correction_atomic_energies(frames)])
        prior = self._prior()
        if prior is not None:
            energies += np.array([prior.energy_and_derivatives(a, False)[0] for a in frames])
        if not return_std:
            return energies
        return energies, self.predict_std(frames)

    def predict_per_atom(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Energies per atom (eV/atom)."""
        frames = as_frames(frames)
        return self.predict(frames) / np.array([len(a) for a in frames], dtype=float)

    def energy_and_derivatives(
        self, frames: Sequence[Atoms], strain: bool | None = None
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None]:
        """Total energies, ``dE/dpositions`` (forces are minus these) and ``dE/dstrain``
        (virials; stress is virial / volume) per structure, as
        :meth:`.AlchemicalKRR.energy_and_derivatives`."""
        self._check_fitted()
        frames = as_frames(frames)
        energies, gradients, virials = [], [], []
        for atoms in frames:
            want_strain = bool(atoms.pbc.all()) if strain is None else bool(strain)
            if want_strain and not atoms.pbc.all():
                raise ValueError("strain derivatives need a 3D-periodic structure")
            grads = ["positions"] + (["strain"] if want_strain else [])
            env = self._environments(atoms, grads)
            _, total, grad, virial = energy_and_gradients(env, self._energy_fn(), want_strain)
            energy, grad = float(total[0]), grad.detach().cpu().numpy()
            virial = virial[0].detach().cpu().numpy() if want_strain else None
            if self._prior() is not None:  # prior + correction
                e_prior, g_prior, v_prior = self._prior().energy_and_derivatives(atoms, want_strain)
                energy, grad = energy + e_prior, grad + g_prior
                virial = None if virial is None else virial + v_prior
            energies.append(energy)
            gradients.append(grad)
            virials.append(virial)
        any_strain = any(v is not None for v in virials)
        return np.array(energies), gradients, (virials if any_strain else None)

    # ------------------------------------------------------------------ uncertainty
    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cholesky factors of K_MM and of the posterior precision, built on first use."""
        if self.__dict__.get("_variance") is None:
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
            pair = self._pair_term()
            n_pair = 0 if pair is None else pair.n_features
            for atoms in frames:
                env = self._environments(atoms)
                x = environment_features(env, s.compression)
                k_star = kernel_rows(x, s.support_features, int(self.zeta)).sum(0)
                k_ss = kernel_rows(x, x, int(self.zeta)).sum()
                v = [k_star * s.energy_scale]
                n_e0 = len(s.precision) - len(k_star) - n_pair
                if n_e0:  # reference-energy corrections solved too
                    rows = s.compression.rows(torch.as_tensor(atoms.numbers)).cpu()
                    counts = torch.bincount(rows, minlength=n_e0).to(k_star)
                    v.append(counts)
                if pair is not None:
                    v.append(pair.features(env, s.compression).sum(0).to(k_star))
                v = torch.cat(v)
                explained = quadratic_form(l_mm, k_star[:, None])[0]
                prior = (k_ss - explained).clamp_min(0) * s.energy_scale**2
                out.append(float(prior + quadratic_form(l_a, v[:, None])[0]))
        return np.array(out)

    def predict_std(self, frames: Sequence[Atoms]) -> np.ndarray:
        """Calibrated predictive standard deviation of each total energy (eV)."""
        scale = self._uncertainty_scale()
        return np.sqrt(self.raw_variance(as_frames(frames)) * scale)

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

    def metatomic_module(self) -> torch.nn.Module:
        """This model as TorchScript (``LocalPotential`` of :mod:`~ase_alchemical.local.metatomic`;
        needs the optional metatomic stack)."""
        from .metatomic import LocalPotential

        self._check_fitted()
        if self.prior is not None:
            raise ValueError(
                f"this potential corrects the {self._prior().name!r} prior, an ASE calculator "
                "and not TorchScript: only a potential without a prior can be exported"
            )
        return LocalPotential(self)

    def _loaded_compression(self, species: list[int], u: torch.Tensor) -> AlchemicalCompression:
        radial = basis_shapes(self.hypers_) if self.radially_resolved else None
        return AlchemicalCompression(species, u.shape[-1], init=u, radial_shapes=radial)

    @classmethod
    def _loaded_params(cls, stored: dict, given: dict) -> dict:
        # a prior given at load is checked against the fingerprint the file recorded
        record = stored.get("prior")
        if given.get("prior") is not None and isinstance(record, dict):
            prior = resolve_prior(given["prior"])
            prior.recorded_fingerprint = record.get("fingerprint")
            given = {**given, "prior": prior}
        return given

    def _file_params(self) -> dict:
        params = super()._file_params()
        prior = self._prior()
        params["prior"] = None if prior is None else prior.record()
        return params

    # ------------------------------------------------------------------ files
    def _install(self, state: PotentialState, path: Path, cache: bool | None = None) -> None:
        """Rebuild the support features from the stored compressed coefficients (no
        featomic call), check them against the weights, and set the state."""
        lmax1, n_radial = basis_shape(self.hypers_)
        d_j = state.compression.d_j
        sizes = [(2 * lam + 1) * d_j * n_radial for lam in range(lmax1)]
        ct_flat = state.support_coefficients
        if sum(sizes) != ct_flat.shape[1]:
            raise ModelFileError(
                f"{path}: support coefficients have {ct_flat.shape[1]} columns, expected "
                f"{sum(sizes)}"
            )
        parts = ct_flat.split(sizes, dim=1)
        ct = [q.reshape(len(q), 2 * lam + 1, d_j * n_radial) for lam, q in enumerate(parts)]
        state.support_features = features_from_compressed(ct)[0]
        self._set_state(state)
        self._prior()  # a prior of another version or fingerprint warns at load
