"""The local potential: exact derivatives, extensivity, locality, fitting forces, recovery
of a known model, MD and relaxation, files, the calculator and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.morse import MorsePotential
from ase.calculators.singlepoint import SinglePointCalculator

from ase_alchemical import AlchemicalCalculator, AlchemicalPotential, load_model
from ase_alchemical.cli import main
from ase_alchemical.core.compression import UnknownElementError
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.serialization import ModelFileError
from ase_alchemical.data.datasets import build_elpasolite
from ase_alchemical.local.environments import compute_environments
from ase_alchemical.local.kernel import derivative_rows, energy_and_gradients, kernel_rows
from ase_alchemical.local.training import split_by_index

SMALL = make_hypers(cutoff=4.0, max_radial=3, max_angular=3)


def _label_morse(frames):
    """Energies, forces and stress of a smooth Morse model as labels (a known PES)."""
    out = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = MorsePotential(epsilon=0.1, r0=2.6, rho0=4.0, rcut1=3.0, rcut2=3.9)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        stress = atoms.get_stress() if atoms.pbc.all() else None
        atoms.calc = None
        atoms.info["energy"] = energy
        atoms.arrays["forces"] = forces
        if stress is not None:
            atoms.info["stress"] = stress
        out.append(atoms)
    return out


def _rattled_elpasolites(n, seed=0, amplitude=0.1):
    rng = np.random.default_rng(seed)
    combos = [("Al", "Na", "K", "F"), ("Ga", "Na", "K", "Cl"), ("Al", "Li", "Rb", "F"),
              ("In", "K", "Cs", "Cl"), ("Ga", "Li", "K", "F")]  # fmt: skip
    frames = []
    for i in range(n):
        atoms = build_elpasolite(*combos[i % len(combos)])
        atoms.positions += rng.normal(scale=amplitude, size=atoms.positions.shape)
        atoms.set_cell(atoms.cell.array * (1 + rng.normal(scale=0.02)), scale_atoms=True)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def elpasolite_potential():
    """A small potential over the elpasolite elements, fitted to Morse labels."""
    frames = _label_morse(_rattled_elpasolites(12))
    model = AlchemicalPotential(d_j=2, hypers=SMALL, n_support=60, n_steps=0)
    return model.fit(frames[:10], frames[10:], forces=True, stress=True)


@pytest.fixture(scope="module")
def pair_potential():
    """The elpasolite potential with the two-body term."""
    frames = _label_morse(_rattled_elpasolites(12))
    model = AlchemicalPotential(d_j=2, hypers=SMALL, n_support=60, n_steps=0, two_body=1.0)
    return model.fit(frames[:10], frames[10:], forces=True, stress=True)


@pytest.fixture(scope="module")
def radial_potential():
    """The elpasolite potential with one U per radial function, learned (two steps) so
    that the U_n differ, and the two-body term."""
    frames = _label_morse(_rattled_elpasolites(12))
    model = AlchemicalPotential(
        d_j=2, hypers=SMALL, n_support=60, n_steps=2, rotation=False, radially_resolved=True
    )
    return model.fit(frames[:10], frames[10:], forces=True, stress=True)


@pytest.fixture(scope="module")
def hea_potential(hea_frames):
    train, opt, _ = split_by_index(hea_frames)
    model = AlchemicalPotential(d_j=3, hypers=SMALL, n_support=120, n_steps=0)
    return model.fit(train[:6], opt[:2], forces=True)


def _finite_difference(model, atoms, atom, axis, h=1e-4):
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions[atom, axis] += h
    minus.positions[atom, axis] -= h
    return (model.predict([plus])[0] - model.predict([minus])[0]) / (2 * h)


def _strain_difference(model, atoms, i, j, h=1e-5):
    def strained(sign):
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = sign * h
        out = atoms.copy()
        out.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        return model.predict([out])[0]

    return (strained(1) - strained(-1)) / (2 * h)


def _cluster():
    atoms = build_elpasolite("Al", "Na", "K", "F")
    cluster = Atoms(atoms.numbers, atoms.positions, pbc=False)
    cluster.positions += np.random.default_rng(3).normal(scale=0.05, size=(len(cluster), 3))
    return cluster


@pytest.mark.parametrize(
    "which", ["hea", "elpasolite", "cluster", "two-body", "two-body cluster", "radial"]
)
def test_forces_equal_finite_differences(
    which, hea_potential, elpasolite_potential, pair_potential, radial_potential, hea_frames
):
    if which == "hea":
        model, atoms = hea_potential, hea_frames[0]
    elif which in ("elpasolite", "two-body", "radial"):
        model = {"elpasolite": elpasolite_potential, "two-body": pair_potential,
                 "radial": radial_potential}[which]  # fmt: skip
        atoms = _rattled_elpasolites(1, seed=7)[0]
    else:
        model = elpasolite_potential if which == "cluster" else pair_potential
        atoms = _cluster()
    _, gradients, _ = model.energy_and_derivatives([atoms], strain=False)
    for atom, axis in [(0, 0), (len(atoms) // 2, 1), (len(atoms) - 1, 2)]:
        fd = _finite_difference(model, atoms, atom, axis)
        assert gradients[0][atom, axis] == pytest.approx(fd, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("which", ["hea", "elpasolite", "two-body", "radial"])
def test_stress_equals_strain_derivative(
    which, hea_potential, elpasolite_potential, pair_potential, radial_potential, hea_frames
):
    model, atoms = {
        "hea": (hea_potential, hea_frames[0]),
        "elpasolite": (elpasolite_potential, _rattled_elpasolites(1, seed=8)[0]),
        "two-body": (pair_potential, _rattled_elpasolites(1, seed=8)[0]),
        "radial": (radial_potential, _rattled_elpasolites(1, seed=8)[0]),
    }[which]
    _, _, virials = model.energy_and_derivatives([atoms], strain=True)
    virial = virials[0]
    for i, j in [(0, 0), (2, 2), (0, 1), (1, 2)]:
        fd = _strain_difference(model, atoms, i, j)
        analytic = virial[i, j] + virial[j, i] if i != j else virial[i, i]
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("radial", [False, True], ids=["one U", "one U per n"])
def test_design_rows_match_autograd(hea_frames, radial):
    """The force and virial rows the solve uses are the derivatives of the kernel sums."""
    atoms = hea_frames[0]
    from ase_alchemical.core.compression import AlchemicalCompression
    from ase_alchemical.core.hypers import basis_shapes

    compression = AlchemicalCompression(
        sorted(set(atoms.numbers)), 2, init="random",
        radial_shapes=basis_shapes(SMALL) if radial else None,
    )  # fmt: skip
    if radial:  # every U_n different
        with torch.no_grad():
            compression.U.add_(0.3 * torch.randn_like(compression.U))
    env = compute_environments([atoms], SMALL, ["positions", "strain"])
    from ase_alchemical.local.kernel import environment_features

    support = environment_features(env, compression)[::5]
    w = torch.randn(len(support), dtype=torch.float64)
    d_pos, d_strain = derivative_rows(env, compression, support, 2, block_rows=7, strain=True)

    def energy(e):
        return kernel_rows(environment_features(e, compression), support, 2) @ w

    _, _, grad, virial = energy_and_gradients(env, energy, strain=True)
    torch.testing.assert_close(d_pos @ w, grad)
    torch.testing.assert_close((d_strain[0] @ w).reshape(3, 3), virial[0])


@pytest.mark.parametrize("radial", [False, True], ids=["one U", "one U per n"])
def test_two_body_rows_match_autograd(hea_frames, radial):
    """The two-body term's energy, force and virial rows are the derivatives of its
    features' sum, and the table form of its weights gives the same atomic energies."""
    from ase_alchemical.core.compression import AlchemicalCompression
    from ase_alchemical.core.hypers import basis_shapes
    from ase_alchemical.local.pair import PairTerm

    atoms = hea_frames[0]
    compression = AlchemicalCompression(
        sorted(set(atoms.numbers)), 2, init="random",
        radial_shapes=basis_shapes(SMALL) if radial else None,
    )  # fmt: skip
    if radial:
        with torch.no_grad():
            compression.U.add_(0.3 * torch.randn_like(compression.U))
    env = compute_environments([atoms], SMALL, ["positions", "strain"])
    term = PairTerm(2, 4).fitted_scale([env], compression)
    assert term.scale > 0 and term.n_features == 2 * 2 * 4
    w = torch.randn(term.n_features, dtype=torch.float64)
    energy, d_pos, d_strain = term.rows(env, compression, strain=True)

    def atomic(e):
        return term.features(e, compression) @ w

    energies, total, grad, virial = energy_and_gradients(env, atomic, strain=True)
    torch.testing.assert_close(energy @ w, total)
    torch.testing.assert_close(d_pos @ w, grad)
    torch.testing.assert_close((d_strain[0] @ w).reshape(3, 3), virial[0])
    # the table form, on the coefficients compressed by U
    table = term.weight_table(w)
    u = compression.U if radial else compression.U[None].expand(4, -1, -1)  # (N, species, d_J)
    u = torch.cat([u, u.new_zeros((4, 1, 2))], 1)
    channels = u[:, compression.rows(env.species)]  # (N, rows, K, d_J)
    ct0 = torch.einsum("rkn,nrkd->rdn", env.coefficients[0][:, 0], channels)
    centre = u[:, compression.rows(env.centers)]  # (N, rows, d_J)
    torch.testing.assert_close(torch.einsum("nrj,jkn,rkn->r", centre, table, ct0), energies)


