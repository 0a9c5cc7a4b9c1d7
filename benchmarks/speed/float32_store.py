"""float32 in place of float64: the support features alone, or the whole calculator.

Side by side in one run, on the shipped default model and its held-out test crystals:

* **float64** — the shipped calculator (the reference);
* **float32 store** — the support features kept in float32 and the kernel rows computed
  in float32 (the bytes a call reads halve), everything else in float64;
* **float32 calculator** — ``AlchemicalCalculator(dtype="float32")``: features, kernel
  and weights in float32.

For each: the largest and mean deviation from float64 over the test set, the test MAE
against DFT, and the time of one kernel row (one structure against every support
structure) and, for the calculators, of one energy call (median of ``--repeat``).

    python benchmarks/speed/float32_store.py --out benchmarks/results/float32_store.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ase_alchemical import AlchemicalCalculator, __version__
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import build_elpasolite, load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import write_report


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="elpasolite data folder")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    calc64 = AlchemicalCalculator(device="cpu")
    calc32 = AlchemicalCalculator(device="cpu", dtype="float32")
    model, model32 = calc64.model, calc32.model
    meta = model.metadata_
    frames = load_elpasolites(args.data)
    _, _, test = split(frames, meta["n_train"], meta["n_opt"], meta["n_test"], meta["split_seed"])
    dft = per_atom_energies(test)

    state, rep, kernel = model.state_, model.representation_, model.kernel_
    support64 = state.support_features
    support32 = support64.to(torch.float32)
    projected = rep.project(model.pair_spectrum(test, progress=False))
    with torch.no_grad():
        k64 = rep.map_chunks(projected, lambda x: kernel(x, support64))
        k32 = rep.map_chunks(projected, lambda x: kernel(x.to(torch.float32), support32))
        e64 = state.targets.inverse(k64 @ state.weights).numpy()
        e_store = state.targets.inverse(k32.to(torch.float64) @ state.weights).numpy()
    e_calc32 = np.asarray(model32.predict_per_atom(test), dtype=np.float64)

    x64 = rep.map_chunks(projected[:1], lambda x: x)
    x32 = x64.to(torch.float32)
    with torch.no_grad():
        row64 = _median_ms(lambda: kernel(x64, support64) @ state.weights, args.repeat)
        row32 = _median_ms(
            lambda: kernel(x32, support32).to(torch.float64) @ state.weights, args.repeat
        )
    atoms = build_elpasolite("Bi", "Na", "Cs", "Cl")

    def call(calc):
        def run():
            calc.results.clear()
            calc.atoms = None
            calc.get_potential_energy(atoms)

        return run

    call64 = _median_ms(call(calc64), args.repeat)
    call32 = _median_ms(call(calc32), args.repeat)

    def row(name, e, row_ms, call_ms):
        dev = np.abs(e - e64)
        mae = np.abs(e - dft).mean()
        call_text = "—" if call_ms is None else f"{call_ms:.1f}"
        return (f"| {name} | {dev.max():.1e} | {dev.mean():.1e} | {mae:.4f} | "
                f"{row_ms:.2f} | {call_text} |")  # fmt: skip

    lines = [
        "| variant | max deviation from float64 (eV/atom) | mean deviation (eV/atom) "
        "| test MAE (eV/atom) | kernel row (ms) | energy call (ms) |",
        "|---|---:|---:|---:|---:|---:|",
        row("float64 (shipped)", e64, row64, call64),
        row("float32 support features and kernel rows", e_store, row32, None),
        row('float32 calculator (`dtype="float32"`)', e_calc32, row32, call32),
    ]
    n_support, width = support64.shape
    text = [
        "# float32 in place of float64 in the calculator",
        "",
        f"`python benchmarks/speed/float32_store.py` (ase-alchemical {__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} on "
        f"{torch.get_num_threads()} threads): the shipped default model on its "
        f"{len(test):,} held-out test crystals; a kernel row reads the {n_support:,} x "
        f"{width:,} support features ({support64.numel() * 8 / 1e6:.0f} MB in float64, "
        f"{support64.numel() * 4 / 1e6:.0f} MB in float32). Times are medians of "
        f"{args.repeat} calls (an energy call: Cs2NaBiCl6, computed anew each time).",
        "",
        *lines,
        "",
        f"float32 halves the kernel row ({row64:.2f} -> {row32:.2f} ms): it reads half "
        f"the bytes. An energy call gets {call64 - call32:.1f} ms shorter ({call64:.1f} -> "
        f"{call32:.1f} ms), at deviations from float64 of at most "
        f"{np.abs(e_store - e64).max():.1e} eV/atom (store) and "
        f"{np.abs(e_calc32 - e64).max():.1e} eV/atom (calculator), over "
        f"{np.abs(e64 - dft).mean() / np.abs(e_store - e64).max():.0f} times below the "
        f"test MAE. What remains of a float32 energy call beyond its kernel row, "
        f"{call32 - row32:.1f} ms, is featomic's expansion and the per-call work around "
        "it, which the dtype does not change.",
    ]
    print("\n".join(text))
    if args.out is not None:
        results = {
            "max_dev_store": float(np.abs(e_store - e64).max()),
            "max_dev_calc32": float(np.abs(e_calc32 - e64).max()),
            "mae64": float(np.abs(e64 - dft).mean()),
            "row64_ms": row64, "row32_ms": row32, "call64_ms": call64, "call32_ms": call32,
        }  # fmt: skip
        write_report(args.out, text, results)


if __name__ == "__main__":
    main()
