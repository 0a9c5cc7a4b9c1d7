"""Feature options side by side: centre-resolved spectra and (l, n, n') projection.

Same split, spectra, optimizer and budget for every variant; the table reports the
optimization-set RMSE (what a choice may be made on), the test MAE and the fit time.

    python benchmarks/studies/feature_options.py               # n_train 3,000, 60 steps
    python benchmarks/studies/feature_options.py --quick       # n_train 1,000, 20 steps
    python benchmarks/studies/feature_options.py --out benchmarks/results/feature_options.md
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
    "summed over centres (default)": {},
    "centre-resolved": {"center_resolved": True},
    "centre-resolved, 40 (l,n,n') components": {"center_resolved": True, "basis_components": 40},
    "summed, 40 (l,n,n') components": {"basis_components": 40},
}


def main() -> None:
    args, n_train, steps = study_arguments(__doc__.splitlines()[0])

    frames = load_elpasolites(args.data)
    train, opt, test = split(frames, n_train, 1000, 1000, seed=0)
    # centre-resolved spectra serve every variant (the others sum over the centre axis)
    spectra = [
        compute_pair_spectrum(s, progress=True, center_resolved=True) for s in (train, opt, test)
    ]
    y_test = per_atom_energies(test)
    rows = compare_variants(VARIANTS, spectra, y_test, train, opt, args.d_j, steps)
    if args.out:
        setting = (
            f"d_J = {args.d_j}, n_train {n_train}, n_opt 1000, fixed test set of 1000, "
            f"{steps} Adam steps, other settings default."
        )
        write_variant_table(args.out, "Feature options", setting, rows)


if __name__ == "__main__":
    main()
