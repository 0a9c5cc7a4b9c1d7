"""Steps at small training sizes: are the learning curve's 250 Adam steps enough below 3,000?

The learning curve learns U with a constant learning rate, so the first N steps of a
longer run *are* an N-step fit (the same Adam updates; the kept step is the one with the
lowest optimization-set RMSE among them). One run of ``--steps`` per point therefore
answers the question for every N up to it: this script fits the curve's alchemical recipe
(``benchmarks/accuracy/learning_curve.py``'s ``ALCHEMICAL``) with the exponent that the
curve's 250-step fit chose for that draw, on the curve's training draw, its fixed
optimization set of 2,000 and its fixed test set of 1,000, the test set *watched*
(``AlchemicalKRR.fit(..., eval_set=test)``: it never enters a gradient or the choice of a
step). For each N it reports the test MAE at the step an N-step fit keeps, and the lowest
test MAE among the first N steps: what early stopping on held-out data could reach at
best, were the held-out set as large and as like the test set as the test set itself.

    python benchmarks/studies/small_steps.py --n-train 250 500 1000 --d-j 2 4 \
        --out benchmarks/results/small_steps.md
    python benchmarks/studies/small_steps.py --n-train 250 500 --seeds 1 2 --merge \
        --out benchmarks/results/small_steps.md
    python benchmarks/studies/small_steps.py --n-train 1000 --d-j 2 --seeds 1 2 --merge \
        --out benchmarks/results/small_steps.md

(the committed table: three draws at 250 and 500 crystals; at 1,000 three for d_J = 2 and
one for d_J = 4, where one run of 1,000 steps takes about 15 minutes on 2 cores).

``--schedule cosine`` asks the same of the constructor's default schedule, whose learning
rate decays to zero over the steps asked: there the first N steps of a long run are *not*
an N-step fit, so every checkpoint is a fit of its own (one run per checkpoint):

    python benchmarks/studies/small_steps.py --schedule cosine --checkpoints 250 750 \
        --n-train 250 500 --seeds 0 1 2 --d-j 2 4 --out benchmarks/results/small_steps_cosine.md
    python benchmarks/studies/small_steps.py --schedule cosine --checkpoints 250 750 \
        --n-train 1000 --d-j 4 2 --merge --out benchmarks/results/small_steps_cosine.md
    python benchmarks/studies/small_steps.py --schedule cosine --checkpoints 250 750 \
        --n-train 1000 --d-j 2 --seeds 1 2 --merge --out benchmarks/results/small_steps_cosine.md
"""

from __future__ import annotations

import argparse
import json
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
from _common import write_report
from learning_curve import ALCHEMICAL

CURVE = Path(__file__).resolve().parents[1] / "results" / "learning_curve.json"


def curve_fits() -> dict:
    """(d_J, n_train, seed) -> the learning curve's alchemical row (its chosen zeta, MAE)."""
    rows = json.loads(CURVE.read_text())["rows"]
    return {
        (r["d_j"], r["n_train"], r["seed"]): r
        for r in rows if r["model"].startswith("alchemical") and "zeta" in r
    }  # fmt: skip


