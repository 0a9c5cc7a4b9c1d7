import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

from ase_alchemical import AlchemicalKRR, ModelFileError, UnknownElementError, load_model
from ase_alchemical.core.compression import AlchemicalCompression
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.core.kernels import PolynomialKernel, polynomial_kernel
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import build_elpasolite, split
from ase_alchemical.errors import NotFittedError
from ase_alchemical.structure import fit as fitting
from ase_alchemical.structure.fit import selection_rmse, steps_for
from ase_alchemical.structure.optimize import joint_loss
from ase_alchemical.structure.representation import Representation, structure_features
from ase_alchemical.structure.solvers import (
    FullSolver,
    SparseSolver,
    full_krr_weights,
    sparse_krr_weights,
)

SMALL = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
# The synthetic recovery below uses unscaled densities: with the default radial scaling
# this particular problem (6 elements, random start, seed 5) ends in a local minimum, the
# learned U 1.0 rad from U* after 120 or 200 steps (measured 2026-11-22), while without
# scaling U* is recovered to 0.11 rad.
UNSCALED = make_hypers(cutoff=4.0, max_radial=3, max_angular=2, scaling=None)
SPECIES = [3, 9, 11, 17, 19, 35]


@pytest.fixture(scope="module")
def synthetic_frames(six_element_crystals):
    """Elpasolites over 6 elements (prototype geometry) and their spectra."""
    frames = six_element_crystals(400, seed=0)
    return frames, compute_pair_spectrum(frames, UNSCALED)


def _label(frames, spectrum, u_star, seed=1):
    """Energies from a linear model on features compressed with a known U*."""
    teacher = AlchemicalCompression(SPECIES, u_star.shape[1], u_star)
    with torch.no_grad():
        x = structure_features(teacher(spectrum), spectrum.n_atoms)
    w = torch.as_tensor(np.random.default_rng(seed).normal(size=x.shape[1]))
    y = (x @ w).numpy()
    for atoms, e in zip(frames, y):
        atoms.info["energy"] = len(atoms) * float(e)
    return y


def test_synthetic_recovery_of_a_known_u(synthetic_frames):
    frames, spectrum = synthetic_frames
    u_star = np.random.default_rng(7).normal(size=(6, 2))
    y = _label(frames, spectrum, u_star)
    train, opt, test = frames[:200], frames[200:300], frames[300:]
    params = dict(
        d_j=2, hypers=UNSCALED, zeta=1, solver="full", regularizer=1e-3, init="random", seed=5,
        center_resolved=False,
    )  # fmt: skip
    before = AlchemicalKRR(**params, n_steps=0).fit(train, opt).score(test)
    model = AlchemicalKRR(**params, n_steps=120, learning_rate=0.05).fit(train, opt)
    after = model.score(test)
    angles = subspace_angles(model.U, u_star)
    assert after["mae"] < 0.1 * y.std() < before["mae"]
    assert angles.max() < 0.25  # random 2-planes in 6-d are ~1 rad apart
    start = AlchemicalCompression(SPECIES, 2, "random", seed=5).U.detach().numpy()
    assert subspace_angles(start, u_star).max() > 0.5  # the fit did not start near U*
    hist = model.loss_history_
    assert len(hist) == 120 and min(h["opt_rmse"] for h in hist) < hist[0]["opt_rmse"] / 3


def test_gradcheck_through_the_solve(synthetic_frames):
    frames, spectrum = synthetic_frames
    y = _label(frames, spectrum, np.random.default_rng(3).normal(size=(6, 2)))
    y = torch.as_tensor(y)
    # gradcheck compares with finite differences of the loss, i.e. the *full* gradient
    compression = AlchemicalCompression(SPECIES, 2, "random", seed=0)
    representation = Representation(compression, UNSCALED)
    kernel = PolynomialKernel(2)
    train, opt = spectrum[list(range(8))], spectrum[list(range(8, 14))]
    u = compression.U.detach().clone().requires_grad_(True)
    for solver, support in [(FullSolver(), torch.arange(8)), (SparseSolver(5), torch.arange(5))]:

        def loss(u, solver=solver, support=support, flow="full"):
            return joint_loss(
                u, representation, kernel, solver, train, y[:8], opt, y[8:14], support, 1e-2,
                gradient_flow=flow,
            ).loss  # fmt: skip

        assert torch.autograd.gradcheck(loss, (u,), eps=1e-6, atol=1e-5, rtol=1e-4)
    # "detach" differs from the full gradient: the solve path carries gradient
    g_full = torch.autograd.grad(loss(u), u)[0]
    g_detach = torch.autograd.grad(loss(u, flow="detach"), u)[0]
    assert (g_full - g_detach).norm() > 1e-3 * g_full.norm()


