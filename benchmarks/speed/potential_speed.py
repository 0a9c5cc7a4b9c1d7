"""Speed and memory of the local potential on MD-sized systems.

A potential fitted on the HEA training frames (energies + forces, U fixed: the speed does
not depend on how U was found) runs energy + forces (+ stress) calls through
``AlchemicalCalculator`` on supercells of a 36-atom test frame, and a short
velocity-Verlet run on each; per size: ms per call, microseconds per atom and step, and
the peak resident memory the calls add. Sizes run small to large, in one process, so
each peak is the largest so far.

    python benchmarks/speed/potential_speed.py [--repeats 1 2 3 4] [--md-steps 10]
        [--out benchmarks/results/potential_speed.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet

from ase_alchemical import AlchemicalCalculator, AlchemicalPotential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import hea_file, hea_frames, write_report

#: calls timed per size and kind
CALLS = 5


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model: AlchemicalPotential, frame, repeat: int, md_steps: int) -> dict:
    atoms = frame.repeat(repeat)
    atoms.calc = AlchemicalCalculator(model)
    before = _peak_mib()
    atoms.get_forces()  # warm-up (and the first peak)
    rows = {"n_atoms": len(atoms)}
    for name, props in (("forces", ["energy", "forces"]),
                        ("stress", ["energy", "forces", "stress"])):  # fmt: skip
        t0 = time.perf_counter()
        for _ in range(CALLS):
            atoms.calc.calculate(atoms, props, ["positions"])
        rows[f"{name}_ms"] = (time.perf_counter() - t0) / CALLS * 1000
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    t0 = time.perf_counter()
    dyn.run(md_steps)
    step_s = (time.perf_counter() - t0) / md_steps
    rows["md_step_ms"] = step_s * 1000
    rows["us_per_atom_step"] = step_s / len(atoms) * 1e6
    rows["peak_mib"] = _peak_mib()
    rows["peak_added_mib"] = rows["peak_mib"] - before
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="the HEA file or the shared data folder")
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--md-steps", type=int, default=20)
    parser.add_argument("--d-j", type=int, default=4)
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    train, opt, test = hea_frames(hea_file(args.data))
    model = AlchemicalPotential(d_j=args.d_j, n_steps=0).fit(train, opt, forces=True)
    frame = next(a for a in test if len(a) == 36)
    results = []
    for repeat in args.repeats:
        r = measure(model, frame, repeat, args.md_steps)
        results.append(r)
        print(f"{r['n_atoms']:6d} atoms  E+F {r['forces_ms']:9.1f} ms  E+F+S "
              f"{r['stress_ms']:9.1f} ms  MD step {r['md_step_ms']:9.1f} ms  "
              f"{r['us_per_atom_step']:7.0f} us/atom/step  peak {r['peak_mib']:7.0f} MiB",
              flush=True)  # fmt: skip
    if args.out:
        _write(Path(args.out), results, args)


def _write(path: Path, results: list[dict], args) -> None:
    from ase_alchemical import __version__

    lines = [
        "# The local potential on MD-sized systems",
        "",
        f"`python benchmarks/speed/potential_speed.py --out {path}` (ase-alchemical {__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{os.environ.get('OMP_NUM_THREADS', '2')}). Model: `AlchemicalPotential(d_j="
        f"{args.d_j}, n_steps=0)` fitted on the 80 HEA training frames with forces (500 "
        "support environments). Systems: a 36-atom HEA test frame repeated n x n x n. "
        f"Calls through `AlchemicalCalculator` ({CALLS} repeats each); MD: "
        f"{args.md_steps} velocity-Verlet steps of 1 fs from 300 K. Peak: the process's "
        "resident peak after the size (sizes run small to large).",
        "",
        "| atoms | energy + forces (ms) | + stress (ms) | MD step (ms) | µs per atom and step "
        "| peak (MiB) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['n_atoms']} | {r['forces_ms']:.0f} | {r['stress_ms']:.0f} | "
            f"{r['md_step_ms']:.0f} | {r['us_per_atom_step']:.0f} | {r['peak_mib']:.0f} |"
        )
    write_report(path, lines, results)


if __name__ == "__main__":
    main()
