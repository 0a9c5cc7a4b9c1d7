"""A screen on a local dask cluster beside the serial one, in one run.

The shipped default model screens the elpasolites over the first ``--n-elements`` of its
elements three times, one after the other: serially with torch on every core, serially
on one thread, and on a ``dask.distributed.LocalCluster`` of ``--workers`` single-thread
worker processes (the cluster's start is timed apart). All three files must be equal,
byte for byte.

    python benchmarks/speed/screen_dask.py --out benchmarks/results/screen_dask.md
"""

from __future__ import annotations

import argparse
import filecmp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from distributed import Client, LocalCluster, get_task_stream

from ase_alchemical import __version__
from ase_alchemical.registry import resolve_model
from ase_alchemical.structure.screening import screen_elpasolites

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-elements", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model = resolve_model(None, device="cpu")
    elements = list(model.compression_.symbols[: args.n_elements])
    threads = torch.get_num_threads()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:

        def screen(name: str, client=None) -> dict:
            t0 = time.perf_counter()
            result = screen_elpasolites(
                model, Path(tmp) / f"{name}.csv", elements, chunk_size=args.chunk_size,
                progress=False, client=client,
            )  # fmt: skip
            runs[name] = {"seconds": time.perf_counter() - t0, **{
                k: result[k] for k in ("n_compositions", "n_structures_this_call", "n_geometries")
            }}  # fmt: skip
            print(name, runs[name], flush=True)

        screen("serial")
        torch.set_num_threads(1)
        screen("serial_1_thread")
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster, Client(cluster) as client:  # fmt: skip
            client.wait_for_workers(args.workers)
            start_s = time.perf_counter() - t0
            with get_task_stream(client) as stream:
                t_screen = time.time()
                screen("dask", client)
        chunks = [
            s for t in stream.data if t["key"].startswith("_screen_chunk")
            for s in t["startstops"] if s["action"] == "compute"
        ]  # fmt: skip
        first_chunk_s = min(s["start"] for s in chunks) - t_screen
        chunk_s = [s["stop"] - s["start"] for s in chunks]
        for name in ("serial_1_thread", "dask"):
            assert filecmp.cmp(Path(tmp) / "serial.csv", Path(tmp) / f"{name}.csv", False), name
    serial, one, dask = (runs[k]["seconds"] for k in ("serial", "serial_1_thread", "dask"))
    n = runs["serial"]["n_compositions"]
    text = [
        "# A screen on a local dask cluster beside the serial one",
        "",
        f"`python benchmarks/speed/screen_dask.py` (ase-alchemical {__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}): the "
        f"shipped default model, with uncertainties, over {len(elements)} elements "
        f"({', '.join(elements)}): {n:,} compositions, "
        f"{runs['serial']['n_structures_this_call']:,} structures predicted, "
        f"{runs['serial']['n_geometries']:,} distinct geometries; chunks of "
        f"{args.chunk_size:,}. The three runs ran one after the other and wrote the same "
        "file, byte for byte.",
        "",
        "| run | wall time (s) | structures/s | speed-up over the serial run |",
        "|---|---:|---:|---:|",
        f"| serial, torch on {threads} threads | {serial:.1f} | "
        f"{runs['serial']['n_structures_this_call'] / serial:.0f} | 1.00 |",
        f"| serial, torch on 1 thread | {one:.1f} | "
        f"{runs['serial']['n_structures_this_call'] / one:.0f} | {serial / one:.2f} |",
        f"| dask, {args.workers} worker processes x 1 thread | {dask:.1f} | "
        f"{runs['serial']['n_structures_this_call'] / dask:.0f} | {serial / dask:.2f} |",
        "",
        f"Starting the local cluster took {start_s:.1f} s more (not in the table). In the "
        f"dask run the first chunk started {first_chunk_s:.1f} s after the screen did "
        "(sending the model to each worker, the featomic blocks, sending their site "
        f"spectra); its {len(chunk_s)} chunks took {np.median(chunk_s):.1f} s each (median; "
        f"longest {max(chunk_s):.1f} s, the first on each worker, which builds the "
        "Cholesky factor of the error bars), with the two workers computing side by side.",
    ]
    print("\n".join(text))
    if args.out is not None:
        write_report(args.out, text, {
            "elements": elements, "runs": runs, "start_s": start_s,
            "first_chunk_s": first_chunk_s, "chunk_s": chunk_s,
        })  # fmt: skip


if __name__ == "__main__":
    main()
