"""Where the time of one calculator call goes: each part of it timed alone.

One 10-atom elpasolite (Al Na K F6), the shipped default model on the CPU (or on
``--device``: featomic always runs on the CPU, the model's torch work on the device);
every row is the median of ``--repeats`` calls after a warm-up. The first three rows are whole
calculator calls (a position is nudged by 1e-9 Å before each, so that ASE does not
return a cached result); the others are their parts, in the order a call runs them.
To compare two versions of the package, run this script in each checkout, one after
the other on a quiet machine.

    python benchmarks/speed/call_parts.py
    python benchmarks/speed/call_parts.py --model elpasolite-dj10-multiscale --repeats 100
    python benchmarks/speed/call_parts.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ase_alchemical import AlchemicalCalculator
from ase_alchemical.core import features as F
from ase_alchemical.core.hypers import basis_shapes, hypers_list
from ase_alchemical.data.datasets import build_elpasolite


def median_ms(fn, repeats: int, sync=lambda: None) -> float:
    """Median wall time of ``fn()`` in ms, after one warm-up call.

    ``sync`` waits for queued GPU work, so that a row times the work, not its launch.
    """
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="shipped name or file (default: default)")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--device", default="cpu", help="torch device of the model, e.g. cuda")
    args = parser.parse_args()
    calc = AlchemicalCalculator(args.model, device=args.device)
    model = calc.model
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    atoms = build_elpasolite("Al", "Na", "K", "F")
    atoms.calc = calc
    hypers = model.hypers_
    first = hypers_list(hypers)[0]
    lmax1, n_radial = basis_shapes(first)[0]
    relabelled, numbers = F.relabel_to_local_types([atoms])
    k = len(numbers[0])
    featomic = F.expansion_calculator(first)
    raw = featomic.compute(relabelled)
    raw_grad = featomic.compute(relabelled, gradients=["positions"])
    merged = F.merged_blocks(raw, k)
    offset = torch.tensor([0])
    spectrum = F.compute_pair_spectrum([atoms], hypers)  # on the CPU, as featomic's output
    on_device = spectrum.to(device)
    x = model.features(on_device)

    def call(properties):
        def run():
            atoms.positions[0, 0] += 1e-9
            calc.calculate(atoms, properties)

        return run

    def backward():
        s, geometry = F.differentiable_pair_spectrum([atoms], hypers, strain=False)
        out = model.predict_from_spectrum(s).sum()
        sync()
        t0 = time.perf_counter()
        geometry.backward(out)
        sync()
        return time.perf_counter() - t0

    scale = f" (first of {model.n_scales} scales)" if model.n_scales > 1 else ""
    rows = {
        "calculator: energy": call(["energy"]),
        "calculator: energy + forces": call(["energy", "forces"]),
        "calculator: energy + forces + stress": call(["energy", "forces", "stress"]),
        "check_structure": lambda: F.check_structure(atoms),
        "relabel to local types": lambda: F.relabel_to_local_types([atoms]),
        f"featomic compute{scale}": lambda: featomic.compute(relabelled),
        f"featomic compute, position gradients{scale}": lambda: featomic.compute(
            relabelled, gradients=["positions"]
        ),
        f"merge blocks{scale}": lambda: F.merged_blocks(raw, k),
        f"merge blocks with gradients{scale}": lambda: F.merged_blocks(raw_grad, k),
        f"assemble the pair spectrum{scale}": lambda: F.pair_spectrum_from_tensormap(
            merged, offset, len(atoms), 1, k, lmax1, n_radial, torch.float64
        ),
        "compute_pair_spectrum (all scales)": lambda: F.compute_pair_spectrum([atoms], hypers),
        "differentiable_pair_spectrum": lambda: F.differentiable_pair_spectrum(
            [atoms], hypers, strain=False
        ),
        "copy the spectrum to the model's device": lambda: spectrum.to(device),
        "compressed features from the spectrum": lambda: model.features(on_device),
        "kernel row and weights": lambda: (
            model.kernel_(x, model.support_features_) @ model.weights_
        ),
    }
    n_support = len(model.support_features_)
    print(f"device: {device}; torch threads: {torch.get_num_threads()}; model: d_J {model.d_j}, "
          f"{n_support} support structures; median of {args.repeats}")  # fmt: skip
    for name, fn in rows.items():
        print(f"{name:<48}{median_ms(fn, args.repeats, sync):>9.2f} ms", flush=True)
    times = [backward() for _ in range(args.repeats)]
    print(f"{'GeometryGradients.backward (forces)':<48}{statistics.median(times) * 1e3:>9.2f} ms")


if __name__ == "__main__":
    main()
