import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError, get_calculator_class
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS
from ase.units import fs

from ase_alchemical import AlchemicalCalculator, AlchemicalKRR, UnknownElementError
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.data.datasets import build_elpasolite, split

SMALL = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)


@pytest.fixture(scope="module")
def model(elpasolites):
    train, opt, _ = split(elpasolites, 300, 100, 100, seed=1)
    return AlchemicalKRR(
        d_j=2, hypers=SMALL, zeta=2, solver="sparse", n_steps=5, n_support=150
    ).fit(train, opt)


@pytest.fixture
def calc(model):
    return AlchemicalCalculator(model, device="cpu")


def _rattled(sites=("Bi", "Na", "Cs", "Cl"), seed=0, amount=0.08):
    atoms = build_elpasolite(*sites)
    atoms.rattle(amount, seed=seed)
    return atoms


@pytest.mark.parametrize(
    "atoms",
    [
        _rattled(seed=0),
        _rattled(("Al", "Li", "K", "F"), seed=1),
        _rattled(("In", "K", "Rb", "I"), seed=2),
        # a non-periodic cluster: the elpasolite's atoms without the cell
        Atoms(_rattled(seed=3).get_chemical_symbols(), positions=_rattled(seed=3).positions),
    ],
)
def test_forces_are_finite_differences_of_the_energy(calc, atoms):
    atoms.calc = calc
    forces = atoms.get_forces()
    numerical = calc.calculate_numerical_forces(atoms, d=1e-4)
    np.testing.assert_allclose(forces, numerical, atol=2e-6 * max(1.0, np.abs(forces).max()))
    assert np.abs(forces).max() > 1e-3  # a rattled structure feels forces


def test_stress_is_the_strain_derivative(calc):
    atoms = _rattled(seed=4)
    atoms.calc = calc
    stress = atoms.get_stress()
    numerical = calc.calculate_numerical_stress(atoms, d=1e-5)
    np.testing.assert_allclose(stress, numerical, atol=1e-7 + 1e-5 * np.abs(stress).max())
    assert stress.shape == (6,)


def test_stress_is_computed_only_when_asked_for(calc, model):
    """Forces alone skip featomic's strain gradients; a later get_stress computes them,
    with the same energy and forces as one call asking for everything."""
    atoms = _rattled(seed=6)
    atoms.calc = calc
    forces = atoms.get_forces()
    assert "stress" not in calc.results
    stress = atoms.get_stress()
    full = AlchemicalCalculator(model, device="cpu")
    full.calculate(atoms.copy(), ["energy", "forces", "stress"])
    np.testing.assert_allclose(stress, full.results["stress"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(forces, full.results["forces"], rtol=0, atol=1e-12)
    _, _, virials = model.energy_and_derivatives([atoms], strain=False)
    assert virials is None
    cluster = Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 2.8]])
    with pytest.raises(ValueError, match="strain derivatives need every structure"):
        model.energy_and_derivatives([cluster], strain=True)


def test_invariances_supercell_and_symmetry(calc):
    atoms = _rattled(seed=5)
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    moved = atoms.copy()
    moved.rotate(37, "x", rotate_cell=True)
    moved.translate([0.3, 0.1, -0.2])
    moved = moved[np.random.default_rng(0).permutation(len(moved))]
    moved.calc = calc
    assert moved.get_potential_energy() == pytest.approx(energy, abs=1e-9)
    big = atoms.repeat((2, 2, 2))
    big.calc = calc
    assert big.get_potential_energy() == pytest.approx(8 * energy, rel=1e-9)
    perfect = build_elpasolite("Bi", "Na", "Cs", "Cl")
    perfect.calc = calc
    forces = perfect.get_forces()
    # A, B, C sit on fixed Wyckoff sites: zero force by symmetry. D (24e, free x) may
    # only feel a force along its A-D bond, and the six D forces cancel.
    assert np.abs(forces[:4]).max() < 1e-8
    bonds = perfect.get_distances(0, range(4, 10), mic=True, vector=True)
    cross = np.cross(forces[4:], bonds)
    assert np.abs(cross).max() < 1e-8 and np.abs(forces.sum(axis=0)).max() < 1e-8


def test_energy_matches_model_and_batch(calc, model, elpasolites):
    frames = elpasolites[:20]
    batch = calc.get_energies(frames)
    np.testing.assert_allclose(batch, model.predict(frames))
    atoms = frames[3].copy()
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(batch[3], rel=1e-10)
    assert atoms.get_potential_energy(force_consistent=True) == pytest.approx(batch[3])


def test_unchanged_atoms_are_not_recomputed(calc, monkeypatch):
    atoms = _rattled(seed=6)
    atoms.calc = calc
    atoms.get_potential_energy()
    calls = []
    monkeypatch.setattr(calc.model, "predict", lambda *a, **k: calls.append(1))
    atoms.get_potential_energy()
    assert calls == []


def test_errors_that_help(calc):
    atoms = Atoms("FeNaCl", positions=[[0, 0, 0], [2, 0, 0], [0, 2, 0]])
    atoms.calc = calc
    with pytest.raises(UnknownElementError, match=r"element\(s\) Fe unknown .* it knows 39"):
        atoms.get_potential_energy()
    cluster = Atoms("NaCl", positions=[[0, 0, 0], [2.5, 0, 0]])
    cluster.calc = calc
    with pytest.raises(PropertyNotImplementedError, match="stress needs a 3D-periodic cell"):
        cluster.get_stress()
    empty = Atoms()
    empty.calc = calc
    with pytest.raises(ValueError, match="is empty"):
        empty.get_potential_energy()
    nan = Atoms("NaCl", positions=[[0, 0, 0], [np.nan, 0, 0]])
    nan.calc = calc
    with pytest.raises(ValueError, match="NaN or inf positions"):
        nan.get_forces()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AlchemicalCalculator("/nonexistent/model.pt")


