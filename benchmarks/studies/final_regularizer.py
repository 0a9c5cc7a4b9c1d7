"""Final regulariser: is the one learned with U right for the final solve?

U and the regulariser are learned together on solves over ``step_train_size`` (2,000)
training crystals, but the final weights are solved on all of them (6,000). For each
model this script re-solves the weights on its recorded training set with the learned
regulariser times each factor (``AlchemicalKRR.refit(..., regularizer=...)``, U kept)
and scores three sets side by side: the crystals the split left in *no* set (val:
neither U nor the weights saw them), the optimization set (U was tuned on it) and the
fixed test set. Choosing by val or by the optimization set uses no test label.

    python benchmarks/studies/final_regularizer.py                          # shipped default
    python benchmarks/studies/final_regularizer.py --model elpasolite-dj4 my_model.pt
    python benchmarks/studies/final_regularizer.py --quick                  # factors 1 and 0.3
    python benchmarks/studies/final_regularizer.py --out benchmarks/results/final_regularizer.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ase_alchemical import load_model
from ase_alchemical.data.datasets import load_elpasolites, split
from ase_alchemical.registry import resolve_model_path
from ase_alchemical.structure.training import (
    REGULARIZER_FACTORS,
    _checked_data_file,
    _recorded_split,
    regularizer_scan,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import write_table


def scan(model, meta: dict, frames, factors) -> list[dict]:
    """Test, val and opt errors (eV/atom) with the weights re-solved on the training set
    of the split recorded in ``meta`` for every factor of the learned regulariser."""
    index = list(range(len(frames)))
    train, opt, test = split(index, meta["n_train"], meta["n_opt"], meta["n_test"],
                             seed=meta["split_seed"])  # fmt: skip
    val = sorted(set(index) - set(train) - set(opt) - set(test))
    t0 = time.perf_counter()
    train = [frames[i] for i in train]
    rho = model.pair_spectrum(train)
    print(f"featurized {len(train)} training crystals in {time.perf_counter() - t0:.0f} s")
    scored = {name: [frames[i] for i in subset] for name, subset in
              (("val", val), ("opt", opt), ("test", test))}  # fmt: skip
    rows = regularizer_scan(model, train, rho, scored, factors)
    for row in rows:
        print("  ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", nargs="+", default=[None], help="shipped model names or files (default: default)"
    )
    parser.add_argument("--factors", nargs="+", type=float, default=None)
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--quick", action="store_true", help="factors 1 and 0.3 only")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args()
    factors = args.factors or ((1.0, 0.3) if args.quick else REGULARIZER_FACTORS)
    table, loaded = [], {}
    for name in args.model:
        path = resolve_model_path(name)
        model = load_model(path, device="cpu")
        meta = _recorded_split(model, "this script needs the split the model was trained on")
        data_file = _checked_data_file(args.data, meta)
        if data_file not in loaded:  # the models normally share one data file
            loaded[data_file] = load_elpasolites(data_file)
        frames = loaded[data_file]
        print(f"{path.name}: d_J {model.d_j}, {model.n_scales} scale(s), learned regulariser "
              f"{model.regularizer_:.4g}, training set {meta['n_train']}", flush=True)  # fmt: skip
        rows = scan(model, meta, frames, factors)
        by_val = min(rows, key=lambda r: r["val_mae"])
        by_opt = min(rows, key=lambda r: r["opt_mae"])
        for r in rows:
            chosen = [rule for rule, pick in (("val", by_val), ("opt", by_opt)) if pick is r]
            table.append((
                path.name, f"{r['factor']:g}", f"{r['regularizer']:.4g}",
                f"{r['val_mae']:.4f}", f"{r['opt_mae']:.4f}", f"{r['opt_rmse']:.4f}",
                f"{r['test_mae']:.4f}", f"{r['test_rmse']:.4f}", ", ".join(chosen),
            ))  # fmt: skip
    header = ["model", "factor", "regulariser", "val MAE", "opt MAE", "opt RMSE", "test MAE",
              "test RMSE", "lowest MAE on"]  # fmt: skip
    for row in table:
        print(" | ".join(row))
    if args.out:
        setting = (
            "Weights re-solved on each model's recorded training set (U and scale weights "
            "kept) with the learned regulariser times the factor; MAE/RMSE in eV/atom. "
            "val: the crystals in none of the training, optimization and test sets."
        )
        write_table(args.out, "Final regulariser", setting, header, table)


if __name__ == "__main__":
    main()