@pytest.mark.parametrize("d_j", [2, None])
def test_two_body_term_recovers_a_pair_potential(d_j):
    """Labels from a pair potential (Morse, within the cutoff): with the two-body term the
    held-out errors fall well below the kernel's alone: with U the identity (the term
    spans a pair potential per pair of elements) the forces' by half; through d_J = 2
    pseudo-elements the energies' by two thirds. A prior that is not positive is a clear
    error."""
    frames = _label_morse(_rattled_elpasolites(24, seed=5, amplitude=0.15))
    scores = {}
    for two_body in (None, 1.0):
        model = AlchemicalPotential(
            d_j=d_j, hypers=SMALL, n_support=40, n_steps=0, two_body=two_body,
            energy_sigma=1e-3, force_sigma=1e-2,
        )  # fmt: skip
        scores[two_body] = model.fit(frames[:16], forces=True).score(frames[18:])
    key = "force_mae" if d_j is None else "energy_mae"
    assert scores[1.0][key] < (0.5 if d_j is None else 0.33) * scores[None][key]
    assert scores[1.0]["force_mae"] < scores[None]["force_mae"]
    with pytest.raises(ValueError, match="two_body"):
        AlchemicalPotential(two_body=0.0).fit(frames[:2])
    with pytest.raises(ValueError, match="radially_resolved needs a compression"):
        AlchemicalPotential(d_j=None, radially_resolved=True).fit(frames[:2])


