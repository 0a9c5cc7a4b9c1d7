"""The shipped models and a saved local potential reproduce their recorded predictions
bit for bit (energies, forces, virials, sigma): recorded by
``tests/data/record_predictions.py``; a change of the code that moves any of them fails
here."""

import json
import sys
from pathlib import Path

import pytest

from ase_alchemical import load_model
from ase_alchemical.registry import available_models, model_path

DATA = Path(__file__).resolve().parents[1] / "data"
sys.path.insert(0, str(DATA))
import record_predictions as recorded  # noqa: E402

RECORDED = json.loads((DATA / "recorded_predictions.json").read_text())


@pytest.mark.parametrize("name", available_models())
def test_shipped_model_predictions_are_bit_identical(name):
    model = load_model(model_path(name), device="cpu")
    assert recorded.predictions(model, recorded.crystals()) == RECORDED[name]


def test_saved_local_potential_predictions_are_bit_identical():
    model = load_model(recorded.LOCAL_MODEL, device="cpu")
    assert recorded.predictions(model, recorded.emt_frames(3, 2)) == RECORDED["local-emt"]
