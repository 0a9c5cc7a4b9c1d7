"""Export to metatomic: metatomic-ase on the exported file gives the native calculator's
energies, forces, stress and per-atom energies (float64), for both kinds of model."""

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase.calculators.morse import MorsePotential

pytest.importorskip("metatomic_ase")

from metatensor.torch import Labels  # noqa: E402
from metatomic.torch import ModelOutput, load_atomistic_model  # noqa: E402
from metatomic_ase import MetatomicCalculator  # noqa: E402

from ase_alchemical import AlchemicalCalculator, AlchemicalKRR, AlchemicalPotential  # noqa: E402
from ase_alchemical.cli import main  # noqa: E402
from ase_alchemical.core.hypers import make_hypers  # noqa: E402
from ase_alchemical.data.datasets import build_elpasolite  # noqa: E402
from ase_alchemical.export import export_metatomic  # noqa: E402

NEAR = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
FAR = make_hypers(cutoff=5.5, max_radial=3, max_angular=2)
ELEMENTS = ["Li", "Na", "Cs", "F", "Cl", "Al", "Tl"]
TOL = 1e-8  # eV, eV/Å, eV/Å^3: the float64 agreement


def _crystals(n, seed):
    rng = np.random.default_rng(seed)
    combos = list(itertools.permutations(ELEMENTS, 4))
    frames = []
    for i in rng.choice(len(combos), n, replace=False):
        atoms = build_elpasolite(*combos[i])
        atoms.info["energy"] = len(atoms) * (0.05 * atoms.numbers.mean() + rng.normal(0, 0.02))
        frames.append(atoms)
    return frames


def _probe():
    """A strained, rattled crystal: no symmetry hides a wrong force or stress."""
    atoms = build_elpasolite("Tl", "Na", "Cs", "Cl")
    atoms.rattle(0.05, seed=4)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.01 * np.arange(9).reshape(3, 3) / 9),
                   scale_atoms=True)  # fmt: skip
    return atoms


def _compare(model, path, atoms, per_atom: bool):
    native, exported = atoms.copy(), atoms.copy()
    native.calc = AlchemicalCalculator(model)
    exported.calc = MetatomicCalculator(str(path), check_consistency=True)
    e = abs(native.get_potential_energy() - exported.get_potential_energy())
    f = np.abs(native.get_forces() - exported.get_forces()).max()
    s = np.abs(native.get_stress() - exported.get_stress()).max()
    assert e < TOL and f < TOL and s < TOL, (e, f, s)
    assert np.abs(native.get_forces()).max() > 1e-3  # the forces are not trivially zero
    if per_atom:
        de = np.abs(native.get_potential_energies() - exported.get_potential_energies()).max()
        assert de < TOL


STRUCTURE_VARIANTS = {
    "single scale": {},
    "two scales": {"hypers": [NEAR, FAR]},
    "center-resolved": {"center_resolved": True},
    "radial U": {"hypers": [NEAR, FAR], "radially_resolved": True},
    "mean normalisation": {"normalization": "mean"},
}


@pytest.fixture(scope="module")
def crystals():
    return _crystals(60, seed=7)


@pytest.mark.parametrize("variant", list(STRUCTURE_VARIANTS))
def test_structure_kernel_export_matches_the_calculator(crystals, tmp_path, variant):
    params = {"d_j": 2, "hypers": NEAR, "zeta": 2, "solver": "full", "n_steps": 2,
              "step_train_size": None, **STRUCTURE_VARIANTS[variant]}  # fmt: skip
    model = AlchemicalKRR(**params).fit(crystals[:45], crystals[45:])
    path = export_metatomic(model, tmp_path / "model.pt")
    _compare(model, path, _probe(), per_atom=False)


