"""Record the predictions of the shipped models and of the small local-potential fixture.

Run once to write ``recorded_predictions.json`` (and the local fixture model, if missing);
``tests/integration/test_recorded.py`` asserts that the package reproduces every number
bit for bit, so a refactoring that changes a prediction shows up as a failing test.

    python tests/data/record_predictions.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

HERE = Path(__file__).resolve().parent
LOCAL_MODEL = HERE / "v2" / "local-emt.pt"


def crystals():
    """Fixed structures of the shipped models' elements: four elpasolites on the
    prototype, one rattled, one strained."""
    from ase_alchemical.data.datasets import build_elpasolite

    frames = [
        build_elpasolite("Al", "Na", "K", "F"),
        build_elpasolite("Bi", "Na", "Cs", "Cl"),
        build_elpasolite("Ga", "Li", "Rb", "Br"),
    ]
    rattled = build_elpasolite("In", "K", "Cs", "I")
    rattled.rattle(0.05, seed=3)
    strained = build_elpasolite("Tl", "K", "Rb", "F")
    strained.set_cell(strained.cell.array @ np.diag([1.02, 0.99, 1.0]), scale_atoms=True)
    return frames + [rattled, strained]


def emt_frames(n: int, seed: int):
    """Random fcc alloys of Cu, Ni, Ag, Au, labelled by ASE's EMT (energies, forces,
    stress): a self-contained data set for a local potential."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 1))
        atoms.numbers = rng.choice([29, 28, 47, 79], len(atoms))
        atoms.set_cell(atoms.cell.array * rng.uniform(0.98, 1.04), scale_atoms=True)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.info["stress"] = atoms.get_stress()
        atoms.calc = None
        out.append(atoms)
    return out


def fit_local_fixture():
    from ase_alchemical import AlchemicalPotential
    from ase_alchemical.core.hypers import make_hypers

    hypers = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
    model = AlchemicalPotential(d_j=2, hypers=hypers, n_support=40, n_steps=3, device="cpu", seed=0)
    model.fit(emt_frames(8, 0), emt_frames(4, 1), forces=True, stress=True)
    model.save(LOCAL_MODEL)


def predictions(model, frames, stress: bool = True) -> dict:
    energies, gradients, virials = model.energy_and_derivatives(frames, strain=stress)
    _, sigma = model.predict(frames, return_std=True)
    return {
        "energy": [float(e) for e in energies],
        "forces": [(-g).ravel().tolist() for g in gradients],
        "virial": [v.ravel().tolist() for v in virials],
        "sigma": [float(s) for s in sigma],
    }


def main() -> None:
    from ase_alchemical import load_model
    from ase_alchemical.registry import available_models, model_path

    if not LOCAL_MODEL.is_file():
        fit_local_fixture()
    out = {}
    for name in available_models():
        out[name] = predictions(load_model(model_path(name), device="cpu"), crystals())
    out["local-emt"] = predictions(load_model(LOCAL_MODEL, device="cpu"), emt_frames(3, 2))
    (HERE / "recorded_predictions.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