def at_checkpoints(history: list[dict], checkpoints: list[int]) -> list[dict]:
    """For each N: the step an N-step fit keeps (lowest optimization-set RMSE among the
    first N, the first of equals, as the optimizer keeps it), its test errors, and the
    step with the lowest test MAE among the first N."""
    opt = np.array([h["opt_rmse"] for h in history])
    mae = np.array([h["eval_mae"] for h in history])
    out = []
    for n in checkpoints:
        kept, low = int(np.argmin(opt[:n])), int(np.argmin(mae[:n]))
        out.append({
            "n_steps": n, "kept_step": kept, "opt_rmse": float(opt[kept]),
            "test_mae": float(mae[kept]), "test_rmse": history[kept]["eval_rmse"],
            "lowest_step": low, "lowest_test_mae": float(mae[low]),
        })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--n-train", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--d-j", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="length of the one run (constant schedule only; default 1000)")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                        help="learning-rate schedule; cosine: one fit per checkpoint")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[250, 500, 750, 1000])
    parser.add_argument("--out", default=None, help="write the table (markdown) here")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of --out's JSON that this run does not refit")
    args = parser.parse_args()
    if args.schedule == "cosine":  # one fit per checkpoint: the longest sets the length
        if args.steps is not None:
            parser.error("--steps is the constant schedule's one run; with --schedule cosine "
                         "each checkpoint is a fit of its own (give --checkpoints)")
        args.steps = max(args.checkpoints)
    elif args.steps is None:
        args.steps = 1000
    checkpoints = sorted(n for n in args.checkpoints if n <= args.steps)
    if not checkpoints:
        parser.error(f"no checkpoint at or below --steps {args.steps}")

    fits = curve_fits()
    frames = load_elpasolites(args.data)
    n_test, n_opt = 1000, 2000
    pool, opt, test = split(frames, len(frames) - n_opt - n_test, n_opt, n_test)
    opt_spectrum, test_spectrum = compute_pair_spectrum(opt), compute_pair_spectrum(test)
    y_test = per_atom_energies(test)
    results = []
    if args.merge and args.out and Path(args.out).with_suffix(".json").exists():
        kept = json.loads(Path(args.out).with_suffix(".json").read_text())
        if (kept["steps"], kept["checkpoints"], kept.get("schedule", "constant")) != (
            args.steps, checkpoints, args.schedule
        ):
            sys.exit(f"--merge: {args.out} has other steps, checkpoints or schedule")
        refit = {(n, d, s) for n in args.n_train for d in args.d_j for s in args.seeds}
        results = [r for r in kept["rows"] if (r["n_train"], r["d_j"], r["seed"]) not in refit]
    for n_train in args.n_train:
        for seed in args.seeds:
            # the learning curve's training draw of this seed
            order = np.arange(len(pool))
            if seed:
                order = np.random.default_rng(seed).permutation(len(pool))
            train = [pool[i] for i in order[:n_train]]
            train_spectrum = compute_pair_spectrum(train)
            for d_j in args.d_j:
                curve = fits.get((d_j, n_train, seed))
                if curve is None:
                    sys.exit(f"no learning-curve fit for d_J={d_j}, n_train={n_train}, "
                             f"seed {seed} in {CURVE}: its exponent is what this study uses")
                settings = {**ALCHEMICAL, "zeta": int(curve["zeta"]),
                            "lr_schedule": args.schedule}
                # constant: one run, its prefixes are the shorter fits; cosine: a run each
                runs = [args.steps] if args.schedule == "constant" else checkpoints
                points, fit_s = [], 0.0
                for n_steps in runs:
                    model = AlchemicalKRR(d_j=d_j, n_steps=n_steps, seed=seed, **settings)
                    t0 = time.perf_counter()
                    model.fit(train, opt, train_spectrum, opt_spectrum,
                              eval_set=test, eval_spectrum=test_spectrum)  # fmt: skip
                    fit_s += time.perf_counter() - t0
                    with torch.no_grad():
                        pred = model.predict_from_spectrum(test_spectrum).cpu().numpy()
                    final_mae = float(np.abs(pred - y_test).mean())
                    wanted = checkpoints if args.schedule == "constant" else [n_steps]
                    points += at_checkpoints(model.loss_history_, wanted)
                    # the premise: the watched errors at the kept step are the fitted model's
                    assert abs(points[-1]["test_mae"] - final_mae) < 1e-6 * final_mae, final_mae
                row = {
                    "n_train": n_train, "d_j": d_j, "seed": seed, "zeta": int(curve["zeta"]),
                    "curve_mae": curve["mae"], "fit_s": fit_s, "points": points,
                }  # fmt: skip
                results.append(row)
                results.sort(key=lambda r: (r["n_train"], r["d_j"], r["seed"]))
                print(n_train, d_j, seed, row["zeta"], f"{fit_s:.0f} s", "  ".join(
                    f"{p['n_steps']}: {p['test_mae']:.4f}" for p in points), flush=True)
                if args.out:
                    write(args.out, results, checkpoints, args.steps, args.schedule)


def write(out: str, results: list, checkpoints: list[int], steps: int, schedule: str) -> None:
    """The markdown table and the JSON of every row (with the points) beside it."""
    import platform

    from ase_alchemical import __version__

    if schedule == "constant":
        runs = (f"One run of {steps:,} Adam steps per row with the learning curve's alchemical "
                f"recipe (constant learning rate {ALCHEMICAL['learning_rate']}, no rotation)")
    else:
        runs = ("One fit per cell, of the cell's number of Adam steps, with the learning "
                "curve's alchemical recipe but the constructor's default schedule (learning "
                f"rate decaying from {ALCHEMICAL['learning_rate']} to zero by a cosine over "
                "the fit's steps, no rotation)")
    within = "" if schedule == "constant" else ", in the longest fit"
    lines = [
        f"# Steps at small training sizes, {schedule} learning rate (ase-alchemical "
        f"{__version__}, {platform.machine()}, {torch.get_num_threads()} threads)",
        "",
        f"{runs} and the exponent "
        "its 250-step fit chose for that draw; its training draw, fixed optimization set of "
        "2,000 and test set of 1,000 (watched, never used). A cell: the test MAE (eV/atom) at "
        "the step an N-step fit keeps (lowest optimization-set RMSE among the first N) and "
        "that step. Lowest watched: the lowest test MAE among all the steps, and its step "
        f"(the most early stopping could reach{within}). "
        "Curve: the learning curve's 250-step fit.",
        "",
        "| n_train | d_J | seed | zeta | curve | "
        + " | ".join(f"{n} steps" for n in checkpoints) + " | lowest watched | fit (s) |",
        "|---:|---:|---:|---:|---:|" + "---:|" * (len(checkpoints) + 2),
    ]
    for r in results:
        cells = [f"{p['test_mae']:.4f} ({p['kept_step']})" for p in r["points"]]
        last = r["points"][-1]
        lines.append(
            f"| {r['n_train']} | {r['d_j']} | {r['seed']} | {r['zeta']} | {r['curve_mae']:.4f} | "
            + " | ".join(cells)
            + f" | {last['lowest_test_mae']:.4f} ({last['lowest_step']}) | {r['fit_s']:.0f} |"
        )
    write_report(out, lines, {"steps": steps, "checkpoints": checkpoints, "schedule": schedule,
                              "rows": results})


if __name__ == "__main__":
    main()
