"""Screening the elpasolite space: enumeration, exactness, resumption, errors, CLI."""

import csv

import numpy as np
import pytest

from ase_alchemical.cli import main
from ase_alchemical.data.datasets import build_elpasolite
from ase_alchemical.structure.screening import enumerate_elpasolites, screen_elpasolites

ELEMENTS = ["Li", "Na", "Cs", "F", "Cl", "Al", "Tl"]  # those of the screen_model fixture


@pytest.fixture(scope="module")
def model(screen_model):
    return screen_model


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_enumeration_counts_each_crystal_once():
    combos = enumerate_elpasolites(ELEMENTS)
    n = len(ELEMENTS)
    assert len(combos) == n * (n - 1) // 2 * (n - 2) * (n - 3)
    assert all(len(set(c)) == 4 for c in combos.tolist())
    assert np.all(combos[:, 0] < combos[:, 1])
    assert len({tuple(c) for c in combos.tolist()}) == len(combos)
    with pytest.raises(ValueError, match="four different"):
        enumerate_elpasolites(["Li", "Na", "K"])


def test_screen_equals_model_predict_and_keeps_the_lower_order(model, tmp_path):
    result = screen_elpasolites(model, tmp_path / "c.csv", chunk_size=97, progress=False)
    rows = _read(result["path"])
    assert len(rows) == result["n_compositions"] == len(enumerate_elpasolites(ELEMENTS))
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    written = [build_elpasolite(r["A"], r["B"], r["C"], r["D"]) for r in rows]
    swapped = [build_elpasolite(r["B"], r["A"], r["C"], r["D"]) for r in rows]
    e_written, s_written = model.predict_per_atom(written, return_std=True)
    e_swapped = model.predict_per_atom(swapped)
    energies = np.array([float(r["energy_ev_per_atom"]) for r in rows])
    stds = np.array([float(r["std_ev_per_atom"]) for r in rows])
    assert np.abs(energies - e_written).max() < 1e-6
    assert np.abs(stds - s_written).max() < 1e-6
    assert np.all(e_written <= e_swapped + 1e-9)  # equal crystals differ by rounding only
    assert np.any(np.abs(e_written - e_swapped) > 1e-6)  # some orders do differ
    assert float(result["best"][0]["energy_ev_per_atom"]) == pytest.approx(energies.min())


def test_interrupted_screen_resumes_without_duplicates_or_gaps(model, tmp_path):
    reference = screen_elpasolites(
        model, tmp_path / "ref.csv", uncertainty=False, chunk_size=50, progress=False
    )
    out = tmp_path / "c.csv"
    first = screen_elpasolites(
        model, out, uncertainty=False, chunk_size=50, progress=False, max_chunks=2
    )
    assert not first["finished"] and not out.exists()
    with open(first["path"], "a") as f:  # a crash in the middle of writing a chunk
        f.write("100,Li,Na,Cs,F,-1.2")
    second = screen_elpasolites(model, out, uncertainty=False, chunk_size=50, progress=False)
    assert second["finished"]
    assert out.read_text() == (tmp_path / "ref.csv").read_text()
    assert reference["n_structures_this_call"] > second["n_structures_this_call"]
    with pytest.raises(FileExistsError, match="overwrite"):
        screen_elpasolites(model, out, uncertainty=False, progress=False)


def test_screen_errors(model, tmp_path):
    with pytest.raises(ValueError, match="does not know"):
        screen_elpasolites(model, tmp_path / "x.csv", ["Li", "Na", "K", "F"], progress=False)
    screen_elpasolites(model, tmp_path / "y.csv", chunk_size=50, progress=False, max_chunks=1)
    with pytest.raises(ValueError, match="other settings"):
        screen_elpasolites(model, tmp_path / "y.csv", chunk_size=60, progress=False)


def test_cli_screen(model, tmp_path, capsys):
    path = model.save(tmp_path / "m.pt")
    out = tmp_path / "c.csv"
    args = ["screen", "--model", str(path), "--elements", "Li,Na,Cs,F,Cl", "--out", str(out)]
    assert main(args + ["--quiet", "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "60 compositions" in text and "lowest predicted" in text
    assert len(_read(out)) == 60
    assert main(args) == 1
    assert "exists" in capsys.readouterr().err