def test_bfgs_relaxation_lowers_the_energy(calc):
    # Away from the prototype the model extrapolates (it never saw a displaced atom), so
    # its landscape can stall BFGS short of a tight fmax; what must hold is that the
    # optimizer, driven by our forces, goes downhill in energy and in force.
    atoms = _rattled(seed=7, amount=0.1)
    atoms.calc = calc
    start = atoms.get_potential_energy()
    start_fmax = np.abs(atoms.get_forces()).max()
    BFGS(atoms, logfile=None).run(fmax=0.01, steps=100)
    assert atoms.get_potential_energy() < start - 0.1
    assert np.abs(atoms.get_forces()).max() < 0.5 * start_fmax


def test_nve_conserves_energy(calc):
    atoms = build_elpasolite("Bi", "Na", "Cs", "Cl").repeat((2, 1, 1))
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    total = []
    dyn = VelocityVerlet(atoms, timestep=1.0 * fs, logfile=None)
    dyn.attach(lambda: total.append(atoms.get_total_energy()), interval=1)
    dyn.run(40)
    drift = max(total) - min(total)
    kinetic = atoms.get_kinetic_energy()
    assert kinetic > 0.05  # something moves
    assert drift < 2e-3 * len(atoms)  # eV; stated tolerance: 0.1 meV/atom/fs scale


def test_importing_the_package_changes_no_global_state():
    # a fresh interpreter: ASE's name table, torch's defaults, the warning filters and
    # the root logger are the same before and after `import ase_alchemical` (the
    # dependencies are imported first: scipy, under featomic, adds warning filters)
    code = """
import logging, warnings, torch, featomic, scipy.special
from ase.calculators import calculator as c
def snapshot():
    return (dict(c.external_calculators), list(c.names), torch.get_default_dtype(),
            torch.get_num_threads(), len(warnings.filters), list(logging.root.handlers),
            logging.root.level)
before = snapshot()
import ase_alchemical, ase_alchemical.plugin
assert snapshot() == before, (before, snapshot())
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ase_plugin_discovery():
    import ase_alchemical.plugin as plugin

    plugin.register()
    plugin.register()  # idempotent
    assert get_calculator_class("alchemical") is AlchemicalCalculator
    names = {ep.name: ep.value for ep in entry_points(group="ase.plugins")}
    assert names.get("alchemical") == "ase_alchemical.plugin"
    try:
        from ase._4.plugins.plugin import CalculatorPlugin  # noqa: F401
    except ImportError:
        assert plugin.__ase_plugins__ == set()
    else:
        (entry,) = plugin.__ase_plugins__
        assert entry.name == "alchemical" and entry.implementation is AlchemicalCalculator


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(model):
    atoms = _rattled(seed=8)
    cpu = AlchemicalCalculator(model, device="cpu")
    atoms.calc = cpu
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    import copy

    gpu = AlchemicalCalculator(copy.deepcopy(model), device="cuda")
    atoms.calc = gpu
    assert atoms.get_potential_energy() == pytest.approx(e, rel=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), f, atol=1e-9)


def test_float32_matches_float64(model):
    import copy

    atoms = _rattled(seed=9)
    atoms.calc = AlchemicalCalculator(copy.deepcopy(model), device="cpu")
    e64, f64 = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = AlchemicalCalculator(copy.deepcopy(model), device="cpu", dtype=torch.float32)
    assert atoms.calc.model.weights_.dtype == torch.float32
    # float32 kernels carry ~1e-7 relative errors, amplified by the KRR weights (large
    # and of both signs): 1e-3 eV/atom is far below the model's error, and a real bug
    # (a wrong dtype cast, a lost term) is far above it
    assert atoms.get_potential_energy() == pytest.approx(e64, abs=1e-3 * len(atoms))
    np.testing.assert_allclose(atoms.get_forces(), f64, atol=1e-2 * max(1.0, np.abs(f64).max()))


def test_parameters_follow_the_ase_protocol(model):
    """The options live in ``calc.parameters`` as resolved, so ``todict`` says what the
    calculator is; a changed device or dtype reloads the model."""
    import copy

    calc = AlchemicalCalculator(copy.deepcopy(model), device="cpu", dtype="float32")
    assert calc.todict() == {"model": "in-memory", "device": "cpu", "dtype": "float32"}
    assert calc.parameters["uncertainty"] is False and calc.model.weights_.dtype == torch.float32
    calc.set(dtype=torch.float64, uncertainty=True)
    assert calc.parameters["dtype"] == "float64" and calc.model.weights_.dtype == torch.float64
    calc = AlchemicalCalculator(model, device="cpu", uncertainty=True)
    atoms = build_elpasolite("Al", "Na", "K", "F")
    atoms.calc = calc
    atoms.get_potential_energy()
    assert calc.todict()["uncertainty"] is True and "energy_uncertainty" in calc.results
    shipped = AlchemicalCalculator(device="cpu")
    assert shipped.todict() == {"model": "elpasolite-dj4", "device": "cpu"}
    with pytest.raises(ValueError, match="dtype must be one of"):
        AlchemicalCalculator(model, dtype="float16")


def test_per_atom_energies_are_not_defined_by_a_structure_kernel(calc):
    atoms = build_elpasolite("Al", "Na", "K", "F")
    atoms.calc = calc
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_potential_energies()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(model):
    from ase_alchemical import DeviceError

    with pytest.raises(DeviceError, match="device 'cuda' was asked for.*use device='cpu'"):
        AlchemicalCalculator(model, device="cuda")
