"""The periodic table in U: full fits at d_J = 2, 3, 4 from the element start and from
random starts, their learned U matrices kept for the book.

Every fit uses the shipped default model's recipe (``AlchemicalKRR()`` defaults: zeta 3
(``"auto"`` at 6,000 training crystals),
full KRR, 250 cosine-decayed Adam steps on a random subset of 2,000 training crystals per
step, the regulariser learned) on the learning curve's split: 6,000 training and 2,000
optimization crystals, and its fixed test set of 1,000. Only ``d_j``, ``init`` and
``seed`` change between fits. The U of each fit (39 x d_J, rows in the order of
``species``) is written to the JSON file after every fit, so an interrupted run keeps
what it finished and a rerun skips it.

Run: ``python benchmarks/studies/periodic_table.py --out benchmarks/results/periodic_table.md``
(12 fits of 2 to 8 minutes each on two CPU cores with 120 steps, ``--steps 120``;
``--device cuda`` on a GPU).
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
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import elapsed_s

N_TRAIN, N_OPT, N_TEST = 6000, 2000, 1000


def fits(d_js: list[int], seeds: list[int]) -> list[dict]:
    """The fits in the order they run: every d_J from the element start first, then one
    random seed at a time over every d_J (an interrupted run has whole controls)."""
    order = [{"d_j": d, "init": "elements", "seed": 0} for d in d_js]
    order += [{"d_j": d, "init": "random", "seed": s} for s in seeds for d in d_js]
    return order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--d-j", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the random starts")  # fmt: skip
    parser.add_argument("--steps", type=int, default=None, help="default: the model's (250)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="markdown table; the JSON goes beside it")
    args = parser.parse_args()

    out_json = Path(args.out).with_suffix(".json")
    done = json.loads(out_json.read_text())["fits"] if out_json.is_file() else []
    key = lambda f: (f["d_j"], f["init"], f["seed"])  # noqa: E731
    finished = {key(f) for f in done}

    torch.manual_seed(0)
    frames = load_elpasolites(args.data)
    train, opt, test = split(frames, N_TRAIN, N_OPT, N_TEST, seed=0)
    t0 = time.perf_counter()
    spectra = [compute_pair_spectrum(s) for s in (train, opt, test)]
    print(f"featurized {len(frames)} crystals in {time.perf_counter() - t0:.0f} s", flush=True)
    y_test = per_atom_energies(test)
    steps = args.steps or AlchemicalKRR().n_steps
    for fit in fits(args.d_j, args.seeds):
        if key(fit) in finished:
            continue
        model = AlchemicalKRR(
            d_j=fit["d_j"], init=fit["init"], seed=fit["seed"], n_steps=steps,
            device=args.device,
        )  # fmt: skip
        t0 = time.perf_counter()
        model.fit(train, opt, train_spectrum=spectra[0], opt_spectrum=spectra[1])
        fit_s = elapsed_s(t0, args.device)
        with torch.no_grad():
            pred = model.predict_from_spectrum(spectra[2]).cpu().numpy()
        history = model.loss_history_
        record = dict(fit)
        record.update(
            test_mae=float(np.abs(pred - y_test).mean()),
            opt_rmse_start=history[0]["opt_rmse"],
            opt_rmse_best=min(h["opt_rmse"] for h in history),
            best_step=int(model.best_step_),
            n_steps=len(history),
            fit_s=round(fit_s, 1),
            U=np.round(np.asarray(model.U, dtype=float), 8).tolist(),
        )  # fmt: skip
        done.append(record)
        write(args.out, out_json, done, model.species, steps, args.device)
        print(
            f"d_J {fit['d_j']} {fit['init']:>8} seed {fit['seed']}: test MAE "
            f"{record['test_mae']:.4f} eV/atom, optimization RMSE {record['opt_rmse_start']:.3f}"
            f" -> {record['opt_rmse_best']:.3f}, {fit_s:.0f} s",
            flush=True,
        )


def write(out: str, out_json: Path, done: list[dict], species, steps: int, device: str) -> None:
    """The JSON (with the U matrices) and the markdown table, both atomically."""
    payload = {
        "species": [int(z) for z in species], "n_train": N_TRAIN, "n_opt": N_OPT,
        "n_test": N_TEST, "n_steps": steps, "package": __version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {device}",
        "fits": done,
    }  # fmt: skip
    atomic_write(out_json, lambda tmp: Path(tmp).write_text(json.dumps(payload)))
    lines = [
        f"# U at full size: d_J = 2, 3, 4 from the element start and from random starts "
        f"(ase-alchemical {__version__}, {payload['machine']})",
        "",
        f"{N_TRAIN:,} training, {N_OPT:,} optimization and {N_TEST:,} test crystals (the "
        f"learning curve's split, on the hard-sphere prototype geometry); `AlchemicalKRR()` "
        f"defaults with {steps} steps; only d_J, the start and its seed change.",
        "",
        "| d_J | start | seed | test MAE (eV/atom) | optimization RMSE, start -> best | fit (s) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for f in done:
        lines.append(
            f"| {f['d_j']} | {f['init']} | {f['seed']} | {f['test_mae']:.4f} | "
            f"{f['opt_rmse_start']:.3f} -> {f['opt_rmse_best']:.3f} | {f['fit_s']:.0f} |"
        )
    steps_option = "" if steps == AlchemicalKRR().n_steps else f" --steps {steps}"
    lines += [
        "",
        "Fit times are wall times on a machine shared with other work: indicative only.",
        "",
        f"Command: `python benchmarks/studies/periodic_table.py{steps_option} --out {out}`",
        "",
    ]
    atomic_write(out, lambda tmp: Path(tmp).write_text("\n".join(lines)))


if __name__ == "__main__":
    main()
