"""Final weights on the training set alone, or refitted on training + optimization sets.

Once U is learned, the optimization set's labels can also enter the final KRR solve
(``AlchemicalKRR.refit``, ``ase-alchemical train --refit-on-opt``). Whether that helps is
decided here *without* the test set: the optimization set is split in two, U is learned on
the first half (A), and both variants are scored on the second half (B), which neither
saw. The test MAE is printed for information.

    python benchmarks/studies/refit.py                  # n_train 3,000, 60 steps
    python benchmarks/studies/refit.py --quick          # n_train 1,000, 20 steps
    python benchmarks/studies/refit.py --out benchmarks/results/refit.md
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import torch

from ase_alchemical import AlchemicalKRR
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import print_row, study_arguments, write_table


def _mae(model, frames) -> float:
    return model.score(frames)["mae"]


def main() -> None:
    args, n_train, steps = study_arguments(__doc__.splitlines()[0])
    frames = load_elpasolites(args.data)
    train, opt, test = split(frames, n_train, 2000, 1000, seed=0)
    opt_a, opt_b = opt[:1000], opt[1000:]
    model = AlchemicalKRR(
        d_j=args.d_j,
        zeta=3,
        solver="full",
        n_steps=steps,
        seed=0,
        lr_schedule="constant",
        rotation=False,
    )
    t0 = time.perf_counter()
    model.fit(train, opt_a)
    fit_s = time.perf_counter() - t0
    refitted = copy.deepcopy(model)
    t0 = time.perf_counter()
    refitted.refit(train + opt_a)
    refit_s = time.perf_counter() - t0
    rows = []
    for name, m, n_weights, seconds in (
        ("weights on the training set", model, n_train, fit_s),
        ("refitted on training + optimization A", refitted, n_train + 1000, refit_s),
    ):
        row = (name, n_weights, _mae(m, opt_b), _mae(m, test), seconds)
        rows.append(row)
        print_row(row)
    if args.out:
        write_table(
            args.out,
            "Refitting the weights on the optimization set",
            f"d_J = {args.d_j}, zeta 3, full KRR, n_train {n_train}, U learned on "
            f"optimization half A (1,000 crystals) in {steps} Adam steps; scored on the "
            "other half B (1,000, seen by neither variant) and the fixed test set of 1,000. "
            f"{torch.get_num_threads()} threads.",
            ["final weights", "structures in the solve", "MAE on B (eV/atom)",
             "test MAE (eV/atom)", "fit or refit time (s)"],
            [(n, f"{k:,}", f"{b:.4f}", f"{t:.4f}", f"{s:.0f}") for n, k, b, t, s in rows],
        )  # fmt: skip


if __name__ == "__main__":
    main()
