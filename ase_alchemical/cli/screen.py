"""``ase-alchemical screen``: predict every elpasolite over a set of elements, locally or
on a dask cluster."""

from __future__ import annotations

import argparse
import contextlib

from ._commands import add_command


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``screen`` to the subcommands ``sub``."""
    p = add_command(
        sub, "screen", _cmd_screen, formatter_class=argparse.ArgumentDefaultsHelpFormatter
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


def _dask_client(args: argparse.Namespace, stack: contextlib.ExitStack):
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


def _cmd_screen(args: argparse.Namespace) -> int:
    """Predict every elpasolite ABC2D6 over a set of elements (CSV, resumable).

    Enumerate all ABC2D6 crystals of four different elements (A/B pairs once), predict
    their formation energies on the prototype geometry and stream them to a CSV. An
    interrupted screen resumes when run again with the same arguments.
    """
    from ..registry import resolve_model
    from ..structure.screening import screen_elpasolites

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
