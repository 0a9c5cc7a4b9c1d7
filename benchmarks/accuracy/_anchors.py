"""The anchors of the HEA benchmark: other people's models on the same frames.

- metatrain's ``gap`` (sparse GPR on SOAP, element-resolved) and ``soap_bpnn`` trained on
  the same 80 training frames (the held-out 10 as their validation set), through the
  ``mtt train`` command line, and evaluated through the exported model in
  metatomic-ase's calculator;
- CHGNet and SevenNet-0 zero-shot: universal potentials that never saw these frames,
  their energies shifted by a per-element linear fit on the 80 training frames (their
  reference is Materials Project's spin-polarised PBE(+U), not this data's PBEsol);

These need the ``bench`` extra (``pip install -e ".[bench]"``). Each anchor runs in its
own process (see :mod:`potential_hea`), so the peak memory is its own; ``mtt train`` runs
as a further child, whose peak is reported when it is larger.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import stress_agreement
from _metals import metal_properties

#: name -> (architecture, model hypers, training hypers, fit forces)
METATRAIN = {
    "metatrain gap, energies only, defaults": ("gap", {}, {}, False),
    "metatrain gap, energies + forces, 500 sparse points, max_radial 1, max_angular 3": (
        "gap",
        {
            "soap": {"basis": {"max_angular": 3, "radial": {"max_radial": 1}}},
            "krr": {"num_sparse_points": 500},
        },
        {},
        True,
    ),  # fmt: skip
    "metatrain soap_bpnn, alchemical species (legacy: false), 160 epochs": (
        "soap_bpnn",
        {"legacy": False},
        {"num_epochs": 160},
        True,
    ),  # fmt: skip
}
CHGNET = "CHGNet 0.3.0 zero-shot, energies shifted per element on the 80"
SEVENNET = "SevenNet-0 zero-shot, energies shifted per element on the 80"
#: the smaller training sets of the learning curves (the first N training frames)
CURVE_SIZES = (10, 20, 40)
CHGNET_CURVE = {f"CHGNet 0.3.0 zero-shot, energies shifted per element on {n}": n
                for n in CURVE_SIZES}  # fmt: skip
ANCHORS = [*METATRAIN, CHGNET, *CHGNET_CURVE, SEVENNET]


def _plain(frames, path: Path) -> None:
    """Write frames as extended XYZ with the labels under keys no reader mistakes for a
    calculator's results."""
    from ase import Atoms
    from ase.io import write

    out = []
    for a in frames:
        b = Atoms(a.numbers, a.positions, cell=a.cell, pbc=a.pbc)
        b.info["dft_energy"] = float(a.info["energy"])
        b.arrays["dft_forces"] = np.asarray(a.arrays["forces"], dtype=float)
        out.append(b)
    write(path, out, format="extxyz")


def _dataset(path: Path, forces: bool) -> dict:
    energy = {"key": "dft_energy", "unit": "eV", "stress": False, "virial": False}
    energy["forces"] = {"read_from": str(path), "key": "dft_forces"} if forces else False
    return {"systems": {"read_from": str(path), "length_unit": "angstrom"},
            "targets": {"energy": energy}}  # fmt: skip


def _per_element_shift(train, predicted_train: np.ndarray):
    """Least-squares per-element energies of the residual (label - prediction)."""
    species = sorted({int(z) for a in train for z in a.numbers})
    counts = np.array([[np.sum(a.numbers == z) for z in species] for a in train], float)
    residual = np.array([a.info["energy"] for a in train]) - predicted_train
    shift, *_ = np.linalg.lstsq(counts, residual, rcond=None)
    table = dict(zip(species, shift))

    def apply(a) -> float:
        return float(sum(table.get(int(z), 0.0) for z in a.numbers))

    return apply


