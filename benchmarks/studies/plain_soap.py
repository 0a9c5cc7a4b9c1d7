"""Plain SOAP on the elpasolites: which feature settings it wants on its own, side by side.

Plain SOAP is the multi-species power spectrum over the 39 elements with U = identity:
nothing is learned but the KRR weights, so it measures the features (geometry rule,
cutoff, basis, radial scaling, normalisation) apart from the compression. Each variant's
spectra are computed for the training, optimization and test crystals, then zeta and the
regulariser are chosen on the **optimization-set MAE** over a grid (zeta 1-3, regulariser
1e-4-0.1); the test MAE of the chosen pair is reported and played no part in any choice.

Split: ``split(frames, n_train, n_opt, 1000, seed=0)``: the test set is the fixed
1,000 crystals of the learning curves (``benchmarks/accuracy/learning_curve.py``).

    python benchmarks/studies/plain_soap.py                       # n_train 1,000
    python benchmarks/studies/plain_soap.py --n-train 3000 --only "cutoff 6 Å"
    python benchmarks/studies/plain_soap.py --out benchmarks/results/plain_soap.md

``--grid`` adds a second table, every (zeta, regulariser) cell with its optimization-set
and test MAE (the test column watched, never used to choose), and a JSON file beside
``--out``: how the choice depends on the training size, e.g. at the curve's largest size
(``split(..., 6000, 2000, 1000, seed=0)`` is the learning curve's seed-0 draw there)::

    python benchmarks/studies/plain_soap.py --n-train 6000 --n-opt 2000 --grid \
        --only "as in the learning curve (5 Å, radial scaling, n 5, l 4, normalised)" \
        --out benchmarks/results/plain_soap_6000.md
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ase_alchemical import AlchemicalKRR
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.fileio import atomic_write
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import write_table

#: Variants: the hypers (keyword arguments of ``make_hypers``), the structure features'
#: normalisation and the geometry rule of the prototype crystals.
VARIANTS: dict[str, dict] = {
    "as in the learning curve (5 Å, radial scaling, n 5, l 4, normalised)": {},
    "no radial scaling": {"hypers": {"scaling": None}},
    "cutoff 4 Å": {"hypers": {"cutoff": 4.0}},
    "cutoff 6 Å": {"hypers": {"cutoff": 6.0}},
    "cutoff 7 Å": {"hypers": {"cutoff": 7.0}},
    "density width 0.5 Å": {"hypers": {"density_width": 0.5}},
    "max_radial 3": {"hypers": {"max_radial": 3}},
    "max_angular 6": {"hypers": {"max_angular": 6}},
    "per-atom mean features (additive)": {"normalization": "mean"},
    "fixed lattice (a = 8 Å)": {"geometry": "fixed"},
}
ZETAS = (1, 2, 3)
REGULARIZERS = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-opt", type=int, default=500)
    parser.add_argument("--only", nargs="+", default=None, help="variant names to run")
    parser.add_argument("--out", default=None, help="write the table (markdown) here")
    parser.add_argument("--grid", action="store_true",
                        help="also every (zeta, regulariser) cell, in a second table and JSON")
    args = parser.parse_args()
    unknown = set(args.only or ()) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")

    splits = {}  # geometry rule -> (train, opt, test): the same crystals on every rule

    def sets_of(rule: str) -> tuple:
        if rule not in splits:
            frames = load_elpasolites(args.data, rule=rule)
            splits[rule] = split(frames, args.n_train, args.n_opt, 1000, seed=0)
        return splits[rule]

    y_opt, y_test = (per_atom_energies(s) for s in sets_of("hard-sphere")[1:])
    rows, grid_rows = [], []
    for name, variant in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        sets = sets_of(variant.get("geometry", "hard-sphere"))
        hypers = make_hypers(**variant.get("hypers", {}))
        spectra = [compute_pair_spectrum(s, hypers) for s in sets]
        featurize_s = time.perf_counter() - t0
        # every cell's errors are kept, not its model: the 39-element features of a fit
        # at 6,000 crystals take about 9 GB, so two models alive at once would not fit in
        # 24 GB. The test MAE of each cell is watched, never used to choose.
        cells = {}
        t0 = time.perf_counter()
        for zeta in ZETAS:
            for reg in REGULARIZERS:
                model = AlchemicalKRR(
                    d_j=None, init="identity", n_steps=0, hypers=hypers, zeta=zeta,
                    regularizer=reg, learn_regularizer=False, solver="full",
                    normalization=variant.get("normalization", "normalized"),
                ).fit(sets[0], train_spectrum=spectra[0])  # fmt: skip
                with torch.no_grad():
                    maes = [float(np.abs(model.predict_from_spectrum(s).cpu().numpy() - y).mean())
                            for s, y in ((spectra[1], y_opt), (spectra[2], y_test))]
                cells[zeta, reg] = maes
                print(f"  zeta {zeta}, regulariser {reg:g}: opt {maes[0]:.4f}, "
                      f"test {maes[1]:.4f}", flush=True)
                del model
                gc.collect()
        fit_s = time.perf_counter() - t0
        zeta, reg = min(cells, key=lambda c: cells[c][0])
        opt_mae, test_mae = cells[zeta, reg]
        row = (name, zeta, f"{reg:g}", f"{opt_mae:.4f}", f"{test_mae:.4f}",
               f"{featurize_s:.0f}", f"{fit_s:.0f}")  # fmt: skip
        rows.append(row)
        grid_rows += [{"variant": name, "zeta": z, "regularizer": r, "opt_mae": o,
                       "test_mae": e, "chosen": (z, r) == (zeta, reg)}
                      for (z, r), (o, e) in cells.items()]  # fmt: skip
        print("  ".join(str(v) for v in row), flush=True)
        if args.out:  # after every variant: an interrupted run keeps what it measured
            setting = (
                f"Plain SOAP (U = identity over the 39 elements), n_train {args.n_train}, "
                f"n_opt {args.n_opt}, the fixed test set of 1,000 crystals (split seed 0), "
                "hard-sphere prototype geometries unless the row says otherwise. zeta and "
                f"the regulariser chosen on the optimization-set MAE over zeta {ZETAS} x "
                f"regulariser {REGULARIZERS}. Fit time: the whole grid."
            )
            header = ["variant", "zeta", "regulariser", "opt MAE (eV/atom)",
                      "test MAE (eV/atom)", "features (s)", "fit (s)"]  # fmt: skip
            write_table(args.out, "Plain SOAP: feature settings", setting, header, rows)
            if args.grid:
                write_grid(args.out, grid_rows, vars(args))


def write_grid(out: str, grid_rows: list[dict], run: dict) -> None:
    """Append every grid cell to the report ``out`` and write both to JSON beside it."""
    lines = ["", "Every (zeta, regulariser) cell: the optimization-set MAE chose (bold: the "
             "choice); the test MAE is watched, never used to choose.", "",
             "| variant | zeta | regulariser | opt MAE (eV/atom) | test MAE (eV/atom) |",
             "|---|---:|---:|---:|---:|"]
    for c in grid_rows:
        opt = f"**{c['opt_mae']:.4f}**" if c["chosen"] else f"{c['opt_mae']:.4f}"
        lines.append(f"| {c['variant']} | {c['zeta']} | {c['regularizer']:g} | {opt} | "
                     f"{c['test_mae']:.4f} |")
    text = Path(out).read_text() + "\n".join(lines) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    record = {"n_train": run["n_train"], "n_opt": run["n_opt"], "n_test": 1000,
              "split_seed": 0, "cells": grid_rows}
    json_out = Path(out).with_suffix(".json")
    atomic_write(json_out, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))


if __name__ == "__main__":
    main()
