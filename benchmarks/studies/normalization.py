"""Normalised vs additive (per-atom mean) structure features, and zeta, side by side.

Same split, spectra, optimizer and budget for every variant (d_J = 4, sparse KRR, default
hypers); the choice is made on the optimization-set RMSE, the test MAE is for information.

    python benchmarks/studies/normalization.py               # n_train 3,000, 60 steps
    python benchmarks/studies/normalization.py --quick       # n_train 1,000, 20 steps
    python benchmarks/studies/normalization.py --out benchmarks/results/normalization.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import compare_variants, study_arguments, write_variant_table

VARIANTS = {
    "normalised, zeta 2 (default of the sparse mode)": {"normalization": "normalized", "zeta": 2},
    "normalised, zeta 3": {"normalization": "normalized", "zeta": 3},
    "additive (per-atom mean), zeta 1": {"normalization": "mean", "zeta": 1},
    "additive (per-atom mean), zeta 2": {"normalization": "mean", "zeta": 2},
}


def main() -> None:
    args, n_train, steps = study_arguments(__doc__.splitlines()[0])
    frames = load_elpasolites(args.data)
    train, opt, test = split(frames, n_train, 1000, 1000, seed=0)
    spectra = [compute_pair_spectrum(s) for s in (train, opt, test)]
    y_test = per_atom_energies(test)
    rows = compare_variants(VARIANTS, spectra, y_test, train, opt, args.d_j, steps)
    if args.out:
        setting = (
            f"d_J = {args.d_j}, n_train {n_train}, n_opt 1000, fixed test set of 1000, "
            f"{steps} Adam steps, sparse KRR, default hypers."
        )
        write_variant_table(args.out, "Structure features and zeta", setting, rows)


if __name__ == "__main__":
    main()
