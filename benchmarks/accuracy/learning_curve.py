"""Learning curves on the elpasolites: test MAE vs n_train for several d_J, side by side.

Every fit shares one fixed held-out test set (1,000 crystals) and one fixed optimization
set; training sets are nested within a seed. Seed 0 takes the training crystals in the
order of ``split(..., seed=0)``; seed s > 0 draws them from the same pool (every crystal
outside the test and optimization sets) in the order of a permutation seeded by s, and
seeds the model (its per-step subsets). Species-pair spectra are computed once for all
crystals and reused, so the times below are *fit* times (U optimization + final solve)
on top of one featurization, which is timed separately.

    python benchmarks/accuracy/learning_curve.py                 # full: n_train up to 6,000
    python benchmarks/accuracy/learning_curve.py --quick         # minutes: n_train up to 500
    python benchmarks/accuracy/learning_curve.py --seeds 0 1 2 \
        --out benchmarks/results/learning_curve.md              # three draws per point
    python benchmarks/accuracy/learning_curve.py --n-train 3000 6000 --seeds 1 2 --merge \
        --out benchmarks/results/learning_curve.md              # adds draws to a report
    python benchmarks/accuracy/learning_curve.py --d-j --no-plain-soap --best --device cuda \
        --out best_curve.md     # the best model's recipe only (about 25 min a fit on 2 cores)
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ase_alchemical import AlchemicalKRR, __version__
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.fileio import atomic_write
from ase_alchemical.core.hypers import multiscale_hypers
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split
from ase_alchemical.structure.training import device_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import elapsed_s

#: Settings of every alchemical fit (besides d_J and the number of steps): the shipped
#: model's recipe (full KRR, U learned on 2,000-crystal subsets per step) with the
#: constructor's default zeta, ``"auto"``: 3 from 3,000 training crystals (the shipped
#: model's), 2 or 3 as the optimization set chooses below.
ALCHEMICAL = {
    "zeta": "auto",
    "solver": "full",
    "learning_rate": 0.1,
    "step_train_size": 2000,
    "lr_schedule": "constant",
    "rotation": False,
}
#: (zeta, regulariser) grid for plain SOAP, selected on the optimization set
#: (``benchmarks/studies/plain_soap.py`` for why these).
PLAIN_SOAP_GRID = [(1, 1e-3), (1, 1e-2), (1, 3e-2), (2, 1e-2), (2, 3e-2)]
#: The published learning curves of the PyTorch reproduction of Willatt et al.'s
#: alchemical compression that this package follows (test MAE in eV/atom against the
#: number of training crystals; relaxed DFT geometries, its own random split).
REPRODUCTION = {
    "plain SOAP (39 el.)": {100: 0.429, 250: 0.348, 500: 0.294, 1000: 0.243, 3000: 0.155,
                            6000: 0.105},
    "alchemical d_J=2": {100: 0.296, 250: 0.239, 500: 0.211, 1000: 0.191, 3000: 0.170,
                         6000: 0.162},
    "alchemical d_J=4": {100: 0.284, 250: 0.178, 500: 0.143, 1000: 0.119, 3000: 0.097,
                         6000: 0.089},
    "multi-kernel": {100: 0.251, 250: 0.172, 500: 0.134, 1000: 0.109, 3000: 0.083,
                     6000: 0.069},
}  # fmt: skip
SIZES = [100, 250, 500, 1000, 3000, 6000]
#: The shipped best model's recipe (``elpasolite-dj10-multiscale``, chosen by
#: ``model_search.py``), with its weights on the training set as every other row here.
BEST = {"d_j": 10, "cutoffs": (5.0, 7.0), "n_steps": 500, "lr_schedule": "cosine"}


def integer_or_auto(text: str) -> int | str:
    """``--zeta`` and ``--steps``: an integer, or ``auto`` (the constructor's choice)."""
    return text if text == "auto" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--quick", action="store_true", help="small sizes, few steps")
    parser.add_argument("--d-j", type=int, nargs="*", default=[4, 2, 1], help="none: no such rows")
    parser.add_argument("--n-train", type=int, nargs="+", default=None)
    parser.add_argument("--n-opt", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training draws")
    parser.add_argument(
        "--merge", action="store_true",
        help="keep the rows of --out's JSON that this run does not measure again",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=integer_or_auto, default=None,
        help="Adam steps of the alchemical rows: an integer (default 250) or auto, "
        "AlchemicalKRR's default (more steps below 3,000 training crystals)",
    )  # fmt: skip
    parser.add_argument("--solver", choices=["full", "sparse"], default=ALCHEMICAL["solver"])
    parser.add_argument(
        "--zeta", type=integer_or_auto, default=ALCHEMICAL["zeta"],
        help="zeta of the alchemical rows: an integer or auto",
    )  # fmt: skip
    parser.add_argument(
        "--no-plain-soap", action="store_true", help="skip plain 39-element SOAP (slowest)"
    )
    parser.add_argument(
        "--best", action="store_true",
        help="also the best model's recipe (d_J 10, 5 + 7 A, 500 cosine steps): on 2 CPU "
        "cores about 3 s per U step at 100 crystals and 7 s at 500, so meant for a GPU",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device of the fits, e.g. cuda")
    parser.add_argument("--out", default=None, help="write the table (markdown) and JSON here")
    args = parser.parse_args()

    n_train_list = args.n_train or (SIZES[:3] if args.quick else SIZES)
    steps = args.steps or (20 if args.quick else 250)
    torch.manual_seed(0)
    frames = load_elpasolites(args.data)
    for i, atoms in enumerate(frames):
        atoms.info["row"] = i
    t0 = time.perf_counter()
    spectrum = compute_pair_spectrum(frames, progress=True)
    featurize_s = time.perf_counter() - t0

    n_test = 1000
    pool, opt, test = split(frames, len(frames) - args.n_opt - n_test, args.n_opt, n_test)
    rows = lambda subset: [a.info["row"] for a in subset]  # noqa: E731
    y_test = per_atom_energies(test)

    def training_set(n_train: int, seed: int) -> list:
        """The first ``n_train`` crystals of the pool in the order of ``seed``."""
        order = np.arange(len(pool))
        if seed:
            order = np.random.default_rng(seed).permutation(len(pool))
        return [pool[i] for i in order[:n_train]]

    results = []
    if args.merge and args.out and Path(json_path(args.out)).exists():
        kept = json.loads(Path(json_path(args.out)).read_text())
        results = kept["rows"] if isinstance(kept, dict) else kept  # a list: no seeds yet
    header = f"{'model':<22}{'n_train':>8}{'seed':>5}{'MAE eV/atom':>13}{'RMSE':>9}{'fit s':>8}"
    print(f"device: {device_name(torch.device(args.device))}")
    print(header)
    print("-" * len(header))

    def report(name, d_j, n_train, seed, model, fit_s, features=None, extra=None):
        features = spectrum if features is None else features
        with torch.no_grad():
            pred = model.predict_from_spectrum(features[rows(test)]).cpu().numpy()
        err = pred - y_test
        row = {
            "model": name, "d_j": d_j, "n_train": n_train, "seed": seed, "n_opt": args.n_opt,
            "n_test": n_test, "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())), "fit_s": fit_s,
            "best_step": getattr(model, "best_step_", None), "regularizer": model.regularizer_,
            "zeta": model.zeta_,
            "zeta_candidates": model.optimization_.get("zeta_candidates"),
            "n_steps_run": model.optimization_.get("n_steps_run"),
            "params": {k: v for k, v in model.get_params().items() if k != "hypers"},
            **(extra or {}),
        }  # fmt: skip
        results[:] = [r for r in results if key(r) != key(row)] + [row]
        if args.out:  # after every fit: an interrupted run keeps what it measured
            write(args.out, results, n_test, args.n_opt, steps, featurize_s)
        print(
            f"{name:<22}{n_train:>8}{seed:>5}{row['mae']:>13.4f}{row['rmse']:>9.4f}{fit_s:>8.1f}",
            flush=True,
        )

    def alchemical_curve(d_j: int) -> None:
        for seed in args.seeds:
            for n_train in n_train_list:
                train = training_set(n_train, seed)
                settings = {**ALCHEMICAL, "solver": args.solver, "zeta": args.zeta}
                model = AlchemicalKRR(
                    d_j=d_j, n_steps=steps, progress=False, device=args.device, seed=seed,
                    **settings,
                )  # fmt: skip
                t0 = time.perf_counter()
                model.fit(train, opt, spectrum[rows(train)], spectrum[rows(opt)])
                fit_s = elapsed_s(t0, args.device)
                report(f"alchemical d_J={d_j}", d_j, n_train, seed, model, fit_s)

    def best_curve() -> None:
        hypers = multiscale_hypers(BEST["cutoffs"])
        t0 = time.perf_counter()
        multi = compute_pair_spectrum(frames, hypers, progress=True)
        print(f"featurization of all {len(frames)} crystals at 5 + 7 A: "
              f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
        # the recipe's own schedule in place of the curves' constant rate
        settings = {**ALCHEMICAL, "zeta": 3, "solver": "full", "lr_schedule": BEST["lr_schedule"]}
        for seed in args.seeds:
            for n_train in n_train_list:
                train = training_set(n_train, seed)
                n_steps = args.steps or (20 if args.quick else BEST["n_steps"])
                model = AlchemicalKRR(
                    d_j=BEST["d_j"], hypers=hypers, n_steps=n_steps, progress=False,
                    device=args.device, seed=seed, **settings,
                )  # fmt: skip
                t0 = time.perf_counter()
                model.fit(train, opt, multi[rows(train)], multi[rows(opt)])
                fit_s = elapsed_s(t0, args.device)
                name = f"best recipe ({n_steps} steps)"
                report(name, BEST["d_j"], n_train, seed, model, fit_s, multi)

    def plain_soap_curve() -> None:
        # plain multi-species SOAP: U = identity (39 x 39), nothing learned but the weights;
        # zeta and the regulariser are chosen on the optimization set, never on the test set
        y_opt = per_atom_energies(opt)
        for seed, n_train in ((s, n) for s in args.seeds for n in n_train_list):
            train = training_set(n_train, seed)
            t0 = time.perf_counter()

            def fitted(zeta: int, reg: float, train: list = train) -> AlchemicalKRR:
                return AlchemicalKRR(
                    d_j=None, init="identity", n_steps=0, zeta=zeta, regularizer=reg,
                    learn_regularizer=False, solver="full",
                ).fit(train, train_spectrum=spectrum[rows(train)])  # fmt: skip

            # only the scores are kept while the grid runs and the winner is fitted again:
            # the 39-element features of a fit at 6,000 crystals take about 9 GB, so two
            # models alive at once would not fit in 24 GB
            opt_mae = {}
            for zeta, reg in PLAIN_SOAP_GRID:
                model = fitted(zeta, reg)
                with torch.no_grad():
                    pred = model.predict_from_spectrum(spectrum[rows(opt)]).cpu().numpy()
                opt_mae[zeta, reg] = float(np.abs(pred - y_opt).mean())
                del model, pred
                gc.collect()
            model = fitted(*min(opt_mae, key=opt_mae.get))
            fit_s = time.perf_counter() - t0
            grid = {"grid": [list(pair) for pair in PLAIN_SOAP_GRID]}
            report("plain SOAP (39 el.)", 39, n_train, seed, model, fit_s, extra=grid)
            del model
            gc.collect()

    # the first d_J, then plain SOAP, then the other d_J: the headline comparison first
    for i, d_j in enumerate(args.d_j):
        alchemical_curve(d_j)
        if i == 0 and not args.no_plain_soap:
            plain_soap_curve()
    if not args.d_j and not args.no_plain_soap:
        plain_soap_curve()
    if args.best:
        best_curve()
    print(f"\nfeaturization of all {len(frames)} crystals: {featurize_s:.1f} s")
    if args.out:
        write(args.out, results, n_test, args.n_opt, steps, featurize_s)


def zeta_cell(row: dict) -> str:
    """The zeta of a fit: fixed, or the chosen one and each candidate's RMSE."""
    asked = row["params"]["zeta"]
    chosen = row.get("zeta", asked)
    if not row.get("zeta_candidates"):
        return f"{chosen}" if asked != "auto" else f"auto: {chosen}"
    tried = ", ".join(f"{z}: {rmse:.3f}" for z, rmse in row["zeta_candidates"])
    return f"auto: {chosen} ({tried})"


def steps_cell(row: dict) -> str:
    """The Adam steps of a fit: as asked, or ``auto`` and the steps it took."""
    asked = row["params"].get("n_steps")
    run = row.get("n_steps_run", asked)
    return f"auto: {run}" if asked == "auto" else f"{run}"


def kind_of(row: dict) -> str:
    """``alchemical``, ``plain`` (SOAP) or ``best`` (recipe): the first word of its model."""
    return row["model"].split()[0]


def reproduce_args(results: list) -> str:
    """The options of one run that fits every row of ``results`` (the defaults left out),
    each followed by a space."""
    kinds = {kind_of(r) for r in results}
    d_js = sorted({r["d_j"] for r in results if kind_of(r) == "alchemical"}, reverse=True)
    sizes = sorted({r["n_train"] for r in results})
    seeds = sorted({r.get("seed", 0) for r in results})
    args = [] if d_js == [4, 2, 1] else ["--d-j", *d_js]
    args += [] if sizes == SIZES else ["--n-train", *sizes]
    args += [] if seeds == [0] else ["--seeds", *seeds]
    args += [] if "plain" in kinds else ["--no-plain-soap"]
    args += ["--best"] if "best" in kinds else []
    return "".join(f"{a} " for a in args)


def key(row: dict) -> tuple:
    """What makes a row: its model, training size and seed."""
    return row["model"], row["n_train"], row.get("seed", 0)


def json_path(out: str) -> str:
    """The JSON file written beside the markdown report ``out``."""
    return str(out).rsplit(".", 1)[0] + ".json"


def summary(results: list) -> dict:
    """Per model and training size: the seeds' test MAEs, their mean and standard
    deviation (population, ddof 0), and the reproduction's published value."""
    out: dict = {}
    for row in results:
        out.setdefault(row["model"], {}).setdefault(row["n_train"], []).append(row["mae"])
    return {
        model: {
            n: {"seeds": len(maes), "mean": float(np.mean(maes)), "std": float(np.std(maes)),
                "reproduction": REPRODUCTION.get(model, {}).get(n)}
            for n, maes in sorted(points.items())
        }
        for model, points in out.items()
    }  # fmt: skip


def write(out: str, results: list, n_test: int, n_opt: int, steps: int, featurize_s: float):
    """Markdown table and JSON of the rows so far, written atomically."""
    results = sorted(results, key=lambda r: (r["model"], r["n_train"], r.get("seed", 0)))
    kinds = {kind_of(r) for r in results}
    lines = [
        f"# Learning curve (ase-alchemical {__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads)",
        "",
        f"Fixed test set of {n_test} crystals, fixed optimization set of {n_opt} at every "
        f"training size, {'the default (auto) number of' if steps == 'auto' else steps} "
        f"Adam steps{' for the d_J rows' if 'best' in kinds else ''} (each fit's in its "
        "steps column); featurization of all crystals "
        f"{featurize_s:.1f} s. Mean and standard deviation over the seeds (training draws "
        "from the same pool, see the script's docstring). Reproduction: the published "
        "curves of the PyTorch reproduction of Willatt et al.'s alchemical compression "
        "(relaxed DFT geometries, its own random split); these rows are hard-sphere "
        "prototypes.",
        "",
        "| model | n_train | seeds | test MAE (eV/atom), mean | std | reproduction |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model, points in summary(results).items():
        for n, p in points.items():
            repro = "" if p["reproduction"] is None else f"{p['reproduction']:.3f}"
            std = f"{p['std']:.4f}" if p["seeds"] > 1 else ""
            lines.append(f"| {model} | {n} | {p['seeds']} | {p['mean']:.4f} | {std} | "
                         f"{repro} |")  # fmt: skip
    grid = [list(pair) for pair in PLAIN_SOAP_GRID]
    for r in results:
        if "grid" in r and r["grid"] != grid:
            other = ", ".join(f"({z}, {g:g})" for z, g in r["grid"])
            lines += ["", f"{r['model']} at {r['n_train']:,} (seed {r.get('seed', 0)}): zeta "
                      f"and the regulariser chosen among {other}, not the grid named under "
                      "Recipes: with that grid the fit at this size ran out of memory on a "
                      "24 GB machine."]  # fmt: skip
    lines += [
        "",
        "Every fit:",
        "",
        "| model | n_train | seed | zeta | steps | test MAE (eV/atom) | test RMSE | "
        "fit time (s) |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ] + [
        f"| {r['model']} | {r['n_train']} | {r.get('seed', 0)} | {zeta_cell(r)} | "
        f"{steps_cell(r)} | "
        f"{r['mae']:.4f} | {r['rmse']:.4f} | {r['fit_s']:.0f} |"
        for r in results
    ]
    grid = ", ".join(f"({z}, {r:g})" for z, r in PLAIN_SOAP_GRID)
    recipes = {
        "alchemical": "* **Alchemical rows**: the shipped model's recipe: default hypers (5 Å, "
        "radial scaling), normalised structure features, zeta as the column says (`auto`, "
        "the constructor's default: 2 and 3 fitted below 3,000 training crystals and the "
        "one with the lower optimization-set RMSE kept, the column giving both RMSEs; 3 "
        "from 3,000 on, the shipped model's; where the column says 3 the fit was asked for "
        "zeta 3, which is what `auto` fits from 3,000 on), U from "
        f"element properties learned for the steps above (learning rate "
        f"{ALCHEMICAL['learning_rate']}, {ALCHEMICAL['lr_schedule']}) on a fresh random "
        f"subset of {ALCHEMICAL['step_train_size']:,} training crystals per step (all of "
        "them below that), the regulariser learned with U, full KRR; the final weights "
        "solved on the training set (not refitted on the optimization set). The fit "
        "time includes the steps and the final solve.",
        "plain": "* **Plain SOAP**: U = identity over the 39 elements, nothing learned but the "
        "weights; the same hypers and full solve; zeta and the regulariser chosen on the "
        f"optimization-set MAE among {grid} (`benchmarks/studies/plain_soap.py` measured "
        "why), its fit time covering every candidate.",
        "best": "* **Best recipe**: the shipped best model's recipe (`elpasolite-dj10-"
        f"multiscale`): d_J = {BEST['d_j']}, cutoffs of "
        f"{' and '.join(f'{c:g}' for c in BEST['cutoffs'])} Å, zeta 3, {BEST['n_steps']} "
        f"Adam steps with a {BEST['lr_schedule']}-decayed learning rate from "
        f"{ALCHEMICAL['learning_rate']}, U from element properties learned on a fresh "
        f"random subset of {ALCHEMICAL['step_train_size']:,} training crystals per step "
        "(all of them below that) with the regulariser, normalised structure features, "
        "full KRR; the final weights solved on the training set (not refitted on the "
        "optimization set).",
    }
    lines += ["", "Recipes:", ""] + [recipes[k] for k in ("alchemical", "plain", "best")
                                     if k in kinds]  # fmt: skip
    if "alchemical" in kinds:
        lines.append(
            "* **Run order**: one fit at a time, d_J = 4, plain SOAP, d_J = 2, d_J = 1; fit "
            "times are wall times of a 2-core machine that other work shared part of the "
            "time, so compare them only roughly."
        )
    lines += ["", f"Reproduce: `python benchmarks/accuracy/learning_curve.py "
              f"{reproduce_args(results)}--out {out}`."]  # fmt: skip
    text = "\n".join(lines) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    report = {
        "n_test": n_test, "n_opt": n_opt, "steps": steps, "featurize_s": featurize_s,
        "reproduction": {m: {str(n): v for n, v in c.items()} for m, c in REPRODUCTION.items()},
        "rows": results,
    }  # fmt: skip
    atomic_write(json_path(out), lambda tmp: tmp.write_text(json.dumps(report, indent=1)))
    print(f"wrote {out} and {json_path(out)}")


if __name__ == "__main__":
    main()