def test_extensive_and_same_forces_in_a_supercell(elpasolite_potential):
    atoms = _rattled_elpasolites(1, seed=4)[0]
    big = atoms.repeat((2, 2, 2))
    e1, g1, _ = elpasolite_potential.energy_and_derivatives([atoms], strain=False)
    e8, g8, _ = elpasolite_potential.energy_and_derivatives([big], strain=False)
    assert e8[0] == pytest.approx(8 * e1[0], rel=1e-10)
    np.testing.assert_allclose(g8[0][: len(atoms)], g1[0], atol=1e-9)


def test_local_energy_does_not_see_beyond_the_cutoff(elpasolite_potential):
    cluster = _cluster()
    far = cluster.copy()
    # a Na atom 30 Å away (cutoff 4 Å): atom 0's energy and everyone else's stay
    far += Atoms("Na", positions=[cluster.positions[0] + [30.0, 0, 0]])
    before = elpasolite_potential.atomic_energies([cluster])[0]
    after = elpasolite_potential.atomic_energies([far])[0]
    np.testing.assert_allclose(after[: len(cluster)], before, atol=1e-12)
    moved = far.copy()
    moved.positions[-1] += [5.0, 3.0, 0.0]
    np.testing.assert_allclose(
        elpasolite_potential.atomic_energies([moved])[0][: len(cluster)], before, atol=1e-12
    )


def test_atomic_energies_sum_to_the_energy(hea_potential, hea_frames):
    atoms = hea_frames[1]
    energies = hea_potential.atomic_energies([atoms])[0]
    assert energies.shape == (len(atoms),)
    assert energies.sum() == pytest.approx(hea_potential.predict([atoms])[0], rel=1e-12)


