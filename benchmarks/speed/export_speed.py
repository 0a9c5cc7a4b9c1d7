"""The exported metatomic model beside the native calculator: one call, and MD steps/s.

Side by side in one run, each model once as ``AlchemicalCalculator`` and once exported
and run by ``metatomic_ase.MetatomicCalculator`` (float64, CPU):

* the shipped default structure model on a rattled K2NaAlF6 cell (10 atoms);
* a local potential (d_J = 4, default hypers, 500 support environments) fitted to the
  energies and forces of the HEA training frames, on a 36-atom HEA frame and on its
  2 x 2 x 2 supercell (288 atoms).

For each: the median time of an energy call and of an energy + forces call (positions
moved a little before every call, so nothing is cached), then velocity-Verlet MD steps
per second (ASE, 1 fs). Both calculators must agree to 1e-8 eV.

    python benchmarks/speed/export_speed.py --out benchmarks/results/export_speed.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from metatomic_ase import MetatomicCalculator

from ase_alchemical import AlchemicalCalculator, AlchemicalPotential, __version__
from ase_alchemical.data.datasets import build_elpasolite
from ase_alchemical.data.files import read_structures
from ase_alchemical.export import export_metatomic
from ase_alchemical.local.training import split_by_index
from ase_alchemical.registry import resolve_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import write_report


def _median_ms(calc, atoms, properties, repeat: int) -> float:
    rng = np.random.default_rng(0)
    times = []
    for i in range(repeat + 1):
        probe = atoms.copy()
        probe.positions += rng.normal(0, 1e-3, probe.positions.shape)
        probe.calc = calc
        t0 = time.perf_counter()
        for prop in properties:
            getattr(probe, prop)()
        if i:  # the first call warms up (and loads lazily built state)
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _md_steps_per_s(calc, atoms, steps: int) -> float:
    atoms = atoms.copy()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.RandomState(1))
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    dyn.run(1)
    t0 = time.perf_counter()
    dyn.run(steps)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="folder holding hea/hea25_bulk_100.xyz")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--md-steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = Path(args.data or os.environ["ASE_ALCHEMICAL_DATA"])

    frames = read_structures(data / "hea" / "hea25_bulk_100.xyz", forces=True)
    train, held_out, test = split_by_index(frames)
    t0 = time.perf_counter()
    potential = AlchemicalPotential(d_j=4, n_steps=0).fit(train, held_out, forces=True)
    fit_s = time.perf_counter() - t0
    known = set(potential.species)
    hea = next(f for f in test + held_out if set(f.numbers) <= known).copy()
    hea.calc = None
    crystal = build_elpasolite("Al", "Na", "K", "F")
    crystal.rattle(0.03, seed=1)
    cases = [
        ("default structure model, K2NaAlF6", resolve_model(None, "cpu"), crystal),
        (f"local potential, HEA ({len(hea)} atoms)", potential, hea),
        (f"local potential, HEA 2x2x2 ({8 * len(hea)} atoms)", potential, hea * (2, 2, 2)),
    ]
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, model, atoms) in enumerate(cases):
            path = export_metatomic(model, Path(tmp) / f"model{k}.pt")
            native = AlchemicalCalculator(model)
            exported = MetatomicCalculator(str(path))
            a, b = atoms.copy(), atoms.copy()
            a.calc, b.calc = native, exported
            deviation = abs(a.get_potential_energy() - b.get_potential_energy())
            assert deviation < 1e-8, (label, deviation)
            entry = {"case": label, "n_atoms": len(atoms), "deviation_ev": deviation}
            for name, calc in (("native", native), ("exported", exported)):
                entry[f"{name}_energy_ms"] = _median_ms(
                    calc, atoms, ["get_potential_energy"], args.repeat
                )
                entry[f"{name}_forces_ms"] = _median_ms(
                    calc, atoms, ["get_potential_energy", "get_forces"], args.repeat
                )
                entry[f"{name}_md_steps_per_s"] = _md_steps_per_s(calc, atoms, args.md_steps)
            print(entry, flush=True)
            results.append(entry)
            rows.append(
                f"| {label} | {entry['native_energy_ms']:.1f} | {entry['exported_energy_ms']:.1f}"
                f" | {entry['native_forces_ms']:.1f} | {entry['exported_forces_ms']:.1f} | "
                f"{entry['native_md_steps_per_s']:.1f} | {entry['exported_md_steps_per_s']:.1f} |"
            )
    text = [
        "# The exported metatomic model beside the native calculator",
        "",
        f"`python benchmarks/speed/export_speed.py` (ase-alchemical {__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} on "
        f"{torch.get_num_threads()} threads, float64). Medians of {args.repeat} calls, "
        f"positions moved before each; MD: {args.md_steps} velocity-Verlet steps of 1 fs "
        "in ASE. The local potential (d_J = 4, default hypers, U from its initialisation: "
        f"a timing model, not a tuned one) was fitted to the {len(train)} HEA training "
        f"frames in {fit_s:.0f} s. Native and exported energies agreed to "
        f"{max(r['deviation_ev'] for r in results):.1e} eV.",
        "",
        "| model, structure | energy, native (ms) | energy, exported (ms) "
        "| energy + forces, native (ms) | energy + forces, exported (ms) "
        "| MD steps/s, native | MD steps/s, exported |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "metatomic-ase computes the forces and the stress with every energy "
        "(`do_gradients_with_energy`), and the native calculator does the same for a "
        "local potential: for those, an energy call is an energy + forces call. The "
        "exported model's backward pass through featomic-torch is part of every exported "
        f"column; on the 10-atom cell the whole call takes {results[0]['exported_forces_ms']:.0f}"
        " ms.",
    ]
    print("\n".join(text))
    if args.out is not None:
        write_report(args.out, text, results)


if __name__ == "__main__":
    main()
