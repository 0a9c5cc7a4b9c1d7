"""Command-line interface: ``ase-alchemical {train,refit,evaluate,predict,energy,screen,
export,info,fetch-data}``."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import sys
from collections.abc import Sequence

from ._version import __version__
from .core.fileio import atomic_write

_DESCRIPTION = """\
Alchemical-compression SOAP kernel models for ASE.

A model mixes the chemical elements into a few learned "pseudo-elements" (d_J of them)
before building SOAP features, and predicts energies by kernel ridge regression.

Typical use:
  ase-alchemical fetch-data                      # download the elpasolite energies once
  ase-alchemical train --d-j 4 --out model.pt    # learn U and the weights (minutes)
  ase-alchemical train --kernel local --data frames.xyz --forces --out pot.pt
                                                 # a local potential on your own data
  ase-alchemical evaluate pot.pt --data test.xyz --plot parity.png
  ase-alchemical refit model.pt --out all.pt     # weights on every crystal but the test set
  ase-alchemical evaluate model.pt               # MAE/RMSE on the held-out test split
  ase-alchemical predict model.pt crystals.xyz   # energies of your own structures
  ase-alchemical energy --elpasolite Al,Na,K,F   # the shipped default model
  ase-alchemical screen --out candidates.csv     # all ~1M elpasolites, resumable
  ase-alchemical export pot.pt --out pot-metatomic.pt   # for i-PI, LAMMPS, metatomic-ase

