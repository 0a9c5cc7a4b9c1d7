"""Speed of the ASE calculator vs a plain-SOAP model a user would otherwise write.

Prints, in one run: single-structure latency of ``atoms.get_potential_energy()``, of
energy + forces and of energy + forces + stress on a 10-atom elpasolite, and batched
throughput (structures/s) over all 10,590 elpasolites, for

* ``AlchemicalCalculator()``: the shipped default model (d_J = 4);
* a baseline: featomic ``SoapPowerSpectrum`` (all 39 elements, no compression) summed
  over atoms, unit-normalised, and a linear-kernel sparse KRR on the same number of
  support structures (at most 1,500), fitted on the same training split.

    python benchmarks/speed/calculator_speed.py [--data DIR] [--n-batch 10590] [--quick]
    python benchmarks/speed/calculator_speed.py --model other.pt --no-baseline

Then the parts of one call timed alone: featomic's expansion (without gradients, with
position gradients, with position and strain gradients) and the kernel row against
the support set, the floors below which the calculator cannot go.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ase_alchemical import AlchemicalCalculator
from ase_alchemical.core.hypers import DEFAULT_HYPERS, hypers_list
from ase_alchemical.data.datasets import build_elpasolite, load_elpasolites, split
from ase_alchemical.structure.training import device_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import PlainSoapBaseline


def _sync() -> None:
    if torch.cuda.is_available():  # GPU work is asynchronous: wait for it before reading clocks
        torch.cuda.synchronize()


def _latency(fn, repeat: int) -> float:
    fn()  # warm-up
    _sync()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--n-batch", type=int, default=10590)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="batch of 1,000, 5 repeats")
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain-SOAP baseline")
    parser.add_argument("--device", default="cpu", help="torch device of the model, e.g. cuda")
    args = parser.parse_args()
    if args.quick:
        args.n_batch, args.repeat = min(args.n_batch, 1000), 5

    t0 = time.perf_counter()
    calc = AlchemicalCalculator(args.model, device=args.device)  # featurizes its support set
    load_s = time.perf_counter() - t0
    model = calc.model
    meta = model.metadata_
    frames = load_elpasolites(args.data)
    train, _, _ = split(frames, meta["n_train"], meta["n_opt"], meta["n_test"], meta["split_seed"])
    t0 = time.perf_counter()
    # the baseline's 140,400-wide features cap its support set: 1,500 x 140,400 float64 is
    # already 1.7 GB (its per-call cost is featomic's, whatever the support size)
    n_support = min(len(model.support_), 1500)
    baseline = None
    if not args.no_baseline:
        baseline = PlainSoapBaseline(model.species, model.hypers_).fit(train, n_support)
    baseline_fit = time.perf_counter() - t0
    nan = float("nan")

    atoms = build_elpasolite("Bi", "Na", "Cs", "Cl")
    atoms.rattle(0.02, seed=0)

    def energy():
        atoms.calc = calc  # a fresh calculator state each call: no caching
        calc.reset()
        return atoms.get_potential_energy()

    def one_call(properties):
        def run():  # one calculate() for all the properties, as ASE's optimizers and MD ask
            calc.reset()
            atoms.calc = calc
            calc.calculate(atoms, properties)
            return calc.results

        return run

    energy_forces = one_call(["energy", "forces"])
    energy_forces_stress = one_call(["energy", "forces", "stress"])

    rows = [
        ("single energy (ms)", _latency(energy, args.repeat) * 1e3,
         _latency(lambda: baseline.predict([atoms]), args.repeat) * 1e3 if baseline else nan),
        ("energy + forces (ms)", _latency(energy_forces, args.repeat) * 1e3, nan),
        ("energy + forces + stress (ms)", _latency(energy_forces_stress, args.repeat) * 1e3, nan),
    ]  # fmt: skip
    parts = _parts(model, atoms, args.repeat)
    batch = frames[: args.n_batch]
    _sync()
    t0 = time.perf_counter()
    calc.get_energies(batch)
    _sync()
    ours = len(batch) / (time.perf_counter() - t0)
    theirs = nan
    if baseline is not None:
        t0 = time.perf_counter()
        baseline.predict(batch)
        theirs = len(batch) / (time.perf_counter() - t0)
    rows.append((f"batch of {len(batch)} (structures/s)", ours, theirs))

    where = device_name(calc.device)
    if calc.device.type == "cuda":
        where += f", peak GPU memory {torch.cuda.max_memory_allocated(calc.device) / 2**30:.2f} GiB"
    print(f"device: {where}; torch {torch.__version__}")
    print(f"torch threads: {torch.get_num_threads()}; baseline fit: {baseline_fit:.0f} s; "
          f"default hypers cutoff {DEFAULT_HYPERS['cutoff']['radius']} A; model "
          f"{args.model or 'shipped default'}, {model.n_scales} scale(s)")  # fmt: skip
    print(
        f"model: {len(model.support_)} support structures, zeta {model.zeta}, "
        f"solver {model.solver}; AlchemicalCalculator() took {load_s:.1f} s to load it"
    )
    print(f"{'':<34}{f'alchemical d_J={model.compression_.d_j}':>18}{'plain SOAP':>14}{'ratio':>8}")
    for name, a, b in rows:
        ratio = a / b if "ms" not in name else b / a
        print(f"{name:<34}{a:>18.2f}{b:>14.2f}{ratio:>7.1f}x")
    print("(ratio > 1: the alchemical calculator is faster; forces: baseline has none)")
    print("parts of one call, each timed alone (ms):")
    for name, value in parts.items():
        print(f"  {name:<60}{value:>8.2f}")


def _parts(model, atoms, repeat: int) -> dict:
    """Lower bounds of a call: featomic's expansion alone (every scale) and the kernel
    row against the support set alone."""
    import featomic

    calculators = [featomic.SphericalExpansion(**h) for h in hypers_list(model.hypers_)]

    def expansion(gradients):
        return lambda: [c.compute(atoms, gradients=gradients) for c in calculators]

    x, support = model.support_features_[:1].clone(), model.support_features_
    with torch.no_grad():
        kernel = _latency(lambda: model.kernel_(x, support) @ model.weights_, repeat)
    n, d = model.support_features_.shape
    return {
        "featomic expansion": _latency(expansion([]), repeat) * 1e3,
        "featomic expansion with position gradients": _latency(expansion(["positions"]), repeat)
        * 1e3,
        "featomic expansion with position and strain gradients": _latency(
            expansion(["positions", "strain"]), repeat
        )
        * 1e3,
        f"kernel row against {n} x {d} support features (float64)": kernel * 1e3,
    }


if __name__ == "__main__":
    main()
