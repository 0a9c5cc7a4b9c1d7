"""The optimisation of U: the sets of each step, fixed or rotating, and the guard."""

import numpy as np
import pytest
import torch

from ase_alchemical import AlchemicalKRR
from ase_alchemical.core.features import PairSpectrum
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.optimize import STRUCTURES_PER_MIXING_WEIGHT, rotates
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import split
from ase_alchemical.structure.optimize import FixedSets, RotatingSets
from ase_alchemical.structure.solvers import FullSolver, SparseSolver


def _pool(n):
    """A stand-in spectrum whose values name their rows (row i holds i)."""
    values = torch.arange(n, dtype=torch.float64).reshape(n, 1, 1, 1, 1, 1, 1)
    spectrum = PairSpectrum(values, torch.ones((n, 1), dtype=torch.long), torch.ones(n))
    return spectrum, torch.arange(n, dtype=torch.float64)


def _rows(spectrum):
    return spectrum.values.flatten().long().tolist()


@pytest.mark.parametrize("solver", [FullSolver(), SparseSolver(3)])
def test_rotating_sets_hold_out_each_fold_in_turn(solver):
    n, k = 23, 5
    support = torch.tensor([0, 4, 9])
    sets = RotatingSets(_pool(n), support, k, size=None, solver=solver, seed=0)
    held_out = []
    for step in range(2 * k):
        rho_t, y_t, sup, rho_o, y_o = sets.draw(step)
        train, opt = _rows(rho_t), _rows(rho_o)
        assert y_t.long().tolist() == train and y_o.long().tolist() == opt
        assert not set(train) & set(opt) and sorted(train + opt) == list(range(n))
        if solver.all_points_are_support:
            assert sup.tolist() == list(range(len(train)))
        else:  # the pool's support points, where they are not held out
            assert [train[i] for i in sup.tolist()] == [s for s in (0, 4, 9) if s not in opt]
        held_out.append(tuple(opt))
    # every structure is held out once per rotation, and the rotation repeats
    assert sorted(i for fold in held_out[:k] for i in fold) == list(range(n))
    assert held_out[:k] == held_out[k:]
    assert {len(fold) for fold in held_out} == {4, 5}


def test_rotating_sets_subsample_the_rest_and_refuse_nonsense():
    sets = RotatingSets(_pool(40), torch.arange(40), 4, size=10, solver=FullSolver(), seed=0)
    rho_t, _, sup, rho_o, _ = sets.draw(1)
    assert len(_rows(rho_t)) == 10 and sup.tolist() == list(range(10))
    assert not set(_rows(rho_t)) & set(_rows(rho_o))
    with pytest.raises(ValueError, match="rotation over 1 folds"):
        RotatingSets(_pool(40), torch.arange(40), 1, None, FullSolver(), 0)
    fixed = FixedSets(_pool(8), (_pool(3)[0], torch.zeros(3)), torch.arange(8), None,
                      FullSolver(), 0)  # fmt: skip
    assert _rows(fixed.draw(0)[0]) == list(range(8)) and not fixed.rotating


def test_rotation_auto_engages_for_small_optimization_sets():
    weights = 39 * 4
    assert rotates("auto", STRUCTURES_PER_MIXING_WEIGHT * weights - 1, weights)
    assert not rotates("auto", STRUCTURES_PER_MIXING_WEIGHT * weights, weights)
    assert rotates(True, 10_000, weights)
    assert not rotates(False, 10, weights)
    with pytest.raises(ValueError, match="rotation must be True, False or 'auto'"):
        AlchemicalKRR(rotation="sometimes").fit([])
    with pytest.raises(ValueError, match="n_folds must be an integer >= 2"):
        AlchemicalKRR(n_folds=1).fit([])


def test_rotation_guards_a_small_optimization_set(elpasolites):
    """Real data, 300 training and 100 optimization crystals at d_J = 4 (156 mixing
    weights): U learned on the rotating folds generalises better than U learned on the
    100 optimization crystals alone, and the training report says what happened."""
    train, opt, test = split(elpasolites, 300, 100, 400, seed=1)
    settings = dict(d_j=4, n_steps=60)
    fixed = AlchemicalKRR(**settings, rotation=False).fit(train, opt)
    rotated = AlchemicalKRR(**settings).fit(train, opt)
    info = rotated.optimization_
    assert info["rotated"] and info["small_optimization_set"] and info["n_folds"] == 5
    assert info["n_mixing_weights"] == 156 and info["n_steps_run"] == 60
    assert not fixed.optimization_["rotated"] and fixed.optimization_["small_optimization_set"]
    assert {"fold", "rotation_rmse"} <= set(rotated.loss_history_[-1])
    y = per_atom_energies(test)
    mae = {m: float(np.abs(model.predict_per_atom(test) - y).mean())
           for m, model in (("fixed", fixed), ("rotated", rotated))}  # fmt: skip
    assert mae["rotated"] < 0.9 * mae["fixed"], mae
    assert rotated.uncertainty_scale_ is not None  # calibrated on the optimization set


def test_rotation_with_fewer_steps_than_folds_still_moves_u(six_element_crystals):
    frames = six_element_crystals(90, seed=2)
    for i, atoms in enumerate(frames):
        atoms.info["energy"] = float(np.cos(atoms.numbers).sum()) + 0.001 * i
    hypers = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
    model = AlchemicalKRR(d_j=2, hypers=hypers, n_steps=3, rotation=True)
    model.fit(frames[:60], frames[60:])
    start = AlchemicalKRR(d_j=2, hypers=hypers, n_steps=0).fit(frames[:60]).U
    assert model.optimization_["rotated"] and model.best_step_ == 2
    assert np.abs(model.U - start).max() > 1e-4


def test_an_eval_set_is_watched_and_never_used(six_element_crystals):
    """eval_set adds each step's RMSE on it to the history and changes nothing else; at
    step 0 that RMSE is the one of a model whose U never moved."""
    frames = six_element_crystals(60, seed=3)
    for i, atoms in enumerate(frames):
        atoms.info["energy"] = len(atoms) * (-2.0 + 0.05 * np.sin(i))
    train, opt, watched = frames[:30], frames[30:45], frames[45:]
    params = dict(d_j=2, hypers=make_hypers(cutoff=4.0, max_radial=3, max_angular=2),
                  zeta=2, solver="full", step_train_size=None, n_steps=4, rotation=False,
                  learn_regularizer=False)  # fmt: skip
    plain = AlchemicalKRR(**params).fit(train, opt)
    watching = AlchemicalKRR(**params).fit(train, opt, eval_set=watched)
    assert np.array_equal(plain.U, watching.U)
    assert [h["opt_rmse"] for h in plain.loss_history_] == [
        h["opt_rmse"] for h in watching.loss_history_
    ]
    assert all("eval_rmse" not in h and "eval_mae" not in h for h in plain.loss_history_)
    still = AlchemicalKRR(**{**params, "n_steps": 0}).fit(train)
    error = still.predict_per_atom(watched) - per_atom_energies(watched)
    assert watching.loss_history_[0]["eval_rmse"] == pytest.approx(
        np.sqrt(np.mean(error**2)), rel=1e-8
    )
    assert watching.loss_history_[0]["eval_mae"] == pytest.approx(np.abs(error).mean(), rel=1e-8)
    assert len({h["eval_rmse"] for h in watching.loss_history_}) == 4  # it moves with U
