"""zeta at small training sizes: does the shipped model's zeta 3 suit fewer crystals?

The shipped models use zeta 3, chosen at 6,000 training crystals. Here zeta 2 and 3 are
fitted side by side with the learning curve's alchemical recipe otherwise unchanged
(``benchmarks/accuracy/learning_curve.py``'s ``ALCHEMICAL``), on the curve's training
draw of seed 0, its fixed optimization set of 2,000 and its fixed test set of 1,000.
The optimization-set RMSE of the kept step is what a fit can see, and what
``AlchemicalKRR(zeta="auto")`` chooses by below 3,000 training crystals; the test MAE
says whether that choice was the better one.

    python benchmarks/studies/small_zeta.py --n-train 100 250 1000 3000 \
        --out benchmarks/results/small_zeta.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ase_alchemical import AlchemicalKRR
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "accuracy"))
from _common import write_table
from learning_curve import ALCHEMICAL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--n-train", type=int, nargs="+", default=[100, 250, 1000, 3000])
    parser.add_argument("--d-j", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--zeta", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--out", default=None, help="write the table (markdown) here")
    args = parser.parse_args()

    frames = load_elpasolites(args.data)
    n_test, n_opt = 1000, 2000
    pool, opt, test = split(frames, len(frames) - n_opt - n_test, n_opt, n_test)
    spectra = {"opt": compute_pair_spectrum(opt), "test": compute_pair_spectrum(test)}
    y_test = per_atom_energies(test)
    rows = []
    for n_train in args.n_train:
        train = pool[:n_train]  # the learning curve's training draw of seed 0
        train_spectrum = compute_pair_spectrum(train)
        for d_j in args.d_j:
            for zeta in args.zeta:
                model = AlchemicalKRR(
                    d_j=d_j, n_steps=args.steps, **{**ALCHEMICAL, "zeta": zeta}
                )
                t0 = time.perf_counter()
                model.fit(train, opt, train_spectrum, spectra["opt"])
                fit_s = time.perf_counter() - t0
                opt_rmse = min(r["opt_rmse"] for r in model.loss_history_)
                with torch.no_grad():
                    pred = model.predict_from_spectrum(spectra["test"]).cpu().numpy()
                mae = float(np.abs(pred - y_test).mean())
                row = (n_train, d_j, zeta, f"{opt_rmse:.4f}", f"{mae:.4f}", f"{fit_s:.0f}")
                rows.append(row)
                print("  ".join(str(v) for v in row), flush=True)
    if args.out:
        setting = (
            f"The learning curve's alchemical recipe ({args.steps} Adam steps) with zeta "
            f"{' or '.join(map(str, args.zeta))}; its training draw of seed 0, optimization "
            f"set of {n_opt:,} and test set of {n_test:,}. opt RMSE: the kept step's "
            "optimization-set RMSE (eV/atom), the criterion a fit can use."
        )
        header = ["n_train", "d_J", "zeta", "opt RMSE", "test MAE (eV/atom)", "fit (s)"]
        write_table(args.out, "zeta at small training sizes", setting, header, rows)


if __name__ == "__main__":
    main()