def test_training_on_forces_fits_held_out_forces_better(hea_frames):
    train, opt, test = split_by_index(hea_frames)
    fit_on = train[:12]
    known = {int(z) for a in fit_on + opt[:3] for z in a.numbers}
    held = [a for a in test + train[12:] if set(a.numbers.tolist()) <= known][:4]
    assert len(held) >= 2
    common = dict(d_j=3, hypers=SMALL, n_support=150, n_steps=0)
    with_forces = AlchemicalPotential(**common).fit(fit_on, opt[:3], forces=True)
    energy_only = AlchemicalPotential(**common).fit(fit_on, opt[:3], forces=False)
    err_f = with_forces.score(held)["force_mae"]
    err_e = energy_only.score(held)["force_mae"]
    assert err_f < 0.8 * err_e


def test_a_known_local_model_is_recovered():
    """Labels from a potential with a known U; fitting the same kernel on them (same U,
    same structures, so the same support environments) recovers its energies and forces
    on new structures."""
    frames = _rattled_elpasolites(30, seed=11, amplitude=0.15)
    teacher = AlchemicalPotential(d_j=2, hypers=SMALL, n_support=80, n_steps=0, seed=1)
    teacher.fit(_label_morse(frames[:20]), forces=True)
    labelled = []
    for atoms in frames:
        energy, gradients, _ = teacher.energy_and_derivatives([atoms], strain=False)
        atoms = atoms.copy()
        atoms.info["energy"] = float(energy[0])
        atoms.arrays["forces"] = -gradients[0]
        labelled.append(atoms)
    student = AlchemicalPotential(
        d_j=2, hypers=SMALL, n_support=80, n_steps=0, init=teacher.U, energy_sigma=1e-3,
        force_sigma=1e-3,
    )  # fmt: skip
    student.fit(labelled[:20], forces=True)  # the teacher's structures: its support too
    score = student.score(labelled[24:])
    scale = np.abs(np.concatenate([a.arrays["forces"].ravel() for a in labelled[24:]])).mean()
    assert score["force_mae"] < 0.02 * scale
    per_atom = np.array([a.info["energy"] / len(a) for a in labelled])
    spread = np.abs(per_atom[24:] - per_atom[:20].mean()).mean()
    assert score["energy_mae"] < 0.02 * spread


def test_u_is_learned_on_energies_and_forces(hea_frames):
    train, opt, test = split_by_index(hea_frames)
    model = AlchemicalPotential(
        d_j=2, hypers=SMALL, n_support=100, n_steps=4, step_force_structures=3, rotation=False
    )
    model.fit(train[:10], opt[:3], forces=True)
    history = model.loss_history_
    assert len(history) == 4 and all(np.isfinite(h["loss"]) for h in history)
    assert history[0]["force_loss"] > 0
    assert model.best_step_ == int(np.argmin([h["loss"] for h in history]))
    from ase_alchemical.core.compression import element_init

    start = element_init(model.species, 2)
    assert not np.allclose(model.U, start)  # U moved
    assert model.optimization_["learned_u"] and not model.optimization_["rotated"]


@pytest.mark.parametrize("radial", [False, True], ids=["one U", "one U per n"])
def test_held_out_loss_gradient_equals_finite_differences(radial):
    """Gradients of the step loss reach U through the solve, the support features and the
    held-out forces (a second derivative), and equal finite differences."""
    from ase_alchemical.local.fit import fit_state, held_out_loss

    frames = _label_morse(_rattled_elpasolites(8, seed=2))
    model = AlchemicalPotential(d_j=2, hypers=SMALL, n_support=30, n_steps=0, rotation=False,
                                radially_resolved=radial)  # fmt: skip
    _, problem, train, opt, e0 = fit_state(model, frames[:6], frames[6:], True, False)
    captured = {"problem": problem}
    args = (problem, train, opt, e0)
    u0 = captured["problem"].compression.U.detach().clone()
    u = u0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(held_out_loss(*args, u)[0], u)
    h = 1e-6
    indices = [(0, 0, 0), (1, 3, 1), (3, 7, 0)] if radial else [(0, 0), (3, 1), (7, 0)]
    for index in indices:
        up, down = u0.clone(), u0.clone()
        up[index] += h
        down[index] -= h
        with torch.no_grad():
            fd = (held_out_loss(*args, up)[0] - held_out_loss(*args, down)[0]) / (2 * h)
        assert float(grad[index]) == pytest.approx(float(fd), rel=1e-4, abs=1e-8)


