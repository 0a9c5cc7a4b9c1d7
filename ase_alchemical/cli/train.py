"""``ase-alchemical train`` and ``refit``: fit an elpasolite structure kernel
(:class:`.AlchemicalKRR`) or a local potential (:class:`.AlchemicalPotential`).

The two kinds (``train --kernel structure|local``) share the options of U's optimization
and of the SOAP features; the others belong to one kind. An option of the other kind is
an error that names the kind (``parser.error``, exit code 2), not silently ignored: such
options are declared with ``default=None``, so that "given on the command line" can be told
from "left out", and :func:`_finish_train` fills the real defaults once ``--kernel`` is
known. Where a default is a hyperparameter of the model's constructor it is read from the
constructor's signature (:func:`kind_defaults`), so the command line cannot drift from the
library; the help shows those defaults too, looked up only when the help is printed.
"""

from __future__ import annotations

import argparse
import functools
import inspect

from ._commands import add_command

#: what each ``--kernel`` fits, as the help and the errors name it
KIND_NAMES = {
    "structure": "the elpasolite structure kernel, AlchemicalKRR",
    "local": "the local potential, AlchemicalPotential",
}

#: options of both kinds whose default is a constructor parameter: option dest -> parameter
_SHARED_HYPERS = {
    "d_j": "d_j", "zeta": "zeta", "n_support": "n_support", "steps": "n_steps",
    "learning_rate": "learning_rate", "lr_schedule": "lr_schedule", "rotation": "rotation",
    "n_folds": "n_folds", "init": "init", "seed": "seed",
    "radially_resolved": "radially_resolved",
}  # fmt: skip
#: structure-kernel options whose default is an ``AlchemicalKRR`` parameter
_STRUCTURE_HYPERS = {
    "normalization": "normalization", "regularizer": "regularizer", "solver": "solver",
    "gradient_flow": "gradient_flow", "step_train_size": "step_train_size",
}  # fmt: skip
#: structure-kernel options that are no model parameter: the split and the final solve of
#: ``train_elpasolite_model``, and the inverse of ``learn_regularizer``
_STRUCTURE_FIT = {
    "n_train": 6000, "n_opt": 2000, "n_test": 1000, "split_seed": 0, "refit_on_opt": False,
    "refit_on_all": False, "choose_regularizer": False, "fixed_regularizer": False,
}  # fmt: skip
#: local-potential options whose default is an ``AlchemicalPotential`` parameter
_LOCAL_HYPERS = {
    "baseline": "baseline",
    "energy_sigma": "energy_sigma",
    "force_sigma": "force_sigma",
    "two_body": "two_body",
    "prior": "prior",
}
#: local-potential options that are no model parameter (``train_potential``'s). Forces and
#: stress are off unless asked for (unlike the Python default): a labelled file need not
#: carry them
_LOCAL_FIT = {"forces": False, "stress": False, "solve_on_opt": False}

#: the option dests that belong to one kind only
_OWN = {
    "structure": (*_STRUCTURE_HYPERS, *_STRUCTURE_FIT),
    "local": (*_LOCAL_HYPERS, *_LOCAL_FIT),
}
#: the options declared with ``default=None`` that :func:`_finish_train` fills in
_KIND_DEPENDENT = frozenset((*_SHARED_HYPERS, *_OWN["structure"], *_OWN["local"]))
#: ``--rotation`` choice -> the models' ``rotation`` parameter
_ROTATION = {"auto": "auto", "on": True, "off": False}


def _constructor_defaults(cls: type) -> dict[str, object]:
    """The default of each parameter of ``cls.__init__`` that has one."""
    parameters = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in parameters.items() if p.default is not p.empty}


