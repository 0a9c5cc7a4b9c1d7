"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import time

import numpy as np
import torch


def fit_and_score(model, spectra, y_test: np.ndarray, train, opt) -> tuple[float, float, float]:
    """Fit ``model`` on precomputed (train, opt, test) spectra.

    Returns the best optimization-set RMSE seen while learning U, the test MAE (eV/atom)
    and the fit wall time (s).
    """
    t0 = time.perf_counter()
    model.fit(train, opt, spectra[0], spectra[1])
    fit_s = time.perf_counter() - t0
    with torch.no_grad():
        pred = model.predict_from_spectrum(spectra[2]).cpu().numpy()
    opt_rmse = min(h["opt_rmse"] for h in model.loss_history_)
    return opt_rmse, float(np.abs(pred - y_test).mean()), fit_s