def test_nve_conserves_energy_and_relaxation_descends(elpasolite_potential):
    from ase.filters import FrechetCellFilter
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGSLineSearch

    atoms = _rattled_elpasolites(1, seed=5, amplitude=0.05)[0]
    atoms.calc = AlchemicalCalculator(elpasolite_potential)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=2 * units.fs)
    totals = []
    dyn.attach(lambda: totals.append(atoms.get_total_energy()), interval=10)
    dyn.run(500)  # 1 ps
    drift = max(totals) - min(totals)
    assert drift < 5e-3 * len(atoms)  # eV: 0.5 meV/atom over 1 ps

    atoms = _rattled_elpasolites(1, seed=6, amplitude=0.05)[0]
    atoms.calc = AlchemicalCalculator(elpasolite_potential)
    energies = []
    opt = BFGSLineSearch(FrechetCellFilter(atoms), logfile=None)
    opt.attach(lambda: energies.append(atoms.get_potential_energy()))
    assert opt.run(fmax=0.01, steps=300)
    assert np.all(np.diff(energies) < 1e-8)


def test_save_and_load_give_the_same_predictions(
    hea_potential, pair_potential, radial_potential, hea_frames, tmp_path
):
    path = hea_potential.save(tmp_path / "hea.pt")
    loaded = load_model(path)
    assert isinstance(loaded, AlchemicalPotential)
    atoms = hea_frames[2]
    np.testing.assert_allclose(loaded.predict([atoms]), hea_potential.predict([atoms]), rtol=1e-12)
    np.testing.assert_allclose(
        loaded.predict_std([atoms]), hea_potential.predict_std([atoms]), rtol=1e-8
    )
    radial_loaded = load_model(radial_potential.save(tmp_path / "radial.pt"))
    assert radial_loaded.U.shape == (4, len(radial_loaded.species), 2)
    assert radial_loaded.radially_resolved
    atoms = _rattled_elpasolites(1, seed=9)[0]
    np.testing.assert_allclose(radial_loaded.predict([atoms]), radial_potential.predict([atoms]),
                               rtol=1e-12)  # fmt: skip
    pair_loaded = load_model(pair_potential.save(tmp_path / "pair.pt"))
    atoms = _rattled_elpasolites(1, seed=9)[0]
    assert pair_loaded.two_body == 1.0
    np.testing.assert_allclose(pair_loaded.predict([atoms]), pair_potential.predict([atoms]),
                               rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(
        pair_loaded.predict_std([atoms]), pair_potential.predict_std([atoms]), rtol=1e-8
    )
    from ase_alchemical import AlchemicalKRR

    with pytest.raises(ModelFileError, match="holds a 'local' model"):
        AlchemicalKRR.load(path)


def test_calculator_serves_the_local_potential(hea_potential, hea_frames):
    atoms = hea_frames[3].copy()
    atoms.calc = AlchemicalCalculator(hea_potential, uncertainty=True)
    energy = atoms.get_potential_energy()
    energies = atoms.get_potential_energies()
    assert energies.sum() == pytest.approx(energy, rel=1e-12)
    assert atoms.get_forces().shape == (len(atoms), 3)
    assert atoms.get_stress().shape == (6,)
    assert atoms.calc.get_property("energy_uncertainty", atoms) > 0
    np.testing.assert_allclose(hea_potential.stresses([atoms])[0], atoms.get_stress(), atol=1e-12)


@pytest.mark.parametrize("gradients", [["positions", "strain"], ["positions"]])
def test_environments_equal_metatensors_merged_blocks(hea_frames, gradients):
    """The dense scatter of featomic's blocks equals metatensor's generic merge (neighbour
    types to properties, centre types to samples), values and gradients; a cluster and
    a batch of periodic frames."""
    from ase.build import bulk

    from ase_alchemical.core.features import (
        expansion_calculator,
        merged_blocks,
        relabel_to_local_types,
    )

    cluster = bulk("Cu", "fcc", a=3.6).repeat(2)
    cluster.pbc, cluster.numbers[:3] = False, 28
    cluster.set_cell(np.zeros(3))  # a cluster has no cell
    frames = hea_frames[:3] if "strain" in gradients else [cluster, hea_frames[0]]
    env = compute_environments(frames, SMALL, gradients=gradients)
    relabelled, numbers = relabel_to_local_types(frames)
    k = max(len(u) for u in numbers)
    merged = merged_blocks(expansion_calculator(SMALL).compute(relabelled, gradients=gradients), k)
    offset = np.cumsum([0] + [len(a) for a in frames])[:-1]
    pairs = env.gradient_rows.numpy() * len(env.atom) + env.gradient_atoms.numpy()
    for lam, block in enumerate(merged.blocks()):
        rows = offset[block.samples.values[:, 0]] + block.samples.values[:, 1]
        shape = (len(rows), 2 * lam + 1, k, -1)
        np.testing.assert_array_equal(env.coefficients[lam][rows].numpy(),
                                      np.asarray(block.values).reshape(shape))  # fmt: skip
        grad = block.gradient("positions")
        g = grad.samples.values
        index = np.searchsorted(pairs, rows[g[:, 0]] * len(env.atom) + offset[g[:, 1]] + g[:, 2])
        np.testing.assert_array_equal(
            env.position_gradients[lam][index].numpy(),
            np.asarray(grad.values).reshape((len(g), 3, 2 * lam + 1, k, -1)),
        )
        assert len(np.unique(index)) == len(pairs)  # the same pairs, each once
        if "strain" in gradients:
            strain = np.asarray(block.gradient("strain").values)
            np.testing.assert_array_equal(
                env.strain_gradients[lam][rows].numpy(),
                strain.reshape((len(rows), 9, 2 * lam + 1, k, -1)),
            )


def test_unknown_element_is_a_clear_error(hea_potential):
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [2.8, 0, 0]], cell=[5.6] * 3, pbc=True)
    with pytest.raises(UnknownElementError, match="Cl, Na unknown"):
        hea_potential.predict([atoms])