def kind_defaults(kind: str) -> dict[str, object]:
    """The value of each ``train`` option of ``kind`` (shared or its own) that the command
    line leaves out.

    Parameters
    ----------
    kind
        ``"structure"`` or ``"local"`` (the ``--kernel`` choice).

    Returns
    -------
    dict
        Option dest (``"steps"``, ``"force_sigma"``, ...) -> value, in the command line's
        terms (``rotation`` is ``"auto"``, ``"on"`` or ``"off"``).
    """
    # imported here, not at the top: building the parser (and --help) stays as cheap as it was
    if kind == "structure":
        from ..structure.model import AlchemicalKRR

        params = _constructor_defaults(AlchemicalKRR)
        own = {dest: params[name] for dest, name in _STRUCTURE_HYPERS.items()} | _STRUCTURE_FIT
    elif kind == "local":
        from ..local.model import AlchemicalPotential

        params = _constructor_defaults(AlchemicalPotential)
        own = {dest: params[name] for dest, name in _LOCAL_HYPERS.items()} | _LOCAL_FIT
    else:
        raise ValueError(f"kind is 'structure' or 'local', got {kind!r}")
    shared = {dest: params[name] for dest, name in _SHARED_HYPERS.items()}
    shared["rotation"] = {model: cli for cli, model in _ROTATION.items()}[shared["rotation"]]
    return shared | own


def _default_note(dest: str) -> str:
    """`` (default: ...)`` for a kind-dependent option; both kinds' values where they differ."""
    structure, local = kind_defaults("structure"), kind_defaults("local")
    if dest in structure and dest in local and structure[dest] != local[dest]:
        return f" (default: {structure[dest]}; local: {local[dest]})"
    return f" (default: {structure[dest] if dest in structure else local[dest]})"


class _TrainHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, those of the kind-dependent options (None until
    :func:`_finish_train`) read from the constructors when the help is printed."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None and action.dest in _KIND_DEPENDENT:
            return (action.help or "") + _default_note(action.dest)
        return super()._get_help_string(action)


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _finish_train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject the options of the kind not chosen, then fill in the defaults of this kind."""
    kind = args.kernel
    other = "local" if kind == "structure" else "structure"
    foreign = sorted(_option(dest) for dest in _OWN[other] if getattr(args, dest) is not None)
    if foreign:
        one = len(foreign) == 1
        parser.error(
            f"{', '.join(foreign)} {'does' if one else 'do'} not apply to --kernel {kind} "
            f"({KIND_NAMES[kind]}); {'it is an option' if one else 'they are options'} of "
            f"--kernel {other} ({KIND_NAMES[other]})"
        )
    if args.zeta is not None:
        if kind == "local" and (len(args.zeta) > 1 or "auto" in args.zeta):
            parser.error("--kernel local takes one integer --zeta")
        if "auto" in args.zeta and len(args.zeta) > 1:
            parser.error("--zeta takes auto alone or integers")
        args.zeta = args.zeta[0] if len(args.zeta) == 1 else tuple(args.zeta)
    if kind == "local" and args.steps == "auto":
        parser.error("--kernel local takes an integer --steps")
    for dest, value in kind_defaults(kind).items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``refit`` to the subcommands ``sub``."""
    p = add_command(sub, "train", _cmd_train, formatter_class=_TrainHelpFormatter)
    _add_train_io_options(p)
    _add_optimization_options(p)
    _add_feature_options(p)
    _add_structure_options(p.add_argument_group(f"--kernel structure ({KIND_NAMES['structure']})"))
    _add_local_options(p.add_argument_group(f"--kernel local ({KIND_NAMES['local']})"))
    p.set_defaults(finish=functools.partial(_finish_train, p))
    p = add_command(sub, "refit", _cmd_refit)
    p.add_argument("model", help="model file written by `ase-alchemical train`")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--data", default=None, help="data file or folder")
    p.add_argument("--device", default=None, help="torch device")