def _score(calc, test, energy_shift=None) -> dict:
    """Energy (per atom), force and stress errors of an ASE calculator on labelled
    frames, and the time of one energy + forces call on a 36-atom frame."""
    e_err, f_err, s_err = [], [], []
    for a in test:
        b = a.copy()
        b.calc = calc
        energy = b.get_potential_energy() + (energy_shift(b) if energy_shift else 0.0)
        e_err.append((energy - a.info["energy"]) / len(a))
        f_err.append((b.get_forces() - a.arrays["forces"]).ravel())
        if "stress" in a.info:
            try:
                s_err.append(b.get_stress() - np.asarray(a.info["stress"]))
            except Exception:  # noqa: BLE001 - a model without stress reports none
                s_err = None
    from ase.calculators.calculator import all_changes

    frame = next(a for a in test if len(a) == 36).copy()
    calc.calculate(frame, ["energy", "forces"], all_changes)  # warm-up
    t0 = time.perf_counter()
    for _ in range(3):  # all_changes: a new call each time, not the cached results
        calc.calculate(frame, ["energy", "forces"], all_changes)
    call_ms = (time.perf_counter() - t0) / 3 * 1000
    e, f = np.array(e_err), np.concatenate(f_err)
    out = {
        "energy_mae": float(np.abs(e).mean()), "energy_rmse": float(np.sqrt((e**2).mean())),
        "force_mae": float(np.abs(f).mean()), "force_rmse": float(np.sqrt((f**2).mean())),
        "call_ms": call_ms,
    }  # fmt: skip
    if s_err:
        out["stress_mae"] = float(np.abs(np.array(s_err)).mean())
        labels = np.array([a.info["stress"] for a in test])
        out.update(stress_agreement(np.array(s_err) + labels, labels))
    return out


def run_metatrain(name: str, train, opt, test, workdir: Path) -> dict:
    """Train one metatrain model with ``mtt train`` and score its exported file."""
    from metatomic_ase import MetatomicCalculator

    architecture, model_hypers, train_hypers, forces = METATRAIN[name]
    workdir.mkdir(parents=True, exist_ok=True)
    for label, frames in (("train", train), ("val", opt), ("test", test)):
        _plain(frames, workdir / f"{label}.xyz")
    options = {
        "seed": 0,
        "architecture": {"name": architecture, "model": model_hypers, "training": train_hypers},
        "training_set": _dataset(workdir / "train.xyz", forces),
        "validation_set": _dataset(workdir / "val.xyz", forces),
        "test_set": _dataset(workdir / "test.xyz", forces),
    }
    # JSON is YAML: no YAML writer needed
    (workdir / "options.yaml").write_text(json.dumps(options, indent=1))
    mtt = shutil.which("mtt") or str(Path(sys.executable).with_name("mtt"))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [mtt, "train", "options.yaml", "-o", "model.pt"], cwd=workdir,
        capture_output=True, text=True,
    )  # fmt: skip
    fit_s = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"mtt train failed: {tail[0][:300]}")
    # the exported model's compiled extensions (featomic-torch) lie beside it
    extensions = workdir / "extensions"
    calc = MetatomicCalculator(
        workdir / "model.pt", device="cpu",
        extensions_directory=extensions if extensions.is_dir() else None,
    )  # fmt: skip
    out = _score(calc, test)
    out["fit_s"] = fit_s
    peak = max(
        resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    out["peak_mib"] = peak / 1024
    return out


def _chgnet():
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")


def _sevennet():
    from sevenn.calculator import SevenNetCalculator

    return SevenNetCalculator("7net-0", device="cpu")


def _energies(calc, frames) -> np.ndarray:
    out = []
    for a in frames:
        b = a.copy()
        b.calc = calc
        out.append(b.get_potential_energy())
    return np.array(out)


def run_zero_shot(make_calculator, train, test) -> dict:
    """A universal potential's shipped weights, zero-shot, with a per-element energy
    shift fitted on the training frames."""
    t0 = time.perf_counter()
    calc = make_calculator()
    shift = _per_element_shift(train, _energies(calc, train))
    fit_s = time.perf_counter() - t0
    out = _score(calc, test, energy_shift=shift)
    out["fit_s"] = fit_s
    out["metals"] = metal_properties(
        lambda frames: _energies(calc, frames), {s for a in train for s in a.symbols}
    )
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_anchor(name: str, train, opt, test, workdir: Path) -> dict:
    if name in CHGNET_CURVE:
        return run_zero_shot(_chgnet, train[: CHGNET_CURVE[name]], test)
    if name in (CHGNET, SEVENNET):
        return run_zero_shot(_chgnet if name == CHGNET else _sevennet, train, test)
    return run_metatrain(name, train, opt, test, workdir)