def test_fit_needs_the_labels_it_is_asked_for(hea_frames):
    frames = [a.copy() for a in hea_frames[:4]]
    del frames[2].arrays["forces"]
    from ase_alchemical.core.targets import LabelError

    with pytest.raises(LabelError, match="structure 2 .* has no forces"):
        AlchemicalPotential(hypers=SMALL, n_steps=0).fit(frames, forces=True)


def test_cli_trains_and_evaluates_a_local_potential(hea_file, hea_frames, tmp_path, capsys):
    import ase.io

    data = tmp_path / "small.xyz"
    frames = [a.copy() for a in hea_frames[:20]]
    for a in frames:  # as a user's file: labels on a single-point calculator
        a.calc = SinglePointCalculator(
            a, energy=a.info.pop("energy"), forces=a.arrays.pop("forces"),
            stress=a.info.pop("stress"),
        )  # fmt: skip
    ase.io.write(data, frames)
    out = tmp_path / "pot.pt"
    code = main([
        "train", "--kernel", "local", "--data", str(data), "--forces", "--d-j", "2",
        "--steps", "0", "--n-support", "80", "--max-radial", "3", "--max-angular", "3",
        "--cutoff", "4", "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0 and out.is_file()
    printed = capsys.readouterr().out
    assert "test energy MAE" in printed and "test force MAE" in printed
    # the two-body term: on with a prior sigma, off with none (whatever the default)
    for value, expected in (("0.5", 0.5), ("none", None)):
        assert main([
            "train", "--kernel", "local", "--data", str(data), "--d-j", "2", "--steps", "0",
            "--n-support", "40", "--max-radial", "2", "--max-angular", "2", "--cutoff", "4",
            "--two-body", value, "--out", str(tmp_path / "tb.pt"), "--quiet",
        ]) == 0  # fmt: skip
        loaded = load_model(tmp_path / "tb.pt")
        assert loaded.two_body == expected
        assert (loaded.state_.pair_weights is None) == (expected is None)
    # one U per radial function
    assert main([
        "train", "--kernel", "local", "--data", str(data), "--d-j", "2", "--steps", "0",
        "--n-support", "40", "--max-radial", "2", "--max-angular", "2", "--cutoff", "4",
        "--radially-resolved", "--out", str(tmp_path / "radial.pt"), "--quiet",
    ]) == 0  # fmt: skip
    loaded = load_model(tmp_path / "radial.pt")
    assert loaded.radially_resolved and loaded.U.shape == (3, len(loaded.species), 2)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--kernel", "local", "--data", str(data), "--two-body", "soft"])
    assert "expected a number or none" in capsys.readouterr().err
    plot = tmp_path / "parity.png"
    assert main(["evaluate", str(out), "--data", str(data), "--plot", str(plot)]) == 0
    assert plot.is_file() and plot.stat().st_size > 1000
    assert "force MAE" in capsys.readouterr().out
