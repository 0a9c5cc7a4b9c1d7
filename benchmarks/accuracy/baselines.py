"""Speed, memory and accuracy against what a user would otherwise write, side by side.

Every variant runs in its own process (so that its peak resident memory is its own) on
the same split (fixed test set of 1,000, optimization set of 1,000) and reports:
featurization throughput, fit time, test MAE, prediction throughput on the test set and
peak memory. Variants:

* ``alchemical sparse``: sparse KRR on 1,500 support points, zeta 2;
* ``alchemical full``: the shipped model's recipe (full KRR, zeta 3, U learned on
  2,000-crystal subsets);
* ``featomic + sklearn``: featomic ``SoapPowerSpectrum`` over all elements (no
  compression), summed over atoms and unit-normalised, with scikit-learn ``KernelRidge``
  (linear kernel, computed once and passed as ``kernel="precomputed"``; alpha picked on
  the optimization set);
* ``dscribe + sklearn``: DScribe ``SOAP`` (same cutoff and basis sizes, averaged over
  atoms) with ``KernelRidge`` likewise, where DScribe is installed.

The U-learning variants get the same number of Adam steps at every size, so fit times
grow with n_train only through the solves. A plot of fit time and peak memory against
n_train is written next to the table.

    python benchmarks/accuracy/baselines.py --quick        # n_train 1,000, 20 steps (minutes)
    python benchmarks/accuracy/baselines.py                # n_train 1,000 / 3,000 / 6,000, 60 steps
    python benchmarks/accuracy/baselines.py --out benchmarks/results/baselines.md
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers

ALPHAS = (1e-4, 1e-3, 1e-2)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _frames(data, n_train):
    from ase_alchemical.data.datasets import load_elpasolites, split

    return split(load_elpasolites(data), n_train, 1000, 1000, seed=0)


def _energies(frames) -> np.ndarray:
    from ase_alchemical.core.targets import per_atom_energies  # each variant imports in its process

    return per_atom_energies(frames)


def _alchemical(data, n_train, steps, recipe) -> dict:
    import torch

    from ase_alchemical import AlchemicalKRR

    train, opt, test = _frames(data, n_train)
    if recipe == "full":
        params = dict(zeta=3, solver="full", step_train_size=2000)
    else:
        params = dict(zeta=2, solver="sparse", n_support=1500)
    params.update(lr_schedule="constant", rotation=False)
    model = AlchemicalKRR(d_j=4, n_steps=steps, **params)
    t0 = time.perf_counter()
    spectra = [model.pair_spectrum(s) for s in (train, opt, test)]
    feat_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(train, opt, spectra[0], spectra[1])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        pred = model.predict_per_atom(test)
    pred_s = time.perf_counter() - t0
    n_feat = len(train) + len(opt) + len(test)
    return dict(
        feat_rate=n_feat / feat_s, fit_s=fit_s, mae=float(np.abs(pred - _energies(test)).mean()),
        pred_rate=len(test) / pred_s, peak_mb=_peak_mb(),
    )  # fmt: skip


def _featomic_soap(frames, hypers, species):
    """featomic SoapPowerSpectrum over all species, summed over atoms, normalised
    (one structure per call: the fastest way with 39 elements)."""
    from _common import PlainSoapBaseline

    return PlainSoapBaseline(species, hypers).features(frames)


def _dscribe_soap(frames, hypers, species):
    from dscribe.descriptors import SOAP

    soap = SOAP(
        species=species, r_cut=hypers["cutoff"]["radius"],
        n_max=hypers["basis"]["radial"]["max_radial"] + 1,
        l_max=hypers["basis"]["max_angular"], sigma=hypers["density"]["width"],
        periodic=True, average="inner", sparse=False,
    )  # fmt: skip
    x = soap.create(frames)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _sklearn(data, n_train, which) -> dict:
    from sklearn.kernel_ridge import KernelRidge

    from ase_alchemical.core.hypers import DEFAULT_HYPERS

    train, opt, test = _frames(data, n_train)
    species = sorted({int(z) for s in (train, opt, test) for a in s for z in a.numbers})
    featurize = _featomic_soap if which == "featomic" else _dscribe_soap
    t0 = time.perf_counter()
    x_train = featurize(train, DEFAULT_HYPERS, species)
    feat_s = time.perf_counter() - t0
    x_opt = featurize(opt, DEFAULT_HYPERS, species)
    y_train, y_opt = _energies(train), _energies(opt)
    t0 = time.perf_counter()
    # the linear kernel once, shared by the alphas (chosen on the optimization set)
    k_train, k_opt = x_train @ x_train.T, x_opt @ x_train.T
    best = (np.inf, None)
    for alpha in ALPHAS:
        model = KernelRidge(alpha=alpha, kernel="precomputed")
        model.fit(k_train, y_train - y_train.mean())
        mae = np.abs(model.predict(k_opt) + y_train.mean() - y_opt).mean()
        if mae < best[0]:
            best = (mae, model)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    k_test = featurize(test, DEFAULT_HYPERS, species) @ x_train.T
    pred = best[1].predict(k_test) + y_train.mean()
    pred_s = time.perf_counter() - t0
    return dict(
        feat_rate=len(train) / feat_s, fit_s=fit_s,
        mae=float(np.abs(pred - _energies(test)).mean()), pred_rate=len(test) / pred_s,
        peak_mb=_peak_mb(),
    )  # fmt: skip


def _run(target, *args) -> dict:
    """Run one variant in a fresh process (spawned: no inherited memory)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(target, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--quick", action="store_true", help="n_train 1,000 and 20 steps")
    parser.add_argument("--n-train", type=int, nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the markdown table (and a plot) here")
    args = parser.parse_args()
    sizes = args.n_train or ([1000] if args.quick else [1000, 3000, 6000])
    steps = args.steps or (20 if args.quick else 60)
    variants = [
        ("alchemical sparse (d_J=4)", _alchemical, ("sparse",), True),
        ("alchemical full (d_J=4)", _alchemical, ("full",), True),
        ("featomic + sklearn KernelRidge", _sklearn, ("featomic",), False),
    ]
    if importlib.util.find_spec("dscribe") is not None:
        variants.append(("dscribe + sklearn KernelRidge", _sklearn, ("dscribe",), False))
    head = (
        f"{'variant':<32}{'n_train':>8}{'feat/s':>9}{'fit s':>8}{'MAE':>8}"
        f"{'pred/s':>9}{'peak MB':>9}"
    )
    print(head)
    rows = []
    for n in sizes:
        for name, target, extra, uses_steps in variants:
            args_ = (args.data, n, steps, *extra) if uses_steps else (args.data, n, *extra)
            r = _run(target, *args_)
            rows.append({"variant": name, "n_train": n, **r})
            print(
                f"{name:<32}{n:>8}{r['feat_rate']:>9.0f}{r['fit_s']:>8.1f}{r['mae']:>8.4f}"
                f"{r['pred_rate']:>9.0f}{r['peak_mb']:>9.0f}",
                flush=True,
            )
    if args.out:
        _write(args.out, rows, steps)


def _write(out: str, rows: list[dict], steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from _common import save_figure

    from ase_alchemical import __version__
    from ase_alchemical.core.fileio import atomic_write

    lines = [
        f"# Baselines (ase-alchemical {__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads)",
        "",
        f"Fixed test set of 1,000, optimization set of 1,000; alchemical fits take {steps} "
        "Adam steps. Featurization rate: structures/s (alchemical: train + opt + test "
        "species-pair spectra; baselines: the training set). Prediction rate: the 1,000 "
        "test structures from their Atoms, featurization included. Peak memory: maximum "
        "resident set size of the variant's own process.",
        "",
        "| variant | n_train | featurize (struct/s) | fit (s) | test MAE (eV/atom) "
        "| predict (struct/s) | peak memory (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ] + [
        f"| {r['variant']} | {r['n_train']} | {r['feat_rate']:.0f} | {r['fit_s']:.1f} "
        f"| {r['mae']:.4f} | {r['pred_rate']:.0f} | {r['peak_mb']:.0f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in dict.fromkeys(r["variant"] for r in rows):
        sel = [r for r in rows if r["variant"] == name]
        n = [r["n_train"] for r in sel]
        axes[0].plot(n, [r["fit_s"] for r in sel], "o-", label=name)
        axes[1].plot(n, [r["peak_mb"] / 1024 for r in sel], "o-", label=name)
    axes[0].set(xlabel="n_train", ylabel="fit time (s)", xscale="log", yscale="log")
    axes[1].set(xlabel="n_train", ylabel="peak memory (GB)", xscale="log", yscale="log")
    axes[0].legend(fontsize=7)
    save_figure(fig, out)


if __name__ == "__main__":
    main()
