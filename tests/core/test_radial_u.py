"""A radially resolved U: one species mixing per radial basis function of each scale."""

import numpy as np
import pytest
import torch

from ase_alchemical import AlchemicalCalculator, AlchemicalKRR, load_model
from ase_alchemical.core.compression import AlchemicalCompression
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.hypers import basis_shapes, make_hypers
from ase_alchemical.data.datasets import build_elpasolite
from ase_alchemical.plots import plot_periodic_table

NEAR = make_hypers(cutoff=3.5, max_radial=3, max_angular=2)
FAR = make_hypers(cutoff=6.0, max_radial=3, max_angular=1)
SPECIES = [3, 9, 11, 17, 19, 35]


@pytest.fixture(scope="module")
def spectrum(six_element_crystals):
    frames = six_element_crystals(8, seed=3)
    for i, atoms in enumerate(frames):
        atoms.rattle(0.05, seed=i)
    return compute_pair_spectrum(frames, [NEAR, FAR])


def test_equal_channels_are_the_plain_compression(spectrum):
    shapes = basis_shapes([NEAR, FAR])
    assert shapes == [(3, 4), (2, 4)]
    plain = AlchemicalCompression(SPECIES, 3, "random", seed=2)
    radial = AlchemicalCompression(SPECIES, 3, "random", seed=2, radial_shapes=shapes)
    assert radial.U.shape == (8, 6, 3)  # 4 radial functions per scale
    with torch.no_grad():
        torch.testing.assert_close(radial(spectrum), plain(spectrum), rtol=1e-13, atol=1e-13)


def test_radial_compression_follows_its_definition(spectrum):
    """P[J, J', l, n, n'] = sum_ab U[n, a, J] U[n', b, J'] rho[a, b, l, n, n'], with the
    channel of (scale, n) and the sqrt(2)-weighted J < J' pairs, computed by loops."""
    shapes = [(3, 4), (2, 4)]
    u = np.random.default_rng(0).normal(size=(8, 6, 3))
    comp = AlchemicalCompression(SPECIES, 3, u, radial_shapes=shapes)
    with torch.no_grad():
        got = comp(spectrum).reshape(len(spectrum), 6, 5, 4, 4).numpy()
    rho = spectrum.values.double().sum(1).numpy()  # (S, K, K, L, N, N)
    pairs = [(j, k) for j in range(3) for k in range(j, 3)]
    expected = np.zeros_like(got)
    for s in range(len(spectrum)):
        rows = [SPECIES.index(int(z)) if z > 0 else None for z in spectrum.numbers[s]]
        for p, (j, k) in enumerate(pairs):
            weight = 1.0 if j == k else np.sqrt(2.0)
            for ll in range(5):
                scale = 0 if ll < 3 else 1
                for n in range(4):
                    for m in range(4):
                        un, um = u[4 * scale + n], u[4 * scale + m]
                        expected[s, p, ll, n, m] = weight * sum(
                            un[ra, j] * um[rb, k] * rho[s, a, b, ll, n, m]
                            for a, ra in enumerate(rows) if ra is not None
                            for b, rb in enumerate(rows) if rb is not None
                        )  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_radial_init_and_errors():
    u = np.ones((6, 2))
    comp = AlchemicalCompression(SPECIES, 2, u, radial_shapes=[(3, 4)])
    assert comp.U.shape == (4, 6, 2)
    with pytest.raises(ValueError, match=r"init array has shape \(3, 6, 2\), expected \(4, 6, 2\)"):
        AlchemicalCompression(SPECIES, 2, np.ones((3, 6, 2)), radial_shapes=[(3, 4)])
    with pytest.raises(ValueError, match="cannot be combined with center_resolved"):
        AlchemicalCompression(SPECIES, 2, radial_shapes=[(3, 4)], center_resolved=True)
    with pytest.raises(ValueError, match="cannot be combined with center_resolved or basis"):
        AlchemicalKRR(radially_resolved=True, basis_components=10).fit([], [])
    with pytest.raises(ValueError, match=r"radial_shapes must be positive \(L, N\) pairs"):
        AlchemicalCompression(SPECIES, 2, u, radial_shapes=[(3, 0)])
    crystal = [build_elpasolite("Li", "Na", "K", "F")]
    with pytest.raises(ValueError, match="needs a spectrum summed over centres"):
        comp(compute_pair_spectrum(crystal, NEAR, center_resolved=True))
    spectrum = compute_pair_spectrum(crystal, FAR)
    with pytest.raises(ValueError, match=r"\(L, N\) = \(2, 4\) does not match the radial shapes"):
        comp(spectrum)


@pytest.fixture(scope="module")
def radial_model(six_element_crystals):
    frames = six_element_crystals(160, seed=4)
    for atoms in frames:  # a smooth energy of composition and geometry
        atoms.info["energy"] = float(np.sin(atoms.numbers).sum() + 0.01 * atoms.get_volume())
    model = AlchemicalKRR(
        d_j=2,
        hypers=[NEAR, FAR],
        radially_resolved=True,
        n_steps=4,
        solver="full",
        zeta=2,
        lr_schedule="constant",
        rotation=False,
    )
    return model.fit(frames[:100], frames[100:])


def test_radially_resolved_model_learns_saves_and_gives_forces(radial_model, tmp_path):
    u = radial_model.U
    assert u.shape == (8, 6, 2)
    # the channels started equal; the optimization moved them apart
    assert np.abs(u - u[:1]).max() > 1e-3
    loaded = load_model(radial_model.save(tmp_path / "radial.pt"))
    assert loaded.radially_resolved and loaded.U.shape == (8, 6, 2)
    atoms = build_elpasolite("Li", "Na", "K", "Cl")
    atoms.rattle(0.05, seed=1)
    np.testing.assert_allclose(loaded.predict([atoms]), radial_model.predict([atoms]), rtol=1e-12)
    with pytest.raises(ValueError, match=r"radially resolved .* model.U\[n\]"):
        plot_periodic_table(loaded)
    calc = AlchemicalCalculator(loaded, device="cpu")
    atoms.calc = calc
    forces = atoms.get_forces()
    numerical = calc.calculate_numerical_forces(atoms, d=1e-4)
    np.testing.assert_allclose(forces, numerical, atol=2e-6 * max(1.0, np.abs(forces).max()))
    assert np.abs(forces).max() > 1e-3


def test_train_command_takes_the_option(data_dir, tmp_path):
    from ase_alchemical.cli import main

    out = tmp_path / "radial.pt"
    code = main([
        "train", "--d-j", "2", "--n-train", "100", "--n-opt", "50", "--n-test", "50",
        "--steps", "2", "--solver", "full", "--zeta", "2",
        "--max-radial", "2", "--max-angular", "1",
        "--radially-resolved", "--data", str(data_dir), "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    model = load_model(out)
    assert model.radially_resolved and model.U.shape == (3, 39, 2)
