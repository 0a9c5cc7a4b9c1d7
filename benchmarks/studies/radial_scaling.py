"""Radial scaling of the atom density (Willatt et al. 2018) side by side with none.

The density of each neighbour is multiplied by u(r) = c / (c + (r / r0)^m) (featomic's
``{"type": "Willatt2018", "rate": c, "scale": r0, "exponent": m}``; that featomic applies
exactly this function is checked in ``tests/test_features.py``). Down-weighting far
neighbours makes a longer cutoff affordable. Same split, optimizer and budget for every
variant; choices are made on the optimization-set RMSE, the test MAE is for information.

    python benchmarks/studies/radial_scaling.py               # n_train 3,000, 60 steps
    python benchmarks/studies/radial_scaling.py --quick       # n_train 1,000, 20 steps
    python benchmarks/studies/radial_scaling.py --out benchmarks/results/radial_scaling.md
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch

from ase_alchemical import AlchemicalKRR, __version__
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.fileio import atomic_write
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import STUDY_RECIPE, fit_and_score, study_arguments


def _willatt(c: float, r0: float, m: int) -> dict:
    return {"type": "Willatt2018", "rate": c, "scale": r0, "exponent": m}


#: (cutoff in Å, scaling or None)
VARIANTS = {
    "cutoff 4, no scaling (best of the hypers study)": (4.0, None),
    "cutoff 5, no scaling": (5.0, None),
    "cutoff 5, c=1 r0=2.5 m=4": (5.0, _willatt(1.0, 2.5, 4)),
    "cutoff 5, c=1 r0=3.0 m=6 (default)": (5.0, _willatt(1.0, 3.0, 6)),
    "cutoff 6, c=1 r0=3.0 m=6": (6.0, _willatt(1.0, 3.0, 6)),
    "cutoff 4, c=1 r0=2.5 m=4": (4.0, _willatt(1.0, 2.5, 4)),
}


def main() -> None:
    args, n_train, steps = study_arguments(__doc__.splitlines()[0])

    frames = load_elpasolites(args.data)
    train, opt, test = split(frames, n_train, 1000, 1000, seed=0)
    y_test = per_atom_energies(test)
    rows = []
    print(f"{'variant':<34}{'opt RMSE':>10}{'test MAE':>10}{'feat s':>8}{'fit s':>8}")
    for name, (cutoff, scaling) in VARIANTS.items():
        hypers = make_hypers(cutoff=cutoff, scaling=scaling)
        t0 = time.perf_counter()
        spectra = [compute_pair_spectrum(s, hypers) for s in (train, opt, test)]
        feat_s = time.perf_counter() - t0
        model = AlchemicalKRR(d_j=args.d_j, hypers=hypers, n_steps=steps, seed=0, **STUDY_RECIPE)
        opt_rmse, mae, fit_s = fit_and_score(model, spectra, y_test, train, opt)
        rows.append((name, opt_rmse, mae, feat_s, fit_s))
        print(f"{name:<34}{opt_rmse:>10.4f}{mae:>10.4f}{feat_s:>8.0f}{fit_s:>8.0f}", flush=True)
    if args.out:
        lines = [
            f"# Radial scaling (ase-alchemical {__version__}, {platform.machine()}, "
            f"{torch.get_num_threads()} threads)",
            "",
            f"d_J = {args.d_j}, n_train {n_train}, n_opt 1000, fixed test set of 1000, "
            f"{steps} Adam steps, other settings default; u(r) = c / (c + (r/r0)^m).",
            "",
            "| variant | best opt RMSE (eV/atom) | test MAE (eV/atom) | features (s) | fit (s) |",
            "|---|---:|---:|---:|---:|",
        ] + [f"| {n} | {r:.4f} | {m:.4f} | {f:.0f} | {t:.0f} |" for n, r, m, f, t in rows]
        text = "\n".join(lines) + "\n"
        atomic_write(args.out, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
