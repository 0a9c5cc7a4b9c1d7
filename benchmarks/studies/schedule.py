"""Learning-rate schedule of the U optimization: constant against cosine decay.

Each U step solves the weights on a fresh random training subset, so the optimization-set
loss is noisy from step to step, and with a constant learning rate U keeps moving by
steps of that noise's size. A cosine decay of the learning rate to zero makes the last
steps small. Which one gives the better model is decided *without* the test set, as in
``refit.py``: U is learned on half A of the optimization set and every variant is scored
on half B, which none saw. All variants share one featurization and one split.

    python benchmarks/studies/schedule.py                           # n_train 3,000, 60 steps
    python benchmarks/studies/schedule.py --quick                   # n_train 1,000, 20 steps
    python benchmarks/studies/schedule.py --n-train 6000 --steps 250 \
        --out benchmarks/results/schedule.md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from ase_alchemical import AlchemicalKRR
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import print_row, study_arguments, write_table

VARIANTS = {  # key: (name, lr_schedule, learning_rate)
    "constant": ("constant, lr 0.1", "constant", 0.1),
    "cosine": ("cosine decay from 0.1", "cosine", 0.1),
    "cosine-0.2": ("cosine decay from 0.2", "cosine", 0.2),
}


def _mae(model: AlchemicalKRR, spectrum, frames) -> float:
    pred = model.predict_from_spectrum(spectrum).detach().cpu().numpy()
    ref = per_atom_energies(frames)
    return float(np.abs(pred - ref).mean())


def main() -> None:
    args, n_train, steps = study_arguments(
        __doc__.splitlines()[0],
        extra=[
            (("--variants",), dict(nargs="+", choices=list(VARIANTS), default=list(VARIANTS))),
            (("--seeds",), dict(nargs="+", type=int, default=[0],
                                help="seeds of the per-step training subsets")),
        ],
    )  # fmt: skip
    frames = load_elpasolites(args.data)
    train, opt, test = split(frames, n_train, 2000, 1000, seed=0)
    opt_a, opt_b = opt[:1000], opt[1000:]
    probe = AlchemicalKRR(d_j=args.d_j)
    t0 = time.perf_counter()
    rho_t, rho_a, rho_b, rho_test = (probe.pair_spectrum(f) for f in (train, opt_a, opt_b, test))
    n = len(train) + len(opt) + len(test)
    print(f"featurized {n} crystals in {time.perf_counter() - t0:.0f} s")
    rows = []
    for seed, key in ((seed, key) for seed in args.seeds for key in args.variants):
        name, schedule, lr = VARIANTS[key]
        model = AlchemicalKRR(
            d_j=args.d_j, zeta=3, solver="full", n_steps=steps, seed=seed,
            lr_schedule=schedule, learning_rate=lr, rotation=False,
        )  # fmt: skip
        t0 = time.perf_counter()
        model.fit(train, opt_a, train_spectrum=rho_t, opt_spectrum=rho_a)
        seconds = time.perf_counter() - t0
        last = model.loss_history_[-1]["opt_rmse"]
        best = min(r["opt_rmse"] for r in model.loss_history_)
        row = (name, seed, best, last, model.best_step_, _mae(model, rho_b, opt_b),
               _mae(model, rho_test, test), seconds)  # fmt: skip
        rows.append(row)
        print_row(row)
    if args.out:
        write_table(
            args.out,
            "Learning-rate schedule of the U optimization",
            f"d_J = {args.d_j}, zeta 3, full KRR, n_train {n_train:,} (2,000 random crystals "
            f"solved per step), U learned on optimization half A (1,000 crystals) in {steps} "
            "Adam steps, U kept from the step with the lowest loss on A; scored on the other "
            "half B (1,000, seen by no variant) and the fixed test set of 1,000. "
            f"{torch.get_num_threads()} threads.",
            ["U optimization", "seed", "lowest RMSE on A", "last RMSE on A", "kept step",
             "MAE on B (eV/atom)", "test MAE (eV/atom)", "fit time (s)"],
            [(n, sd, f"{b:.4f}", f"{la:.4f}", k, f"{mb:.4f}", f"{mt:.4f}", f"{s:.0f}")
             for n, sd, b, la, k, mb, mt, s in rows],
        )  # fmt: skip


if __name__ == "__main__":
    main()