def test_detach_weights_is_the_gradient_at_fixed_weights(synthetic_frames):
    """ "detach_weights" is the gradient of the loss with the weights held at their solved
    value: the support features inside the optimization kernel still move with U, which
    "detach" freezes too; the three flows differ pairwise."""
    frames, spectrum = synthetic_frames
    y = torch.as_tensor(_label(frames, spectrum, np.random.default_rng(3).normal(size=(6, 2))))
    compression = AlchemicalCompression(SPECIES, 2, "random", seed=0)
    representation = Representation(compression, UNSCALED)
    kernel, solver, support = PolynomialKernel(2), FullSolver(), torch.arange(8)
    train, opt = spectrum[list(range(8))], spectrum[list(range(8, 14))]
    u = compression.U.detach().clone().requires_grad_(True)

    def step(flow):
        return joint_loss(
            u, representation, kernel, solver, train, y[:8], opt, y[8:14], support, 1e-2,
            gradient_flow=flow,
        )  # fmt: skip

    grads = {flow: torch.autograd.grad(step(flow).loss, u)[0]
             for flow in ("full", "detach_weights", "detach")}  # fmt: skip
    w0 = step("full").weights.detach()
    x_o, x_t = representation.features(opt, u), representation.features(train, u)
    at_fixed_w = torch.mean((kernel(x_o, x_t[support]) @ w0 - y[8:14]) ** 2)
    expected = torch.autograd.grad(at_fixed_w, u)[0]
    torch.testing.assert_close(grads["detach_weights"], expected, rtol=1e-10, atol=1e-12)
    for a, b in (("full", "detach_weights"), ("detach_weights", "detach")):
        assert (grads[a] - grads[b]).norm() > 1e-3 * grads[a].norm()


def test_sparse_with_all_points_equals_full_krr():
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(30, 12, dtype=torch.float64), dim=1)
    y = torch.randn(30, dtype=torch.float64)
    k = polynomial_kernel(x, x, 2)
    w_full = full_krr_weights(k, y, 1e-3)
    w_sparse = sparse_krr_weights(k, k, y, 1e-3)
    torch.testing.assert_close(k @ w_sparse, k @ w_full, rtol=1e-6, atol=1e-8)
    # KRR solution solves (K + lambda I) w = y
    torch.testing.assert_close((k + 1e-3 * k.diagonal().mean() * torch.eye(30)) @ w_full, y)


def test_real_data_small_fit_beats_the_mean(elpasolites):
    train, opt, test = split(elpasolites, 500, 200, 300, seed=0)
    model = AlchemicalKRR(
        d_j=4,
        zeta=2,
        solver="sparse",
        n_steps=30,
        n_support=300,
        lr_schedule="constant",
        rotation=False,
    ).fit(train, opt)
    scores = model.score(test)
    ref = per_atom_energies(test)
    mean = per_atom_energies(train).mean()
    baseline = np.abs(ref - mean).mean()
    assert baseline > 0.6
    # measured: MAE 0.30 eV/atom against 0.72 for predicting the training mean
    assert scores["mae"] < 0.5 * baseline
    assert scores["mae"] < 0.36
    # the optimization lowered the loss on the optimization set
    assert min(h["opt_rmse"] for h in model.loss_history_) < model.loss_history_[0]["opt_rmse"]
    # predictions are total energies = n_atoms x per-atom
    np.testing.assert_allclose(model.predict(test[:3]), 10 * model.predict_per_atom(test[:3]))


@pytest.fixture(scope="module")
def small_model(synthetic_frames):
    frames, spectrum = synthetic_frames
    _label(frames, spectrum, np.random.default_rng(7).normal(size=(6, 2)))
    return AlchemicalKRR(d_j=2, hypers=SMALL, zeta=2, solver="sparse", n_steps=3, n_support=40).fit(
        frames[:80], frames[80:120]
    )