def _add_train_io_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kernel", choices=["structure", "local"], default="structure",
        help="structure: one feature vector per crystal (elpasolites); local: a sum of "
        "atomic energies fitted to energies, forces and stress",
    )  # fmt: skip
    p.add_argument(
        "--data", default=None,
        help="elpasolites.csv / train_set.pkl or its folder; local: the labelled structure file",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="torch device, e.g. cuda")
    p.add_argument("--out", default="model.pt", help="model file to write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_optimization_options(p: argparse.ArgumentParser) -> None:
    """Options of both kinds; ``default=None``: the kind's constructor's default."""
    p.add_argument("--d-j", type=int, help="number of pseudo-elements")
    p.add_argument(
        "--zeta", type=_integer_or_auto, nargs="+",
        help="polynomial kernel exponent; several, or auto (structure kernel): one fit "
        "each, the one with the lowest optimization-set RMSE kept (auto: 2 and 3 below "
        "3,000 training crystals, else 3)",
    )  # fmt: skip
    p.add_argument(
        "--n-support", type=int,
        help="support points: structures of the sparse solver, or environments of a local "
        "potential",
    )  # fmt: skip
    p.add_argument(
        "--steps", type=_integer_or_auto,
        help="Adam steps on U; auto (structure kernel): 750 below 3,000 training "
        "crystals, else 250",
    )  # fmt: skip
    p.add_argument("--learning-rate", type=float, help="Adam learning rate")
    p.add_argument(
        "--lr-schedule", choices=["cosine", "constant"],
        help="learning rate over the steps: constant, or cosine decay to zero",
    )  # fmt: skip
    p.add_argument(
        "--rotation", choices=list(_ROTATION),
        help="rotate the training and optimization roles over folds while learning U "
        "(auto: when the optimization set has fewer than 5 structures per mixing weight)",
    )  # fmt: skip
    p.add_argument("--n-folds", type=int, help="folds of the rotation")
    p.add_argument("--init", choices=["elements", "random"], help="initial U")
    p.add_argument("--seed", type=int, help="seed of a random U and the step subsets")
    p.add_argument(
        "--radially-resolved", action="store_true", default=None,
        help="learn one U per radial basis function (of each scale) instead of one for all",
    )  # fmt: skip


def _add_feature_options(p: argparse.ArgumentParser) -> None:
    """The SOAP hypers of both kinds: defaults from ``DEFAULT_HYPERS``."""
    from ..core.hypers import DEFAULT_HYPERS

    basis = DEFAULT_HYPERS["basis"]
    scaling = DEFAULT_HYPERS["density"].get("scaling")
    default_scaling = (
        "none" if scaling is None
        else f"{scaling['rate']:g},{scaling['scale']:g},{scaling['exponent']:d}"
    )  # fmt: skip
    p.add_argument(
        "--cutoff",
        type=float,
        nargs="+",
        default=[DEFAULT_HYPERS["cutoff"]["radius"]],
        help="SOAP cutoff (Angstrom); several (e.g. 3 5 7; structure kernel only) give a "
        "multi-scale kernel whose scale weights are learned with U",
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


def _flag(g: argparse._ArgumentGroup, option: str, help: str) -> None:
    """An on/off option of one kind: ``None`` when not given, so that
    :func:`_finish_train` can tell it from a kind's default and reject it for the other
    kind."""
    g.add_argument(option, action="store_true", default=None, help=help)


def _add_structure_options(g: argparse._ArgumentGroup) -> None:
    """Options of ``--kernel structure`` only (``default=None``: see :func:`_finish_train`)."""
    g.add_argument("--n-train", type=int, help="training-set size (KRR solve)")
    g.add_argument("--n-opt", type=int, help="optimization-set size (loss for U)")
    g.add_argument("--n-test", type=int, help="held-out test-set size")
    g.add_argument("--split-seed", type=int, help="seed of the data split")
    g.add_argument(
        "--step-train-size", type=int,
        help="training structures per optimization step (random subset); 0 = all",
    )  # fmt: skip
    _flag(
        g, "--refit-on-opt",
        "once U is learned, solve the final weights on training + optimization sets",
    )  # fmt: skip
    _flag(
        g, "--refit-on-all",
        "once U is learned, solve the final weights on every crystal but the test set "
        "(training, optimization and the crystals the split leaves unused)",
    )  # fmt: skip
    _flag(
        g, "--choose-regularizer",
        "once U is learned, choose the regulariser of the final solve (the learned one "
        "times 3 ... 0.03) on the crystals the split leaves in no set",
    )  # fmt: skip
    g.add_argument(
        "--regularizer", type=float,
        help="relative KRR regulariser (starting value: it is learned unless --fixed-regularizer)",
    )  # fmt: skip
    _flag(g, "--fixed-regularizer", "do not learn the regulariser")
    g.add_argument("--solver", choices=["full", "sparse"], help="KRR solve")
    g.add_argument(
        "--gradient-flow", choices=["full", "detach_weights", "detach"],
        help="gradients reach U through the KRR solve too (full), or the weights are constants "
        "in each step (detach_weights; detach: the training features too)",
    )  # fmt: skip
    g.add_argument(
        "--normalization", choices=["normalized", "mean"], help="structure feature normalization"
    )


def _add_local_options(g: argparse._ArgumentGroup) -> None:
    """Options of ``--kernel local`` only (``default=None``: see :func:`_finish_train`)."""
    _flag(g, "--forces", "fit forces too")
    _flag(g, "--stress", "fit stress too")
    _flag(
        g, "--solve-on-opt",
        "once U is learned, solve the final weights on training + held-out frames",
    )  # fmt: skip
    g.add_argument(
        "--baseline", choices=["elements", "mean"],
        help="reference energies per element (least squares on counts) or one mean",
    )  # fmt: skip
    g.add_argument("--force-sigma", type=float, help="force noise (eV/A)")
    g.add_argument("--energy-sigma", type=float, help="energy noise (eV/atom)")
    g.add_argument(
        "--two-body", type=_optional_float, metavar="SIGMA",
        help="prior sigma (eV/atom) of the two-body term (pair potentials on the radial "
        "basis), or none for no two-body term",
    )  # fmt: skip
    g.add_argument(
        "--prior", metavar="NAME",
        help="learn a correction to this model's energies, forces and stress: emt, chgnet "
        "or sevenn (the last two: their extras); its strength is chosen by cross-validation",
    )  # fmt: skip


def _number_or_word(text: str, convert, word: str, what: str):
    """``convert(text)``, or ``word`` itself when that is what was typed."""
    if text.strip().lower() == word:
        return word
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} or {word}, got {text!r}") from None


def _integer_or_auto(text: str) -> int | str:
    """An integer (a kernel exponent, a number of Adam steps), or ``"auto"``."""
    return _number_or_word(text, int, "auto", "an integer")


def _optional_float(text: str) -> float | str:
    """A number, or ``"none"`` (kept as text: an option left out is ``None``, which
    :func:`_finish_train` fills with the model's default)."""
    return _number_or_word(text, float, "none", "a number")


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


def _cmd_train(args: argparse.Namespace) -> int:
    """Fit a model (elpasolite structure kernel, or a local potential on your data).

    Fit U (on the optimization set) and the KRR weights (on the training set) jointly,
    report the error on the held-out test split, save the model. --kernel structure
    (default): the elpasolite model, data from the elpasolite files. --kernel local: an
    atom-centred potential on a labelled structure file (--data frames.xyz with
    energies, and forces with --forces), split by frame index (i % 10 == 9 test,
    i % 10 == 8 held-out for U, the rest training). An option of one kind given to the
    other is an error.
    """
    from ..core.hypers import multiscale_hypers

    hypers = multiscale_hypers(
        args.cutoff, max_radial=args.max_radial, max_angular=args.max_angular,
        scaling=_scaling(args.radial_scaling),
    )  # fmt: skip
    if args.kernel == "local":
        return _train_local(args, hypers)
    return _train_structure(args, hypers)


def _train_local(args: argparse.Namespace, hypers: dict | list) -> int:
    from ..local.training import train_potential

    if args.data is None:
        raise ValueError("--kernel local needs --data: a structure file with energies")
    if isinstance(hypers, list):
        raise ValueError("--kernel local takes one --cutoff")
    _, report = train_potential(
        args.data, forces=args.forces, stress=args.stress, out=args.out,
        solve_on_opt=args.solve_on_opt,
        d_j=args.d_j, hypers=hypers, zeta=args.zeta, n_support=args.n_support,
        baseline=args.baseline, energy_sigma=args.energy_sigma, force_sigma=args.force_sigma,
        two_body=None if args.two_body == "none" else args.two_body, prior=args.prior,
        n_steps=args.steps, learning_rate=args.learning_rate, lr_schedule=args.lr_schedule,
        rotation=_ROTATION[args.rotation], n_folds=args.n_folds,
        init=args.init, seed=args.seed, radially_resolved=args.radially_resolved,
        device=args.device, progress=not args.quiet,
    )  # fmt: skip
    test = report["test"]
    print(f"saved {args.out}")
    print(f"test energy MAE {1000 * test['energy_mae']:.1f} meV/atom  (n_test={test['n']})")
    if "force_mae" in test:
        print(f"test force MAE  {test['force_mae']:.3f} eV/A")
    print(f"fit time  {report['fit_time_s']:.1f} s")
    return 0


def _train_structure(args: argparse.Namespace, hypers: dict | list) -> int:
    # looked up at call time (not imported at the top): tests replace it on its module
    from ..structure.training import train_elpasolite_model

    _, report = train_elpasolite_model(
        n_train=args.n_train, n_opt=args.n_opt, n_test=args.n_test,
        split_seed=args.split_seed, data=args.data, out=args.out,
        refit_on_opt=args.refit_on_opt, refit_on_all=args.refit_on_all,
        choose_regularizer=args.choose_regularizer,
        d_j=args.d_j, hypers=hypers, zeta=args.zeta, normalization=args.normalization,
        regularizer=args.regularizer, solver=args.solver, n_support=args.n_support,
        gradient_flow=args.gradient_flow, n_steps=args.steps,
        learning_rate=args.learning_rate, lr_schedule=args.lr_schedule,
        learn_regularizer=not args.fixed_regularizer and args.gradient_flow == "full",
        step_train_size=args.step_train_size or None,
        init=args.init, seed=args.seed, radially_resolved=args.radially_resolved,
        rotation=_ROTATION[args.rotation], n_folds=args.n_folds,
        device=args.device, progress=not args.quiet,
    )  # fmt: skip
    print(f"saved {args.out}")
    print(f"test MAE  {report['test_mae_ev_per_atom']:.4f} eV/atom  (n_test={args.n_test})")
    print(f"test RMSE {report['test_rmse_ev_per_atom']:.4f} eV/atom")
    print(f"fit time  {report['fit_time_s']:.1f} s")
    _print_structure_report(report)
    return 0


def _print_structure_report(report: dict) -> None:
    """How U was chosen, the regulariser and the final solve of a structure-kernel fit."""
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
        if "zeta_candidates" in info:
            tried = ", ".join(f"{z}: {rmse:.4f}" for z, rmse in info["zeta_candidates"])
            print(f"zeta {report['zeta']} chosen by the optimization-set RMSE (eV/atom) "
                  f"of each exponent ({tried})")  # fmt: skip
    if report["regularizer_scan"]:
        best = min(report["regularizer_scan"], key=lambda row: row["val_mae"])
        print(f"regulariser {best['regularizer']:.4g} (learned x {best['factor']:g}; "
              f"MAE {best['val_mae']:.4f} on the crystals in no set)")  # fmt: skip
    if report["refit_on_all"]:
        print(f"weights solved on {report['n_weights']} crystals (all but the test set)")
    elif report["refit_on_opt"]:
        print(f"weights solved on {report['n_weights']} crystals (training + optimization)")


def _cmd_refit(args: argparse.Namespace) -> int:
    """Solve a trained model's weights again on every crystal but its test set.

    Keep U, the regulariser and the scale weights of a model made by `train`; solve its
    KRR weights on every crystal outside its test split (training, optimization and the
    crystals the split left unused) and report the test error.
    """
    from ..structure.model import AlchemicalKRR
    from ..structure.training import refit_elpasolite_model

    model = AlchemicalKRR.load(args.model, device=args.device)
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
