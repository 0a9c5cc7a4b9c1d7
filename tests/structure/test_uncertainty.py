"""Gaussian-process uncertainties: known formulas, calibration, save/load, calculator, CLI."""

import itertools

import numpy as np
import pytest
import torch

from ase_alchemical import AlchemicalCalculator, AlchemicalKRR, load_model
from ase_alchemical.cli import main
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import build_elpasolite

SMALL = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)


@pytest.fixture(scope="module")
def frames():
    """Elpasolites over 6 elements with energies from a smooth made-up function."""
    rng = np.random.default_rng(1)
    combos = list(itertools.product(["Li", "Na", "K", "F", "Cl", "Br"], repeat=4))
    out = []
    for i in rng.choice(len(combos), 260, replace=False):
        atoms = build_elpasolite(*combos[i])
        atoms.info["energy"] = len(atoms) * (0.1 * atoms.numbers.mean() + rng.normal(0, 0.02))
        out.append(atoms)
    return out


def _fit(frames, **kw):
    params = dict(d_j=2, hypers=SMALL, n_steps=5, zeta=2, step_train_size=None, regularizer=1e-2)
    params.update(kw)
    return AlchemicalKRR(**params).fit(frames[:150], frames[150:210])


def test_full_variance_is_the_gp_posterior(frames):
    model = _fit(frames, solver="full", learn_regularizer=False)
    test = frames[210:]
    mean, std = model.predict_per_atom(test, return_std=True)
    assert np.allclose(mean, model.predict_per_atom(test))
    # the textbook formula with a dense inverse
    x_s = model.support_features_
    with torch.no_grad():
        x = model.features(model.pair_spectrum(test))
        k_mm = (x_s @ x_s.T) ** 2
        lam = model.regularizer_ * float(k_mm.diagonal().mean())
        k_star = (x @ x_s.T) ** 2
        inv = torch.linalg.inv(k_mm + lam * torch.eye(len(x_s), dtype=k_mm.dtype))
        var = 1.0 - torch.einsum("im,mn,in->i", k_star, inv, k_star) + lam
    expected = np.sqrt(var.numpy() * model.uncertainty_scale_) * model.y_std_
    assert np.allclose(std, expected, rtol=1e-6)


def test_sparse_variance_matches_full_at_training_points(frames):
    """Projected process with every training point as support = full GP there."""
    full = _fit(frames, solver="full", n_steps=0, learn_regularizer=False)
    sparse = _fit(frames, solver="sparse", n_support=150, n_steps=0, learn_regularizer=False)
    for m in (full, sparse):
        m.uncertainty_scale_ = 1.0
    _, s_full = full.predict_per_atom(frames[:150], return_std=True)
    _, s_sparse = sparse.predict_per_atom(frames[:150], return_std=True)
    assert np.allclose(s_full, s_sparse, rtol=1e-4)


def test_calibration_is_one_on_the_calibration_set(frames):
    model = _fit(frames, solver="full")
    scale = model.uncertainty_scale_
    opt = frames[150:210]
    mean, std = model.predict_per_atom(opt, return_std=True)
    y = per_atom_energies(opt)
    assert np.mean(((mean - y) / std) ** 2) == pytest.approx(1.0, rel=1e-6)
    assert model.calibrate_uncertainty(opt) == pytest.approx(scale, rel=1e-9)
    model.calibrate_uncertainty(frames[210:])
    assert model.uncertainty_scale_ != pytest.approx(scale)


def test_uncertainty_grows_away_from_the_training_data(frames):
    model = _fit(frames, solver="full")
    near = frames[210:230]
    far = [a.copy() for a in near]
    for atoms in far:  # squeeze the lattice by 15 %: environments never seen in training
        atoms.set_cell(atoms.cell * 0.85, scale_atoms=True)
    _, s_near = model.predict_per_atom(near, return_std=True)
    _, s_far = model.predict_per_atom(far, return_std=True)
    assert np.all(s_far > s_near) and np.median(s_far / s_near) > 1.3


def test_uncertainty_survives_save_and_load_and_needs_calibration(frames, tmp_path):
    for solver in ("full", "sparse"):
        model = _fit(frames, solver=solver, n_support=80)
        _, std = model.predict(frames[210:220], return_std=True)
        path = model.save(tmp_path / f"{solver}.pt")
        _, std2 = load_model(path).predict(frames[210:220], return_std=True)
        assert np.allclose(std, std2, rtol=1e-8)
    uncalibrated = AlchemicalKRR(d_j=2, hypers=SMALL, n_steps=0).fit(frames[:100])
    with pytest.raises(RuntimeError, match="calibrate_uncertainty"):
        uncalibrated.predict(frames[:3], return_std=True)


def test_calculator_and_cli_report_uncertainty(frames, tmp_path):
    model = _fit(frames, solver="full")
    atoms = frames[220].copy()
    calc = AlchemicalCalculator(model, device="cpu")
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    assert "energy_uncertainty" not in calc.results
    sigma = calc.get_property("energy_uncertainty", atoms)
    expected = model.predict([atoms], return_std=True)
    assert energy == pytest.approx(expected[0][0]) and sigma == pytest.approx(expected[1][0])
    atoms.calc = AlchemicalCalculator(model, device="cpu", uncertainty=True)
    atoms.get_forces()
    assert atoms.calc.results["energy_uncertainty"] == pytest.approx(sigma)

    import ase.io

    path = model.save(tmp_path / "m.pt")
    ase.io.write(tmp_path / "s.xyz", frames[220:223])
    out = tmp_path / "e.csv"
    assert (
        main(["predict", str(path), str(tmp_path / "s.xyz"), "--uncertainty", "--out", str(out)])
        == 0
    )
    rows = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding=None)
    _, stds = model.predict(frames[220:223], return_std=True)
    assert np.allclose(rows["energy_std_ev"], stds, atol=1e-6)
