"""AlchemicalKRR: kernel ridge regression on alchemically compressed SOAP features.

``fit(train, opt)`` learns the compression U and the KRR weights *jointly*: every step
rebuilds the training kernel from the current U, solves for the weights on the training
set, predicts the optimization set and takes an Adam step on U from the loss there
(:mod:`ase_alchemical.structure.optimize`).

The model is orchestration: the features (:mod:`~ase_alchemical.core.features`), the
compression (:mod:`~ase_alchemical.core.compression`), the feature map
(:mod:`~ase_alchemical.structure.representation`), the kernel
(:mod:`~ase_alchemical.core.kernels`), the solvers (:mod:`~.solvers`), the variance
(:mod:`~.uncertainty`) and the file format (:mod:`~ase_alchemical.core.serialization`)
each live in their own module; what every model kind shares (parameters, fitted
attributes, files, ``score``, the calculator protocol) is the base class
:class:`~ase_alchemical.core.estimator.AlchemicalModel`. Everything a fit produces is one
:class:`.FittedState`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from ..core import feature_cache
from ..core.compression import AlchemicalCompression
from ..core.estimator import AlchemicalModel, as_frames
from ..core.features import PairSpectrum, compute_pair_spectrum, differentiable_pair_spectrum
from ..core.hypers import hypers_list
from ..errors import ModelFileError
from .domain import lone_atom_warnings
from .fit import calibrate, fit_state, kernel_for, new_compression, refit_state
from .optimize import fitted_step_loss
from .representation import Representation
from .solvers import FullSolver, make_solver
from .state import STATE_ALIASES, FittedState
from .uncertainty import calibrated_mean_and_std

__all__ = ["AlchemicalKRR"]


class AlchemicalKRR(AlchemicalModel):
    """Kernel ridge regression with a learned alchemical compression of SOAP.

    Parameters (keyword-only)
    -------------------------
    d_j
        Number of pseudo-elements (columns of U). ``None``: one per element (with
        ``init="identity"`` and ``n_steps=0`` this is plain multi-species SOAP).
    hypers
        featomic spherical-expansion hypers (plain dict; default
        :data:`ase_alchemical.core.hypers.DEFAULT_HYPERS`), or a list of them for a
        *multi-scale* kernel (e.g. cutoffs 5 and 7 Å, same ``max_radial``,
        :func:`~ase_alchemical.core.hypers.multiscale_hypers`): a weighted sum of one kernel
        per scale, each on its own normalised features.
    zeta
        Exponent of the polynomial kernel: an integer (the shipped models use 3), a
        sequence of them (one fit each; the fit with the lowest optimization-set RMSE at
        its kept step is kept, the others' RMSEs in ``optimization_["zeta_candidates"]``)
        or ``"auto"`` (default): 2 and 3 tried that way below 3,000 training structures,
        3 alone from there on or when no optimization set can choose
        (:data:`~ase_alchemical.structure.fit.ZETA_CHOICE_BELOW`). On the elpasolites the
        better exponent at small sizes changes with d_J and the training draw, and the
        optimization set picked it (``benchmarks/studies/small_zeta.py``); choosing
        costs one fit per candidate. The exponent used is ``zeta_``.
    normalization
        Structure features: ``"normalized"`` (unit norm) or ``"mean"`` (per atom).
    center_resolved
        Keep the power spectrum apart by the (compressed) species of the central atom
        (see :class:`~ase_alchemical.core.compression.AlchemicalCompression`).
    radially_resolved
        Learn one U per radial basis function (of each scale) instead of one for all:
        an element may mix differently near the centre and farther out, at the same
        feature length (see :class:`~ase_alchemical.core.compression.AlchemicalCompression`).
    basis_components
        Keep this many principal components of the (l, n, n') channels of the pair
        spectrum (from the training set, before any U): a fixed linear map that shortens
        every feature vector and so every kernel evaluation. ``None``: keep all.
    scale_weights
        Initial weights of the scales of a multi-scale kernel (normalised to sum to 1;
        ``None``: equal).
    learn_scale_weights
        Optimize the scale weights on the optimization-set loss together with U (as a
        softmax of free parameters, so they stay positive and sum to 1).
    regularizer
        KRR regulariser, relative to the mean kernel diagonal (the starting value when
        ``learn_regularizer``).
    learn_regularizer
        Optimize log(regularizer) on the optimization-set loss together with U
        (needs ``gradient_flow="full"``: the regulariser acts only through the solve).
    solver
        ``"full"`` (all training points; the default, which the shipped models use) or
        ``"sparse"`` (projected process on ``n_support`` points chosen by farthest-point
        sampling; for training sets too large for a full solve).
    n_support
        Number of support structures of the sparse solver.
    gradient_flow
        ``"full"``: gradients reach U through the optimization features *and* through the
        solve over the training features. ``"detach_weights"``: the weights are
        constants in each step, the support features inside the optimization kernel
        still move with U. ``"detach"``: the weights and the training features are
        constants in each step (reported unstable in the literature).
    n_steps
        Adam steps on U (0 keeps the initial U), or ``"auto"`` (default): 750 below
        3,000 training structures, 250 from there on
        (:data:`~ase_alchemical.structure.fit.STEPS_BY_SIZE`): on the elpasolites, with
        the default cosine decay of the learning rate, 250 steps were behind 750 up to
        1,000 training crystals, the largest size measured below 3,000, and level with
        a constant rate at 6,000 (``benchmarks/studies/small_steps.py``,
        ``schedule.py``). The steps taken are ``optimization_["n_steps_run"]``.
    step_train_size
        Training structures used in each optimization step: a fresh random subset per
        step (containing the support points with the sparse solver; all of it is solved
        on with the full solver), which makes a step cost independent of the training-set
        size. ``None``: all, every step. The final weights are always solved on the whole
        training set.
    learning_rate
        Adam learning rate.
    lr_schedule
        ``"cosine"`` (default): the learning rate decays from ``learning_rate`` to zero
        over the ``n_steps`` (smaller, less noisy steps at the end, where the per-step
        training subsets or the rotating folds make the loss noisy), or ``"constant"``.
    rotation
        Rotate the roles of the training and optimization structures while learning U:
        their union is cut into ``n_folds`` folds, step t takes its loss on fold
        t mod k and solves on the rest (the sets of :mod:`~ase_alchemical.structure.optimize`),
        and the U kept is the one with the lowest loss over the last k folds. This
        guards against a U that fits a small optimization set alone. ``"auto"``: when
        the optimization set is small, fewer than 5 structures per mixing weight of U
        (:func:`~ase_alchemical.core.optimize.rotates`); ``True``/``False``: always/never.
        The final weights are solved on the training set either way.
    n_folds
        Folds of the rotation.
    init
        Initial U: ``"elements"``, ``"random"``, ``"identity"`` or an array
        (see :class:`~ase_alchemical.core.compression.AlchemicalCompression`).
    seed
        Seed of the random initialisation, the per-step training subsets, the folds of
        the rotation and the random projection used to pick sparse support points.
    batch_size
        Structures per featomic call.
    device
        Torch device for the training and prediction tensors (``None``: CUDA when
        available, else CPU; :func:`~ase_alchemical.core.devices.resolve_device`).
    progress
        Show progress bars.

    Attributes
    ----------
    state_ : FittedState
        Everything the fit learned; its fields are also attributes with a trailing
        underscore (``compression_``, ``weights_``, ``support_``, ``regularizer_``,
        ``scale_weights_``, ``y_mean_``, ``y_std_``, ``loss_history_``,
        ``best_step_``, ``optimization_``, ``uncertainty_scale_``, ``metadata_``, ...).
    representation_ : Representation
        The feature map of the fitted compression.
    kernel_ : PolynomialKernel
        The fitted kernel.
    """

    def __init__(
        self,
        *,
        d_j: int | None = 4,
        hypers: dict | list[dict] | None = None,
        zeta: int | Sequence[int] | str = "auto",
        normalization: str = "normalized",
        center_resolved: bool = False,
        radially_resolved: bool = False,
        basis_components: int | None = None,
        scale_weights: Sequence[float] | None = None,
        learn_scale_weights: bool = True,
        regularizer: float = 1e-3,
        learn_regularizer: bool = True,
        solver: str = "full",
        n_support: int = 1500,
        gradient_flow: str = "full",
        n_steps: int | str = "auto",
        step_train_size: int | None = 2000,
        learning_rate: float = 0.1,
        lr_schedule: str = "cosine",
        rotation: bool | str = "auto",
        n_folds: int = 5,
        init: str | np.ndarray = "elements",
        seed: int = 0,
        batch_size: int = 100,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> None:
        self._store_params(locals())

    kind = "structure"
    _STATE = FittedState
    _ALIASES = STATE_ALIASES
    _CACHES = ("_variance", "_support_lone_fraction")

    @property
    def n_scales(self) -> int:
        """Number of scales (hypers dicts) of the kernel."""
        return len(hypers_list(self.hypers))

    @property
    def solver_(self) -> FullSolver:
        """The solver object of ``solver`` and ``n_support``."""
        return make_solver(self.solver, self.n_support)

    # ------------------------------------------------------------------ fitted state
    def _set_state(self, state: FittedState) -> None:
        """Install a fitted state and the objects derived from it."""
        if state.zeta is None:  # a file written before the exponent was saved
            state.zeta = int(self.zeta)
        super()._set_state(state)
        self.__dict__["representation_"] = self._representation(state)
        self.__dict__["kernel_"] = kernel_for(
            self, self.representation_, state.scale_weights, state.zeta
        )
        if state.support_features is None:
            state.support_features = self._support_features(state)

    def _representation(self, state: FittedState) -> Representation:
        return Representation(state.compression, self.hypers_, self.normalization, state.projection)

    def _support_features(self, state: FittedState) -> torch.Tensor:
        """Features of the support structures of ``state`` (featomic, then U)."""
        with torch.no_grad():
            spectrum = self.pair_spectrum(state.support, progress=False)
            return self._representation(state).transform(spectrum)

    def _state_changed(self, field: str) -> None:
        super()._state_changed(field)
        if field == "scale_weights":
            self.__dict__["kernel_"] = kernel_for(
                self, self.representation_, self.state_.scale_weights, self.state_.zeta
            )

    # ------------------------------------------------------------------ features
    def pair_spectrum(self, frames: Sequence[Atoms], progress: bool | None = None) -> PairSpectrum:
        """Species-pair spectra of ``frames`` with this model's hypers (U-independent)."""
        return compute_pair_spectrum(
            frames,
            self.hypers_,
            batch_size=self.batch_size,
            progress=self.progress if progress is None else progress,
            center_resolved=bool(self.center_resolved),
        ).to(self.torch_device)

    def features(self, frames_or_spectrum: Sequence[Atoms] | PairSpectrum) -> torch.Tensor:
        """Structure features (S, F) with the fitted U, of structures or their
        :meth:`pair_spectrum`."""
        self._check_fitted()
        spectrum = frames_or_spectrum
        if not isinstance(spectrum, PairSpectrum):
            spectrum = self.pair_spectrum(list(frames_or_spectrum))
        with torch.no_grad():
            return self.representation_.transform(spectrum.to(self.torch_device))

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Sequence[Atoms],
        opt: Sequence[Atoms] | None = None,
        train_spectrum: PairSpectrum | None = None,
        opt_spectrum: PairSpectrum | None = None,
        eval_set: Sequence[Atoms] | None = None,
        eval_spectrum: PairSpectrum | None = None,
    ) -> AlchemicalKRR:
        """Learn U (on ``opt``) and the KRR weights (on ``train``) jointly.

        Parameters
        ----------
        train
            Training structures with ``info["energy"]`` (total, eV): the weights are
            solved on them at every step.
        opt
            Optimization structures: U takes gradient steps on the loss there (with a
            small optimization set the roles of both sets rotate, see ``rotation``).
            With ``None`` (or ``n_steps=0``) U keeps its initial value.
        train_spectrum, opt_spectrum
            Precomputed :meth:`pair_spectrum` of ``train`` / ``opt`` (to reuse across fits).
        eval_set, eval_spectrum
            Structures only watched while U is learned (as the ``eval_set`` of
            gradient-boosting libraries): every record of ``loss_history_`` gets their
            RMSE and MAE under that step's U and weights, ``eval_rmse`` and ``eval_mae``
            (eV/atom). They never
            enter a gradient, the solve or the choice of the kept step, so a test set
            can be watched without being used.

        Returns
        -------
        self
        """
        spectra = {"train": train_spectrum, "opt": opt_spectrum, "eval": eval_spectrum}
        self._set_state(fit_state(self, train, opt, eval_set, spectra))
        return self

    def refit(
        self,
        frames: Sequence[Atoms],
        spectrum: PairSpectrum | None = None,
        regularizer: float | None = None,
    ) -> AlchemicalKRR:
        """Solve the KRR weights again on ``frames``, keeping U and the scale weights
        (and the regulariser, unless given): e.g. on training + optimization set once U
        is learned, so that the final model uses every labelled structure.

        With the full solver every structure of ``frames`` becomes a support point; the
        sparse solver keeps its support points and solves on ``frames``. The uncertainty
        scale is kept from the calibration before (the optimization set can no longer
        calibrate a model that was solved on it).

        Parameters
        ----------
        frames
            Structures with ``info["energy"]`` (total, eV).
        spectrum
            Their precomputed :meth:`pair_spectrum`.
        regularizer
            Relative regulariser of this solve (as the constructor's ``regularizer``);
            ``None`` keeps the fitted one. The one learned with U suits the per-step
            solves on ``step_train_size`` structures; a solve on more may want another,
            chosen on held-out structures (``benchmarks/studies/final_regularizer.py``).
        """
        self._check_fitted()
        refit_state(self, frames, spectrum, regularizer)
        self._drop_caches()
        return self

    def step_loss(self, u: torch.Tensor, *spectra_and_targets, **fitted):
        """The joint objective of this fitted model as a function of ``u``
        (:func:`~ase_alchemical.structure.optimize.fitted_step_loss`, with the same
        arguments after ``u``): the loss and the training predictions."""
        return fitted_step_loss(self, u, *spectra_and_targets, **fitted)

    # ------------------------------------------------------------------ predict
    def predict_from_spectrum(
        self, spectrum: PairSpectrum, return_std: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Per-atom energies (eV/atom) from precomputed spectra, as a torch tensor.

        With ``return_std`` also the calibrated predictive standard deviation (eV/atom)
        of each prediction (see :meth:`predict_per_atom`).
        """
        self._check_fitted()
        state, rep, kernel = self.state_, self.representation_, self.kernel_
        spectrum = rep.project(spectrum.to(self.torch_device))
        if not return_std:
            k = rep.map_chunks(spectrum, lambda x: kernel(x, state.support_features))
            return state.targets.inverse(k @ state.weights)
        return calibrated_mean_and_std(self, spectrum, self._uncertainty_scale())

    def energy_and_derivatives(
        self, frames: Sequence[Atoms], strain: bool | None = None
    ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None]:
        """Total energies and their exact derivatives with respect to geometry.

        Autograd from the energy back to the spherical-expansion coefficients (through
        the kernel and the compression), then featomic's analytical coefficient
        gradients for positions and strain.

        Parameters
        ----------
        frames
            Structures (or one ``Atoms``).
        strain
            Also the strain derivatives (virials): ``None`` (default) when every
            structure is 3D-periodic, ``False`` never (cheaper when only forces are
            wanted), ``True`` always (an error for a non-periodic structure).

        Returns
        -------
        energies
            Total energies (eV), shape (S,).
        gradients
            ``dE/dpositions`` per structure, (n_atoms, 3) in eV/Å (forces are minus this).
        virials
            ``dE/dstrain`` per structure, (3, 3) in eV (stress = virial / volume);
            ``None`` without strain derivatives.
        """
        self._check_fitted()
        frames = as_frames(frames)
        spectrum, geometry = differentiable_pair_spectrum(
            frames, self.hypers_, dtype=self.state_.weights.dtype, device=self.torch_device,
            center_resolved=bool(self.center_resolved), strain=strain,
        )  # fmt: skip
        energies = self.predict_from_spectrum(spectrum) * spectrum.n_atoms
        gradients, virials = geometry.backward(energies.sum())
        return energies.detach().cpu().numpy(), gradients, virials

    def predict_per_atom(
        self, frames: Sequence[Atoms], return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted formation energies per atom (eV/atom).

        Parameters
        ----------
        frames
            Structures (or one ``Atoms``).
        return_std
            Also return the predictive standard deviation (eV/atom): the Gaussian-process
            posterior variance of the KRR model (projected-process variance for the
            sparse solver) plus the noise the regulariser stands for, times one scale
            factor calibrated on the optimization set (:meth:`calibrate_uncertainty`).
            It grows for structures unlike the training set.
        """
        self._check_fitted()
        frames = as_frames(frames)
        spectrum = self.pair_spectrum(frames)
        with torch.no_grad():
            out = self.predict_from_spectrum(spectrum, return_std=return_std)
        if return_std:
            return out[0].cpu().numpy(), out[1].cpu().numpy()
        return out.cpu().numpy()

    def predict(
        self, frames: Sequence[Atoms], return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted total energies (eV): number of atoms x per-atom prediction.

        With ``return_std`` also the standard deviations of the totals (eV), as in
        :meth:`predict_per_atom`.
        """
        frames = as_frames(frames)
        n_atoms = np.array([len(a) for a in frames]) if frames else np.zeros(0)
        if return_std:
            mean, std = self.predict_per_atom(frames, return_std=True)
            return mean * n_atoms, std * n_atoms
        return self.predict_per_atom(frames) * n_atoms

    def domain_warnings(self, atoms: Atoms) -> list[str]:
        """Lone atoms beyond the support structures' share
        (:func:`~ase_alchemical.structure.domain.lone_atom_warnings`): the normalised
        features hide them from the uncertainty."""
        return lone_atom_warnings(self, atoms)

    # ------------------------------------------------------------------ uncertainty
    def calibrate_uncertainty(
        self, frames: Sequence[Atoms], spectrum: PairSpectrum | None = None
    ) -> float:
        """Set the uncertainty scale from structures with ``info["energy"]``.

        ``fit`` does this on the optimization set; call it to recalibrate (e.g. on a
        validation set of your own). Returns the scale factor (predictive variances are
        multiplied by it, so that the mean squared error over predicted variance is 1).
        ``spectrum``: their precomputed :meth:`pair_spectrum`.
        """
        self._check_fitted()
        frames = list(frames)
        if not frames:
            raise ValueError("calibrate_uncertainty needs at least one structure")
        spectrum = spectrum if spectrum is not None else self.pair_spectrum(frames)
        spectrum = self.representation_.project(spectrum.to(self.torch_device))
        y = self.state_.targets.standardised(frames, self.torch_device)
        self.state_.uncertainty_scale = calibrate(
            self.state_, self.representation_, self.kernel_, self.solver_, spectrum, y
        )
        return self.state_.uncertainty_scale

    def metatomic_module(self) -> torch.nn.Module:
        """This model as TorchScript (``StructureKernel`` of
        :mod:`~ase_alchemical.structure.metatomic`; needs the optional metatomic stack)."""
        from .metatomic import StructureKernel

        self._check_fitted()
        return StructureKernel(self)

    # ------------------------------------------------------------------ files
    def _loaded_compression(self, species, u) -> AlchemicalCompression:
        return new_compression(self, species, u.shape[-1], u)

    def _install(self, state: FittedState, path: Path, cache: bool | None = None) -> None:
        """Check a loaded state, fill in its support features (the file stores the support
        *structures*; :func:`.feature_cache.support_features`) and set it."""
        if state.scale_weights.shape != (self.n_scales,):
            raise ModelFileError(
                f"{path}: {state.scale_weights.numel()} scale weights for {self.n_scales} "
                "scales of hypers"
            )
        if state.support_features is None:
            features = feature_cache.support_features(
                path, state.weights.dtype, len(state.support),
                lambda: self._support_features(state), cache,
            )  # fmt: skip
            state.support_features = features.to(self.torch_device, state.weights.dtype)
        self._set_state(state)
