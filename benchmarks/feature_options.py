"""Feature options side by side: centre-resolved spectra and (l, n, n') projection.

Same split, spectra, optimizer and budget for every variant; the table reports the
optimization-set RMSE (what a choice may be made on), the test MAE and the fit time.

    python benchmarks/feature_options.py               # n_train 3,000, 60 steps
    python benchmarks/feature_options.py --quick       # n_train 1,000, 20 steps
    python benchmarks/feature_options.py --out benchmarks/results/feature_options.md
"""

from __future__ import annotations

import platform

import numpy as np
import torch
from _common import fit_and_score, study_arguments  # benchmarks/ is on sys.path

from ase_alchemical import AlchemicalKRR, __version__
from ase_alchemical._io import atomic_write
from ase_alchemical.datasets import load_elpasolites, split
from ase_alchemical.features import compute_pair_spectrum

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
    y_test = np.array([a.info["energy"] / len(a) for a in test])
    rows = []
    print(f"{'variant':<42}{'opt RMSE':>10}{'test MAE':>10}{'fit s':>8}")
    for name, options in VARIANTS.items():
        model = AlchemicalKRR(d_j=args.d_j, n_steps=steps, seed=0, **options)
        opt_rmse, mae, fit_s = fit_and_score(model, spectra, y_test, train, opt)
        rows.append((name, opt_rmse, mae, fit_s))
        print(f"{name:<42}{opt_rmse:>10.4f}{mae:>10.4f}{fit_s:>8.0f}", flush=True)
    if args.out:
        lines = [
            f"# Feature options (ase-alchemical {__version__}, {platform.machine()}, "
            f"{torch.get_num_threads()} threads)",
            "",
            f"d_J = {args.d_j}, n_train {n_train}, n_opt 1000, fixed test set of 1000, "
            f"{steps} Adam steps, other settings default.",
            "",
            "| variant | best opt RMSE (eV/atom) | test MAE (eV/atom) | fit time (s) |",
            "|---|---:|---:|---:|",
        ] + [f"| {n} | {r:.4f} | {m:.4f} | {t:.0f} |" for n, r, m, t in rows]
        text = "\n".join(lines) + "\n"
        atomic_write(args.out, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
