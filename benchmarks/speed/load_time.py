"""How long ``AlchemicalCalculator(name)`` takes to be ready, with and without the cache.

Each shipped model is loaded in three fresh processes, one after the other, side by side
in one run: the first with an empty support-feature cache (it featurizes the support
structures and writes the cache), the second reading that cache, the third with the cache
disabled (``ASE_ALCHEMICAL_NO_CACHE=1``). Each child reports the time of the constructor
alone and of its import of the package; the first energy is computed too, to check that
every load gives the same number.

    python benchmarks/speed/load_time.py --out benchmarks/results/load_time.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ase_alchemical import __version__
from ase_alchemical.core.feature_cache import CACHE_DIR_ENV, NO_CACHE_ENV
from ase_alchemical.registry import available_models

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import write_report

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from ase_alchemical import AlchemicalCalculator
from ase_alchemical.data.datasets import build_elpasolite
t1 = time.perf_counter()
calc = AlchemicalCalculator(sys.argv[1], device="cpu")
t2 = time.perf_counter()
atoms = build_elpasolite("Al", "Na", "K", "F")
atoms.calc = calc
energy = atoms.get_potential_energy()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "energy": energy}))
"""


def _child(name: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, name], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=available_models())
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in args.models:
            env = dict(os.environ, **{CACHE_DIR_ENV: str(Path(cache) / name)})
            env.pop(NO_CACHE_ENV, None)
            first = _child(name, env)
            second = _child(name, env)
            uncached = _child(name, dict(env, **{NO_CACHE_ENV: "1"}))
            entry = sum(p.stat().st_size for p in (Path(cache) / name).glob("*.pt"))
            assert first["energy"] == second["energy"] == uncached["energy"], name
            rows.append((name, first, second, uncached, entry))
            print(name, first, second, uncached, entry, flush=True)
    lines = [
        "| model | first load (s, builds the cache) | second load (s, reads it) "
        "| cache disabled (s) | import of the package (s) | cache entry (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, first, second, uncached, entry in rows:
        lines.append(
            f"| {name} | {first['load_s']:.2f} | {second['load_s']:.2f} | "
            f"{uncached['load_s']:.2f} | {second['import_s']:.2f} | {entry / 1e6:.0f} |"
        )
    text = [
        "# Loading a shipped model, with and without the support-feature cache",
        "",
        f"`python benchmarks/speed/load_time.py` (ase-alchemical {__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}). Each column is a fresh "
        "process timing `AlchemicalCalculator(name)` alone (the package already imported; "
        "its import is the next-to-last column, from the second process); the three "
        "processes of a model ran one after the other, and all gave the same energy of "
        "K2NaAlF6 to the last bit.",
        "",
        *lines,
    ]
    print("\n".join(text))
    if args.out is not None:
        results = [
            {
                "model": name,
                "first": first,
                "second": second,
                "uncached": uncached,
                "cache_entry_bytes": entry,
            }
            for name, first, second, uncached, entry in rows
        ]
        write_report(args.out, text, results)


if __name__ == "__main__":
    main()
