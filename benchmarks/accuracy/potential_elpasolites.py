"""Elpasolite energies through the local (atom-centred, additive) kernel beside the
structure kernel, on one split in one run.

The question: does writing a crystal's energy as a sum of atom-centred terms lose accuracy
on the elpasolite formation energies, against one kernel between whole crystals? Both
models see the same prototype crystals (built on the documented hard-sphere prototype: no
relaxed geometries exist for these data), the same fixed test set of 1,000 crystals and
optimization set of 2,000 as ``learning_curve.py`` (``split(..., seed=0)``), and nested
training sets.

    python benchmarks/accuracy/potential_elpasolites.py [--n-train 1000 6000] \
        [--out benchmarks/results/potential_elpasolites.md]

Rows: the structure kernel with the recipe of ``learning_curve.py`` (d_J = 4, zeta 3,
full KRR, 250 Adam steps on U), and :class:`~ase_alchemical.AlchemicalPotential` with
d_J = 4 fitted on energies (its defaults: zeta 2, 500 support environments, U learned
for 20 steps on the optimization set).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from learning_curve import ALCHEMICAL  # beside this script

from ase_alchemical import AlchemicalKRR, AlchemicalPotential, __version__
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.fileio import atomic_write
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--n-train", type=int, nargs="+", default=[1000, 6000])
    parser.add_argument("--n-opt", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=250, help="U steps of the structure kernel")
    parser.add_argument("--local-steps", type=int, default=20, help="U steps of the local one")
    parser.add_argument("--skip-structure", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    frames = load_elpasolites(args.data)
    n_test = 1000
    _, opt, test = split(frames, max(args.n_train), args.n_opt, n_test, seed=0)
    y_test = per_atom_energies(test)
    results = []

    def report(name, n_train, pred, fit_s):
        err = np.asarray(pred) - y_test
        row = {"model": name, "n_train": n_train, "mae": float(np.abs(err).mean()),
               "rmse": float(np.sqrt((err**2).mean())), "fit_s": fit_s}  # fmt: skip
        results.append(row)
        print(f"{name:<44}{n_train:>6}{row['mae']:>9.4f}{row['rmse']:>9.4f}{fit_s:>8.0f}",
              flush=True)  # fmt: skip
        if args.out:
            write(args.out, results, args)

    if not args.skip_structure:
        spectrum = compute_pair_spectrum(frames, progress=False)
        rows = lambda subset: [a.info["index"] for a in subset]  # noqa: E731
        for n_train in args.n_train:
            train, _, _ = split(frames, n_train, args.n_opt, n_test, seed=0)
            model = AlchemicalKRR(d_j=4, n_steps=args.steps, progress=False, **ALCHEMICAL)
            t0 = time.perf_counter()
            model.fit(train, opt, spectrum[rows(train)], spectrum[rows(opt)])
            fit_s = time.perf_counter() - t0
            with torch.no_grad():
                pred = model.predict_from_spectrum(spectrum[rows(test)]).cpu().numpy()
            report("structure kernel, d_J = 4, U learned", n_train, pred, fit_s)
    for n_train in args.n_train:
        train, _, _ = split(frames, n_train, args.n_opt, n_test, seed=0)
        model = AlchemicalPotential(d_j=4, n_steps=args.local_steps, device="cpu")
        t0 = time.perf_counter()
        model.fit(train, opt, forces=False)
        fit_s = time.perf_counter() - t0
        pred = model.predict(test) / np.array([len(a) for a in test])
        u = "U fixed at its start" if args.local_steps == 0 else f"{args.local_steps} U steps"
        report(f"local kernel (sum of atomic terms), d_J = 4, {u}", n_train, pred, fit_s)


def write(out: str, results: list, args) -> None:
    lines = [
        "# Elpasolites: the local kernel beside the structure kernel",
        "",
        "`python benchmarks/accuracy/potential_elpasolites.py "
        f"--n-train {' '.join(map(str, args.n_train))}"
        f" --local-steps {args.local_steps} --out {out}` (ase-alchemical {__version__}, "
        f"{platform.machine()}, "
        f"{torch.get_num_threads()} torch threads). Fixed test set of 1,000 crystals and "
        f"optimization set of {args.n_opt:,} (`split(..., seed=0)`, as `learning_curve.py`); "
        "crystals on the hard-sphere prototype. Structure kernel: d_J = 4, zeta 3, full KRR, "
        f"{args.steps} Adam steps on U. Local kernel: `AlchemicalPotential(d_j=4)` on energies, "
        f"{args.local_steps} steps on U. Errors per atom of the formation energy.",
        "",
        "| model | n_train | test MAE (eV/atom) | test RMSE | fit (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['model']} | {r['n_train']} | {r['mae']:.4f} | {r['rmse']:.4f} | "
                     f"{r['fit_s']:.0f} |")  # fmt: skip
    atomic_write(out, lambda p: p.write_text("\n".join(lines) + "\n"))
    json_out = str(out).rsplit(".", 1)[0] + ".json"
    atomic_write(json_out, lambda p: p.write_text(json.dumps(results, indent=1)))


if __name__ == "__main__":
    main()
