"""The local potential against its own reference: elpasolites labelled with GFN1-xTB.

Two stages, both resumable from the label cache (outside the repository):

    python benchmarks/accuracy/potential_xtb.py label [--n 300] [--dir DIR]
    python benchmarks/accuracy/potential_xtb.py evaluate [--n 300] [--dir DIR] \
        [--out benchmarks/results/potential_xtb.md]

``label`` takes the first ``n`` compositions of a fixed random permutation of the 10,590
elpasolites (so a larger ``n`` extends a smaller run) and labels, for each, the prototype
crystal, two frames of its GFN1-xTB relaxation (positions and cell), the relaxed crystal,
three rattled copies (0.08 Å) and three strained ones (±4 %), with
:func:`ase_alchemical.data.reference_labels.label_elpasolites` (tblite).

``evaluate`` splits by *composition* (composition ``i % 10 == 9`` of the permutation:
test, ``== 8``: held-out, the rest training: no test crystal's composition is seen in
training), fits the local potential (energies only, and energies + forces + stress), and
reports side by side in one run: test errors of energies, forces and stress, a learning
curve, and the physics checks against the reference itself on test compositions: the
relaxed lattice constant, the bulk modulus of an equation of state, the Gamma-point
phonon frequencies, a short NVE run, and the time of an energy + forces call of the
potential against tblite's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from ase.calculators.calculator import CalculationFailed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import per_element_baseline

HERE = Path(__file__).resolve().parent


def compositions(n: int) -> list[tuple[str, str, str, str]]:
    """The first ``n`` elpasolite compositions of a fixed random permutation."""
    from ase_alchemical.data.datasets import load_elpasolite_table

    sites, _ = load_elpasolite_table()
    order = np.random.default_rng(0).permutation(len(sites))
    return [tuple(sites[i]) for i in order[:n]]


def label(n: int, directory: Path, child: bool = False, max_restarts: int = 100) -> None:
    """Label the first ``n`` compositions, in a child process that is started again
    after a crash of the method (the crashed composition is then recorded as failed)."""
    import subprocess

    from ase_alchemical.data.reference_labels import label_elpasolites

    if child:
        label_elpasolites(compositions(n), directory)
        return
    command = [sys.executable, __file__, "label", "--n", str(n), "--dir", str(directory),
               "--child"]  # fmt: skip
    for _ in range(max_restarts):
        if subprocess.run(command).returncode == 0:
            return
        print("the labelling process died; resuming past the composition it was on", flush=True)
    raise SystemExit(f"labelling died {max_restarts} times; see {directory / 'failed'}")


# ------------------------------------------------------------------ physics checks
def conventional_a(atoms) -> float:
    """Cubic lattice constant of a 10-atom primitive fcc cell: (4 V)^(1/3)."""
    return float((4.0 * atoms.get_volume()) ** (1.0 / 3.0))


def relax(atoms, calc, fmax: float = 0.01, steps: int = 300):
    """Positions and cell relaxed with ``calc`` (FrechetCellFilter + BFGS); the energies
    along the way and whether it converged."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calc
    energies = []
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    converged = False
    for done in opt.irun(fmax=fmax, steps=steps):
        converged = done
        energies.append(atoms.get_potential_energy())
    return atoms, np.array(energies), bool(converged)


def bulk_modulus(atoms, calc, strain: float = 0.04, points: int = 7) -> float:
    """Birch-Murnaghan bulk modulus (GPa) from isotropic scalings of ``atoms`` (fixed
    fractional coordinates) over +-``strain`` in volume."""
    from ase.eos import EquationOfState
    from ase.units import GPa

    volumes, energies = [], []
    for s in np.linspace(1.0 - strain, 1.0 + strain, points):
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * s ** (1.0 / 3.0), scale_atoms=True)
        scaled.calc = calc
        volumes.append(scaled.get_volume())
        energies.append(scaled.get_potential_energy())
    _, _, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return float(b / GPa)


