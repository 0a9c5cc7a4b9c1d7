"""The machinery both model kinds share: one SPD factorisation, one Adam loop with one
rotation policy and summary schema, one label reader, one error hierarchy."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import ase_alchemical
from ase_alchemical.core.linalg import spd_factor, spd_solve
from ase_alchemical.core.optimize import Step, adam_on_u, fold_indices, optimization_summary
from ase_alchemical.core.targets import forces_of, optional_labels, total_energies
from ase_alchemical.errors import AlchemicalError, FittingError, LabelError


def test_every_public_error_derives_from_one_base():
    errors = [getattr(ase_alchemical, n) for n in ase_alchemical.__all__ if n.endswith("Error")]
    assert len(errors) >= 8
    assert all(issubclass(e, AlchemicalError) for e in errors)
    assert issubclass(ase_alchemical.NotFittedError, AttributeError)
    assert issubclass(ase_alchemical.OutOfDomainWarning, UserWarning)


def test_spd_solve_jitters_a_semidefinite_matrix_and_raises_on_an_indefinite_one():
    x = torch.randn(5, 2, dtype=torch.float64)
    a = x @ x.T  # rank 2: needs jitter
    solution, a_j = spd_solve(a, torch.ones(5, dtype=torch.float64), 1e-10)
    assert torch.allclose(a_j @ solution, torch.ones(5, dtype=torch.float64))
    with pytest.raises(FittingError, match="raise the sigmas"):
        spd_factor(-torch.eye(3, dtype=torch.float64), 1e-10, fix="raise the sigmas")


def _quadratic_loop(n_steps, n_folds):
    u = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    return adam_on_u(
        [u], lambda t: Step((u - 1.0).pow(2).sum()), n_steps=n_steps, learning_rate=0.5,
        lr_schedule="cosine", n_folds=n_folds, snapshot=lambda: u.detach().clone(),
    )  # fmt: skip


def test_the_loop_keeps_the_best_step_and_with_fewer_steps_than_folds_the_last():
    run = _quadratic_loop(20, 1)
    losses = [r["loss"] for r in run.history]
    assert run.best_step == int(np.argmin(losses)) and len(run.history) == 20
    short = _quadratic_loop(3, 5)  # no full rotation window: the last step, for every kind
    assert short.best_step == 2 and "rotation_loss" in short.history[0]


def test_folds_need_at_least_as_many_structures_as_folds():
    folds = fold_indices(5, 5, seed=0)
    assert sorted(torch.cat(folds).tolist()) == list(range(5))
    with pytest.raises(ValueError, match="rotation over 5 folds"):
        fold_indices(4, 5, seed=0)


def test_one_summary_schema():
    keys = set(optimization_summary(n_train=3, n_opt=1, n_mixing_weights=8, rotated=True,
                                    n_folds=5, learned=False))  # fmt: skip
    assert {"n_mixing_weights", "small_optimization_set", "rotated", "best_step"} <= keys


def test_labels_are_read_from_info_or_a_single_point_calculator():
    atoms = bulk("Cu", cubic=True)
    atoms.calc = SinglePointCalculator(
        atoms, energy=-14.0, forces=np.ones((4, 3)), stress=np.zeros(6)
    )
    assert total_energies([atoms]) == pytest.approx([-14.0])
    forces, stress = optional_labels([atoms])
    assert forces[0].shape == (4, 3) and stress.shape == (1, 6)
    bare = bulk("Cu", cubic=True)
    with pytest.raises(LabelError, match="no energy"):
        total_energies([bare])
    with pytest.raises(LabelError, match="no forces"):
        forces_of([bare])
    assert optional_labels([atoms, bare]) == (None, None)


def test_read_structures_reads_labels_through_the_same_reader(tmp_path):
    import ase.io

    from ase_alchemical.data.files import read_structures

    good = bulk("Cu", cubic=True)
    good.calc = SinglePointCalculator(good, energy=-1.0, forces=np.zeros((4, 3)))
    path = tmp_path / "frames.xyz"
    ase.io.write(path, [good])
    frames = read_structures(path, forces=True, energy_unit="meV")
    assert frames[0].info["energy"] == pytest.approx(-1e-3) and frames[0].calc is None
    assert frames[0].arrays["forces"].shape == (4, 3)
    with pytest.raises(LabelError, match=r"frames\.xyz: structure 0 .*has no stress"):
        read_structures(path, stress=True)
    bad = bulk("Cu", cubic=True)
    bad.info["energy"] = "high"
    with pytest.raises(LabelError, match="non-numeric energy 'high'"):
        total_energies([bad])
