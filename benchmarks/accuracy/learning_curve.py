"""Learning curves on the elpasolites: test MAE vs n_train for several d_J, side by side.

Every fit shares one fixed held-out test set (1,000 crystals) and one fixed optimization
set; training sets are nested. Species-pair spectra are computed once for all crystals
and reused, so the times below are *fit* times (U optimization + final solve) on top of
one featurization, which is timed separately.

    python benchmarks/accuracy/learning_curve.py                 # full: n_train up to 6,000
    python benchmarks/accuracy/learning_curve.py --quick         # minutes: n_train up to 1,000
    python benchmarks/accuracy/learning_curve.py --out benchmarks/results/learning_curve.md
    python benchmarks/accuracy/learning_curve.py --d-j --no-plain-soap --best --device cuda \
        --out best_curve.md         # the best model's recipe only (meant for a GPU)
"""

from __future__ import annotations

import argparse
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
#: model's recipe (full KRR, zeta 3, U learned on 2,000-crystal subsets per step).
ALCHEMICAL = {
    "zeta": 3,
    "solver": "full",
    "learning_rate": 0.1,
    "step_train_size": 2000,
    "lr_schedule": "constant",
    "rotation": False,
}
#: (zeta, regulariser) grid for plain SOAP, selected on the optimization set.
PLAIN_SOAP_GRID = [(1, 1e-4), (1, 1e-3), (2, 1e-3), (3, 1e-3)]
#: The shipped best model's recipe (``elpasolite-dj10-multiscale``, chosen by
#: ``model_search.py``), with its weights on the training set as every other row here.
BEST = {"d_j": 10, "cutoffs": (5.0, 7.0), "n_steps": 500, "lr_schedule": "cosine"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--quick", action="store_true", help="small sizes, few steps")
    parser.add_argument("--d-j", type=int, nargs="*", default=[4, 2, 1], help="none: no such rows")
    parser.add_argument("--n-train", type=int, nargs="+", default=None)
    parser.add_argument("--n-opt", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--solver", choices=["full", "sparse"], default=ALCHEMICAL["solver"])
    parser.add_argument("--zeta", type=int, default=ALCHEMICAL["zeta"])
    parser.add_argument(
        "--no-plain-soap", action="store_true", help="skip plain 39-element SOAP (slowest)"
    )
    parser.add_argument(
        "--best", action="store_true",
        help="also the best model's recipe (d_J 10, 5 + 7 A, 500 cosine steps): about 7 s "
        "per U step on 2 CPU cores even at 500 crystals, so meant for a GPU",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="torch device of the fits, e.g. cuda")
    parser.add_argument("--out", default=None, help="write the table (markdown) and JSON here")
    args = parser.parse_args()

    n_train_list = args.n_train or ([500, 1000] if args.quick else [500, 1000, 3000, 6000])
    steps = args.steps or (20 if args.quick else 250)
    torch.manual_seed(0)
    frames = load_elpasolites(args.data)
    for i, atoms in enumerate(frames):
        atoms.info["row"] = i
    t0 = time.perf_counter()
    spectrum = compute_pair_spectrum(frames, progress=True)
    featurize_s = time.perf_counter() - t0

    n_test = 1000
    _, opt, test = split(frames, max(n_train_list), args.n_opt, n_test, seed=0)
    rows = lambda subset: [a.info["row"] for a in subset]  # noqa: E731
    y_test = per_atom_energies(test)
    results = []
    header = f"{'model':<22}{'n_train':>8}{'MAE eV/atom':>13}{'RMSE':>9}{'fit s':>8}"
    print(f"device: {device_name(torch.device(args.device))}")
    print(header)
    print("-" * len(header))

    def report(name, d_j, n_train, model, fit_s, features=None):
        features = spectrum if features is None else features
        with torch.no_grad():
            pred = model.predict_from_spectrum(features[rows(test)]).cpu().numpy()
        err = pred - y_test
        row = {
            "model": name, "d_j": d_j, "n_train": n_train, "n_opt": args.n_opt,
            "n_test": n_test, "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())), "fit_s": fit_s,
            "best_step": getattr(model, "best_step_", None), "regularizer": model.regularizer_,
            "params": {k: v for k, v in model.get_params().items() if k != "hypers"},
        }  # fmt: skip
        results.append(row)
        if args.out:  # after every fit: an interrupted run keeps what it measured
            write(args.out, results, n_test, args.n_opt, steps, featurize_s)
        print(
            f"{name:<22}{n_train:>8}{row['mae']:>13.4f}{row['rmse']:>9.4f}{fit_s:>8.1f}",
            flush=True,
        )

    def alchemical_curve(d_j: int) -> None:
        for n_train in n_train_list:
            train, _, _ = split(frames, n_train, args.n_opt, n_test, seed=0)
            settings = {**ALCHEMICAL, "solver": args.solver, "zeta": args.zeta}
            model = AlchemicalKRR(
                d_j=d_j, n_steps=steps, progress=False, device=args.device, **settings
            )
            t0 = time.perf_counter()
            model.fit(train, opt, spectrum[rows(train)], spectrum[rows(opt)])
            report(f"alchemical d_J={d_j}", d_j, n_train, model, elapsed_s(t0, args.device))

    def best_curve() -> None:
        hypers = multiscale_hypers(BEST["cutoffs"])
        t0 = time.perf_counter()
        multi = compute_pair_spectrum(frames, hypers, progress=True)
        print(f"featurization of all {len(frames)} crystals at 5 + 7 A: "
              f"{time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip
        settings = {**ALCHEMICAL, "zeta": 3, "solver": "full"}
        for n_train in n_train_list:
            train, _, _ = split(frames, n_train, args.n_opt, n_test, seed=0)
            n_steps = args.steps or (20 if args.quick else BEST["n_steps"])
            model = AlchemicalKRR(
                d_j=BEST["d_j"], hypers=hypers, lr_schedule=BEST["lr_schedule"],
                n_steps=n_steps, progress=False, device=args.device, **settings,
            )  # fmt: skip
            t0 = time.perf_counter()
            model.fit(train, opt, multi[rows(train)], multi[rows(opt)])
            fit_s = elapsed_s(t0, args.device)
            name = f"best recipe ({n_steps} steps)"
            report(name, BEST["d_j"], n_train, model, fit_s, multi)

    def plain_soap_curve() -> None:
        # plain multi-species SOAP: U = identity (39 x 39), nothing learned but the weights;
        # zeta and the regulariser are chosen on the optimization set, never on the test set
        y_opt = per_atom_energies(opt)
        for n_train in n_train_list:
            train, _, _ = split(frames, n_train, args.n_opt, n_test, seed=0)
            t0 = time.perf_counter()
            best = (np.inf, None)
            for zeta, reg in PLAIN_SOAP_GRID:
                model = AlchemicalKRR(
                    d_j=None, init="identity", n_steps=0, zeta=zeta, regularizer=reg,
                    learn_regularizer=False, solver="full",
                ).fit(train, train_spectrum=spectrum[rows(train)])  # fmt: skip
                with torch.no_grad():
                    pred = model.predict_from_spectrum(spectrum[rows(opt)]).cpu().numpy()
                opt_mae = float(np.abs(pred - y_opt).mean())
                if opt_mae < best[0]:
                    best = (opt_mae, model)
            report("plain SOAP (39 el.)", 39, n_train, best[1], time.perf_counter() - t0)

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


def write(out: str, results: list, n_test: int, n_opt: int, steps: int, featurize_s: float):
    """Markdown table and JSON of the rows so far, written atomically."""
    lines = [
        f"# Learning curve (ase-alchemical {__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads)",
        "",
        f"Fixed test set of {n_test} crystals, fixed optimization set of {n_opt}, "
        f"{steps} Adam steps; featurization of all crystals {featurize_s:.1f} s.",
        "",
        "| model | n_train | test MAE (eV/atom) | test RMSE | fit time (s) |",
        "|---|---:|---:|---:|---:|",
    ] + [
        f"| {r['model']} | {r['n_train']} | {r['mae']:.4f} | {r['rmse']:.4f} | {r['fit_s']:.0f} |"
        for r in results
    ]
    text = "\n".join(lines) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    json_out = str(out).rsplit(".", 1)[0] + ".json"
    atomic_write(json_out, lambda tmp: tmp.write_text(json.dumps(results, indent=1)))
    print(f"wrote {out} and {json_out}")


if __name__ == "__main__":
    main()
