"""A third model kind is one class on the estimator base plus one registry line: a
per-element constant model runs through the calculator, save / load and ``score``."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from ase.build import bulk

from ase_alchemical import AlchemicalCalculator, load_model, registry
from ase_alchemical.core.compression import AlchemicalCompression
from ase_alchemical.core.estimator import AlchemicalModel, as_frames
from ase_alchemical.core.state import StateBase
from ase_alchemical.core.targets import total_energies
from ase_alchemical.errors import NotFittedError


@dataclass
class ConstantState(StateBase):
    compression: AlchemicalCompression
    weights: torch.Tensor  # energy of each element (eV), in U's row order
    noise: float


class PerElementConstant(AlchemicalModel):
    """E = sum of one energy per element, by least squares; forces and stress zero."""

    kind = "per-element-constant"
    _STATE = ConstantState

    def __init__(self, *, hypers=None, ridge: float = 1e-8, device=None) -> None:
        self._store_params(locals())

    def _counts(self, frames, species):
        index = {z: i for i, z in enumerate(species)}
        counts = np.zeros((len(frames), len(species)))
        for s, atoms in enumerate(frames):
            for z in atoms.numbers:
                counts[s, index[int(z)]] += 1
        return counts

    def fit(self, frames):
        frames = as_frames(frames)
        species = sorted({int(z) for a in frames for z in a.numbers})
        counts, energies = self._counts(frames, species), total_energies(frames)
        a = counts.T @ counts + self.ridge * np.eye(len(species))
        e = np.linalg.solve(a, counts.T @ energies)
        noise = float(np.std(counts @ e - energies)) + 1e-3
        compression = AlchemicalCompression(species, len(species), init="identity")
        self._set_state(ConstantState(compression, torch.as_tensor(e), noise))
        return self

    def predict(self, frames, return_std=False):
        self._check_fitted()
        frames = as_frames(frames)
        counts = self._counts(frames, self.species)
        energies = counts @ self.state_.weights.cpu().numpy()
        if return_std:
            return energies, np.full(len(frames), self.state_.noise)
        return energies

    def energy_and_derivatives(self, frames, strain=None):
        frames = as_frames(frames)
        virials = [np.zeros((3, 3)) for _ in frames] if strain else None
        return self.predict(frames), [np.zeros((len(a), 3)) for a in frames], virials


def _frames(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.numbers = rng.choice([28, 29, 79], len(atoms))
        energies = {28: -5.0, 29: -3.5, 79: -3.0}
        atoms.info["energy"] = sum(energies[int(z)] for z in atoms.numbers) + rng.normal(0, 0.01)
        out.append(atoms)
    return out


@pytest.fixture
def registered():
    registry.register_kind(PerElementConstant)
    yield PerElementConstant
    registry.KINDS.pop(PerElementConstant.kind)


def test_a_third_kind_runs_through_calculator_files_and_score(registered, tmp_path):
    model = PerElementConstant().fit(_frames(20, 0))
    assert model.weights_.numpy() == pytest.approx([-5.0, -3.5, -3.0], abs=0.02)
    test = _frames(5, 1)
    assert model.score(test)["energy_mae"] < 0.01

    path = model.save(tmp_path / "constant.pt", metadata={"note": "test"})
    loaded = load_model(path, device="cpu")
    assert type(loaded) is PerElementConstant and loaded.metadata_ == {"note": "test"}
    assert loaded.predict(test) == pytest.approx(model.predict(test))

    atoms = test[0].copy()
    atoms.calc = AlchemicalCalculator(loaded)
    assert atoms.get_potential_energy() == pytest.approx(model.predict([test[0]])[0])
    assert np.all(atoms.get_forces() == 0) and np.all(atoms.get_stress() == 0)
    assert atoms.calc.get_property("energy_uncertainty", atoms) == pytest.approx(model.noise_)
    assert atoms.calc.elements == ["Ni", "Cu", "Au"]


def test_an_unregistered_kind_is_a_clear_file_error(tmp_path):
    from ase_alchemical.errors import ModelFileError

    path = PerElementConstant().fit(_frames(5, 0)).save(tmp_path / "constant.pt")
    with pytest.raises(ModelFileError, match="per-element-constant"):
        load_model(path)


def test_fitted_attributes_of_a_new_kind_are_read_and_written_through_its_state():
    model = PerElementConstant()
    with pytest.raises(NotFittedError):
        _ = model.weights_
    with pytest.raises(NotFittedError):
        model.weights_ = torch.zeros(3)
    assert not hasattr(model, "weights_")
    model.fit(_frames(5, 0))
    model.weights_ = torch.zeros(3)
    assert model.state_.weights.sum() == 0 and "weights_" not in model.__dict__
    assert model.predict(_frames(1, 1))[0] == 0


def test_registering_a_kind_checks_what_it_is_given(registered):
    with pytest.raises(TypeError, match="not an AlchemicalModel subclass"):
        registry.register_kind(dict)

    class Impostor(PerElementConstant):
        pass

    with pytest.raises(ValueError, match="a different class is registered"):
        registry.register_kind(Impostor)
    assert registry.register_kind(PerElementConstant) is PerElementConstant  # idempotent