Data are read from --data, else $ASE_ALCHEMICAL_DATA, else the user cache.
"""


_UNCERTAINTY_HELP = (
    "also write the predicted standard deviation of each energy (Gaussian-process "
    "variance of the model, calibrated on its optimization set)"
)


def _add_train(sub) -> None:
    from .core.hypers import DEFAULT_HYPERS

    basis = DEFAULT_HYPERS["basis"]
    scaling = DEFAULT_HYPERS["density"].get("scaling")
    default_scaling = (
        "none" if scaling is None
        else f"{scaling['rate']:g},{scaling['scale']:g},{scaling['exponent']:d}"
    )  # fmt: skip
    p = sub.add_parser(
        "train",
        help="fit a model (elpasolite structure kernel, or a local potential on your data)",
        description="Fit U (on the optimization set) and the KRR weights (on the training "
        "set) jointly, report the error on the held-out test split, save the model. "
        "--kernel structure (default): the elpasolite model, data from the elpasolite "
        "files. --kernel local: an atom-centred potential on a labelled structure file "
        "(--data frames.xyz with energies, and forces with --forces), split by frame index "
        "(i %% 10 == 9 test, i %% 10 == 8 held-out for U, the rest training).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--kernel", choices=["structure", "local"], default="structure",
        help="structure: one feature vector per crystal (elpasolites); local: a sum of "
        "atomic energies fitted to energies, forces and stress",
    )  # fmt: skip
    p.add_argument("--forces", action="store_true", help="local: fit forces too")
    p.add_argument("--stress", action="store_true", help="local: fit stress too")
    p.add_argument(
        "--solve-on-opt", action="store_true",
        help="local: once U is learned, solve the final weights on training + held-out frames",
    )  # fmt: skip
    p.add_argument(
        "--baseline", choices=["elements", "mean"], default="elements",
        help="local: reference energies per element (least squares on counts) or one mean",
    )  # fmt: skip
    p.add_argument("--force-sigma", type=float, default=0.3, help="local: force noise (eV/A)")
    p.add_argument(
        "--energy-sigma", type=float, default=0.02, help="local: energy noise (eV/atom)"
    )
    p.add_argument("--d-j", type=int, default=4, help="number of pseudo-elements")
    p.add_argument("--n-train", type=int, default=6000, help="training-set size (KRR solve)")
    p.add_argument("--n-opt", type=int, default=2000, help="optimization-set size (loss for U)")
    p.add_argument("--n-test", type=int, default=1000, help="held-out test-set size")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the data split")
    p.add_argument(
        "--steps", type=int, default=None, help="Adam steps on U (default 250; local: 20)"
    )
    p.add_argument(
        "--learning-rate", type=float, default=None,
        help="Adam learning rate (default 0.1; local: 0.01)",
    )  # fmt: skip
    p.add_argument(
        "--lr-schedule", choices=["cosine", "constant"], default="cosine",
        help="learning rate over the steps: constant, or cosine decay to zero",
    )  # fmt: skip
    p.add_argument(
        "--step-train-size", type=int, default=2000,
        help="training structures per optimization step (random subset); 0 = all",
    )  # fmt: skip
    p.add_argument(
        "--refit-on-opt", action="store_true",
        help="once U is learned, solve the final weights on training + optimization sets",
    )  # fmt: skip
    p.add_argument(
        "--refit-on-all", action="store_true",
        help="once U is learned, solve the final weights on every crystal but the test set "
        "(training, optimization and the crystals the split leaves unused)",
    )  # fmt: skip
    p.add_argument(
        "--choose-regularizer", action="store_true",
        help="once U is learned, choose the regulariser of the final solve (the learned one "
        "times 3 ... 0.03) on the crystals the split leaves in no set",
    )  # fmt: skip
    p.add_argument(
        "--zeta", type=int, default=None, help="polynomial kernel exponent (default 3; local: 2)"
    )
    p.add_argument(
        "--regularizer", type=float, default=1e-3,
        help="relative KRR regulariser (starting value: it is learned unless --fixed-regularizer)",
    )  # fmt: skip
    p.add_argument("--fixed-regularizer", action="store_true", help="do not learn the regulariser")
    p.add_argument("--solver", choices=["full", "sparse"], default="full")
    p.add_argument(
        "--n-support", type=int, default=None,
        help="support points: structures of the sparse solver (default 1500), or "
        "environments of a local potential (default 500)",
    )  # fmt: skip
    p.add_argument("--gradient-flow", choices=["full", "detach_weights", "detach"], default="full")
    p.add_argument(
        "--rotation", choices=["auto", "on", "off"], default="auto",
        help="rotate the training and optimization roles over folds while learning U "
        "(auto: when the optimization set has fewer than 5 structures per mixing weight)",
    )  # fmt: skip
    p.add_argument("--n-folds", type=int, default=5, help="folds of the rotation")
    p.add_argument("--normalization", choices=["normalized", "mean"], default="normalized")
    p.add_argument("--init", choices=["elements", "random"], default="elements", help="initial U")
    p.add_argument("--seed", type=int, default=0, help="seed of a random U and the step subsets")
    p.add_argument(
        "--radially-resolved", action="store_true",
        help="learn one U per radial basis function (of each scale) instead of one for all",
    )  # fmt: skip
    p.add_argument(
        "--cutoff",
        type=float,
        nargs="+",
        default=[DEFAULT_HYPERS["cutoff"]["radius"]],
        help="SOAP cutoff (Angstrom); several (e.g. 3 5 7) give a multi-scale kernel whose "
        "scale weights are learned with U",
    )
    p.add_argument(
        "--radial-scaling", default=default_scaling, metavar="C,R0,M",
        help="density scaling u(r) = c / (c + (r/r0)^m) (Willatt et al. 2018), or 'none'",
    )  # fmt: skip
    p.add_argument(
        "--max-radial", type=int, default=basis["radial"]["max_radial"], help="largest radial index"
    )
    p.add_argument(
        "--max-angular", type=int, default=basis["max_angular"], help="largest angular momentum"
    )
    p.add_argument(
        "--data", default=None,
        help="elpasolites.csv / train_set.pkl or its folder; local: the labelled structure file",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="torch device, e.g. cuda")
    p.add_argument("--out", default="model.pt", help="model file to write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _scaling(text: str) -> dict | None:
    """``"c,r0,m"`` -> featomic's Willatt2018 scaling dict; ``"none"`` -> None."""
    if text.strip().lower() == "none":
        return None
    try:
        rate, scale, exponent = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(
            f"--radial-scaling takes C,R0,M (e.g. 1,3,6) or none, got {text!r}"
        ) from None
    if exponent != int(exponent):
        raise ValueError(f"--radial-scaling: the exponent m must be an integer, got {exponent}")
    return {"type": "Willatt2018", "rate": rate, "scale": scale, "exponent": int(exponent)}


def _cmd_train_local(args, hypers) -> int:
    from .local.training import train_potential

    if args.data is None:
        raise ValueError("--kernel local needs --data: a structure file with energies")
    if isinstance(hypers, list):
        raise ValueError("--kernel local takes one --cutoff")
    _, report = train_potential(
        args.data, forces=args.forces, stress=args.stress, out=args.out,
        solve_on_opt=args.solve_on_opt,
        d_j=args.d_j, hypers=hypers, zeta=args.zeta or 2, n_support=args.n_support or 500,
        baseline=args.baseline, energy_sigma=args.energy_sigma, force_sigma=args.force_sigma,
        n_steps=20 if args.steps is None else args.steps,
        learning_rate=args.learning_rate or 0.01, lr_schedule=args.lr_schedule,
        rotation={"auto": "auto", "on": True, "off": False}[args.rotation], n_folds=args.n_folds,
        init=args.init, seed=args.seed, device=args.device, progress=not args.quiet,
    )  # fmt: skip
    test = report["test"]
    print(f"saved {args.out}")
    print(f"test energy MAE {1000 * test['energy_mae']:.1f} meV/atom  (n_test={test['n']})")
    if "force_mae" in test:
        print(f"test force MAE  {test['force_mae']:.3f} eV/A")
    print(f"fit time  {report['fit_time_s']:.1f} s")
    return 0