def test_shipped_default_model_exports(tmp_path):
    from ase_alchemical.registry import resolve_model

    model = resolve_model(None, "cpu")
    path = tmp_path / "default.pt"
    assert main(["export", "elpasolite-dj4", "--out", str(path)]) == 0
    atoms = build_elpasolite("Al", "Na", "K", "F")
    atoms.rattle(0.03, seed=1)
    _compare(model, path, atoms, per_atom=False)
    exported = load_atomistic_model(str(path))
    assert exported.capabilities().atomic_types == model.compression_.species
    assert exported.capabilities().interaction_range == 5.0
    assert "Willatt" in str(exported.metadata())
    # a fresh process that never imported featomic-torch loads it from the extensions
    script = (
        "import sys; from ase_alchemical.data.datasets import build_elpasolite; "
        "from metatomic_ase import MetatomicCalculator; "
        "a = build_elpasolite('Al', 'Na', 'K', 'F'); "
        "a.calc = MetatomicCalculator(sys.argv[1], extensions_directory=sys.argv[2]); "
        "print(repr(float(a.get_potential_energy())))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "default-extensions")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    crystal = build_elpasolite("Al", "Na", "K", "F")
    reference = AlchemicalCalculator(model).get_potential_energy(crystal)
    assert abs(float(done.stdout.strip().splitlines()[-1]) - reference) < TOL
    unknown = build_elpasolite("Al", "Na", "K", "F")
    unknown.numbers[0] = 92  # U: not one of the model's elements
    unknown.calc = MetatomicCalculator(str(path))
    with pytest.raises(Exception, match="atomic type|element"):
        unknown.get_potential_energy()


@pytest.fixture(
    scope="module",
    params=[(None, False), (1.0, False), (1.0, True)],
    ids=["kernel", "kernel + two-body", "radially resolved U + two-body"],
)
def potential(request):
    """A local potential over the elpasolite elements, fitted to Morse energies, forces
    and stress of rattled crystals (without and with the two-body term, with one U or
    one per radial function, learned so that they differ)."""
    two_body, radial = request.param
    frames = []
    for atoms in _crystals(10, seed=3):
        atoms.rattle(0.1, seed=len(frames))
        atoms.calc = MorsePotential(epsilon=0.1, r0=2.6, rho0=4.0, rcut1=3.0, rcut2=3.9)
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.info["stress"] = atoms.get_stress()
        atoms.calc = None
        frames.append(atoms)
    model = AlchemicalPotential(
        d_j=2, hypers=NEAR, n_support=60, n_steps=2 if radial else 0, rotation=False,
        two_body=two_body, radially_resolved=radial,
    )  # fmt: skip
    return model.fit(frames[:8], frames[8:], forces=True, stress=True)


def test_local_potential_export_matches_the_calculator(potential, tmp_path):
    path = export_metatomic(potential, tmp_path / "potential.pt")
    atoms = _probe()
    _compare(potential, path, atoms, per_atom=True)
    # two structures in one call, and selected atoms (domain decomposition)
    calc = MetatomicCalculator(str(path))
    other = build_elpasolite("Al", "Li", "Na", "F")
    energy = calc.run_model([atoms, other], {"energy": ModelOutput(sample_kind="system")})
    native = potential.predict([atoms, other])
    assert np.abs(energy["energy"].block().values.detach().numpy().ravel() - native).max() < TOL
    chosen = torch.tensor([[0, 0], [0, 3], [0, 7]], dtype=torch.int32)
    selected = calc.run_model(atoms, {"energy": ModelOutput(sample_kind="system")},
                              selected_atoms=Labels(["system", "atom"], chosen))  # fmt: skip
    per_atom = potential.atomic_energies([atoms])[0]
    expected = per_atom[[0, 3, 7]].sum()
    assert abs(float(selected["energy"].block().values) - expected) < TOL


def test_structure_kernel_refuses_what_it_cannot_do(crystals, tmp_path):
    model = AlchemicalKRR(d_j=2, hypers=NEAR, zeta=2, solver="full", n_steps=0).fit(
        crystals[:45], crystals[45:]
    )
    calc = MetatomicCalculator(str(export_metatomic(model, tmp_path / "m.pt")))
    atoms = _probe()
    # raised inside TorchScript: a torch.jit.Error carrying the model's message
    with pytest.raises(torch.jit.Error, match="cannot compute the energy of selected atoms"):
        calc.run_model(
            atoms,
            {"energy": ModelOutput(sample_kind="system")},
            selected_atoms=Labels(["system", "atom"], torch.tensor([[0, 0]], dtype=torch.int32)),
        )
    projected = AlchemicalKRR(d_j=2, hypers=NEAR, zeta=2, solver="full", n_steps=0,
                              basis_components=4).fit(crystals[:45], crystals[45:])  # fmt: skip
    with pytest.raises(ValueError, match="basis_components"):
        export_metatomic(projected, tmp_path / "p.pt")
    with pytest.raises(TypeError, match="a fitted model is needed"):
        export_metatomic("model.pt", tmp_path / "x.pt")
