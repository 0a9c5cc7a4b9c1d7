"""``ase-alchemical evaluate``, ``predict`` and ``energy``: a trained model's errors and
predictions."""

from __future__ import annotations

import argparse
import csv
import io
import sys

from ..core.fileio import atomic_write
from ._commands import add_command

_UNCERTAINTY_HELP = (
    "also write the predicted standard deviation of each energy (Gaussian-process "
    "variance of the model, calibrated on its optimization set)"
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate``, ``predict`` and ``energy`` to the subcommands ``sub``."""
    p = add_command(sub, "evaluate", _cmd_evaluate)
    p.add_argument("model", help="model file")
    p.add_argument(
        "--data", default=None,
        help="data file or folder; for a local potential the labelled structures to score",
    )  # fmt: skip
    p.add_argument("--plot", default=None, help="local: save energy and force parity plots")
    p.add_argument("--device", default=None, help="torch device")
    p = add_command(sub, "predict", _cmd_predict)
    p.add_argument("model", help="model file")
    p.add_argument("structures", help="any file ase.io.read understands, e.g. extended XYZ")
    p.add_argument("--out", default=None, help="CSV file (default: standard output)")
    p.add_argument("--device", default=None, help="torch device")
    p.add_argument("--uncertainty", action="store_true", help=_UNCERTAINTY_HELP)
    p = add_command(sub, "energy", _cmd_energy)
    p.add_argument("structures", nargs="*", help="structure files (extended XYZ, CIF, ...)")
    p.add_argument(
        "--elpasolite",
        action="append",
        metavar="A,B,C,D",
        help="add the prototype crystal ABC2D6 (repeatable)",
    )
    p.add_argument("--model", default=None, help="shipped model name or model file")
    p.add_argument("--forces", action="store_true", help="also report the largest force")
    p.add_argument("--uncertainty", action="store_true", help=_UNCERTAINTY_HELP)
    p.add_argument("--out", default=None, help="CSV file (default: standard output)")
    p.add_argument("--device", default=None, help="torch device (default: CUDA if available)")


def _cmd_evaluate_local(model, args: argparse.Namespace) -> int:
    from ..data.files import read_structures

    if args.data is None:
        raise ValueError("evaluating a local potential needs --data: a labelled structure file")
    frames = read_structures(args.data)
    score = model.score(frames)
    print(f"energy MAE  {1000 * score['energy_mae']:.1f} meV/atom  "
          f"RMSE {1000 * score['energy_rmse']:.1f} meV/atom  (n={score['n']})")  # fmt: skip
    if "force_mae" in score:
        print(f"force MAE   {score['force_mae']:.3f} eV/A  RMSE {score['force_rmse']:.3f} eV/A")
    if "stress_mae" in score:
        print(f"stress MAE  {score['stress_mae']:.4f} eV/A^3")
    if args.plot:
        from ..plots import save_parity_plot

        print(f"saved {save_parity_plot(model, frames, args.plot)}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """MAE/RMSE of a model on its held-out test split (a local potential: on --data)."""
    from ..registry import load_model
    from ..structure.training import evaluate_on_test_split

    model = load_model(args.model, device=args.device)
    if model.kind == "local":
        return _cmd_evaluate_local(model, args)
    if args.plot:
        raise ValueError("--plot draws the parity of a local potential on --data")
    result = evaluate_on_test_split(model, data=args.data)
    print(f"test MAE  {result['test_mae_ev_per_atom']:.4f} eV/atom  (n_test={result['n_test']})")
    print(f"test RMSE {result['test_rmse_ev_per_atom']:.4f} eV/atom")
    if result["recorded_test_mae_ev_per_atom"] is not None:
        print(f"recorded at training: MAE {result['recorded_test_mae_ev_per_atom']:.4f} eV/atom")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    """Energies of structures read by ase.io (CSV out)."""
    from ..data.files import read_frames
    from ..registry import load_model

    model = load_model(args.model, device=args.device)
    frames = read_frames(args.structures)
    if args.uncertainty:
        energies, stds = model.predict(frames, return_std=True)
    else:
        energies, stds = model.predict(frames), None
    _write_energies(frames, energies, args.out, stds=stds)
    return 0


def _write_energies(frames, energies, out, max_forces=None, stds=None) -> None:
    """CSV of energies (uncertainties, largest forces) to ``out`` (atomically) or stdout."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    header = ["index", "formula", "n_atoms", "energy_ev", "energy_ev_per_atom"]
    if stds is not None:
        header += ["energy_std_ev", "energy_std_ev_per_atom"]
    writer.writerow(header + (["max_force_ev_per_a"] if max_forces is not None else []))
    for i, (atoms, e) in enumerate(zip(frames, energies)):
        row = [i, atoms.get_chemical_formula(), len(atoms), f"{e:.6f}", f"{e / len(atoms):.6f}"]
        if stds is not None:
            row += [f"{stds[i]:.6f}", f"{stds[i] / len(atoms):.6f}"]
        if max_forces is not None:
            row.append(f"{max_forces[i]:.6f}")
        writer.writerow(row)
    if out is None:
        sys.stdout.write(buf.getvalue())
    else:
        atomic_write(out, lambda tmp: tmp.write_text(buf.getvalue()))
        print(f"wrote {len(frames)} energies to {out}")


def _cmd_energy(args: argparse.Namespace) -> int:
    """Energies (and forces) with the shipped default model or another one.

    Energies of structures with a trained model (default: the shipped elpasolite model).
    Structures come from files ase.io.read understands and/or --elpasolite A,B,C,D
    prototypes.
    """
    from ..calculator import AlchemicalCalculator
    from ..data.datasets import build_elpasolite
    from ..data.files import read_frames

    frames = []
    for path in args.structures:
        frames += read_frames(path)
    for sites in args.elpasolite or []:
        parts = sites.split(",")
        if len(parts) != 4:
            raise ValueError(f"--elpasolite takes A,B,C,D (four element symbols), got {sites!r}")
        frames.append(build_elpasolite(*parts))
    if not frames:
        raise ValueError("no structures: give files and/or --elpasolite A,B,C,D")
    calc = AlchemicalCalculator(args.model, device=args.device)
    max_forces = None
    if args.forces:
        max_forces = []
        for atoms in frames:
            atoms.calc = calc
            max_forces.append(float(abs(atoms.get_forces()).max()))
    if args.uncertainty:
        energies, stds = calc.get_energies(frames, return_std=True)
    else:
        energies, stds = calc.get_energies(frames), None
    _write_energies(frames, energies, args.out, max_forces, stds)
    return 0