def _cmd_train(args) -> int:
    from .core.hypers import multiscale_hypers
    from .structure.training import train_elpasolite_model

    hypers = multiscale_hypers(
        args.cutoff, max_radial=args.max_radial, max_angular=args.max_angular,
        scaling=_scaling(args.radial_scaling),
    )  # fmt: skip
    if args.kernel == "local":
        return _cmd_train_local(args, hypers)
    if args.forces or args.stress:
        raise ValueError("--forces / --stress fit a local potential: add --kernel local")
    _, report = train_elpasolite_model(
        n_train=args.n_train, n_opt=args.n_opt, n_test=args.n_test,
        split_seed=args.split_seed, data=args.data, out=args.out,
        refit_on_opt=args.refit_on_opt, refit_on_all=args.refit_on_all,
        choose_regularizer=args.choose_regularizer,
        d_j=args.d_j, hypers=hypers, zeta=args.zeta or 3, normalization=args.normalization,
        regularizer=args.regularizer, solver=args.solver, n_support=args.n_support or 1500,
        gradient_flow=args.gradient_flow, n_steps=250 if args.steps is None else args.steps,
        learning_rate=args.learning_rate or 0.1,
        lr_schedule=args.lr_schedule,
        learn_regularizer=not args.fixed_regularizer and args.gradient_flow == "full",
        step_train_size=args.step_train_size or None,
        init=args.init, seed=args.seed, radially_resolved=args.radially_resolved,
        rotation={"auto": "auto", "on": True, "off": False}[args.rotation], n_folds=args.n_folds,
        device=args.device, progress=not args.quiet,
    )  # fmt: skip
    print(f"saved {args.out}")
    print(f"test MAE  {report['test_mae_ev_per_atom']:.4f} eV/atom  (n_test={args.n_test})")
    print(f"test RMSE {report['test_rmse_ev_per_atom']:.4f} eV/atom")
    print(f"fit time  {report['fit_time_s']:.1f} s")
    info = report.get("optimization") or {}
    if info:
        how = (
            f"roles rotated over {info['n_folds']} folds of training + optimization set"
            if info["rotated"] else "on the optimization set"
        )  # fmt: skip
        print(f"U chosen at step {info['best_step']} of {info['n_steps_run']}, {how}")
        if info["small_optimization_set"]:
            print(f"note: {info['n_opt']} optimization structures for {info['n_mixing_weights']} "
                  "mixing weights of U is a small optimization set"
                  + ("" if info["rotated"] else ": consider --rotation on"))  # fmt: skip
    if report["regularizer_scan"]:
        best = min(report["regularizer_scan"], key=lambda row: row["val_mae"])
        print(f"regulariser {best['regularizer']:.4g} (learned x {best['factor']:g}; "
              f"MAE {best['val_mae']:.4f} on the crystals in no set)")  # fmt: skip
    if report["refit_on_all"]:
        print(f"weights solved on {report['n_weights']} crystals (all but the test set)")
    elif report["refit_on_opt"]:
        print(f"weights solved on {report['n_weights']} crystals (training + optimization)")
    return 0


def _cmd_refit(args) -> int:
    from .structure.model import load_model
    from .structure.training import refit_elpasolite_model

    model = load_model(args.model, device=args.device)
    _, report = refit_elpasolite_model(model, data=args.data, out=args.out)
    before = report["test_mae_before_refit_on_all"]
    print(f"saved {args.out}")
    print(f"weights solved on {report['n_weights']} crystals (all but the test set) "
          f"in {report['refit_time_s']:.1f} s")  # fmt: skip
    if before is not None:
        print(f"test MAE before the refit {before:.4f} eV/atom")
    print(f"test MAE  {report['test_mae_ev_per_atom']:.4f} eV/atom  (n_test={report['n_test']})")
    print(f"test RMSE {report['test_rmse_ev_per_atom']:.4f} eV/atom")
    return 0


def _cmd_evaluate_local(model, args) -> int:
    from .data.datasets import read_structures

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
        from .plots import save_parity_plot

        print(f"saved {save_parity_plot(model, frames, args.plot)}")
    return 0


