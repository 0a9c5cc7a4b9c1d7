"""Training recipes: refitting the weights on every crystal outside the test split."""

import numpy as np
import pytest
import torch

from ase_alchemical import AlchemicalKRR, load_model
from ase_alchemical.cli import main
from ase_alchemical.datasets import split
from ase_alchemical.features import make_hypers
from ase_alchemical.training import refit_elpasolite_model, train_elpasolite_model

SMALL = dict(
    d_j=2, hypers=make_hypers(cutoff=4.0, max_radial=3, max_angular=2), zeta=2, solver="full",
    n_steps=2, step_train_size=None, progress=False,
)  # fmt: skip


def _sites(frames) -> set:
    return {a.info["sites"] for a in frames}


@pytest.fixture(scope="module")
def subset(elpasolites):
    return elpasolites[:200]


def test_train_refit_on_all_uses_every_crystal_but_the_test_set(subset, data_dir):
    model, report = train_elpasolite_model(
        n_train=60, n_opt=30, n_test=40, frames=subset, data=data_dir, refit_on_all=True, **SMALL
    )
    _, _, test = split(subset, 60, 30, 40, seed=0)
    # 200 - 40: training, optimization and the 70 crystals the split left unused
    assert report["refit_on_all"] and report["n_weights"] == 160 == len(model.support_)
    assert report["device"] == "cpu"  # recorded: the fit time depends on it
    assert _sites(model.support_) == _sites(subset) - _sites(test)
    assert model.metadata_["test_mae_ev_per_atom"] == pytest.approx(model.score(test)["mae"])

    # the same U refitted afterwards (refit_elpasolite_model) gives the same weights
    plain, plain_report = train_elpasolite_model(
        n_train=60, n_opt=30, n_test=40, frames=subset, data=data_dir, **SMALL
    )
    assert plain_report["n_weights"] == 60 and not plain_report["refit_on_all"]
    torch.testing.assert_close(plain.U, model.U)
    refitted, meta = refit_elpasolite_model(plain, data=data_dir, frames=subset)
    assert refitted is plain and meta["n_weights"] == 160 and meta["refit_on_all"]
    assert meta["test_mae_before_refit_on_all"] == plain_report["test_mae_ev_per_atom"]
    torch.testing.assert_close(refitted.weights_, model.weights_, rtol=1e-6, atol=1e-8)
    assert meta["test_mae_ev_per_atom"] == pytest.approx(report["test_mae_ev_per_atom"], abs=1e-8)


def test_refit_needs_a_recorded_split_and_an_optimization_set(subset, data_dir):
    model = AlchemicalKRR(**SMALL).fit(subset[:30])
    with pytest.raises(ValueError, match="no elpasolite split in its metadata"):
        refit_elpasolite_model(model, data=data_dir, frames=subset)
    for option in ("refit_on_opt", "refit_on_all"):
        with pytest.raises(ValueError, match="needs an optimization set"):
            train_elpasolite_model(
                n_train=60, n_opt=0, n_test=40, frames=subset, data=data_dir, **{option: True}
            )


def test_cli_refit_solves_on_all_non_test_crystals(tmp_path, data_dir, elpasolites, capsys):
    """Sparse solver (150 support points), so the solve on 10,390 crystals stays cheap;
    the known answer is model.refit on the complement of the test set, built here
    from the crystals' sites, independently of the split's ordering."""
    trained, out = tmp_path / "model.pt", tmp_path / "all.pt"
    assert main([
        "train", "--d-j", "2", "--n-train", "300", "--n-opt", "100", "--n-test", "200",
        "--steps", "2", "--n-support", "150", "--max-radial", "3", "--max-angular", "2",
        "--data", str(data_dir), "--out", str(trained), "--quiet",
    ]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["refit", str(trained), "--out", str(out), "--data", str(data_dir)]) == 0
    printed = capsys.readouterr().out
    assert "weights solved on 10390 crystals (all but the test set)" in printed
    refitted = load_model(out)
    meta = refitted.metadata_
    assert meta["n_weights"] == 10390 and meta["refit_on_all"] is True
    test_sites = _sites(split(elpasolites, 300, 100, 200, seed=0)[2])
    rest = [a for a in elpasolites if a.info["sites"] not in test_sites]
    assert len(rest) == 10390
    expected = load_model(trained).refit(rest)
    # the sparse normal equations are ill-conditioned, so compare predictions (the
    # summation order of 10,390 rows differs between the two routes), not weights
    test = split(elpasolites, 300, 100, 200, seed=0)[2]
    np.testing.assert_allclose(
        refitted.predict_per_atom(test), expected.predict_per_atom(test), rtol=0, atol=1e-6
    )
    assert main(["evaluate", str(out), "--data", str(data_dir)]) == 0
    mae = float(capsys.readouterr().out.split("test MAE")[1].split()[0])
    assert mae == pytest.approx(meta["test_mae_ev_per_atom"], abs=1e-4)
    assert mae != pytest.approx(load_model(trained).metadata_["test_mae_ev_per_atom"], abs=1e-6)
    assert np.isfinite(refitted.uncertainty_scale_)
