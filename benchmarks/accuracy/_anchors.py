"""The anchors of the HEA benchmark: other people's models on the same frames.

- metatrain's ``gap`` (sparse GPR on SOAP, element-resolved) and ``soap_bpnn`` trained on
  the same 80 training frames (the held-out 10 as their validation set), through the
  ``mtt train`` command line, and evaluated through the exported model in
  metatomic-ase's calculator;
- CHGNet and SevenNet-0 zero-shot: universal potentials that never saw these frames,
  their energies shifted by a per-element linear fit on the 80 training frames (their
  reference is Materials Project's spin-polarised PBE(+U), not this data's PBEsol);
- CHGNet fine-tuned on the training frames with its own ``Trainer``
  (:data:`CHGNET_TUNING`), what a user with these frames would otherwise do;

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
from _metals import GPA, metal_properties

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
#: CHGNet fine-tuned on the first N training frames (the held-out frames its validation set)
CHGNET_TUNED = {
    f"CHGNet 0.3.0 fine-tuned on {'the 80' if n == 80 else n} with its Trainer, "
    "energies + forces + stress": n
    for n in (80, *CURVE_SIZES)
}  # fmt: skip
#: CHGNet's fine-tuning recipe (its example notebook: the embeddings, bases and first three
#: interaction blocks frozen; Adam with its cosine schedule, MSE on energies, forces and
#: stress weighted 1 / 1 / 0.1, its defaults; its per-element reference energies
#: trainable) at its default learning rate, the same number of epochs at every size,
#: scored after the last epoch (the held-out frames are its validation set); the
#: reference energies are first shifted by the per-element fit of the zero-shot residual,
#: since these labels are PBEsol, not Materials Project's
CHGNET_TUNING = {"epochs": 10, "learning_rate": 1e-3, "batch_size": 8}
ANCHORS = [*METATRAIN, CHGNET, *CHGNET_CURVE, SEVENNET, *CHGNET_TUNED]


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


def _shift_table(train, predicted_train: np.ndarray) -> dict[int, float]:
    """Least-squares per-element energies (eV) of the residual (label - prediction)."""
    species = sorted({int(z) for a in train for z in a.numbers})
    counts = np.array([[np.sum(a.numbers == z) for z in species] for a in train], float)
    residual = np.array([a.info["energy"] for a in train]) - predicted_train
    shift, *_ = np.linalg.lstsq(counts, residual, rcond=None)
    return dict(zip(species, shift))


def _per_element_shift(train, predicted_train: np.ndarray):
    """The per-element shift of the residual, as a function of a structure."""
    table = _shift_table(train, predicted_train)

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


def _chgnet_data(frames):
    """CHGNet's dataset of labelled frames: energies per atom (eV), forces (eV/Å) and
    stress as VASP writes it (kbar, the opposite sign of ASE's), which its dataset turns
    into its model's stress (GPa, ASE's sign: its calculator returns that times
    ``ase.units.GPa``) by a factor of -0.1."""
    from ase.stress import voigt_6_to_full_3x3_stress
    from chgnet.data.dataset import StructureData
    from pymatgen.io.ase import AseAtomsAdaptor

    return StructureData(
        structures=[AseAtomsAdaptor.get_structure(a) for a in frames],
        energies=[a.info["energy"] / len(a) for a in frames],
        forces=[a.arrays["forces"] for a in frames],
        stresses=[-10 * GPA * voigt_6_to_full_3x3_stress(a.info["stress"]) for a in frames],
    )


def run_chgnet_finetuned(train, opt, test, workdir: Path) -> dict:
    """CHGNet's shipped weights fine-tuned on the training frames (the held-out frames as
    its validation set) with its own Trainer, scored through its ASE calculator; the fit
    time includes the zero-shot pass that shifts its reference energies."""
    import contextlib
    import io

    import torch
    from chgnet.data.dataset import collate_graphs
    from chgnet.model.dynamics import CHGNetCalculator
    from chgnet.trainer import Trainer

    torch.manual_seed(0)
    t0 = time.perf_counter()
    calc = _chgnet()
    model = calc.model
    table = _shift_table(train, _energies(calc, train))  # its forces need autograd
    with torch.no_grad():  # per atom, by composition fraction: a shift per atom of Z
        for z, shift in table.items():
            model.composition_model.fc.weight[0, z - 1] += shift
    frozen = [
        model.atom_embedding, model.bond_embedding, model.angle_embedding,
        model.bond_basis_expansion, model.angle_basis_expansion, model.atom_conv_layers[:3],
        model.bond_conv_layers, model.angle_layers,
    ]  # fmt: skip
    for layer in frozen:
        for param in layer.parameters():
            param.requires_grad = False
    loaders = [
        torch.utils.data.DataLoader(
            _chgnet_data(frames), batch_size=CHGNET_TUNING["batch_size"], shuffle=shuffle,
            collate_fn=collate_graphs,
        )
        for frames, shuffle in ((train, True), (opt, False))
    ]  # fmt: skip
    trainer = Trainer(
        model=model, targets="efs", optimizer="Adam", scheduler="CosLR", criterion="MSE",
        epochs=CHGNET_TUNING["epochs"], learning_rate=CHGNET_TUNING["learning_rate"],
        use_device="cpu", print_freq=1000, torch_seed=0, data_seed=0,
    )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):  # its per-batch log: not this report's
        trainer.train(*loaders, save_dir=str(workdir), train_composition_model=True)
    fit_s = time.perf_counter() - t0
    # the model after the last epoch: the Trainer's ``best_model`` is that same object
    tuned = CHGNetCalculator(trainer.model, use_device="cpu")
    out = _score(tuned, test)
    out["fit_s"] = fit_s
    out["metals"] = metal_properties(
        lambda frames: _energies(tuned, frames), {s for a in train for s in a.symbols}
    )
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_anchor(name: str, train, opt, test, workdir: Path) -> dict:
    if name in CHGNET_TUNED:
        return run_chgnet_finetuned(train[: CHGNET_TUNED[name]], opt, test, workdir)
    if name in CHGNET_CURVE:
        return run_zero_shot(_chgnet, train[: CHGNET_CURVE[name]], test)
    if name in (CHGNET, SEVENNET):
        return run_zero_shot(_chgnet if name == CHGNET else _sevennet, train, test)
    return run_metatrain(name, train, opt, test, workdir)