def _cmd_evaluate(args) -> int:
    from .registry import load_model
    from .structure.training import evaluate_on_test_split

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


def _cmd_predict(args) -> int:
    from .data.datasets import read_frames
    from .registry import load_model

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


def _cmd_energy(args) -> int:
    from .calculator import AlchemicalCalculator
    from .data.datasets import build_elpasolite, read_frames

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


def _dask_client(args, stack: contextlib.ExitStack):
    """A ``distributed.Client`` for ``--dask ADDRESS`` or ``--workers N`` (closed with
    ``stack``, and so is the local cluster it started), else None."""
    if args.dask is None and args.workers is None:
        return None
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError(
            "--dask and --workers need dask.distributed: pip install 'ase-alchemical[dask]'"
        ) from None
    if args.dask is not None:
        try:
            return stack.enter_context(Client(args.dask, timeout="20s"))
        except OSError as e:
            raise RuntimeError(f"cannot reach the dask scheduler at {args.dask}: {e}") from None
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    # one thread per worker process: the workers are the parallelism; a free port for the
    # scheduler's HTTP server (it has one even without the dashboard)
    cluster = stack.enter_context(LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ))  # fmt: skip
    return stack.enter_context(Client(cluster))


def _cmd_screen(args) -> int:
    from .registry import resolve_model
    from .structure.screening import screen_elpasolites

    model = resolve_model(args.model, args.device)
    elements = args.elements.split(",") if args.elements else None
    with contextlib.ExitStack() as stack:
        client = _dask_client(args, stack)
        result = screen_elpasolites(
            model, args.out, elements, uncertainty=not args.no_uncertainty,
            chunk_size=args.chunk_size, top=args.top, overwrite=args.overwrite,
            progress=not args.quiet, client=client,
        )  # fmt: skip
    print(
        f"{result['n_compositions']} compositions ({result['n_geometries']} distinct "
        f"prototype geometries); {result['n_structures_this_call']} structures predicted in "
        f"{result['seconds']:.0f} s ({result['throughput']:.0f} structures/s)"
    )
    print(f"wrote {result['path']}")
    if result.get("best"):
        print("lowest predicted formation energies (eV/atom):")
        for row in result["best"]:
            sigma = f" +- {float(row['std_ev_per_atom']):.3f}" if "std_ev_per_atom" in row else ""
            print(
                f"  {row['A']}{row['B']}{row['C']}2{row['D']}6  "
                f"{float(row['energy_ev_per_atom']):8.4f}{sigma}"
            )
    return 0


def _cmd_export(args) -> int:
    from .registry import resolve_model

    try:
        from .export import export_metatomic
    except ImportError as e:
        raise RuntimeError(
            f"export needs featomic-torch and metatomic-torch ({e}): "
            "pip install 'ase-alchemical[metatomic]'"
        ) from None
    model = resolve_model(args.model, "cpu")
    path = export_metatomic(model, args.out, name=args.name,
                            extensions_directory=args.extensions)  # fmt: skip
    extensions = args.extensions or path.with_name(path.stem + "-extensions")
    print(f"wrote {path} (metatomic AtomisticModel, float64) and its TorchScript extensions "
          f"in {extensions}/: load it with metatomic-ase, i-PI or LAMMPS")  # fmt: skip
    return 0


def _cmd_info(args) -> int:
    from .core.serialization import model_file_info
    from .registry import resolve_model_path

    print(json.dumps(model_file_info(resolve_model_path(args.model)), indent=2))
    return 0


