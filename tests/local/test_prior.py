"""A local potential over a prior model: it learns what the prior leaves, returns to the
prior where a correction cannot help, records its prior in the file, and says clearly what
it cannot do (per-atom energies, export)."""

from __future__ import annotations

import warnings

import ase
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential

from ase_alchemical import (
    AlchemicalCalculator,
    AlchemicalPotential,
    ModelFileError,
    PriorMismatchWarning,
    load_model,
)
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.priors import Prior, resolve_prior

SMALL = make_hypers(cutoff=4.0, max_radial=3, max_angular=3)


def _alloys(n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
        atoms.numbers = rng.choice([29, 28, 47, 79], len(atoms))
        atoms.set_cell(atoms.cell.array * rng.uniform(0.97, 1.04), scale_atoms=True)
        atoms.rattle(0.08, seed=int(rng.integers(1 << 30)))
        out.append(atoms)
    return out


def _label(frames, extra=None, noise=0.0, seed=0):
    """EMT labels, plus a Morse pair term (``extra``) or random noise: what a prior of
    EMT leaves is then known."""
    rng = np.random.default_rng(seed)
    out = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = EMT()
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        if extra is not None:
            atoms.calc = extra
            e, f, s = (e + atoms.get_potential_energy(), f + atoms.get_forces(),
                       s + atoms.get_stress())  # fmt: skip
        atoms.calc = None
        atoms.info["energy"] = e + noise * len(atoms) * rng.normal()
        atoms.arrays["forces"] = f + noise * rng.normal(size=f.shape)
        atoms.info["stress"] = s
        out.append(atoms)
    return out


MORSE = MorsePotential(epsilon=0.05, r0=2.7, rho0=5.0, rcut1=3.0, rcut2=3.9)


def _fit(prior, frames, **kwargs):
    model = AlchemicalPotential(
        d_j=2, hypers=SMALL, n_support=40, n_steps=0, prior=prior, **kwargs
    )  # fmt: skip
    return model.fit(frames[:14], frames[14:18], forces=True, stress=True)


@pytest.fixture(scope="module")
def frames():
    return _label(_alloys(24, seed=1), extra=MORSE)


@pytest.fixture(scope="module")
def model(frames):
    return _fit("emt", frames)


def _errors(predict, frames):
    e = np.array([predict(a)[0] for a in frames])
    f = np.concatenate([predict(a)[1] for a in frames])
    ref_e = np.array([a.info["energy"] for a in frames])
    ref_f = np.concatenate([a.arrays["forces"] for a in frames])
    n = np.array([len(a) for a in frames])
    return np.abs((e - ref_e) / n).mean(), np.abs(f - ref_f).mean()


def _emt(atoms):
    atoms = atoms.copy()
    atoms.calc = EMT()
    return atoms.get_potential_energy(), atoms.get_forces()


def _ours(model):
    def predict(atoms):
        e, g, _ = model.energy_and_derivatives([atoms], strain=False)
        return e[0], -g[0]

    return predict


def test_the_correction_learns_what_the_prior_leaves(model, frames):
    test = frames[18:]
    ours, prior_alone = _errors(_ours(model), test), _errors(_emt, test)
    assert ours[0] < 0.5 * prior_alone[0]  # energy per atom, on frames not fitted
    assert ours[1] < 0.6 * prior_alone[1]  # forces
    assert min(model.optimization_["correction_sigma_factors"]) < 1000


def test_where_a_correction_cannot_help_the_model_returns_to_the_prior():
    # labels: EMT plus random noise, which no kernel term can predict
    frames = _label(_alloys(24, seed=2), noise=0.05, seed=3)
    model = _fit("emt", frames)
    factors = model.optimization_["correction_sigma_factors"]
    # both sigmas scaled up at least tenfold: the noise is left to the prior
    assert min(factors) >= 10, model.optimization_["correction_strengths"]
    test = frames[18:]
    ours, prior_alone = _errors(_ours(model), test), _errors(_emt, test)
    assert ours[1] < 1.01 * prior_alone[1]


def test_forces_and_stress_are_derivatives_of_prior_plus_correction(model, frames):
    atoms = frames[20]
    _, grads, virials = model.energy_and_derivatives([atoms], strain=True)
    h = 1e-4
    for atom, axis in [(0, 0), (3, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        fd = (model.predict([plus])[0] - model.predict([minus])[0]) / (2 * h)
        assert abs(fd - grads[0][atom, axis]) < 1e-5
    eps = 1e-5
    strained = []
    for sign in (1, -1):
        a = atoms.copy()
        a.set_cell(a.cell.array @ (np.eye(3) + sign * eps * np.diag([1, 0, 0])), scale_atoms=True)
        strained.append(model.predict([a])[0])
    assert abs((strained[0] - strained[1]) / (2 * eps) - virials[0][0, 0]) < 1e-4


def test_the_calculator_returns_prior_plus_correction(model, frames):
    atoms = frames[19].copy()
    atoms.calc = AlchemicalCalculator(model)
    e, g, v = model.energy_and_derivatives([frames[19]], strain=True)
    assert atoms.get_potential_energy() == pytest.approx(e[0], abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), -g[0], atol=1e-10)
    assert np.isfinite(atoms.calc.get_property("energy_uncertainty", atoms))
    with pytest.raises(ValueError, match="no per-atom energies"):
        model.atomic_energies([frames[19]])


def test_a_named_prior_is_recorded_and_checked_at_load(model, frames, tmp_path, monkeypatch):
    path = model.save(tmp_path / "pot.pt")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(frames[18:]), model.predict(frames[18:]))
    record = loaded._file_params()["prior"]
    assert record["name"] == "emt" and record["version"] == ase.__version__
    monkeypatch.setattr(ase, "__version__", "0.0.1")
    with pytest.warns(PriorMismatchWarning, match="0.0.1"):
        load_model(path)


def test_a_prior_in_memory_must_be_given_again_at_load(frames, tmp_path):
    model = _fit(EMT(), frames)
    path = model.save(tmp_path / "pot.pt")
    with pytest.raises(ModelFileError, match="prior=calculator"):
        load_model(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same calculator: no mismatch
        loaded = load_model(path, prior=EMT())
    np.testing.assert_array_equal(loaded.predict(frames[18:]), model.predict(frames[18:]))
    other = MorsePotential()
    with pytest.warns(PriorMismatchWarning, match="fingerprint"):
        load_model(path, prior=other).predict(frames[18:19])


def test_prior_labels_are_computed_once(frames, monkeypatch, tmp_path):
    monkeypatch.setenv("ASE_ALCHEMICAL_CACHE_DIR", str(tmp_path))
    calls = []

    class CountingEMT(EMT):
        def calculate(self, *args, **kwargs):
            calls.append(1)
            super().calculate(*args, **kwargs)

    prior = resolve_prior(CountingEMT())
    prior.labels(frames[:5])
    prior.labels(frames[:5])
    assert len(calls) == 5
    named = Prior.by_name("emt")
    named.labels(frames[:3])
    assert len(list((tmp_path / "prior-labels").rglob("*.npz"))) == 3
    again = Prior.by_name("emt")  # a new process reads the disk entries
    np.testing.assert_array_equal(
        again.labels(frames[:3]).energies, named.labels(frames[:3]).energies
    )


def test_what_a_prior_cannot_be_is_said_clearly(model, frames):
    with pytest.raises(ValueError, match="unknown prior 'nope'"):
        AlchemicalPotential(prior="nope").fit(frames[:4])
    with pytest.raises(ValueError, match="ASE calculator"):
        AlchemicalPotential(prior=3.0).fit(frames[:4])
    with pytest.raises(ValueError, match="not TorchScript"):
        model.metatomic_module()


def test_the_cli_trains_over_a_named_prior(frames, tmp_path, capsys):
    import ase.io

    from ase_alchemical.cli import main

    data = tmp_path / "alloys.xyz"
    ase.io.write(data, frames[:20])
    out = tmp_path / "pot.pt"
    code = main([
        "train", "--kernel", "local", "--data", str(data), "--forces", "--stress",
        "--prior", "emt", "--d-j", "2", "--steps", "0", "--n-support", "40",
        "--max-radial", "3", "--max-angular", "3", "--cutoff", "4", "--out", str(out),
        "--quiet",
    ])  # fmt: skip
    assert code == 0
    assert load_model(out)._file_params()["prior"]["name"] == "emt"
    assert "test energy MAE" in capsys.readouterr().out
    assert main(["train", "--kernel", "local", "--data", str(data), "--prior", "nope",
                 "--out", str(out), "--quiet"]) != 0  # fmt: skip
    assert "unknown prior 'nope'" in capsys.readouterr().err


def test_a_missing_extra_and_an_unknown_load_parameter_are_named(model, tmp_path, monkeypatch):
    import importlib

    real_import = importlib.import_module

    def no_sevenn(name, *args, **kwargs):  # as if the sevenn extra were not installed
        if name.split(".")[0] == "sevenn":
            raise ImportError("No module named 'sevenn'")
        return real_import(name, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(importlib, "import_module", no_sevenn)
        with pytest.raises(ImportError, match=r"ase-alchemical\[sevenn\]"):
            resolve_prior("sevenn")
    path = model.save(tmp_path / "pot.pt")
    with pytest.raises(ValueError, match="no hyperparameters .*'zeta_typo'"):
        load_model(path, zeta_typo=3)
