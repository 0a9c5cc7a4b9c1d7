"""Command-line interface: ``ase-alchemical {train,refit,evaluate,predict,energy,screen,
export,info,fetch-data}``.

One module per command group: ``cli.train`` (train, refit), ``cli.evaluate`` (evaluate,
predict, energy), ``cli.screen`` (screen) and ``cli.models`` (export, info, fetch-data).
Each adds its subcommands with ``add_parsers`` and gives each one a ``handler`` (runs the
command) and, where some arguments can only be checked or completed once all are known, a
``finish`` (called on the parsed arguments before the handler; it may exit through
``parser.error``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from . import evaluate, models, screen, train
from .train import _scaling as _scaling  # re-exported: the tests check the parser of it

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
    for group in (train, evaluate, screen, models):  # the order of the help's command list
        group.add_parsers(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    finish = getattr(args, "finish", None)
    if finish is not None:
        finish(args)
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments ``main(argv)`` would run its command with, defaults filled in.

    Parameters
    ----------
    argv
        The command line without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        ``command`` names the subcommand (None if none was given); an option whose default
        depends on another one (``train --kernel``) holds its final value.
    """
    return _parse(build_parser(), argv)


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
    args = _parse(parser, argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.no_cache:  # read by every model load of this process
        from ..core.feature_cache import NO_CACHE_ENV

        os.environ[NO_CACHE_ENV] = "1"
    try:
        with _log_to_stderr(quiet=bool(getattr(args, "quiet", False))):
            return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        # expected user errors (bad file, unknown element, missing data): one clear line
        print(f"ase-alchemical {args.command}: error: {e}", file=sys.stderr)
        return 1