def _cmd_fetch(args) -> int:
    from .data.datasets import fetch_elpasolites

    path = fetch_elpasolites(args.dir)
    print(f"elpasolite data verified at {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ase-alchemical`` command."""
    parser = argparse.ArgumentParser(
        prog="ase-alchemical",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ase-alchemical {__version__}")
    parser.add_argument(
        "--no-cache", action="store_true",
        help="featurize a model's support structures at every load instead of reading them "
        "from the cache (the same as ASE_ALCHEMICAL_NO_CACHE=1)",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    p = sub.add_parser(
        "refit",
        help="solve a trained model's weights again on every crystal but its test set",
        description="Keep U, the regulariser and the scale weights of a model made by "
        "`train`; solve its KRR weights on every crystal outside its test split (training, "
        "optimization and the crystals the split left unused) and report the test error.",
    )
    p.add_argument("model", help="model file written by `ase-alchemical train`")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--data", default=None, help="data file or folder")
    p.add_argument("--device", default=None, help="torch device")
    p = sub.add_parser(
        "evaluate",
        help="MAE/RMSE of a model on its held-out test split (a local potential: on --data)",
    )
    p.add_argument("model", help="model file")
    p.add_argument(
        "--data", default=None,
        help="data file or folder; for a local potential the labelled structures to score",
    )  # fmt: skip
    p.add_argument("--plot", default=None, help="local: save energy and force parity plots")
    p.add_argument("--device", default=None, help="torch device")
    p = sub.add_parser("predict", help="energies of structures read by ase.io (CSV out)")
    p.add_argument("model", help="model file")
    p.add_argument("structures", help="any file ase.io.read understands, e.g. extended XYZ")
    p.add_argument("--out", default=None, help="CSV file (default: standard output)")
    p.add_argument("--device", default=None, help="torch device")
    p.add_argument("--uncertainty", action="store_true", help=_UNCERTAINTY_HELP)
    p = sub.add_parser(
        "energy",
        help="energies (and forces) with the shipped default model or another one",
        description="Energies of structures with a trained model (default: the shipped "
        "elpasolite model). Structures come from files ase.io.read understands and/or "
        "--elpasolite A,B,C,D prototypes.",
    )
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
    p = sub.add_parser(
        "screen",
        help="predict every elpasolite ABC2D6 over a set of elements (CSV, resumable)",
        description="Enumerate all ABC2D6 crystals of four different elements (A/B pairs "
        "once), predict their formation energies on the prototype geometry and stream them "
        "to a CSV. An interrupted screen resumes when run again with the same arguments.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default=None, help="shipped model name or model file (default model)")
    p.add_argument(
        "--elements", default=None, help="comma-separated symbols (default: all the model knows)"
    )
    p.add_argument("--out", default="candidates.csv", help="CSV to write")
    p.add_argument("--no-uncertainty", action="store_true", help="skip the standard deviations")
    p.add_argument("--chunk-size", type=int, default=10000, help="compositions per checkpoint")
    p.add_argument("--top", type=int, default=20, help="lowest-energy candidates to print")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--device", default=None, help="torch device (default: CUDA if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--dask", metavar="ADDRESS", default=None,
        help="run the chunks on the dask.distributed scheduler at ADDRESS (tcp://host:8786)",
    )  # fmt: skip
    where.add_argument(
        "--workers", type=int, default=None,
        help="run the chunks on a local dask cluster of this many worker processes",
    )  # fmt: skip
    p = sub.add_parser(
        "export",
        help="write a model as a metatomic AtomisticModel (i-PI, LAMMPS, metatomic-ase)",
        description="Export a structure-kernel model or a local potential to a TorchScript "
        "metatomic model: energies, per-atom energies (local potentials), forces and stress "
        "by autograd, in any engine that runs metatomic models.",
    )
    p.add_argument("model", help="model file, or the name of a shipped model")
    p.add_argument("--out", required=True, help="file to write (.pt)")
    p.add_argument("--name", default=None, help="name stored in the model's metadata")
    p.add_argument(
        "--extensions", default=None,
        help="folder for the TorchScript extensions the file needs (default: "
        "<out stem>-extensions beside --out; replaced if it exists)",
    )  # fmt: skip
    p = sub.add_parser("info", help="hyperparameters and provenance of a model file")
    p.add_argument("model", help="model file, or the name of a shipped model")
    p = sub.add_parser("fetch-data", help="download the elpasolite data (checksum-verified)")
    p.add_argument("--dir", default=None, help="target folder (default: user cache)")
    return parser


_COMMANDS = {
    "train": _cmd_train,
    "refit": _cmd_refit,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "energy": _cmd_energy,
    "screen": _cmd_screen,
    "export": _cmd_export,
    "info": _cmd_info,
    "fetch-data": _cmd_fetch,
}


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to ``sys.stderr`` as it is at each message (as logging's
    own last-resort handler does), so a replaced stderr (pytest's capture) is honoured."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("ase-alchemical: %(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


@contextlib.contextmanager
def _log_to_stderr(quiet: bool):
    """Show the package's log (a first model load featurizing its support structures) on
    stderr while a command runs, as ``ase-alchemical: message``; ``--quiet`` keeps
    warnings only. The handler and level are removed again afterwards, so that ``main``
    called from Python (the tests, a script) leaves the library's logger as it was."""
    logger = logging.getLogger("ase_alchemical")
    handler, level = _StderrHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ase-alchemical`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.no_cache:  # read by every model load of this process
        from .core.feature_cache import NO_CACHE_ENV

        os.environ[NO_CACHE_ENV] = "1"
    try:
        with _log_to_stderr(quiet=bool(getattr(args, "quiet", False))):
            return _COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        # expected user errors (bad file, unknown element, missing data): one clear line
        print(f"ase-alchemical {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
