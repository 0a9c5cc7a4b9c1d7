"""AlchemicalKRR: kernel ridge regression on alchemically compressed SOAP features.

``fit(train, opt)`` learns the compression U and the KRR weights *jointly*: every step
rebuilds the training kernel from the current U, solves for the weights on the training
set, predicts the optimization set and takes an Adam step on U from the loss there.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from . import __version__
from ._io import atomic_write
from .compression import AlchemicalCompression
from .features import (
    DEFAULT_HYPERS,
    PairSpectrum,
    basis_shapes,
    compute_pair_spectrum,
    differentiable_pair_spectrum,
    hypers_list,
    scale_sizes,
)
from .kernels import (
    NORMALIZATIONS,
    farthest_point_sampling,
    full_krr_weights,
    kernel_diagonal,
    multiscale_kernel,
    polynomial_kernel,
    random_projection,
    scale_widths,
    sparse_krr_weights,
    structure_features,
)

__all__ = [
    "AlchemicalKRR", "ModelFileError", "load_model", "model_file_info", "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
]  # fmt: skip

MODEL_FORMAT = "ase-alchemical-model"
MODEL_FORMAT_VERSION = 1
GRADIENT_FLOWS = ("full", "detach")
SOLVERS = ("sparse", "full")
LR_SCHEDULES = ("constant", "cosine")


class ModelFileError(ValueError):
    """A model file is missing, corrupted, or from an incompatible version."""


def _energies(frames: Sequence[Atoms], key: str = "energy") -> np.ndarray:
    out = []
    for i, atoms in enumerate(frames):
        if key not in atoms.info:
            raise ValueError(f"structure {i} has no info[{key!r}] (total energy in eV)")
        out.append(float(atoms.info[key]))
    e = np.asarray(out)
    if not np.all(np.isfinite(e)):
        raise ValueError("training energies contain NaN or inf")
    return e


class AlchemicalKRR:
    """Kernel ridge regression with a learned alchemical compression of SOAP.

    Parameters
    ----------
    d_j
        Number of pseudo-elements (columns of U). ``None``: one per element (with
        ``init="identity"`` and ``n_steps=0`` this is plain multi-species SOAP).
    hypers
        featomic spherical-expansion hypers (plain dict; default
        :data:`ase_alchemical.features.DEFAULT_HYPERS`), or a list of them for a
        *multi-scale* kernel (e.g. cutoffs 3, 5 and 7 Å, same ``max_radial``): a weighted
        sum of one kernel per scale, each on its own normalised features.
    zeta
        Exponent of the polynomial kernel.
    normalization
        Structure features: ``"normalized"`` (unit norm) or ``"mean"`` (per atom).
    center_resolved
        Keep the power spectrum apart by the (compressed) species of the central atom
        (see :class:`~ase_alchemical.compression.AlchemicalCompression`).
    radially_resolved
        Learn one U per radial basis function (of each scale) instead of one for all:
        an element may mix differently near the centre and farther out, at the same
        feature length (see :class:`~ase_alchemical.compression.AlchemicalCompression`).
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
        ``"sparse"`` (projected process on ``n_support`` points chosen by farthest-point
        sampling; scales to many thousands) or ``"full"`` (all training points).
    n_support
        Number of support structures of the sparse solver.
    gradient_flow
        ``"full"``: gradients reach U through the optimization features *and* through the
        solve over the training features. ``"detach"``: the weights and training
        features are constants in each step (reported unstable in the literature).
    n_steps
        Adam steps on U (0 keeps the initial U).
    step_train_size
        Training structures used in each optimization step: a fresh random subset per
        step (containing the support points with the sparse solver; all of it is solved
        on with the full solver), which makes a step cost independent of the training-set
        size. ``None``: all, every step. The final weights are always solved on the whole
        training set.
    learning_rate
        Adam learning rate.
    lr_schedule
        ``"constant"`` learning rate, or ``"cosine"``: decayed from ``learning_rate`` to
        zero over the ``n_steps`` (smaller, less noisy steps at the end, where the
        per-step training subsets make the loss noisy).
    init
        Initial U: ``"elements"``, ``"random"``, ``"identity"`` or an array
        (see :class:`~ase_alchemical.compression.AlchemicalCompression`).
    seed
        Seed of the random initialisation, the per-step training subsets and the random
        projection used to pick sparse support points.
    batch_size
        Structures per featomic call.
    device
        Torch device for the training and prediction tensors (``None``: CPU).
    progress
        Show progress bars.
    """

    def __init__(
        self,
        d_j: int | None = 4,
        hypers: dict | None = None,
        zeta: int = 2,
        normalization: str = "normalized",
        center_resolved: bool = False,
        radially_resolved: bool = False,
        basis_components: int | None = None,
        scale_weights: Sequence[float] | None = None,
        learn_scale_weights: bool = True,
        regularizer: float = 1e-3,
        learn_regularizer: bool = True,
        solver: str = "sparse",
        n_support: int = 1500,
        gradient_flow: str = "full",
        n_steps: int = 250,
        step_train_size: int | None = 2000,
        learning_rate: float = 0.1,
        lr_schedule: str = "constant",
        init: str | np.ndarray = "elements",
        seed: int = 0,
        batch_size: int = 100,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> None:
        self.d_j = d_j
        self.hypers = hypers
        self.zeta = zeta
        self.normalization = normalization
        self.center_resolved = center_resolved
        self.radially_resolved = radially_resolved
        self.basis_components = basis_components
        self.scale_weights = scale_weights
        self.learn_scale_weights = learn_scale_weights
        self.regularizer = regularizer
        self.learn_regularizer = learn_regularizer
        self.solver = solver
        self.n_support = n_support
        self.gradient_flow = gradient_flow
        self.n_steps = n_steps
        self.step_train_size = step_train_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.init = init
        self.seed = seed
        self.batch_size = batch_size
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ parameters
    _PARAMS = (
        "d_j", "hypers", "zeta", "normalization", "center_resolved", "radially_resolved",
        "basis_components", "scale_weights", "learn_scale_weights", "regularizer",
        "learn_regularizer", "solver",
        "n_support", "gradient_flow", "n_steps", "step_train_size", "learning_rate", "lr_schedule",
        "init",
        "seed", "batch_size",
    )  # fmt: skip

    def get_params(self) -> dict:
        """Hyperparameters as a dict (scikit-learn style)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self._PARAMS}

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if k != "hypers"}
        return "AlchemicalKRR(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def _check_params(self) -> None:
        n_scales = len(hypers_list(self.hypers))
        if n_scales > 1 and self.basis_components is not None:
            raise ValueError(
                "basis_components mixes the (l, n, n') channels of all scales; it cannot be "
                "combined with multi-scale hypers"
            )
        if self.radially_resolved and (self.center_resolved or self.basis_components):
            raise ValueError(
                "radially_resolved needs the plain (l, n, n') channels summed over centres: "
                "it cannot be combined with center_resolved or basis_components"
            )
        if self.scale_weights is not None:
            w = np.asarray(self.scale_weights, dtype=float)
            if w.shape != (n_scales,) or not np.all(w > 0):
                raise ValueError(
                    f"scale_weights must be {n_scales} positive numbers (one per scale of "
                    f"hypers), got {self.scale_weights}"
                )
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
        if self.gradient_flow not in GRADIENT_FLOWS:
            raise ValueError(f"gradient_flow must be one of {GRADIENT_FLOWS}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}")
        if int(self.zeta) != self.zeta or self.zeta < 1:
            raise ValueError(f"zeta must be a positive integer, got {self.zeta}")
        if self.basis_components is not None and int(self.basis_components) < 1:
            raise ValueError(f"basis_components must be >= 1 or None, got {self.basis_components}")
        if not self.regularizer > 0:
            raise ValueError(f"regularizer must be > 0, got {self.regularizer}")
        if self.learn_regularizer and self.gradient_flow == "detach":
            raise ValueError(
                "learn_regularizer=True needs gradient_flow='full': with 'detach' no "
                "gradient reaches the regulariser"
            )

    @property
    def _hypers(self) -> dict | list[dict]:
        return DEFAULT_HYPERS if self.hypers is None else self.hypers

    def _radial_shapes(self) -> list[tuple[int, int]] | None:
        return basis_shapes(self._hypers) if self.radially_resolved else None

    @property
    def n_scales(self) -> int:
        """Number of scales (hypers dicts) of the kernel."""
        return len(hypers_list(self.hypers))

    def _initial_scale_logits(self) -> torch.Tensor:
        w = np.ones(self.n_scales) if self.scale_weights is None else self.scale_weights
        w = np.asarray(w, dtype=float)
        return torch.as_tensor(np.log(w / w.sum()), dtype=torch.float64, device=self._device)

    @property
    def _device(self) -> torch.device:
        return torch.device(self.device) if self.device is not None else torch.device("cpu")

    # ------------------------------------------------------------------ features
    def pair_spectrum(self, frames: Sequence[Atoms], progress: bool | None = None) -> PairSpectrum:
        """Species-pair spectra of ``frames`` with this model's hypers (U-independent)."""
        return compute_pair_spectrum(
            frames,
            self._hypers,
            batch_size=self.batch_size,
            progress=self.progress if progress is None else progress,
            center_resolved=bool(self.center_resolved),
        ).to(self._device)

    def _project(self, spectrum: PairSpectrum) -> PairSpectrum:
        """Apply the fitted (l, n, n') projection (identity when there is none)."""
        if getattr(self, "projection_", None) is None:
            return spectrum
        p = self.projection_
        values = spectrum.values.flatten(-3) if spectrum.values.dim() == 7 else spectrum.values
        return PairSpectrum(
            values.to(p.dtype) @ p, spectrum.numbers, spectrum.n_atoms, spectrum.center_resolved
        )

    def _fit_projection(self, spectrum: PairSpectrum) -> None:
        """Leading eigenvectors of the uncentred second moment of the (l, n, n') channels."""
        self.projection_ = None
        if self.basis_components is None:
            return
        v = spectrum.values.flatten(-3)
        v = v.reshape(-1, v.shape[-1])
        n = min(int(self.basis_components), v.shape[1])
        _, vectors = torch.linalg.eigh(v.T @ v)
        self.projection_ = vectors[:, -n:].flip(1).contiguous()

    def _features(self, spectrum: PairSpectrum, u: torch.Tensor | None = None) -> torch.Tensor:
        """Structure features of spectra (with the fitted U, or ``u`` differentiably)."""
        compressed = (
            self.compression_(spectrum) if u is None
            else torch.func.functional_call(self.compression_, {"U": u}, (spectrum,))
        )  # fmt: skip
        sizes = scale_sizes(self._hypers) if self.n_scales > 1 else None
        x = structure_features(compressed, spectrum.n_atoms, self.normalization, sizes)
        columns = self._unique_columns(x.device, x.dtype)
        return x if columns is None else x[:, columns[0]] * columns[1]

    def _unique_columns(self, device, dtype) -> tuple | None:
        """(index, weights, widths) of the feature columns kept without the symmetric
        (n, n') duplicates (:meth:`AlchemicalCompression.unique_columns`); ``None`` with
        an (l, n, n') projection, whose components have no such duplicates."""
        if getattr(self, "projection_", None) is not None:
            return None
        key = (str(device), dtype)  # reset with every new compression (fit, load)
        cache = getattr(self, "_columns_cache", None)
        if cache is None or cache[0] != key:
            index, weights, widths = self.compression_.unique_columns(basis_shapes(self._hypers))
            cache = (key, index.to(device), weights.to(device=device, dtype=dtype), widths)
            self._columns_cache = cache
        return cache[1:]

    def _map_chunks(self, spectrum: PairSpectrum, fn, chunk: int = 1000) -> torch.Tensor:
        """``fn(features)`` over chunks of structures, concatenated: bounds the memory of
        wide features (plain SOAP over 39 elements has 140k per structure)."""
        parts = [
            fn(self._features(spectrum[start : start + chunk]))
            for start in range(0, len(spectrum), chunk)
        ]
        return torch.cat(parts)

    def _kernel(
        self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Kernel between feature rows; ``weights`` of the scales (default: fitted)."""
        if self.n_scales == 1:
            return polynomial_kernel(x, y, int(self.zeta))
        weights = self.scale_weights_ if weights is None else weights
        return multiscale_kernel(x, y, int(self.zeta), self._widths(x), weights.to(x.dtype))

    def _widths(self, x: torch.Tensor) -> list[int]:
        """Length of each scale's columns in the feature rows ``x``."""
        columns = self._unique_columns(x.device, x.dtype)
        if columns is not None:
            return columns[2]
        if self.n_scales == 1:
            return [x.shape[1]]
        return scale_widths(x.shape[1], scale_sizes(self._hypers))

    def _solve(
        self,
        x_train: torch.Tensor,
        support: torch.Tensor,
        y: torch.Tensor,
        regularizer=None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        reg = self.regularizer_ if regularizer is None else regularizer
        x_sup = x_train[support]
        k_mm = self._kernel(x_sup, x_sup, weights)
        if self.solver == "full":
            return full_krr_weights(k_mm, y, reg)
        return sparse_krr_weights(self._kernel(x_train, x_sup, weights), k_mm, y, reg)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Sequence[Atoms],
        opt: Sequence[Atoms] | None = None,
        train_spectrum: PairSpectrum | None = None,
        opt_spectrum: PairSpectrum | None = None,
    ) -> AlchemicalKRR:
        """Learn U (on ``opt``) and the KRR weights (on ``train``) jointly.

        Parameters
        ----------
        train
            Training structures with ``info["energy"]`` (total, eV): the weights are
            solved on them at every step.
        opt
            Optimization structures: U takes gradient steps on the loss there. With
            ``None`` (or ``n_steps=0``) U keeps its initial value.
        train_spectrum, opt_spectrum
            Precomputed :meth:`pair_spectrum` of ``train`` / ``opt`` (to reuse across fits).

        Returns
        -------
        self
        """
        from tqdm.auto import tqdm

        self._check_params()
        t0 = time.perf_counter()
        train = list(train)
        y_train_total = _energies(train)
        rho_t = train_spectrum if train_spectrum is not None else self.pair_spectrum(train)
        rho_t = rho_t.to(self._device)  # a precomputed spectrum may be on another device
        n_t = rho_t.n_atoms.to(torch.float64)
        y_t_atom = torch.as_tensor(y_train_total, device=self._device) / n_t
        self.y_mean_ = float(y_t_atom.mean())
        self.y_std_ = float(y_t_atom.std()) if len(train) > 1 else 1.0
        y_t = (y_t_atom - self.y_mean_) / self.y_std_

        species = sorted({int(z) for z in rho_t.numbers.unique().tolist() if z > 0})
        optimize = opt is not None and len(opt) > 0 and self.n_steps > 0
        if optimize:
            opt = list(opt)
            rho_o = opt_spectrum if opt_spectrum is not None else self.pair_spectrum(opt)
            rho_o = rho_o.to(self._device)
            species = sorted(
                set(species) | {int(z) for z in rho_o.numbers.unique().tolist() if z > 0}
            )
            y_o = (
                torch.as_tensor(_energies(opt), device=self._device) / rho_o.n_atoms - self.y_mean_
            ) / self.y_std_
        self._fit_projection(rho_t)
        rho_t = self._project(rho_t)
        if optimize:
            rho_o = self._project(rho_o)
        d_j = len(species) if self.d_j is None else self.d_j
        self._columns_cache = None
        self.compression_ = AlchemicalCompression(
            species, d_j, self.init, self.seed, bool(self.center_resolved), self._radial_shapes()
        ).to(self._device)
        n_support = len(train) if self.solver == "full" else min(self.n_support, len(train))
        if self.solver == "full":
            self.support_index_ = torch.arange(len(train), device=self._device)
        else:
            with torch.no_grad():  # FPS on randomly projected features, built in chunks
                n_feat = self._features(rho_t[:1]).shape[1]
                proj = random_projection(n_feat, 256, self.seed).to(self._device)
                x0 = self._map_chunks(rho_t, lambda x: x @ proj if n_feat > 256 else x)
            self.support_index_ = farthest_point_sampling(x0, n_support).to(self._device)
        self.loss_history_: list[dict] = []
        self.regularizer_ = float(self.regularizer)
        self.scale_weights_ = torch.softmax(self._initial_scale_logits(), 0)
        if optimize:
            self._optimize(rho_t, y_t, rho_o, y_o, tqdm)
        with torch.no_grad():
            self._solve_weights(rho_t, y_t, self._features(rho_t[self.support_index_]))
            self.uncertainty_scale_ = None
            if optimize:
                self._calibrate(rho_o, y_o)
        self._set_support([train[i] for i in self.support_index_.cpu().numpy()])
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _solve_weights(self, rho: PairSpectrum, y: torch.Tensor, x_sup: torch.Tensor) -> None:
        """Final KRR weights on (projected) spectra ``rho`` with standardised targets ``y``,
        for support features ``x_sup`` (all of ``rho`` with the full solver)."""
        k_mm = self._kernel(x_sup, x_sup)
        self.gram_ = None
        if self.solver == "full":
            self.weights_ = full_krr_weights(k_mm, y, self.regularizer_)
        else:
            k_nm = self._map_chunks(rho, lambda x: self._kernel(x, x_sup))
            self.weights_ = sparse_krr_weights(k_nm, k_mm, y, self.regularizer_)
            self.gram_ = k_nm.T @ k_nm  # for the predictive variance; M x M
            del k_nm
        self.support_features_ = x_sup
        self._variance_cache = None

    def _set_support(self, frames: Sequence[Atoms]) -> None:
        self.support_ = [atoms.copy() for atoms in frames]
        for atoms in self.support_:
            atoms.calc = None

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
            chosen on held-out structures (``benchmarks/final_regularizer.py``).
        """
        self._check_fitted()
        if regularizer is not None:
            if not regularizer > 0:
                raise ValueError(f"regularizer must be > 0, got {regularizer}")
            self.regularizer_ = float(regularizer)
        frames = list(frames)
        rho = spectrum if spectrum is not None else self.pair_spectrum(frames)
        rho = self._project(rho.to(self._device))
        y = (torch.as_tensor(_energies(frames), device=self._device) / rho.n_atoms
             - self.y_mean_) / self.y_std_  # fmt: skip
        with torch.no_grad():
            if self.solver == "full":
                self._solve_weights(rho, y, self._features(rho))
                self._set_support(frames)
                self.support_index_ = torch.arange(len(frames), device=self._device)
            else:
                self._solve_weights(rho, y, self.support_features_)
        return self

    def step_loss(
        self,
        u: torch.Tensor,
        train_spectrum: PairSpectrum,
        y_train: torch.Tensor,
        opt_spectrum: PairSpectrum,
        y_opt: torch.Tensor,
        support: torch.Tensor | None = None,
        log_regularizer: torch.Tensor | None = None,
        scale_logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint-training objective as a function of U (one optimization step).

        Builds the training features from ``u``, solves for the weights on the
        (standardised) training targets, predicts the optimization set and returns the
        mean squared error there. With ``gradient_flow="detach"`` the weights and the
        training features are constants, so gradients reach U only through the
        optimization features.

        Parameters
        ----------
        u
            Compression matrix (n_species x d_J).
        train_spectrum, y_train
            Training spectra and standardised per-atom targets.
        opt_spectrum, y_opt
            Optimization spectra and standardised per-atom targets.
        support
            Indices of the support points in ``train_spectrum`` (default: the fitted ones).
        log_regularizer
            log of the relative regulariser (default: the current one, as a constant).
        scale_logits
            Multi-scale kernel: the scale weights are ``softmax(scale_logits)``
            (default: the current weights, as constants).

        Returns
        -------
        loss, training predictions (without gradient)
        """
        support = self.support_index_ if support is None else support
        reg = self.regularizer_ if log_regularizer is None else torch.exp(log_regularizer)
        w = None if scale_logits is None else torch.softmax(scale_logits, 0)
        x_t, x_o = (self._features(spectrum, u) for spectrum in (train_spectrum, opt_spectrum))
        if self.gradient_flow == "detach":
            x_t = x_t.detach()
        weights = self._solve(x_t, support, y_train, reg, w)
        if self.gradient_flow == "detach":
            weights = weights.detach()
        x_sup = x_t[support]
        loss = torch.mean((self._kernel(x_o, x_sup, w) @ weights - y_opt) ** 2)
        with torch.no_grad():
            train_pred = self._kernel(x_t, x_sup, w) @ weights
        return loss, train_pred.detach()

    def _optimize(self, rho_t, y_t, rho_o, y_o, tqdm) -> None:
        """Adam on U (and log lambda, and the scale weights); keeps the values with the
        lowest opt-set loss."""
        u = self.compression_.U
        log_reg = torch.tensor(
            float(np.log(self.regularizer)), dtype=u.dtype, device=u.device,
            requires_grad=bool(self.learn_regularizer),
        )  # fmt: skip
        learn_scales = bool(self.learn_scale_weights) and self.n_scales > 1
        logits = self._initial_scale_logits().to(u).requires_grad_(learn_scales)
        params = [u] + [log_reg] * bool(self.learn_regularizer) + [logits] * learn_scales
        optimizer = torch.optim.Adam(params, lr=self.learning_rate)
        scheduler = None
        if self.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.n_steps)

        def snapshot(value: float, step: int) -> tuple:
            return (value, u.detach().clone(), float(log_reg.detach()), step,
                    logits.detach().clone())  # fmt: skip

        best = snapshot(float("inf"), -1)
        n, sup = len(rho_t), self.support_index_
        subsample = self.step_train_size is not None and self.step_train_size < n
        if subsample:
            others = torch.ones(n, dtype=torch.bool, device=sup.device)
            others[sup] = False
            others = others.nonzero().squeeze(1)
            n_extra = max(int(self.step_train_size) - len(sup), 0)
            generator = torch.Generator().manual_seed(self.seed)
        bar = tqdm(range(self.n_steps), desc="optimizing U", disable=not self.progress)
        for step in bar:
            optimizer.zero_grad()
            if subsample and self.solver == "full":
                # a fresh random subset, all of it support points of this step's solve
                idx = torch.randperm(n, generator=generator)[: int(self.step_train_size)]
                idx = idx.to(sup.device)
                rho_s, y_s, sup_s = rho_t[idx], y_t[idx], torch.arange(len(idx), device=sup.device)
            elif subsample:
                pick = others[
                    torch.randperm(len(others), generator=generator)[:n_extra].to(sup.device)
                ]
                idx = torch.cat([sup, pick])
                rho_s, y_s, sup_s = rho_t[idx], y_t[idx], torch.arange(len(sup), device=sup.device)
            else:
                rho_s, y_s, sup_s = rho_t, y_t, sup
            loss, train_pred = self.step_loss(u, rho_s, y_s, rho_o, y_o, sup_s, log_reg, logits)
            value = float(loss.detach())
            train_rmse = float(torch.sqrt(torch.mean((train_pred - y_s) ** 2))) * self.y_std_
            opt_rmse = value**0.5 * self.y_std_
            record = {"step": step, "opt_rmse": opt_rmse, "train_rmse": train_rmse,
                      "loss": value, "regularizer": float(torch.exp(log_reg.detach())),
                      "learning_rate": optimizer.param_groups[0]["lr"]}  # fmt: skip
            if self.n_scales > 1:
                record["scale_weights"] = torch.softmax(logits.detach(), 0).tolist()
            self.loss_history_.append(record)
            if value < best[0]:
                best = snapshot(value, step)
            bar.set_postfix(opt_rmse=f"{opt_rmse:.4f}")
            if not np.isfinite(value):
                break
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        with torch.no_grad():
            u.copy_(best[1])
        self.regularizer_ = float(np.exp(best[2]))
        self.best_step_ = best[3]
        self.scale_weights_ = torch.softmax(best[4], 0)

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise RuntimeError("this AlchemicalKRR is not fitted yet: call fit() or load_model()")

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        """Move the fitted model to a torch device and/or float dtype (in place); returns self.

        Predictions are computed in the dtype of the weights (float64 after fitting).
        """
        self._check_fitted()
        if device is not None:
            self.device = device
        self.compression_.to(device=self._device, dtype=dtype)
        self.weights_ = self.weights_.to(device=self._device, dtype=dtype)
        self.support_features_ = self.support_features_.to(device=self._device, dtype=dtype)
        if self.projection_ is not None:
            self.projection_ = self.projection_.to(device=self._device, dtype=dtype)
        if getattr(self, "gram_", None) is not None:
            self.gram_ = self.gram_.to(device=self._device, dtype=dtype)
        self.scale_weights_ = self.scale_weights_.to(device=self._device, dtype=dtype)
        self._variance_cache = None
        return self

    @property
    def species(self) -> list[int]:
        """Atomic numbers the fitted model knows."""
        self._check_fitted()
        return list(self.compression_.species)

    @property
    def U(self) -> np.ndarray:
        """The learned compression matrix (n_species x d_J); radially resolved, one per
        radial channel (n_channels x n_species x d_J)."""
        self._check_fitted()
        return self.compression_.U.detach().cpu().numpy().copy()

    def predict_from_spectrum(
        self, spectrum: PairSpectrum, return_std: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Per-atom energies (eV/atom) from precomputed spectra, as a torch tensor.

        With ``return_std`` also the calibrated predictive standard deviation (eV/atom)
        of each prediction (see :meth:`predict_per_atom`).
        """
        self._check_fitted()
        spectrum = self._project(spectrum.to(self._device))
        if not return_std:
            k = self._map_chunks(spectrum, lambda x: self._kernel(x, self.support_features_))
            return (k @ self.weights_) * self.y_std_ + self.y_mean_
        scale = getattr(self, "uncertainty_scale_", None)
        if scale is None:
            raise RuntimeError(
                "this model has no calibrated uncertainty (fitted without an optimization "
                "set, or saved before uncertainties): call model.calibrate_uncertainty(frames)"
            )

        mean, var = self._mean_and_raw_variance(spectrum)
        return mean * self.y_std_ + self.y_mean_, torch.sqrt(var * scale) * self.y_std_

    def _mean_and_raw_variance(self, spectrum: PairSpectrum) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised prediction and raw GP variance of projected spectra, from one
        kernel evaluation per chunk."""

        def mean_and_var(x: torch.Tensor) -> torch.Tensor:
            k = self._kernel(x, self.support_features_)
            return torch.stack([k @ self.weights_, self._raw_variance(x, k)], dim=1)

        out = self._map_chunks(spectrum, mean_and_var)
        return out[:, 0], out[:, 1]

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
        frames = [frames] if isinstance(frames, Atoms) else list(frames)
        spectrum, geometry = differentiable_pair_spectrum(
            frames, self._hypers, dtype=self.weights_.dtype, device=self._device,
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
        frames = [frames] if isinstance(frames, Atoms) else list(frames)
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
        frames = [frames] if isinstance(frames, Atoms) else list(frames)
        n_atoms = np.array([len(a) for a in frames]) if frames else np.zeros(0)
        if return_std:
            mean, std = self.predict_per_atom(frames, return_std=True)
            return mean * n_atoms, std * n_atoms
        return self.predict_per_atom(frames) * n_atoms

    def score(self, frames: Sequence[Atoms]) -> dict:
        """Errors per atom (eV/atom) on structures with ``info["energy"]``: MAE, RMSE."""
        frames = list(frames)
        n_atoms = np.array([len(a) for a in frames])
        err = self.predict_per_atom(frames) - _energies(frames) / n_atoms
        return {
            "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())),
            "n": len(frames),
        }

    # ------------------------------------------------------------------ uncertainty
    def _variance_factors(self) -> tuple[torch.Tensor, torch.Tensor | None, float]:
        """Cholesky factors of the GP posterior, built on first use and cached.

        Full KRR: ``L L^T = K + lambda I``. Sparse (DTC): ``L L^T = K_MM`` and
        ``L_A L_A^T = K_MN K_NM + lambda K_MM``.
        """
        cache = getattr(self, "_variance_cache", None)
        if cache is not None:
            return cache
        x = self.support_features_
        k_mm = self._kernel(x, x)
        eye = torch.eye(len(x), dtype=k_mm.dtype, device=k_mm.device)
        lam = self.regularizer_ * float(k_mm.diagonal().mean())
        jitter = 1e-10 * float(k_mm.diagonal().mean())
        if self.solver == "full":
            self._variance_cache = (torch.linalg.cholesky(k_mm + (lam + jitter) * eye), None, lam)
        else:
            if getattr(self, "gram_", None) is None:
                raise RuntimeError(
                    "this sparse model was saved without the Gram matrix the predictive "
                    "variance needs (a file from before uncertainties); refit it"
                )
            gram = self.gram_.to(k_mm)
            self._variance_cache = (
                torch.linalg.cholesky(k_mm + jitter * eye),
                torch.linalg.cholesky(gram + lam * k_mm + jitter * eye),
                lam,
            )
        return self._variance_cache

    def _raw_variance(self, x: torch.Tensor, k_star: torch.Tensor) -> torch.Tensor:
        """GP predictive variance (prior amplitude 1, standardised targets) of features x."""
        factor, factor_a, lam = self._variance_factors()
        prior = kernel_diagonal(x, int(self.zeta), self._widths(x), self.scale_weights_.to(x.dtype))
        v = torch.linalg.solve_triangular(factor, k_star.T, upper=False)
        var = prior - (v * v).sum(0) + lam
        if factor_a is not None:
            w = torch.linalg.solve_triangular(factor_a, k_star.T, upper=False)
            var = var + lam * (w * w).sum(0)
        return var.clamp_min(lam)

    def _calibrate(self, spectrum: PairSpectrum, y: torch.Tensor) -> None:
        """One scale factor: mean squared standardised error / raw variance on ``spectrum``."""
        with torch.no_grad():
            mean, var = self._mean_and_raw_variance(spectrum)
            self.uncertainty_scale_ = float(torch.mean((mean - y.to(mean)) ** 2 / var))

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
        spectrum = self._project(spectrum.to(self._device))
        y = (torch.as_tensor(_energies(frames), device=self._device) / spectrum.n_atoms
             - self.y_mean_) / self.y_std_  # fmt: skip
        self._calibrate(spectrum, y)
        return self.uncertainty_scale_

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Save the fitted model to one versioned file, atomically.

        The file holds hyperparameters, species, U, the support *structures* (their
        features are recomputed at load: a few hundred kB instead of many MB), weights,
        target normalisation, loss history and ``metadata`` (provenance).
        """
        self._check_fitted()
        params = self.get_params()
        if not isinstance(params["init"], str):
            params["init"] = "array"
        sup = self.support_
        state = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "package_version": __version__,
            "params": json.dumps(params),
            "hypers": json.dumps(self._hypers),
            "species": list(self.compression_.species),
            "U": self.compression_.U.detach().cpu().clone(),
            "weights": self.weights_.detach().cpu().clone(),
            "regularizer": self.regularizer_,
            "scale_weights": self.scale_weights_.detach().cpu().clone(),
            "projection": None if self.projection_ is None else self.projection_.cpu().clone(),
            "gram": None if getattr(self, "gram_", None) is None else self.gram_.cpu().clone(),
            "uncertainty_scale": getattr(self, "uncertainty_scale_", None),
            "y_mean": self.y_mean_,
            "y_std": self.y_std_,
            "support": {
                "numbers": torch.as_tensor(np.concatenate([a.numbers for a in sup])),
                "positions": torch.as_tensor(np.concatenate([a.positions for a in sup])),
                "cells": torch.as_tensor(np.stack([a.cell.array for a in sup])),
                "pbc": torch.as_tensor(np.stack([a.pbc for a in sup])),
                "n_atoms": torch.as_tensor([len(a) for a in sup]),
            },
            "loss_history": json.dumps(self.loss_history_),
            "metadata": json.dumps(metadata or getattr(self, "metadata_", {})),
        }
        return atomic_write(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device | None = None
    ) -> AlchemicalKRR:
        """Load a model saved by :meth:`save` (see :func:`load_model`)."""
        return load_model(path, device=device)


def _support_from_state(sup: dict) -> list[Atoms]:
    frames, start = [], 0
    n_atoms = sup["n_atoms"].tolist()
    for i, n in enumerate(n_atoms):
        frames.append(
            Atoms(
                numbers=sup["numbers"][start : start + n].numpy(),
                positions=sup["positions"][start : start + n].numpy(),
                cell=sup["cells"][i].numpy(),
                pbc=sup["pbc"][i].numpy(),
            )
        )
        start += n
    return frames


def _read_state(path: Path) -> dict:
    """A model file's state dict, safely loaded and checked to be a model of our format."""
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise ModelFileError(
            f"{path} is not a readable ase-alchemical model file (truncated, corrupted "
            f"or not a torch file): {type(e).__name__}: {str(e)[:200]}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is a torch file but not an ase-alchemical model")
    version = state.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format version {version}, but this ase-alchemical "
            f"({__version__}) reads version {MODEL_FORMAT_VERSION}; written by "
            f"ase-alchemical {state.get('package_version')}"
        )
    return state


def model_file_info(path: str | os.PathLike) -> dict:
    """Hyperparameters, elements, support size and provenance of a model file, read
    without building the model (loading one featurizes its support structures).

    Raises the same errors as :func:`load_model` for a missing or bad file.
    """
    path = Path(path)
    state = _read_state(path)
    try:
        params = json.loads(state["params"])
        params["hypers"] = json.loads(state["hypers"])
        return {
            "params": params,
            "species": " ".join(chemical_symbols[int(z)] for z in state["species"]),
            "n_support": int(state["weights"].shape[0]),
            "metadata": json.loads(state["metadata"]),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path} is an incomplete or inconsistent model file: {e}") from None


def load_model(path: str | os.PathLike, device: str | torch.device | None = None) -> AlchemicalKRR:
    """Load a model file written by :meth:`AlchemicalKRR.save`.

    Uses torch's safe loading (``weights_only=True``: tensors and plain containers only).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ModelFileError
        The file is not an ase-alchemical model, is truncated or corrupted, or was
        written by an incompatible format version.
    """
    path = Path(path)
    state = _read_state(path)
    try:
        params = json.loads(state["params"])
        if params.get("init") == "array":
            params["init"] = "elements"
        params["hypers"] = json.loads(state["hypers"])
        params.setdefault("center_resolved", False)  # files written before the option
        params.setdefault("radially_resolved", False)
        model = AlchemicalKRR(**params, device=device)
        u = state["U"]
        model._columns_cache = None
        model.compression_ = AlchemicalCompression(
            state["species"], u.shape[-1], u, center_resolved=model.center_resolved,
            radial_shapes=model._radial_shapes(),
        )  # fmt: skip
        model.compression_.to(model._device)
        model.weights_ = state["weights"].to(model._device)
        model.regularizer_ = float(state["regularizer"])
        weights = state.get("scale_weights")  # absent in files from before multi-scale
        model.scale_weights_ = (
            torch.ones(1, dtype=torch.float64) if weights is None else weights
        ).to(model._device)
        if model.scale_weights_.shape != (model.n_scales,):
            raise ModelFileError(
                f"{path}: {model.scale_weights_.numel()} scale weights for "
                f"{model.n_scales} scales of hypers"
            )
        projection = state.get("projection")
        model.projection_ = None if projection is None else projection.to(model._device)
        gram = state.get("gram")  # absent in files from before uncertainties
        model.gram_ = None if gram is None else gram.to(model._device)
        scale = state.get("uncertainty_scale")
        model.uncertainty_scale_ = None if scale is None else float(scale)
        model._variance_cache = None
        model.y_mean_ = float(state["y_mean"])
        model.y_std_ = float(state["y_std"])
        model.support_ = _support_from_state(state["support"])
        model.loss_history_ = json.loads(state["loss_history"])
        model.metadata_ = json.loads(state["metadata"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path} is an incomplete or inconsistent model file: {e}") from None
    try:
        hypers_list(model._hypers)
    except ValueError as e:
        raise ModelFileError(f"{path}: {e}") from None
    with torch.no_grad():
        model.support_features_ = model._features(
            model._project(model.pair_spectrum(model.support_, progress=False))
        )
    if model.support_features_.shape[0] != model.weights_.shape[0]:
        raise ModelFileError(
            f"{path}: {model.weights_.shape[0]} weights for "
            f"{model.support_features_.shape[0]} support structures"
        )
    return model
