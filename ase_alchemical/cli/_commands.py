"""The one way a subcommand is added: its words live in its handler's docstring."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    **kwargs,
) -> argparse.ArgumentParser:
    """Add the subcommand ``name``, run by ``handler``.

    The first paragraph of the handler's docstring is the one-line ``help`` of the
    command list, the rest its ``description`` in ``name --help`` (the summary where
    there is no more), so that what a command says sits beside the code that does it.
    """
    if not handler.__doc__:
        raise TypeError(f"the handler of {name!r} has no docstring to describe it")
    summary, _, details = inspect.cleandoc(handler.__doc__).partition("\n\n")
    parser = sub.add_parser(
        name,
        help=" ".join(summary.split()),
        description=" ".join(details.split()) or " ".join(summary.split()),
        **kwargs,
    )
    parser.set_defaults(handler=handler)
    return parser
