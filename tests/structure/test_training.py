"""Training recipes: refitting the weights on every crystal outside the test split."""

import numpy as np
import pytest
import torch

from ase_alchemical import AlchemicalKRR, load_model
from ase_alchemical.cli import main
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.data.datasets import split
from ase_alchemical.structure.training import (
    REGULARIZER_FACTORS,
    refit_elpasolite_model,
    train_elpasolite_model,
)

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


def test_choose_regularizer_on_the_crystals_in_no_set(subset, data_dir):
    model, report = train_elpasolite_model(
        n_train=60, n_opt=30, n_test=40, frames=subset, data=data_dir, choose_regularizer=True,
        **SMALL,
    )  # fmt: skip
    scan = report["regularizer_scan"]
    assert [row["factor"] for row in scan] == list(REGULARIZER_FACTORS)
    best = min(scan, key=lambda row: row["val_mae"])
    assert model.regularizer_ == report["regularizer"] == best["regularizer"]

    # known answer: the same U (training is deterministic), weights solved on the
    # training set with each regulariser, scored on the 70 crystals in no set
    plain, _ = train_elpasolite_model(
        n_train=60, n_opt=30, n_test=40, frames=subset, data=data_dir, **SMALL
    )
    torch.testing.assert_close(plain.U, model.U)
    train, opt, test = split(subset, 60, 30, 40, seed=0)
    unused = [a for a in subset if a.info["sites"] not in _sites(train + opt + test)]
    assert len(unused) == 70
    learned = plain.regularizer_
    for row in scan:
        plain.refit(train, regularizer=row["factor"] * learned)
        assert row["val_mae"] == pytest.approx(plain.score(unused)["mae"], rel=1e-9)
    plain.refit(train, regularizer=best["regularizer"])
    torch.testing.assert_close(plain.weights_, model.weights_)
    assert report["test_mae_ev_per_atom"] == pytest.approx(plain.score(test)["mae"], rel=1e-9)
    # the uncertainty is calibrated on the optimization set again, for the new weights
    assert model.uncertainty_scale_ == pytest.approx(plain.calibrate_uncertainty(opt), rel=1e-9)

    # with a refit on all non-test crystals the chosen value is kept (and the unused
    # crystals' spectra are reused): the same as refitting the chosen model afterwards
    both, both_report = train_elpasolite_model(
        n_train=60, n_opt=30, n_test=40, frames=subset, data=data_dir, choose_regularizer=True,
        refit_on_all=True, **SMALL,
    )  # fmt: skip
    refitted, _ = refit_elpasolite_model(model, data=data_dir, frames=subset)
    assert both_report["n_weights"] == 160 and both.regularizer_ == best["regularizer"]
    torch.testing.assert_close(both.weights_, refitted.weights_)

    with pytest.raises(ValueError, match="choose_regularizer needs crystals outside"):
        train_elpasolite_model(
            n_train=130, n_opt=30, n_test=40, frames=subset, data=data_dir,
            choose_regularizer=True, **SMALL,
        )  # fmt: skip


def test_cli_train_passes_choose_regularizer_and_reports_it(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_train(**kwargs):
        seen.update(kwargs)
        scan = [{"factor": 1.0, "regularizer": 0.01, "val_mae": 0.09},
                {"factor": 0.2, "regularizer": 0.002, "val_mae": 0.08}]  # fmt: skip
        report = {
            "test_mae_ev_per_atom": 0.1, "test_rmse_ev_per_atom": 0.2, "fit_time_s": 1.0,
            "regularizer_scan": scan, "refit_on_all": False, "refit_on_opt": False,
        }  # fmt: skip
        return None, report

    monkeypatch.setattr("ase_alchemical.structure.training.train_elpasolite_model", fake_train)
    assert main(["train", "--choose-regularizer", "--out", str(tmp_path / "m.pt")]) == 0
    assert seen["choose_regularizer"] is True and seen["radially_resolved"] is False
    assert "regulariser 0.002 (learned x 0.2; MAE 0.0800 on the crystals in no set)" in (
        capsys.readouterr().out
    )
