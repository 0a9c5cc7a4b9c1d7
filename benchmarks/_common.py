"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<folder>/<name>.py``;
each script puts this folder on ``sys.path`` before importing from here)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

#: The recipe the side-by-side studies were measured with, pinned so that a rerun
#: reproduces their committed tables whatever the constructor's defaults: zeta 2, sparse
#: KRR on 1,500 support points, a constant learning rate, U judged on the optimization set
#: it descends on.
STUDY_RECIPE = {
    "zeta": 2,
    "solver": "sparse",
    "n_support": 1500,
    "lr_schedule": "constant",
    "rotation": False,
}


def elapsed_s(t0: float, device) -> float:
    """Seconds since ``t0`` (``time.perf_counter``), after any queued GPU work has finished
    (GPU work is asynchronous: the clock must not be read before it is done)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


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


def study_arguments(description: str, d_j: bool = True, extra: list | None = None):
    """Parse the options every side-by-side study shares (and ``extra``: a list of
    ``(flags, kwargs)`` for ``add_argument``).

    Returns the parsed arguments and (n_train, steps): 3,000 and 60 by default, 1,000 and
    20 with ``--quick``, unless given.
    """
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--quick", action="store_true", help="n_train 1,000 and 20 steps")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    if d_j:
        parser.add_argument("--d-j", type=int, default=4)
    parser.add_argument("--out", default=None, help="write the markdown table (and plot) here")
    for flags, kwargs in extra or []:
        parser.add_argument(*flags, **kwargs)
    args = parser.parse_args()
    n_train = args.n_train or (1000 if args.quick else 3000)
    steps = args.steps or (20 if args.quick else 60)
    return args, n_train, steps


def save_figure(fig, out: str) -> str:
    """Write ``fig`` as a PNG next to the markdown file ``out`` (atomically); its path."""
    from ase_alchemical.core.fileio import atomic_write

    fig.tight_layout()
    png = out.rsplit(".", 1)[0] + ".png"
    atomic_write(png, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    print(f"wrote {out} and {png}")
    return png


def compare_variants(variants: dict, spectra, y_test, train, opt, d_j: int, steps: int) -> list:
    """Fit ``AlchemicalKRR(d_j, n_steps=steps, seed=0, **STUDY_RECIPE, **options)`` for
    every named variant on the same spectra, printing a row each; returns (name, opt RMSE,
    test MAE, fit s)."""
    from ase_alchemical import AlchemicalKRR

    width = max(len(name) for name in variants) + 2
    print(f"{'variant':<{width}}{'opt RMSE':>10}{'test MAE':>10}{'fit s':>8}")
    rows = []
    for name, options in variants.items():
        model = AlchemicalKRR(d_j=d_j, n_steps=steps, seed=0, **{**STUDY_RECIPE, **options})
        opt_rmse, mae, fit_s = fit_and_score(model, spectra, y_test, train, opt)
        rows.append((name, opt_rmse, mae, fit_s))
        print(f"{name:<{width}}{opt_rmse:>10.4f}{mae:>10.4f}{fit_s:>8.0f}", flush=True)
    return rows


def print_row(row) -> None:
    """One result row on stdout: strings and integers as they are, floats to 4 decimals."""
    print("  ".join(str(v) if isinstance(v, (str, int)) else f"{v:.4f}" for v in row))


def write_table(out: str, title: str, setting: str, header: list[str], rows: list) -> None:
    """Markdown report: a title with the package version and machine, a line saying what
    was run, and a table (first column left-aligned, the others right), written atomically."""
    import platform

    from ase_alchemical import __version__
    from ase_alchemical.core.fileio import atomic_write

    lines = [
        f"# {title} (ase-alchemical {__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads)",
        "",
        setting,
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ] + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    print(f"wrote {out}")


def write_variant_table(out: str, title: str, setting: str, rows: list) -> None:
    """Markdown report of :func:`compare_variants` rows, written atomically."""
    header = ["variant", "best opt RMSE (eV/atom)", "test MAE (eV/atom)", "fit time (s)"]
    table = [(n, f"{r:.4f}", f"{m:.4f}", f"{t:.0f}") for n, r, m, t in rows]
    write_table(out, title, setting, header, table)


def per_element_baseline(train, test) -> dict:
    """The trivial baselines of a potential: a per-element linear fit of the training
    energies (least squares on element counts), and zero forces, scored on ``test``."""
    from ase_alchemical.core.targets import forces_of
    from ase_alchemical.local.design import reference_energies

    species = sorted({int(z) for a in train + test for z in a.numbers})

    def counts(frames):
        return np.array([[np.sum(a.numbers == z) for z in species] for a in frames], float)

    e0 = reference_energies(counts(train), np.array([a.info["energy"] for a in train]))
    n = np.array([len(a) for a in test], float)
    err = (counts(test) @ e0 - np.array([a.info["energy"] for a in test])) / n
    forces = np.concatenate([f.ravel() for f in forces_of(test)])
    return {
        "energy_mae": float(np.abs(err).mean()), "energy_rmse": float(np.sqrt((err**2).mean())),
        "force_mae": float(np.abs(forces).mean()), "force_rmse": float(np.sqrt((forces**2).mean())),
    }  # fmt: skip


def stress_agreement(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """Slope (labels ~ slope * predicted, through the origin) and correlation of the
    file's stress against a model's: a model fitted without stress that finds slope ~1
    confirms the file's units (eV/Å^3) and sign (ASE's)."""
    p, y = np.ravel(predicted), np.ravel(labels)
    return {"stress_slope": float(p @ y / (p @ p)), "stress_corr": float(np.corrcoef(p, y)[0, 1])}


def uncertainty_coverage(errors: np.ndarray, sigmas: np.ndarray) -> dict:
    """How well predicted standard deviations describe errors: the fractions of
    ``|error|`` within one and two sigma (about 68 % and 95 % for a calibrated Gaussian),
    the median of ``|error| / sigma``, and Spearman's rank correlation of ``|error|``
    with sigma (does a larger sigma flag a larger error?)."""
    from scipy.stats import spearmanr

    errors, sigmas = np.abs(np.ravel(errors)), np.ravel(sigmas)
    ratio = errors / sigmas
    return {
        "within_1_sigma": float(np.mean(ratio <= 1)), "within_2_sigma": float(np.mean(ratio <= 2)),
        "median_error_over_sigma": float(np.median(ratio)),
        "sigma_rank_corr": float(spearmanr(errors, sigmas).statistic),
    }  # fmt: skip


def write_report(path, lines: list[str], results) -> None:
    """The markdown table ``lines`` at ``path`` and ``results`` beside it as JSON, both
    written atomically."""
    import json

    from ase_alchemical.core.fileio import atomic_write

    path = Path(path)
    text = "\n".join(lines) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))
    data = json.dumps(results, indent=1)
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(data))
    print(f"wrote {path}")


class PlainSoapBaseline:
    """featomic SoapPowerSpectrum + linear sparse KRR, as a user would write it (the
    baseline of ``speed/calculator_speed.py`` and ``accuracy/baselines.py``)."""

    def __init__(self, species: list[int], hypers: dict) -> None:
        import featomic

        self.calculator = featomic.SoapPowerSpectrum(**hypers)
        self.species = species
        n_pairs = len(species) * (len(species) + 1) // 2
        self.lmax1 = hypers["basis"]["max_angular"] + 1
        self.nrad = hypers["basis"]["radial"]["max_radial"] + 1
        self.n_features = n_pairs * self.lmax1 * self.nrad**2
        iu = np.triu_indices(len(species))
        self.pair = {(species[i], species[j]): p for p, (i, j) in enumerate(zip(*iu))}

    def features(self, frames) -> np.ndarray:
        out = np.zeros((len(frames), self.n_features))
        width = self.lmax1 * self.nrad**2
        for s, atoms in enumerate(frames):  # one structure per call: fastest with 39 elements
            tm = self.calculator.compute(atoms)
            for key, block in tm.items():
                _, a, b = (int(v) for v in key.values)
                p = self.pair[(a, b)]
                out[s, p * width : (p + 1) * width] += block.values.sum(axis=0)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def fit(self, frames, n_support: int, regularizer: float = 1e-3) -> PlainSoapBaseline:
        from ase_alchemical.core.targets import per_atom_energies
        from ase_alchemical.structure.solvers import sparse_krr_weights

        x = torch.as_tensor(self.features(frames))
        y = torch.as_tensor(per_atom_energies(frames))
        self.mean = float(y.mean())
        support = torch.as_tensor(np.random.default_rng(0).choice(len(x), n_support, False))
        self.x_sup = x[support]
        self.w = sparse_krr_weights(x @ self.x_sup.T, self.x_sup @ self.x_sup.T,
                                    y - self.mean, regularizer)  # fmt: skip
        return self

    def predict(self, frames, chunk: int = 1000) -> np.ndarray:
        out = []
        for start in range(0, len(frames), chunk):  # dense 140k-wide features: bound memory
            part = frames[start : start + chunk]
            x = torch.as_tensor(self.features(part))
            n = np.array([len(a) for a in part])
            out.append(((x @ self.x_sup.T @ self.w).numpy() + self.mean) * n)
        return np.concatenate(out)


def hea_file(path: str | None) -> Path:
    """The HEA frames (``hea/hea25_bulk_100.xyz``): ``path`` (the file or the shared data
    folder), else ``$ASE_ALCHEMICAL_DATA``, else ``shared/data`` beside the repository."""
    from ase_alchemical.data.datasets import DATA_ENV

    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    root = Path(path) if path else Path(os.environ.get(DATA_ENV, default))
    file = root / "hea" / "hea25_bulk_100.xyz" if root.is_dir() else root
    if not file.is_file():
        raise SystemExit(f"HEA data not found at {file}: pass --data or set {DATA_ENV}")
    return file


def hea_frames(file: Path):
    """The HEA frames split by index: (training, held-out, test)."""
    from ase_alchemical.data.files import read_structures
    from ase_alchemical.local.training import split_by_index

    return split_by_index(read_structures(file, forces=True))
