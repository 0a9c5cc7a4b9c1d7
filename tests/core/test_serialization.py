"""The model-file format: versioned, upgraded explicitly, generic over the fitted state."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from ase_alchemical import AlchemicalKRR, AlchemicalPotential, ModelFileError, load_model
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.serialization import (
    MODEL_FORMAT_VERSION,
    UPGRADES,
    model_file_info,
    read_model_file,
)
from ase_alchemical.data.datasets import build_elpasolite
from ase_alchemical.registry import model_path
from ase_alchemical.structure.state import FittedState

#: The shipped models as the first release wrote them (format version 1).
V1 = Path(__file__).resolve().parents[1] / "data" / "v1"
SHIPPED = ["elpasolite-dj4", "elpasolite-dj10-multiscale"]
SMALL = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, list) and a and hasattr(a[0], "positions"):
        return len(a) == len(b) and all(
            np.array_equal(x.numbers, y.numbers) and np.array_equal(x.positions, y.positions)
            and np.array_equal(x.cell.array, y.cell.array) and np.array_equal(x.pbc, y.pbc)
            for x, y in zip(a, b)
        )  # fmt: skip
    return a == b


@pytest.mark.parametrize("name", SHIPPED)
def test_version_1_files_upgrade_to_the_shipped_version_2_files(name):  # read as version 4
    """Known answer: each version-1 file, read through the upgrade, holds exactly the
    state and hyperparameters of the shipped current-version file."""
    assert MODEL_FORMAT_VERSION == 4 and set(UPGRADES) == {1, 2, 3}
    old, new = read_model_file(V1 / f"{name}.pt"), read_model_file(model_path(name))
    assert old["format_version"] == 1 and new["format_version"] == 2
    assert old["params"] == new["params"] and old["hypers"] == new["hypers"]
    assert set(old["state"]) == set(new["state"])
    for key, value in new["state"].items():
        assert _same(old["state"][key], value), key
    # what version 1 left out is filled with the values its fit used, not today's defaults
    params = old["params"]
    assert params["rotation"] is False and params["n_folds"] == 5
    assert params["center_resolved"] is False and params["radially_resolved"] is False
    assert name != "elpasolite-dj4" or params["lr_schedule"] == "constant"
    assert new["state"]["best_step"] == new["state"]["metadata"]["best_step"]


def test_a_version_2_local_potential_has_no_two_body_term():
    """Known answer: a version-2 local file was fitted without the two-body term (then
    not part of the model); read through the upgrade it says so, whatever the current
    default, and its state has no two-body weights."""
    v2 = Path(__file__).resolve().parents[1] / "data" / "v2" / "local-emt.pt"
    raw = torch.load(v2, weights_only=True)
    assert raw["format_version"] == 2 and "two_body" not in raw["params"]
    info = read_model_file(v2)
    assert info["format_version"] == 2 and info["params"]["two_body"] is None
    model = load_model(v2, device="cpu")
    assert model.two_body is None and model.state_.pair_weights is None
    assert AlchemicalPotential().two_body is not None  # the default the upgrade overrides


@pytest.mark.parametrize("name", SHIPPED)
def test_an_older_structure_file_records_its_one_zeta(name):
    """Known answer: before version 4 a structure kernel's ``zeta`` was one integer, the
    exponent its fit used; the upgrade records it in the state, which the loaded kernel
    uses whatever the constructor's default."""
    raw = torch.load(model_path(name), weights_only=True)
    assert raw["format_version"] < 4 and "zeta" not in raw["state"]
    info = read_model_file(model_path(name))
    assert info["state"]["zeta"] == info["params"]["zeta"] == 3
    model = load_model(model_path(name), device="cpu")
    assert model.zeta_ == model.kernel_.zeta == 3


def test_a_version_1_model_predicts_as_the_shipped_one():
    crystals = [build_elpasolite(*s) for s in (("Al", "Na", "K", "F"), ("Bi", "Na", "Cs", "Cl"))]
    old, new = load_model(V1 / "elpasolite-dj4.pt"), load_model(model_path("elpasolite-dj4"))
    np.testing.assert_array_equal(old.predict(crystals), new.predict(crystals))
    assert model_file_info(V1 / "elpasolite-dj4.pt") == model_file_info(
        model_path("elpasolite-dj4")
    )


def test_unknown_versions_and_bad_files_are_clear_errors(tmp_path):
    raw = torch.load(model_path("elpasolite-dj4"), weights_only=True)
    raw["format_version"] = MODEL_FORMAT_VERSION + 1
    torch.save(raw, tmp_path / "future.pt")
    expected = f"reads versions 1 to {MODEL_FORMAT_VERSION}.*upgrade ase-alchemical"
    with pytest.raises(ModelFileError, match=expected):
        read_model_file(tmp_path / "future.pt")
    old = torch.load(V1 / "elpasolite-dj4.pt", weights_only=True)
    del old["y_mean"]
    torch.save(old, tmp_path / "broken-v1.pt")
    with pytest.raises(ModelFileError, match="incomplete version-1 model file"):
        load_model(tmp_path / "broken-v1.pt")
    raw["format_version"] = MODEL_FORMAT_VERSION
    raw["state"]["surprise"] = 1.0
    torch.save(raw, tmp_path / "extra.pt")
    with pytest.raises(ModelFileError, match="unknown state entries"):
        load_model(tmp_path / "extra.pt")


def test_every_saved_field_of_the_fitted_state_round_trips(six_element_crystals, tmp_path):
    """Save and load go over the fields of FittedState: each saved field comes back
    unchanged, so a new field needs no code in either."""
    frames = six_element_crystals(60, seed=3)
    for i, atoms in enumerate(frames):
        atoms.info["energy"] = -2.0 * len(atoms) + 0.01 * i
    model = AlchemicalKRR(d_j=2, hypers=SMALL, n_steps=3, solver="full", zeta=2)
    model.fit(frames[:40], frames[40:])
    model.state_.metadata = {"note": "provenance"}
    loaded = load_model(model.save(tmp_path / "m.pt"))
    saved = [f.name for f in dataclasses.fields(FittedState) if f.metadata.get("saved", True)]
    assert {"weights", "optimization", "fit_time", "best_step"} <= set(saved)
    for name in saved:
        a, b = getattr(model.state_, name), getattr(loaded.state_, name)
        if name == "compression":
            assert a.species == b.species and torch.equal(a.U.detach(), b.U.detach())
        else:
            assert _same(a, b), name
    # the derived fields are rebuilt at load, to the same values
    torch.testing.assert_close(loaded.support_features_, model.support_features_)
    assert loaded.optimization_["n_steps_run"] == 3 and loaded.fit_time_ > 0
