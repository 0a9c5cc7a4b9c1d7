"""Reference labels from GFN1-xTB, and the local potential checked against them."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from ase_alchemical import AlchemicalCalculator, AlchemicalPotential
from ase_alchemical.data.datasets import build_elpasolite
from ase_alchemical.data.reference_labels import (
    LabelRecipe,
    label_elpasolites,
    plausible_labels,
    read_labelled,
    xtb_calculator,
)

K2NAALF6 = ("Al", "Na", "K", "F")  # sites A, B, C, D


class _Counting(EMT):
    """EMT (fast, ASE's own) counting its calls, or failing on one element."""

    calls = 0

    def __init__(self, fail_on: str | None = None):
        super().__init__()
        self.fail_on = fail_on

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        if self.fail_on is not None and self.fail_on in atoms.get_chemical_symbols():
            raise RuntimeError("SCF not converged")
        _Counting.calls += 1
        super().calculate(atoms, properties, system_changes or [])


def test_labels_are_cached_resumable_and_failures_recorded(tmp_path):
    recipe = LabelRecipe(relax_steps=5, n_rattled=2, n_strained=1)
    comps = [("Cu", "Ni", "Al", "Ag"), ("Au", "Pd", "Pt", "Cu")]
    label_elpasolites(comps, tmp_path, recipe=recipe, calculator=_Counting, method="EMT",
                      progress=False)  # fmt: skip
    data = read_labelled(tmp_path)
    assert set(data) == set(comps)
    frames = data[comps[0]]
    configs = [a.info["config"] for a in frames]
    assert configs[0] == "prototype" and configs.count("rattled") == 2
    assert configs.count("strained") == 1
    reference = EMT()
    for atoms in frames:
        probe = atoms.copy()
        probe.calc = reference
        assert np.isclose(probe.get_potential_energy(), atoms.info["energy"])
        np.testing.assert_allclose(probe.get_forces(), atoms.arrays["forces"], atol=1e-6)
    # a second run labels nothing: every composition is cached
    _Counting.calls = 0
    label_elpasolites(comps, tmp_path, recipe=recipe, calculator=_Counting, method="EMT",
                      progress=False)  # fmt: skip
    assert _Counting.calls == 0
    # a failing composition is recorded and skipped, the others still labelled
    label_elpasolites([("Ni", "Cu", "Ag", "Au"), ("Pt", "Cu", "Ni", "Au")], tmp_path,
                      recipe=recipe, calculator=lambda: _Counting(fail_on="Pt"),
                      method="EMT", progress=False)  # fmt: skip
    assert "SCF" in (tmp_path / "failed" / "Pt-Cu-Ni-Au.txt").read_text()
    assert ("Ni", "Cu", "Ag", "Au") in read_labelled(tmp_path)
    # other settings in the same directory are refused, naming the fix
    with pytest.raises(ValueError, match="another directory"):
        label_elpasolites(comps, tmp_path, recipe=LabelRecipe(), calculator=_Counting,
                          method="EMT", progress=False)  # fmt: skip


def test_absurd_labels_are_not_plausible(tmp_path):
    label_elpasolites([("Cu", "Ni", "Al", "Ag")], tmp_path, recipe=LabelRecipe(relax_steps=3),
                      calculator=_Counting, method="EMT", progress=False)  # fmt: skip
    frames = read_labelled(tmp_path)[("Cu", "Ni", "Al", "Ag")]
    for atoms in frames:  # EMT energies are near zero: shift them to a negative scale
        atoms.info["energy"] -= 5.0 * len(atoms)
    assert plausible_labels(frames)
    frames[-1].info["energy"] = 1e9  # an SCF "converged" to nonsense
    assert not plausible_labels(frames)
    frames[-1].info["energy"] = frames[0].info["energy"]
    frames[-1].arrays["forces"][0, 0] = 1e4
    assert not plausible_labels(frames)


def test_missing_labels_name_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="label_elpasolites"):
        read_labelled(tmp_path / "none")


def test_bad_compositions_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown element"):
        label_elpasolites([("Cu", "Ni", "Al", "Qq")], tmp_path, calculator=_Counting,
                          method="EMT", progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="4 sites"):
        label_elpasolites([("Cu", "Ni", "Al")], tmp_path, calculator=_Counting,
                          method="EMT", progress=False)  # fmt: skip
    assert not list((tmp_path / "failed").glob("*"))


def test_relaxed_lattice_constant_agrees_with_xtb(tmp_path):
    """A potential trained on GFN1-xTB labels of K2NaAlF6 (the xTB relaxation, rattled and
    strained copies) relaxes the prototype to xTB's lattice constant within 1 %."""
    pytest.importorskip("tblite", reason="the xTB reference needs tblite (pip install tblite)")
    recipe = LabelRecipe(n_rattled=6, n_strained=10, strain=0.05)
    label_elpasolites([K2NAALF6], tmp_path, recipe=recipe, progress=False)
    frames = read_labelled(tmp_path)[K2NAALF6]
    relaxed_xtb = next(a for a in frames if a.info["config"] == "relaxed")
    model = AlchemicalPotential(d_j=2, n_steps=0, n_support=60)
    model.fit(frames, forces=True, stress=True)
    atoms = build_elpasolite(*K2NAALF6)
    atoms.calc = AlchemicalCalculator(model)
    converged = BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=0.01, steps=300)
    assert converged
    a_ml = (4 * atoms.get_volume()) ** (1 / 3)
    a_xtb = (4 * relaxed_xtb.get_volume()) ** (1 / 3)
    assert abs(a_ml / a_xtb - 1) < 0.01, (a_ml, a_xtb)
    # the potential at its own minimum: xTB's forces there are small too
    probe = atoms.copy()
    probe.calc = xtb_calculator()
    assert np.abs(probe.get_forces()).max() < 0.1