def test_save_load_roundtrip(small_model, synthetic_frames, tmp_path):
    frames, _ = synthetic_frames
    path = small_model.save(tmp_path / "m.pt", metadata={"note": "test"})
    loaded = load_model(path)
    np.testing.assert_allclose(
        loaded.predict(frames[200:220]),
        small_model.predict(frames[200:220]),
        rtol=1e-10,
        atol=1e-10,
    )
    np.testing.assert_array_equal(loaded.U, small_model.U)
    assert loaded.metadata_ == {"note": "test"}
    assert loaded.get_params() == small_model.get_params()
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


def test_unknown_element_at_predict_time(small_model):
    with pytest.raises(
        UnknownElementError,
        match=r"element\(s\) Al, Cs unknown to this model; it knows 6: Li F Na Cl K Br",
    ):
        small_model.predict([build_elpasolite("Al", "Na", "Cs", "F")])


def test_bad_model_files(small_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    good = small_model.save(tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="truncated, corrupted"):
        load_model(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelFileError, match="not an ase-alchemical model"):
        load_model(other)
    state = torch.load(good, weights_only=True)
    state["format_version"] = 99
    future = tmp_path / "future.pt"
    torch.save(state, future)
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(future)


def test_unfitted_and_bad_params():
    with pytest.raises(NotFittedError, match="not fitted"):
        AlchemicalKRR().predict([build_elpasolite("Al", "Na", "K", "F")])
    frames = [build_elpasolite("Al", "Na", "K", "F")]
    frames[0].info["energy"] = -1.0
    with pytest.raises(ValueError, match="gradient_flow"):
        AlchemicalKRR(gradient_flow="sideways").fit(frames)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        AlchemicalKRR(lr_schedule="linear").fit(frames)
    with pytest.raises(ValueError, match="basis_components must be >= 1"):
        AlchemicalKRR(basis_components=0).fit(frames)
    with pytest.raises(ValueError, match="has no energy"):
        AlchemicalKRR().fit([build_elpasolite("Al", "Na", "K", "F")])


@pytest.mark.parametrize("center_resolved", [False, True])
def test_full_basis_projection_changes_nothing_and_survives_save(
    synthetic_frames, tmp_path, center_resolved
):
    """All (l, n, n') components kept = an orthogonal change of basis: dot products, hence
    kernels and predictions, are unchanged; a truncated one differs but round-trips."""
    frames = [atoms.copy() for atoms in synthetic_frames[0]]
    for atoms, z in zip(frames, np.random.default_rng(0).normal(size=len(frames))):
        atoms.info["energy"] = float(z)
    n_channels = 3 * 4 * 4  # SMALL: l = 0..2, 4 radial functions
    # the full solver: no farthest-point sampling, whose random projection is basis-dependent
    params = dict(
        d_j=2, hypers=SMALL, zeta=2, n_steps=3, solver="full", center_resolved=center_resolved
    )
    plain = AlchemicalKRR(**params).fit(frames[:100], frames[100:150])
    full = AlchemicalKRR(**params, basis_components=n_channels).fit(frames[:100], frames[100:150])
    test = frames[300:320]
    np.testing.assert_allclose(full.predict(test), plain.predict(test), rtol=1e-7, atol=1e-8)
    short = AlchemicalKRR(**params, basis_components=5).fit(frames[:100], frames[100:150])
    assert short.projection_.shape == (n_channels, 5)
    assert not np.allclose(short.predict(test), plain.predict(test))
    loaded = load_model(short.save(tmp_path / "short.pt"))
    np.testing.assert_allclose(loaded.predict(test), short.predict(test), rtol=1e-10)
    assert loaded.center_resolved == center_resolved


@pytest.mark.parametrize("solver", ["full", "sparse"])
def test_refit_solves_the_weights_on_more_structures(synthetic_frames, solver, tmp_path):
    """Known answer: refit = the KRR solve on the new structures with U, the regulariser
    and the target standardisation kept."""
    frames = synthetic_frames[0]
    _label(frames, synthetic_frames[1], np.random.default_rng(7).normal(size=(6, 2)))
    model = AlchemicalKRR(d_j=2, hypers=SMALL, zeta=2, n_steps=3, solver=solver, n_support=40)
    model.fit(frames[:80], frames[80:120])
    u, reg, scale = model.U, model.regularizer_, model.uncertainty_scale_
    sup_before = model.support_features_.clone()
    test = frames[300:320]
    before = model.predict_per_atom(test)
    model.refit(frames[:120])
    np.testing.assert_array_equal(model.U, u)
    assert model.regularizer_ == reg and model.uncertainty_scale_ == scale
    with torch.no_grad():
        x = model.features(model.pair_spectrum(frames[:120]))
        x_test = model.features(model.pair_spectrum(test))
        y = torch.as_tensor(per_atom_energies(frames[:120]))
        y = (y - model.y_mean_) / model.y_std_
        if solver == "full":
            assert len(model.support_) == 120
            w = full_krr_weights(polynomial_kernel(x, x, 2), y, reg)
            k_test = polynomial_kernel(x_test, x, 2)
        else:  # the support points are kept
            torch.testing.assert_close(model.support_features_, sup_before)
            k_mm = polynomial_kernel(sup_before, sup_before, 2)
            w = sparse_krr_weights(polynomial_kernel(x, sup_before, 2), k_mm, y, reg)
            k_test = polynomial_kernel(x_test, sup_before, 2)
    expected = (k_test @ w).numpy() * model.y_std_ + model.y_mean_
    after = model.predict_per_atom(test)
    np.testing.assert_allclose(after, expected, rtol=1e-8, atol=1e-10)
    assert not np.allclose(after, before)
    loaded = load_model(model.save(tmp_path / "refit.pt"))
    np.testing.assert_allclose(loaded.predict_per_atom(test), after, rtol=1e-9)


def test_refit_with_another_regularizer(synthetic_frames, tmp_path):
    """Known answer: refit(regularizer=r) is the full KRR solve with r, U kept; the new
    regulariser is saved; a non-positive one is refused."""
    frames = synthetic_frames[0]
    _label(frames, synthetic_frames[1], np.random.default_rng(7).normal(size=(6, 2)))
    model = AlchemicalKRR(d_j=2, hypers=SMALL, zeta=2, n_steps=3, solver="full")
    model.fit(frames[:80], frames[80:120])
    u, reg = model.U, model.regularizer_
    test = frames[300:320]
    before = model.predict_per_atom(test)
    with pytest.raises(ValueError, match="regularizer must be > 0"):
        model.refit(frames[:80], regularizer=0.0)
    assert model.regularizer_ == reg
    model.refit(frames[:80], regularizer=0.1 * reg)
    np.testing.assert_array_equal(model.U, u)
    assert model.regularizer_ == pytest.approx(0.1 * reg)
    with torch.no_grad():
        x = model.features(model.pair_spectrum(frames[:80]))
        x_test = model.features(model.pair_spectrum(test))
        y = torch.as_tensor(per_atom_energies(frames[:80]))
        w = full_krr_weights(polynomial_kernel(x, x, 2), (y - model.y_mean_) / model.y_std_,
                             0.1 * reg)  # fmt: skip
    expected = (polynomial_kernel(x_test, x, 2) @ w).numpy() * model.y_std_ + model.y_mean_
    after = model.predict_per_atom(test)
    np.testing.assert_allclose(after, expected, rtol=1e-8, atol=1e-10)
    assert not np.allclose(after, before)
    loaded = load_model(model.save(tmp_path / "reg.pt"))
    assert loaded.regularizer_ == pytest.approx(0.1 * reg)
    np.testing.assert_allclose(loaded.predict_per_atom(test), after, rtol=1e-9)


def test_cosine_learning_rate_schedule(synthetic_frames, tmp_path):
    frames, spectrum = synthetic_frames
    _label(frames, spectrum, np.random.default_rng(7).normal(size=(6, 2)))
    train, opt = frames[:200], frames[200:300]
    params = dict(d_j=2, hypers=UNSCALED, zeta=1, solver="full", init="random", seed=5,
                  n_steps=20, learning_rate=0.05)  # fmt: skip
    constant = AlchemicalKRR(**params, lr_schedule="constant").fit(train, opt)
    cosine = AlchemicalKRR(**params, lr_schedule="cosine").fit(train, opt)
    lrs = np.array([h["learning_rate"] for h in cosine.loss_history_])
    steps = np.arange(20)
    np.testing.assert_allclose(lrs, 0.05 * 0.5 * (1 + np.cos(np.pi * steps / 20)), rtol=1e-12)
    assert {h["learning_rate"] for h in constant.loss_history_} == {0.05}
    # the same first step, then different paths; the cosine fit still learns
    assert cosine.loss_history_[1]["loss"] == pytest.approx(constant.loss_history_[1]["loss"])
    assert not np.allclose(cosine.U, constant.U)
    hist = cosine.loss_history_
    assert min(h["opt_rmse"] for h in hist) < 0.5 * hist[0]["opt_rmse"]
    cosine.save(tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").lr_schedule == "cosine"


def test_zeta_candidates_keep_the_fit_with_the_lowest_optimization_rmse(
    synthetic_frames, tmp_path
):
    """A sequence of exponents: one fit each, the kept one is the fit of that single
    exponent, chosen by its optimization-set RMSE; it survives saving."""
    frames, spectrum = synthetic_frames
    _label(frames, spectrum, np.random.default_rng(7).normal(size=(6, 2)))
    train, opt, test = frames[:80], frames[80:120], frames[200:220]
    params = dict(d_j=2, hypers=SMALL, solver="full", n_steps=4, rotation=False)
    singles = {z: AlchemicalKRR(**params, zeta=z).fit(train, opt) for z in (1, 2)}
    model = AlchemicalKRR(**params, zeta=(1, 2)).fit(train, opt)
    scores = {z: selection_rmse(m.state_) for z, m in singles.items()}
    chosen = min(scores, key=scores.get)
    assert scores[1] != scores[2]
    assert model.zeta_ == chosen and model.kernel_.zeta == chosen
    assert model.optimization_["zeta_candidates"] == [[z, scores[z]] for z in (1, 2)]
    np.testing.assert_allclose(model.predict(test), singles[chosen].predict(test), rtol=1e-12)
    loaded = load_model(model.save(tmp_path / "zetas.pt"))
    assert loaded.zeta_ == chosen and loaded.get_params()["zeta"] == [1, 2]
    np.testing.assert_allclose(loaded.predict(test), model.predict(test), rtol=1e-10)


def test_bad_zeta_values(synthetic_frames):
    frames, spectrum = synthetic_frames
    _label(frames, spectrum, np.random.default_rng(7).normal(size=(6, 2)))
    message = "zeta must be a positive integer, a sequence of distinct ones or 'auto'"
    for zeta in (0, 2.5, (2, 2), (), (1, True), "best"):
        with pytest.raises(ValueError, match=message):
            AlchemicalKRR(hypers=SMALL, zeta=zeta).fit(frames[:10], frames[10:20])
    with pytest.raises(ValueError, match="chosen on the optimization set"):
        AlchemicalKRR(hypers=SMALL, zeta=(2, 3)).fit(frames[:10])
    with pytest.raises(ValueError, match="chosen on the optimization set"):
        AlchemicalKRR(hypers=SMALL, zeta=(2, 3), n_steps=0).fit(frames[:10], frames[10:20])


def test_auto_steps_follow_the_training_size(synthetic_frames, monkeypatch, tmp_path):
    """n_steps="auto" takes the steps of the first size the training set is below, else
    the large-set steps; integers are taken as they are, anything else is an error."""
    assert AlchemicalKRR().n_steps == "auto"
    sizes = [size for size, _ in fitting.STEPS_BY_SIZE]
    assert sizes == sorted(sizes)
    for size, steps in fitting.STEPS_BY_SIZE:
        assert steps_for("auto", size - 1) == steps > fitting.STEPS_LARGE
    assert steps_for("auto", sizes[-1]) == fitting.STEPS_LARGE
    assert steps_for(7, 10) == 7 and steps_for(0) == 0
    frames, spectrum = synthetic_frames
    _label(frames, spectrum, np.random.default_rng(7).normal(size=(6, 2)))
    monkeypatch.setattr(fitting, "STEPS_BY_SIZE", ((30, 6),))
    monkeypatch.setattr(fitting, "STEPS_LARGE", 3)
    params = dict(d_j=2, hypers=SMALL, zeta=2, solver="full", rotation=False)
    small = AlchemicalKRR(**params).fit(frames[:20], frames[100:120])
    large = AlchemicalKRR(**params).fit(frames[:40], frames[100:120])
    assert small.optimization_["n_steps_run"] == len(small.loss_history_) == 6
    assert large.optimization_["n_steps_run"] == len(large.loss_history_) == 3
    loaded = load_model(small.save(tmp_path / "auto-steps.pt"))
    assert loaded.n_steps == "auto" and loaded.optimization_["n_steps_run"] == 6
    for n_steps in (-1, 2.5, True, "many", None):
        with pytest.raises(ValueError, match="n_steps must be an integer >= 0 or 'auto'"):
            AlchemicalKRR(hypers=SMALL, n_steps=n_steps).fit(frames[:10], frames[10:20])
