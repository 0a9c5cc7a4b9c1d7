"""Small study of the spherical-expansion hypers, judged on the optimization set only.

d_J = 4, n_train = 3,000, n_opt = 1,000 (split seed 0), 60 Adam steps; prints the best
optimization-set RMSE of each hyper set (the number the default was chosen by) and, for
information only, the test MAE.

    python benchmarks/studies/hypers_study.py [--data DIR] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ase_alchemical import AlchemicalKRR
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import STUDY_RECIPE, fit_and_score

GRID = [
    dict(cutoff=5.0, max_radial=5, max_angular=4, density_width=0.3),
    dict(cutoff=5.0, max_radial=5, max_angular=4, density_width=0.5),
    dict(cutoff=5.0, max_radial=7, max_angular=6, density_width=0.3),
    dict(cutoff=6.0, max_radial=5, max_angular=4, density_width=0.3),
    dict(cutoff=4.0, max_radial=5, max_angular=4, density_width=0.3),
    dict(cutoff=4.0, max_radial=7, max_angular=6, density_width=0.3),
    dict(cutoff=3.5, max_radial=5, max_angular=4, density_width=0.3),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--steps", type=int, default=None, help="Adam steps (default 60)")
    parser.add_argument("--quick", action="store_true", help="n_train 1,000, 20 steps")
    args = parser.parse_args()
    steps = args.steps or (20 if args.quick else 60)
    frames = load_elpasolites(args.data)
    train, opt, test = split(frames, 1000 if args.quick else 3000, 1000, 1000, seed=0)
    y_test = per_atom_energies(test)
    print(f"{'cutoff':>7}{'max_rad':>8}{'max_ang':>8}{'width':>7}{'opt RMSE':>10}"
          f"{'test MAE':>10}{'fit s':>7}")  # fmt: skip
    for hk in GRID:
        hypers = make_hypers(**hk, scaling=None)  # the study predates radial scaling
        spectra = [compute_pair_spectrum(s, hypers) for s in (train, opt, test)]
        model = AlchemicalKRR(d_j=4, hypers=hypers, n_steps=steps, **STUDY_RECIPE)
        opt_rmse, mae, fit_s = fit_and_score(model, spectra, y_test, train, opt)
        print(
            f"{hk['cutoff']:>7}{hk['max_radial']:>8}{hk['max_angular']:>8}"
            f"{hk['density_width']:>7}{opt_rmse:>10.4f}{mae:>10.4f}{fit_s:>7.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
