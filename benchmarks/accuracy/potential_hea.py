"""The local potential on the high-entropy-alloy frames: baselines, plain SOAP, d_J scan,
energies only against energies + forces (+ stress), the variants of the recipe (two-body
term, one U per radial function, cutoff, basis, noise levels), learning curves, the
anchors (metatrain's gap and soap_bpnn, CHGNet and SevenNet-0 zero-shot, CHGNet
fine-tuned with its own trainer), and the potential as a correction to CHGNet and to
SevenNet-0 (``prior=``), side by side in one run.

Data: ``hea/hea25_bulk_100.xyz`` of the shared data (100 DFT frames, 25 transition
metals), split by frame index: test ``i % 10 == 9``, held-out (U is learned on it, and
with the default ``rotation="auto"`` the roles of training and held-out frames rotate)
``i % 10 == 8``, training the other 80. Every row is one fit in its own process (so the
peak memory is its own), reporting on the 10 test frames: energy MAE/RMSE (meV/atom),
force MAE/RMSE (eV/Å), stress MAE (GPa) with the slope and correlation of the file's
stress on the model's (the file's stress units are not documented at the source: a model
fitted without stress that matches them settles them), fit time, peak resident memory and
the time of one energy+forces call on a 36-atom test frame.

    python benchmarks/accuracy/potential_hea.py [--quick] [--no-anchors] [--only ROW ...]
        [--out benchmarks/results/potential_hea.md] [--merge]

``--quick`` runs the baselines and two small fits only; the anchors need the ``bench``
extra, the prior rows the ``chgnet`` / ``sevenn`` extras (without them their rows say so).
``--only ROW ... --merge`` runs those rows (each in its own process, as a full run does)
and replaces them in the existing report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from ase_alchemical.core.hypers import make_hypers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _anchors import ANCHORS, CURVE_SIZES
from _common import (
    hea_file,
    hea_frames,
    per_element_baseline,
    stress_agreement,
    uncertainty_coverage,
    write_report,
)
from _metals import REFERENCES, metal_properties

#: name -> (AlchemicalPotential parameters, fit forces (and stress), number of training
#: frames); fit is False (energies), True (+ forces) or "stress" (+ forces + stress)
ROWS = {
    "plain SOAP (U = identity), energies": (dict(d_j=None), False, 80),
    "plain SOAP (U = identity), energies + forces": (dict(d_j=None), True, 80),
    "d_J = 4, energies": (dict(d_j=4), False, 80),
    "d_J = 4, energies + forces, U fixed (initial)": (dict(d_j=4, n_steps=0), True, 80),
    "d_J = 4, energies + forces (defaults)": (dict(d_j=4), True, 80),
    "d_J = 4, energies + forces + stress, U fixed (initial)": (
        dict(d_j=4, n_steps=0),
        "stress",
        80,
    ),  # fmt: skip
    "d_J = 4, energies + forces + stress (defaults)": (dict(d_j=4), "stress", 80),
    # the remedies for the curvature, each against the defaults
    "d_J = 4, energies + forces + stress, no two-body term": (
        dict(d_j=4, two_body=None),
        "stress",
        80,
    ),  # fmt: skip
    "d_J = 4, energies + forces + stress, two-body prior 0.1 eV": (
        dict(d_j=4, two_body=0.1),
        "stress",
        80,
    ),  # fmt: skip
    "d_J = 4, energies + forces + stress, two-body prior 3 eV": (
        dict(d_j=4, two_body=3.0),
        "stress",
        80,
    ),  # fmt: skip
    "d_J = 4, energies + forces + stress, cutoff 6 Å": (
        dict(d_j=4, hypers=make_hypers(cutoff=6.0)),
        "stress",
        80,
    ),  # fmt: skip
    "d_J = 4, energies + forces + stress, stress sigma 0.01": (
        dict(d_j=4, stress_sigma=0.01),
        "stress",
        80,
    ),  # fmt: skip
    # the authors' pieces and the basis, each against the defaults
    "d_J = 4, energies + forces + stress, one U per radial function": (
        dict(d_j=4, radially_resolved=True),
        "stress",
        80,
    ),  # fmt: skip
    "d_J = 4, energies + forces + stress, cutoff 4 Å": (
        dict(d_j=4, hypers=make_hypers(cutoff=4.0)),
        "stress",
        80,
    ),  # fmt: skip
    **{
        f"d_J = 4, energies + forces + stress, {name}": (
            dict(d_j=4, hypers=make_hypers(**basis)),
            "stress",
            80,
        )  # fmt: skip
        for name, basis in (
            ("max_angular 3", {"max_angular": 3}),
            ("max_angular 6", {"max_angular": 6}),
            ("max_radial 3", {"max_radial": 3}),
            ("max_radial 7", {"max_radial": 7}),
        )
    },
    **{
        f"d_J = 4, energies + forces + stress, {name}": (dict(d_j=4, **sigma), "stress", 80)
        for name, sigma in (
            ("force sigma 0.1", {"force_sigma": 0.1}),
            ("force sigma 1.0", {"force_sigma": 1.0}),
            ("stress sigma 0.2", {"stress_sigma": 0.2}),
            ("energy sigma 0.005", {"energy_sigma": 0.005}),
        )
    },
    "d_J = 4, energies + forces + stress, max_radial 7, force sigma 0.1": (
        dict(d_j=4, hypers=make_hypers(max_radial=7), force_sigma=0.1),
        "stress",
        80,
    ),  # fmt: skip
    "d_J = 4, energies + forces + stress, energy sigma 0.005, force sigma 0.1": (
        dict(d_j=4, energy_sigma=0.005, force_sigma=0.1),
        "stress",
        80,
    ),  # fmt: skip
    "d_J = 1, energies + forces": (dict(d_j=1), True, 80),
    "d_J = 2, energies + forces, U fixed (initial)": (dict(d_j=2, n_steps=0), True, 80),
    "d_J = 6, energies + forces, U fixed (initial)": (dict(d_j=6, n_steps=0), True, 80),
    "d_J = 4, energies + forces, U fixed, 20 frames": (dict(d_j=4, n_steps=0), True, 20),
    "d_J = 4, energies + forces, U fixed, 40 frames": (dict(d_j=4, n_steps=0), True, 40),
    **{
        f"d_J = 4, energies + forces + stress (defaults), {n} frames": (dict(d_j=4), "stress", n)
        for n in CURVE_SIZES
    },
    "CHGNet + d_J = 4 correction (prior), energies + forces + stress": (
        dict(d_j=4, prior="chgnet"),
        "stress",
        80,
    ),  # fmt: skip
    **{
        f"CHGNet + d_J = 4 correction (prior), energies + forces + stress, {n} frames": (
            dict(d_j=4, prior="chgnet"),
            "stress",
            n,
        )  # fmt: skip
        for n in CURVE_SIZES
    },
    "SevenNet-0 + d_J = 4 correction (prior), energies + forces + stress": (
        dict(d_j=4, prior="sevenn"),
        "stress",
        80,
    ),  # fmt: skip
}
#: the package each prior row needs (the ``chgnet`` / ``sevenn`` extras)
PRIOR_PACKAGES = {"chgnet": "chgnet", "sevenn": "sevenn"}
QUICK_ROWS = {
    "d_J = 2, energies + forces, U fixed, 20 frames": (dict(d_j=2, n_steps=0), True, 20),
    "d_J = 2, energies + forces, 20 frames": (dict(d_j=2, n_steps=4), True, 20),
}


#: eV/Å^3 in GPa
GPA = 160.21766208
STRESS_NOTE = (
    "Stress: the file's stress (its units are not documented at the source) against each "
    "model's, on the test frames: MAE in GPa reading the file as eV/Å^3, and the slope "
    "and correlation of the file's values on the model's (all six Voigt components). A "
    "model fitted without stress that finds a slope near 1 confirms eV/Å^3 and ASE's "
    "sign. CHGNet's calculator returns eV/Å^3 by its own conversion."
)


def _bench_installed() -> bool:
    return all(find_spec(m) for m in ("chgnet", "sevenn", "metatrain", "metatomic_ase", "skmatter"))


def _baselines(file: Path) -> dict:
    """Per-element linear fit of the energies on the 80 training frames, zero forces."""
    train, _, test = hea_frames(file)
    return per_element_baseline(train, test)


def run_one(file: Path, params: dict, fit: bool | str, n_train: int) -> dict:
    """One fit (called in a child process)."""
    import torch

    from ase_alchemical import AlchemicalPotential
    from ase_alchemical.core.targets import stresses_of, total_energies

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    # an empty cache: a prior's labels are computed within the fit time, as on a first fit
    os.environ["ASE_ALCHEMICAL_CACHE_DIR"] = tempfile.mkdtemp(prefix="hea-cache-")
    train, opt, test = hea_frames(file)
    model = AlchemicalPotential(**params)
    t0 = time.perf_counter()
    model.fit(train[:n_train], opt, forces=bool(fit), stress=fit == "stress")
    fit_s = time.perf_counter() - t0
    score = model.score(test)
    score.update(stress_agreement(model.stresses(test), stresses_of(test)))
    energies, sigmas = model.predict(test, return_std=True)
    n_atoms = np.array([len(a) for a in test])
    score.update(
        uncertainty_coverage((energies - total_energies(test)) / n_atoms, sigmas / n_atoms)
    )
    # the pure metals of the alloy's elements: lattice constants and bulk moduli (the
    # curvature the frames alone do not show)
    known = {chemical_symbols[z] for z in model.species}  # a curve's first N frames: fewer
    score["metals"] = metal_properties(model.predict, known)
    frame = next(a for a in test if len(a) == 36)
    model.energy_and_derivatives([frame], strain=False)  # warm-up
    # each call on other positions, as in dynamics: an ASE calculator (a prior's) returns
    # its stored results for positions it has seen
    moved = [frame.copy() for _ in range(5)]
    for k, atoms in enumerate(moved):
        atoms.positions[0, 0] += 1e-3 * (k + 1)
    t0 = time.perf_counter()
    for atoms in moved:
        model.energy_and_derivatives([atoms], strain=False)
    call_ms = (time.perf_counter() - t0) / 5 * 1000
    return {
        **score, "fit_s": fit_s, "call_ms": call_ms, "best_step": model.best_step_,
        "rotated": model.optimization_["rotated"], "n_support": int(model.weights_.shape[0]),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="the HEA file or the shared data folder")
    parser.add_argument("--quick", action="store_true", help="baselines and two small fits")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    parser.add_argument("--only", nargs="*", default=None, help="row names to run")
    parser.add_argument("--no-anchors", action="store_true", help="skip metatrain / CHGNet")
    parser.add_argument(
        "--merge", action="store_true",
        help="with --only: replace those rows in the existing --out report, keep the others",
    )  # fmt: skip
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--anchor", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    file = hea_file(args.data)
    if args.one:
        spec = json.loads(args.one)
        print(json.dumps(run_one(file, spec["params"], spec["forces"], spec["n_train"])))
        return
    if args.anchor:
        from _anchors import run_anchor

        train, opt, test = hea_frames(file)
        workdir = Path(tempfile.mkdtemp(prefix="hea-anchor-"))
        print(json.dumps(run_anchor(args.anchor, train, opt, test, workdir)))
        return
    rows = QUICK_ROWS if args.quick else ROWS
    anchors = [] if args.quick or args.no_anchors else list(ANCHORS)
    if args.only:
        rows = {k: v for k, v in ROWS.items() if k in args.only}
        anchors = [k for k in ANCHORS if k in args.only]
    results = {"per-element linear fit of E / zero forces": _baselines(file)}
    print(f"{'baselines':48s} {json.dumps(results['per-element linear fit of E / zero forces'])}")
    jobs = [(name, ["--one", json.dumps({"params": p, "forces": f, "n_train": n})])
            for name, (p, f, n) in rows.items()]  # fmt: skip
    jobs += [(name, ["--anchor", name]) for name in anchors]
    for name, job in jobs:
        prior = json.loads(job[1])["params"].get("prior") if job[0] == "--one" else None
        if prior is not None and find_spec(PRIOR_PACKAGES[prior]) is None:
            results[name] = {"error": f'not installed: pip install -e ".[{prior}]"'}
            print(f"{name}: skipped, {prior} is not installed", flush=True)
            continue
        if job[0] == "--anchor" and not _bench_installed():
            results[name] = {"error": 'not installed: pip install -e ".[bench]"'}
            print(f"{name}: skipped, the bench extra is not installed", flush=True)
            continue
        proc = subprocess.run(
            [sys.executable, __file__, "--data", str(file), *job], capture_output=True, text=True
        )
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", flush=True)
            tail = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            results[name] = {"error": tail[-1][:200]}
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[name]
        if args.out:  # each row as it comes: a long run that stops keeps what it measured
            _save(Path(args.out), results, file, args.merge)
        stress = f"  S {160.21766 * r['stress_mae']:.2f} GPa" if "stress_mae" in r else ""
        print(f"{name:48s} E {1000 * r['energy_mae']:7.1f} meV/atom  F {r['force_mae']:.3f} "
              f"eV/A{stress}  fit {r['fit_s']:6.1f} s  {r['peak_mib']:6.0f} MiB  "
              f"{r['call_ms']:6.1f} ms/call", flush=True)  # fmt: skip
    if args.out:
        _save(Path(args.out), results, file, args.merge)


def _save(out: Path, results: dict, file: Path, merge: bool) -> None:
    """Write the report; with ``merge``, the rows of ``results`` replace theirs in the
    existing one, in place, and the others are kept."""
    if merge and out.with_suffix(".json").is_file():
        kept = json.loads(out.with_suffix(".json").read_text())
        results = {**kept, **results}
    _write(out, results, file)


def _write(path: Path, results: dict, file: Path) -> None:
    from ase_alchemical import __version__

    lines = [
        "# The local potential on the HEA frames",
        "",
        f"`python benchmarks/accuracy/potential_hea.py --out {path}` "
        f"(ase-alchemical {__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{os.environ.get('OMP_NUM_THREADS', '2')}). Data `{file.name}`: 100 DFT frames of "
        "high-entropy alloys over 25 transition metals; test frames `i % 10 == 9` (10), "
        "held-out `i % 10 == 8` (10), training the other 80 (or their first 20 / 40). "
        "Defaults: `AlchemicalPotential(d_j=4)`: zeta 2, 500 support environments, "
        "a two-body term (pair potentials on the radial basis through U, prior 1 eV), "
        "per-element reference energies corrected in the solve (prior 1 eV), 20 Adam "
        "steps on U (learning rate 0.01, force rows of 4 training frames per step) with "
        "the training and "
        'held-out roles rotating over 5 folds (`rotation="auto"`: 10 held-out frames '
        "are few for U's mixing weights). ms/call: one energy + forces call on a "
        "36-atom test frame. Peak memory: the resident peak of the fit's process. "
        "Plain SOAP: featomic's multi-species power spectrum over the 25 elements (U = "
        "identity, 112,500 numbers per environment), same kernel and solve. Rows with N "
        "frames: the first N training frames (learning curves). Anchors (the "
        "`bench` extra), run by this script as the other rows are: metatrain's `gap` and "
        "`soap_bpnn` trained on "
        "the same 80 frames with the held-out 10 as validation set, through `mtt train`, "
        "scored through the exported model in metatomic-ase's calculator; CHGNet's "
        "shipped weights zero-shot, with a per-element energy shift fitted on the 80 "
        "(or N) training frames (its energies are referenced to Materials Project's, not "
        "this data's), and SevenNet-0's the same way; CHGNet fine-tuned on the 80 (or N) "
        "training frames with its own `Trainer`, as its fine-tuning example does it "
        "(embeddings, bases and first three interaction blocks frozen; Adam at its default "
        "learning rate 1e-3 with cosine decay, MSE on energies, forces and stress weighted "
        "1 / 1 / 0.1, batches of 8, 10 epochs at every size), its per-element reference "
        "energies first shifted by the per-element fit of its zero-shot residual and then "
        "trained with the rest, the held-out 10 as its validation set, scored after the "
        "last epoch (its fit time includes the zero-shot pass). Prior rows: "
        "`AlchemicalPotential(d_j=4, prior=...)` "
        "fitted to what CHGNet or SevenNet-0 leaves of the labels (energies, forces, "
        "stress), predictions prior + correction; the correction's strength (factors on "
        "the energy sigma and on the force and stress sigmas) chosen by 5-fold "
        "cross-validation over the training and held-out frames; the fit time includes "
        "computing the prior's labels (an empty cache), and ms/call the prior's call. "
        "Uncertainty: the "
        "calibrated sigma of each test energy; fractions of the 10 test energies within "
        "one and two sigma, and Spearman's rank correlation of |error| with sigma. Rows "
        "can be measured alone (`--only NAME ... --merge`), each in its own process as in "
        "a full run: this report's rows were measured that way, over several "
        "invocations of this script.",
        "",
        "| model | energy MAE (meV/atom) | energy RMSE | force MAE (eV/Å) | force RMSE | "
        "stress MAE (GPa) | stress slope, corr. | test energies within 1 / 2 sigma, "
        "rank corr. of abs(error) with sigma | fit (s) | peak (MiB) | ms/call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | | | | | | |")
            continue

        def cell(key: str, fmt: str, scale: float = 1.0, r: dict = r) -> str:
            return format(scale * r[key], fmt) if key in r else ""

        slope = (f"{r['stress_slope']:.2f}, {r['stress_corr']:.2f}"
                 if "stress_slope" in r else "")  # fmt: skip
        sigma = (f"{r['within_1_sigma']:.0%} / {r['within_2_sigma']:.0%}, "
                 f"{r['sigma_rank_corr']:.2f}" if "within_1_sigma" in r else "")  # fmt: skip
        lines.append(
            f"| {name} | {cell('energy_mae', '.0f', 1000)} | {cell('energy_rmse', '.0f', 1000)}"
            f" | {cell('force_mae', '.3f')} | {cell('force_rmse', '.3f')}"
            f" | {cell('stress_mae', '.2f', GPA)} | {slope} | {sigma} | {cell('fit_s', '.0f')}"
            f" | {cell('peak_mib', '.0f')} | {cell('call_ms', '.0f')} |"
        )
    lines += ["", STRESS_NOTE, "", *_metal_lines(results)]
    write_report(path, lines, results)


def _metal_lines(results: dict) -> list[str]:
    """The pure-metal table: each row's lattice constants and bulk moduli against the
    all-electron references (:mod:`_metals`)."""
    rows = {k: r["metals"] for k, r in results.items() if "metals" in r}
    if not rows:
        return []
    elements = [e for e in REFERENCES if any(e in m for m in rows.values())]
    lines = [
        "## Pure metals",
        "",
        f"The {len(elements)} elements of the data whose ground state is bcc or fcc, in "
        "that structure: lattice constant and bulk modulus from a Birch-Murnaghan fit of "
        "each model's E(V) at 11 volumes, 0.90 to 1.10 times the reference volume, against "
        "the all-electron averages of the ACWF verification set (Bosoni et al., Nat. Rev. "
        "Phys. 6, 45 (2024); github.com/aiidateam/acwf-verification-scripts), "
        "non-spin-polarised as the labels are: lattice constants PBEsol (the labels' "
        "functional), bulk moduli PBE (no PBEsol bulk moduli are published with that set; "
        "the functionals' difference is left in). No pure-metal frame is among the "
        "training frames: this is extrapolation from the alloys. A minimum outside the "
        "window is marked *: that metal counts as outside both tolerances and is left out "
        "of the means.",
        "",
        "| model | lattice constant abs. error, mean / max | within 2 % | bulk modulus abs. "
        "error, mean | within 30 %, no minimum in the window | "
        + " | ".join(f"{e} a (Å), B (GPa)" for e in elements)
        + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(elements),
        "| reference (a PBEsol, B PBE) | | | | | "
        + " | ".join(f"{REFERENCES[e][1]:.3f}, {REFERENCES[e][2]:.0f}" for e in elements)
        + " |",
    ]
    for name, m in rows.items():
        s = m["summary"]
        cells = []
        for e in elements:  # a model trained on fewer frames may not know every metal
            r = m.get(e)
            mark = "" if r is None or r["inside"] else "*"
            cells.append("" if r is None else f"{r['a']:.3f}{mark}, {r['B']:.0f}")
        lines.append(
            f"| {name} | {s['a_mae']:.1%} / {s['a_max']:.1%} | {s['a_within_2pct']} / {s['n']}"
            f" | {s['B_mae']:.0%} | {s['B_within_30pct']} / {s['n']}, {s['n_no_minimum']} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


if __name__ == "__main__":
    main()