def gamma_frequencies(atoms, calc, delta: float = 0.01) -> np.ndarray:
    """Gamma-point phonon frequencies (THz, imaginary as negative) of the periodic cell
    by central finite differences of the forces, the 3 acoustic modes included."""
    from ase.units import _amu, _e

    n = len(atoms)
    hessian = np.zeros((3 * n, 3 * n))
    for i in range(n):
        for c in range(3):
            forces = []
            for sign in (1, -1):
                disp = atoms.copy()
                disp.positions[i, c] += sign * delta
                disp.calc = calc
                forces.append(disp.get_forces().ravel())
            hessian[3 * i + c] = -(forces[0] - forces[1]) / (2 * delta)
    hessian = 0.5 * (hessian + hessian.T)
    m = np.repeat(atoms.get_masses(), 3)
    eig = np.linalg.eigvalsh(hessian / np.sqrt(np.outer(m, m)))  # eV / (Å^2 amu)
    omega = np.sqrt(np.abs(eig) * _e / _amu) * 1e10  # rad/s
    return np.sort(np.sign(eig) * omega / (2 * np.pi * 1e12))


def nve(atoms, calc, steps: int, temperature: float = 300.0, dt_fs: float = 1.0, seed=0):
    """Velocity Verlet from Maxwell-Boltzmann velocities: total energy per atom (eV) per
    step, and the frames every 10 steps."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    totals, frames = [], []
    for step in range(steps + 1):
        if step:
            dyn.run(1)
        totals.append(atoms.get_total_energy() / len(atoms))
        if step % 10 == 0:
            frame = atoms.copy()  # with the method's forces there (a copy drops the calculator)
            frame.arrays["reference_forces"] = atoms.get_forces()
            frames.append(frame)
    return np.array(totals), frames


def call_ms(atoms, calc, repeats: int = 5) -> float:
    """Milliseconds of one energy + forces call on a fresh geometry."""
    times = []
    for k in range(repeats + 1):
        probe = atoms.copy()
        probe.positions[0, 0] += 1e-3 * (k + 1)
        probe.calc = calc
        t0 = time.perf_counter()
        probe.get_potential_energy()
        probe.get_forces()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]) * 1000)


# ------------------------------------------------------------------ evaluation
def split_by_composition(data: dict, comps: list) -> tuple[list, list, list, list]:
    """(train, held-out, test) frames and the test compositions: composition ``i`` of the
    permutation is test when ``i % 10 == 9``, held-out when ``i % 10 == 8``."""
    train, opt, test, test_comps = [], [], [], []
    for i, sites in enumerate(comps):
        frames = data.get(tuple(sites))
        if frames is None:
            continue
        if i % 10 == 9:
            test += frames
            test_comps.append(tuple(sites))
        elif i % 10 == 8:
            opt += frames
        else:
            train += frames
    return train, opt, test, test_comps


#: name -> (AlchemicalPotential parameters, fit forces, fit stress, share of the
#: training compositions)
ROWS = {
    "d_J = 4, energies, U fixed": (dict(d_j=4, n_steps=0), False, False, 1.0),
    "d_J = 4, energies + forces + stress, U fixed, 1/4 of training": (
        dict(d_j=4, n_steps=0), True, True, 0.25),
    "d_J = 4, energies + forces + stress, U fixed, 1/2 of training": (
        dict(d_j=4, n_steps=0), True, True, 0.5),
    "d_J = 4, energies + forces + stress, U fixed": (dict(d_j=4, n_steps=0), True, True, 1.0),
}  # fmt: skip
#: Rows beyond this machine's time in one run (U learned through the solve over thousands
#: of training frames, other d_J); run with --only.
EXTRA_ROWS = {
    "d_J = 4, energies + forces + stress (defaults: U learned)": (
        dict(d_j=4), True, True, 1.0),
    "d_J = 2, energies + forces + stress, U fixed": (dict(d_j=2, n_steps=0), True, True, 1.0),
    "d_J = 6, energies + forces + stress, U fixed": (dict(d_j=6, n_steps=0), True, True, 1.0),
}  # fmt: skip
#: the row whose model the physics checks use
MAIN_ROW = "d_J = 4, energies + forces + stress, U fixed"


def _fit(params, forces, stress, train, opt):
    from ase_alchemical import AlchemicalPotential

    model = AlchemicalPotential(device="cpu", **params)
    t0 = time.perf_counter()
    model.fit(train, opt, forces=forces, stress=stress)
    return model, time.perf_counter() - t0


def physics_checks(model, test_comps: list, data: dict, n_checks: int, md_steps: int) -> list:
    """The relaxed lattice constant, bulk modulus, Gamma phonons, NVE and call times of
    the potential against GFN1-xTB, on the first ``n_checks`` test compositions."""
    from ase_alchemical import AlchemicalCalculator
    from ase_alchemical.data.reference_labels import xtb_calculator

    ml, xtb = AlchemicalCalculator(model), xtb_calculator()
    out, skipped = [], []
    for sites in test_comps:
        if len(out) == n_checks:
            break
        try:
            row = _check_one(sites, ml, xtb, md_steps)
        except CalculationFailed as err:  # xTB's SCF at a check's geometry: next one
            print(f"{'-'.join(sites)}: check skipped, {err}", flush=True)
            skipped.append("-".join(sites))
            continue
        out.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.startswith("gamma_thz")}),
              flush=True)  # fmt: skip
    return out, skipped


def _check_one(sites, ml, xtb, md_steps: int) -> dict:
    """The checks of one composition (see :func:`physics_checks`)."""
    from ase_alchemical.data.datasets import build_elpasolite

    row = {"composition": "".join(f"{s}" for s in sites), "sites": list(sites)}
    prototype = build_elpasolite(*sites)
    relaxed = {}
    for name, calc in (("ml", ml), ("xtb", xtb)):
        atoms, energies, converged = relax(prototype, calc)
        relaxed[name] = atoms
        row[f"a_{name}"] = conventional_a(atoms)
        row[f"relax_converged_{name}"] = converged
        row[f"relax_monotone_{name}"] = bool(np.all(np.diff(energies) <= 1e-6))
        row[f"bulk_modulus_{name}"] = bulk_modulus(atoms, calc)
        freqs = gamma_frequencies(atoms, calc)
        row[f"gamma_thz_{name}"] = freqs.tolist()
        row[f"n_imaginary_{name}"] = int(np.sum(freqs < -0.3))
        row[f"call_ms_10_{name}"] = call_ms(atoms, calc)
        row[f"call_ms_80_{name}"] = call_ms(atoms.repeat(2), calc, repeats=3)
    optical = lambda f: np.sort(np.abs(f))[3:]  # noqa: E731  (drop the acoustic modes)
    row["gamma_mae_thz"] = float(np.mean(np.abs(
        optical(row["gamma_thz_ml"]) - optical(row["gamma_thz_xtb"]))))  # fmt: skip
    # NVE: ML on the 2x2x2 supercell for md_steps fs; xTB on the cell for md_steps / 5,
    # ML forces checked along the xTB trajectory
    totals, _ = nve(relaxed["ml"].repeat(2), ml, md_steps)
    row["nve_ml_drift"] = float(totals[-1] - totals[0])
    row["nve_ml_fluct"] = float(totals.std())
    totals_x, frames_x = nve(relaxed["xtb"], xtb, md_steps // 5)
    row["nve_xtb_drift"] = float(totals_x[-1] - totals_x[0])
    errs = []
    for atoms in frames_x[1:] or frames_x:
        reference = atoms.arrays["reference_forces"]
        probe = atoms.copy()
        probe.calc = ml
        errs.append(np.abs(probe.get_forces() - reference).ravel())
    row["md_force_mae"] = float(np.concatenate(errs).mean())
    return row


def evaluate(n: int, directory: Path, out: str | None, n_checks: int = 3,
             md_steps: int = 500, only: list | None = None) -> None:  # fmt: skip
    import resource

    import torch

    from ase_alchemical.data.reference_labels import plausible_labels, read_labelled

    comps = compositions(n)
    labelled = read_labelled(directory, comps)
    data = {k: v for k, v in labelled.items() if plausible_labels(v)}
    train, opt, test, test_comps = split_by_composition(data, comps)
    print(f"{len(labelled)} compositions labelled, {len(data)} plausible: {len(train)} "
          f"training, {len(opt)} held-out, {len(test)} test frames", flush=True)  # fmt: skip
    names = ["-".join(s) for s in comps]
    attempted = sum(1 for m in names if (directory / "frames" / f"{m}.extxyz").exists()
                    or (directory / "failed" / f"{m}.txt").exists())  # fmt: skip
    counts = {"attempted": attempted, "labelled": len(labelled), "plausible": len(data)}
    baseline = per_element_baseline(train, test)
    results = {"counts": counts, "rows": {"per-element linear fit of E / zero forces": baseline}}
    train_comps = sorted({a.info["sites"] for a in train})
    every = {**ROWS, **EXTRA_ROWS}
    rows = ROWS if only is None else {k: v for k, v in every.items() if k in only}
    main_model = None
    for name, (params, forces, stress, share) in rows.items():
        keep = set(train_comps[: max(1, round(share * len(train_comps)))])
        subset = [a for a in train if a.info["sites"] in keep]
        model, fit_s = _fit(params, forces, stress, subset, opt)
        score = model.score(test)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results["rows"][name] = {**score, "fit_s": fit_s, "n_train_frames": len(subset),
                                 "best_step": model.best_step_, "peak_mib": peak}  # fmt: skip
        print(name, json.dumps(results["rows"][name]), flush=True)
        if name == MAIN_ROW:
            main_model = model
        if out:
            write(out, results, n, counts, (len(train), len(opt), len(test)))
    if main_model is not None and n_checks:
        torch.set_num_threads(torch.get_num_threads())
        results["checks"], results["checks_skipped"] = physics_checks(
            main_model, test_comps, data, n_checks, md_steps
        )
        if out:
            main_model.save(Path(out).with_suffix(".pt"), metadata={
                "reference": "GFN1-xTB (tblite)",
                "data": "elpasolites labelled by benchmarks/accuracy/potential_xtb.py",
                "test": results["rows"][MAIN_ROW]})  # fmt: skip
    if out:
        write(out, results, n, counts, (len(train), len(opt), len(test)))


def write(out: str, results: dict, n: int, counts: dict, sizes) -> None:
    from ase_alchemical import __version__
    from ase_alchemical.core.fileio import atomic_write

    lines = [
        "# The local potential against GFN1-xTB on generated elpasolite data",
        "",
        f"`python benchmarks/accuracy/potential_xtb.py evaluate --n {n} --out {out}` "
        f"(ase-alchemical {__version__}, {platform.machine()}). Reference: GFN1-xTB (tblite). Of "
        f"{counts['attempted']} elpasolite compositions attempted (`label` stage: the "
        "hard-sphere prototype, its xTB relaxation, rattled and strained copies), "
        f"{counts['labelled']} were labelled (the others: no SCF convergence, or a crash "
        f"of tblite) and {counts['plausible']} kept as plausible (`plausible_labels`: "
        "negative energies, forces under 30 eV/Å, energies within 3 eV/atom over the "
        "composition's frames; the rest run to absurd energies). Split by composition: "
        f"{sizes[0]} training, {sizes[1]} held-out, {sizes[2]} test frames; no test "
        "composition is seen in training. The columns: errors on the test frames.",
        "",
        "| model | energy MAE (meV/atom) | energy RMSE | force MAE (eV/Å) | force RMSE | "
        "stress MAE (GPa) | fit (s) | peak (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    gpa = 160.21766
    for name, r in results["rows"].items():
        stress = f"{r['stress_mae'] * gpa:.2f}" if "stress_mae" in r else ""
        fit = f"{r['fit_s']:.0f}" if "fit_s" in r else ""
        peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else ""
        lines.append(
            f"| {name} | {r['energy_mae'] * 1000:.1f} | {r['energy_rmse'] * 1000:.1f} | "
            f"{r['force_mae']:.3f} | {r['force_rmse']:.3f} | {stress} | {fit} | {peak} |"
        )
    checks = results.get("checks")
    if checks:
        lines += [
            "",
            f'Physics checks of the model "{MAIN_ROW}" against the reference itself, on '
            "test compositions (each relaxed from the prototype by both methods, "
            "FrechetCellFilter + BFGS, fmax 0.01): conventional lattice constant a, "
            "Birch-Murnaghan bulk modulus B (±4 % volume), Gamma-point optical frequencies "
            "(mean absolute difference of the sorted 27), imaginary modes (< -0.3 THz), NVE "
            "at 300 K (ML: 2x2x2 supercell, xTB: the cell), ML force MAE along the xTB "
            "trajectory, ms per energy + forces call (10 and 80 atoms).",
            "",
            "| composition | a ML (Å) | a xTB (Å) | B ML (GPa) | B xTB (GPa) | Gamma MAE (THz) "
            "| imaginary ML / xTB | NVE drift ML (meV/atom) | ML force MAE on xTB MD (eV/Å) "
            "| ms ML / xTB (10 at.) | ms ML / xTB (80 at.) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in checks:
            lines.append(
                f"| {c['composition']} | {c['a_ml']:.3f} | {c['a_xtb']:.3f} | "
                f"{c['bulk_modulus_ml']:.1f} | {c['bulk_modulus_xtb']:.1f} | "
                f"{c['gamma_mae_thz']:.2f} | {c['n_imaginary_ml']} / {c['n_imaginary_xtb']} | "
                f"{c['nve_ml_drift'] * 1000:.2f} | {c['md_force_mae']:.3f} | "
                f"{c['call_ms_10_ml']:.0f} / {c['call_ms_10_xtb']:.0f} | "
                f"{c['call_ms_80_ml']:.0f} / {c['call_ms_80_xtb']:.0f} |"
            )
    if results.get("checks_skipped"):
        lines += [
            "",
            "Test compositions skipped by the checks because xTB's SCF did not "
            f"converge at one of their geometries: {', '.join(results['checks_skipped'])}.",
        ]
    atomic_write(out, lambda p: p.write_text("\n".join(lines) + "\n"))
    json_out = str(out).rsplit(".", 1)[0] + ".json"
    atomic_write(json_out, lambda p: p.write_text(json.dumps(results, indent=1)))


def main(argv=None) -> None:
    from ase_alchemical.data.reference_labels import default_label_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["label", "evaluate"])
    parser.add_argument("--n", type=int, default=300, help="number of compositions")
    parser.add_argument("--dir", default=None, help="label cache (default: the user cache)")
    parser.add_argument("--out", default=None, help="markdown report (evaluate)")
    parser.add_argument("--checks", type=int, default=3, help="test compositions checked")
    parser.add_argument("--md-steps", type=int, default=500, help="ML NVE steps (1 fs)")
    parser.add_argument("--only", nargs="*", default=None, help="row names to fit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    directory = Path(args.dir) if args.dir else default_label_dir()
    if args.stage == "label":
        label(args.n, directory, child=args.child)
    else:
        evaluate(args.n, directory, args.out, args.checks, args.md_steps, args.only)


if __name__ == "__main__":
    main()
