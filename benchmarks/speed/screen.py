"""Screen the elpasolite space with the shipped model and check it against model.predict.

Runs ``screen_elpasolites`` (the ``ase-alchemical screen`` command) over all the model's
elements (``--quick``: 12 of them), timing it, then finds the 10,590 DFT crystals in the
output and compares the screened energies with ``model.predict`` on the same crystals
built one by one: where the two A/B orders give the same prototype, the values must
agree; where they differ, the screen keeps the lower of the two predictions.

    python benchmarks/speed/screen.py --quick
    python benchmarks/speed/screen.py --out benchmarks/results/screen.md
    python benchmarks/speed/screen.py --quick --model other.pt   # another model file
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ase_alchemical import AlchemicalCalculator, __version__
from ase_alchemical.core.fileio import atomic_write
from ase_alchemical.data.datasets import build_elpasolite, load_elpasolite_table
from ase_alchemical.structure.screening import screen_elpasolites
from ase_alchemical.structure.training import device_name

QUICK_ELEMENTS = ["Li", "Na", "K", "Cs", "Mg", "Ba", "Al", "Tl", "Bi", "F", "Cl", "I"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data file/folder (else $ASE_ALCHEMICAL_DATA)")
    parser.add_argument("--quick", action="store_true", help="12 elements")
    parser.add_argument("--model", default=None, help="model file or name (default: shipped)")
    parser.add_argument("--no-uncertainty", action="store_true")
    parser.add_argument("--keep", default=None, help="keep the screened CSV at this path")
    parser.add_argument("--out", default=None, help="write the markdown report here")
    parser.add_argument("--device", default="cpu", help="torch device of the model, e.g. cuda")
    args = parser.parse_args()

    t0 = time.perf_counter()
    model = AlchemicalCalculator(args.model, device=args.device).model
    load_s = time.perf_counter() - t0
    where = device_name(model.torch_device)
    print(f"device: {where}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    elements = QUICK_ELEMENTS if args.quick else list(model.compression_.symbols)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / "candidates.csv")
        result = screen_elpasolites(
            model, path, elements, uncertainty=not args.no_uncertainty, overwrite=True
        )
        with open(path, newline="") as f:
            screened = {
                (min(r["A"], r["B"]), max(r["A"], r["B"]), r["C"], r["D"]): r
                for r in csv.DictReader(f)
            }
    print(
        f"{result['n_compositions']} compositions, {result['n_geometries']} geometries, "
        f"{result['n_structures_this_call']} structures in {result['seconds']:.0f} s "
        f"({result['throughput']:.0f}/s); model load {load_s:.1f} s; "
        f"{len(model.support_)} support structures"
    )

    sites, energies = load_elpasolite_table(args.data)
    known = [(s, e) for s, e in zip(sites, energies) if set(s) <= set(elements)]
    rows = [screened[(min(s[0], s[1]), max(s[0], s[1]), s[2], s[3])] for s, _ in known]
    e_screen = np.array([float(r["energy_ev_per_atom"]) for r in rows])
    t0 = time.perf_counter()
    e_data = model.predict_per_atom([build_elpasolite(*s) for s, _ in known])
    e_swap = model.predict_per_atom([build_elpasolite(s[1], s[0], s[2], s[3]) for s, _ in known])
    predict_s = time.perf_counter() - t0
    same = np.abs(e_data - e_swap) < 1e-12
    d_same = np.abs(e_screen[same] - e_data[same]).max(initial=0.0)
    d_min = np.abs(e_screen - np.minimum(e_data, e_swap)).max(initial=0.0)
    dft = np.array([e for _, e in known])
    mae_screen = float(np.abs(e_screen - dft).mean()) if known else float("nan")
    print(
        f"{len(known)} known crystals in the screen: {same.sum()} with one prototype, "
        f"max |screen - predict| {d_same:.1e}; all: max |screen - min over A/B orders| "
        f"{d_min:.1e} eV/atom (CSV rounds to 1e-6); model.predict one by one took "
        f"{predict_s:.0f} s for 2 x {len(known)}"
    )
    print(f"MAE of the screened energies against DFT on these crystals: {mae_screen:.4f}")
    best = result["best"][:10]
    for r in best:
        print(f"  {r['A']}{r['B']}{r['C']}2{r['D']}6 {r['energy_ev_per_atom']}")
    if args.out:
        sigma = "std_ev_per_atom" in best[0]
        lines = [
            f"# Screening the elpasolite space (ase-alchemical {__version__}, "
            f"{platform.machine()}, {torch.get_num_threads()} threads, {where})",
            "",
            f"`python benchmarks/speed/screen.py{' --quick' if args.quick else ''}` with the "
            f"{'shipped default' if args.model is None else args.model} model "
            f"({len(model.support_):,} support structures) on {len(elements)} elements "
            f"({'with' if sigma else 'without'} uncertainties).",
            "",
            "| | |",
            "|---|---:|",
            f"| compositions (A/B pairs once, four different elements) | "
            f"{result['n_compositions']:,} |",
            f"| distinct prototype geometries (featomic calls) | {result['n_geometries']:,} |",
            f"| structures predicted (both A/B orders where they differ) | "
            f"{result['n_structures_this_call']:,} |",
            f"| wall time | {result['seconds']:.0f} s |",
            f"| throughput | {result['throughput']:.0f} structures/s |",
            f"| known DFT crystals found in the output | {len(known):,} |",
            f"| max deviation from `model.predict` (one prototype: {same.sum():,}) | "
            f"{d_same:.1e} eV/atom |",
            f"| max deviation from the lower of both A/B orders (all) | {d_min:.1e} eV/atom |",
            f"| MAE against DFT on the known crystals (mostly training data) | "
            f"{mae_screen:.4f} eV/atom |",
            "",
            "Lowest predicted formation energies (eV/atom; prototype geometry):",
            "",
            "| crystal | A | B | C | D | energy" + (" | sigma" if sigma else "") + " |",
            "|---|---|---|---|---|---:|" + ("---:|" if sigma else ""),
        ] + [
            f"| {r['A']}{r['B']}{r['C']}2{r['D']}6 | {r['A']} | {r['B']} | {r['C']} | {r['D']} "
            f"| {r['energy_ev_per_atom']}" + (f" | {r['std_ev_per_atom']}" if sigma else "") + " |"
            for r in best
        ]
        text = "\n".join(lines) + "\n"
        atomic_write(args.out, lambda tmp: tmp.write_text(text))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
