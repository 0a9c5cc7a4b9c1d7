"""``ase-alchemical export``, ``info`` and ``fetch-data``: model files and data, without
training or predicting."""

from __future__ import annotations

import argparse
import json

from ._commands import add_command


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``export``, ``info`` and ``fetch-data`` to the subcommands ``sub``."""
    p = add_command(sub, "export", _cmd_export)
    p.add_argument("model", help="model file, or the name of a shipped model")
    p.add_argument("--out", required=True, help="file to write (.pt)")
    p.add_argument("--name", default=None, help="name stored in the model's metadata")
    p.add_argument(
        "--extensions", default=None,
        help="folder for the TorchScript extensions the file needs (default: "
        "<out stem>-extensions beside --out; replaced if it exists)",
    )  # fmt: skip
    p = add_command(sub, "info", _cmd_info)
    p.add_argument("model", help="model file, or the name of a shipped model")
    p = add_command(sub, "fetch-data", _cmd_fetch)
    p.add_argument("--dir", default=None, help="target folder (default: user cache)")


def _cmd_export(args: argparse.Namespace) -> int:
    """Write a model as a metatomic AtomisticModel (i-PI, LAMMPS, metatomic-ase).

    Export a structure-kernel model or a local potential to a TorchScript metatomic
    model: energies, per-atom energies (local potentials), forces and stress by
    autograd, in any engine that runs metatomic models.
    """
    from ..registry import resolve_model

    try:
        from ..export import export_metatomic
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


def _cmd_info(args: argparse.Namespace) -> int:
    """Hyperparameters and provenance of a model file."""
    from ..core.serialization import model_file_info
    from ..registry import resolve_model_path

    print(json.dumps(model_file_info(resolve_model_path(args.model)), indent=2))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    """Download the elpasolite data (checksum-verified)."""
    from ..data.datasets import fetch_elpasolites

    path = fetch_elpasolites(args.dir)
    print(f"elpasolite data verified at {path}")
    return 0
