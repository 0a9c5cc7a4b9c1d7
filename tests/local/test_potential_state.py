"""The local potential's fitted state is read and written through one mechanism, its
labels come from a calculator as from ``info``, and its U loop follows the shared
policy."""

import sys
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from ase_alchemical import AlchemicalPotential, load_model
from ase_alchemical.core.hypers import make_hypers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import record_predictions as recorded  # noqa: E402


def test_assigning_weights_changes_the_predictions():
    model = load_model(recorded.LOCAL_MODEL, device="cpu")
    frames = recorded.emt_frames(2, 5)
    before = model.predict(frames)
    model.weights_ = model.weights_ * 0
    assert "weights_" not in model.__dict__ and float(model.state_.weights.abs().sum()) == 0
    after = model.predict(frames)
    assert not np.allclose(before, after)
    assert model.raw_variance(frames).shape == (2,)  # the factors were rebuilt


def test_a_potential_fits_frames_labelled_by_their_calculator():
    frames = []
    for atoms in recorded.emt_frames(6, 7):
        energy, forces = atoms.info.pop("energy"), atoms.arrays.pop("forces")
        atoms.info.pop("stress")
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    hypers = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
    model = AlchemicalPotential(d_j=2, hypers=hypers, n_support=20, n_steps=3, rotation=True,
                                n_folds=5, device="cpu")  # fmt: skip
    model.fit(frames[:4], frames[4:], forces=True)
    info = model.optimization_
    assert info["rotated"] and info["n_mixing_weights"] == 8
    assert model.best_step_ == 2  # fewer steps than folds: the last step is kept
    assert set(model.score(frames[4:])) >= {"energy_mae", "force_mae"}


def test_rotation_needs_as_many_structures_as_folds():
    frames = recorded.emt_frames(3, 8)
    hypers = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
    model = AlchemicalPotential(d_j=2, hypers=hypers, n_support=10, n_steps=2, rotation=True,
                                n_folds=5, device="cpu")  # fmt: skip
    with pytest.raises(ValueError, match="rotation over 5 folds"):
        model.fit(frames[:2], frames[2:], forces=False)
