import itertools

import featomic
import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

from ase_alchemical.core.compression import AlchemicalCompression
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.hypers import DEFAULT_HYPERS, make_hypers
from ase_alchemical.data.datasets import build_elpasolite
from ase_alchemical.structure.representation import structure_features


def _identity_features(frames, species, center_resolved=False):
    spectrum = compute_pair_spectrum(frames, center_resolved=center_resolved)
    comp = AlchemicalCompression(species, len(species), "identity", center_resolved=center_resolved)
    with torch.no_grad():
        return comp(spectrum).numpy()


@pytest.mark.parametrize("center_resolved", [False, True])
def test_identity_reproduces_featomic_soap_power_spectrum(crystals, center_resolved):
    """U = identity is plain multi-species SOAP: featomic's SoapPowerSpectrum summed over
    atoms (over the atoms of each central species when center-resolved), up to
    featomic's (-1)^l / sqrt(2l+1) factor per l. featomic scales the off-diagonal
    species pairs by sqrt(2) stored in single precision (relative 1.7e-8)."""
    species = sorted({int(z) for a in crystals for z in a.numbers})
    n = len(species)
    ours = _identity_features(crystals, species, center_resolved)
    lmax1, nrad = 5, 6
    n_centers = n if center_resolved else 1
    ours = ours.reshape(len(crystals), n_centers, n * (n + 1) // 2, lmax1, nrad, nrad)
    pair_index = {(species[i], species[j]): p for p, (i, j) in enumerate(zip(*np.triu_indices(n)))}

    ps = featomic.SoapPowerSpectrum(**DEFAULT_HYPERS).compute(crystals)
    ps = ps.keys_to_properties(["neighbor_1_type", "neighbor_2_type"]).keys_to_samples(
        "center_type"
    )
    block = ps.block(0)
    names = list(block.properties.names)
    props = np.asarray(block.properties.values)
    systems = np.asarray(block.samples.column("system"))
    centers = np.asarray(block.samples.column("center_type"))
    checked = 0
    for s, c in itertools.product(range(len(crystals)), range(n_centers)):
        rows = systems == s
        if center_resolved:
            rows &= centers == species[c]
        total = np.asarray(block.values)[rows].sum(axis=0)
        for k, row in enumerate(props):
            d = dict(zip(names, row))
            ref = total[k] * (-1) ** d["l"] * np.sqrt(2 * d["l"] + 1)
            value = ours[
                s,
                c,
                pair_index[(d["neighbor_1_type"], d["neighbor_2_type"])],
                d["l"],
                d["n_1"],
                d["n_2"],
            ]
            assert value == pytest.approx(ref, rel=1e-7, abs=1e-12)
            checked += 1
    assert checked > 4000
    # species pairs featomic does not list for a structure are exactly zero in ours
    assert np.count_nonzero(ours) <= checked


def _normalized(frames, species, center_resolved):
    spectrum = compute_pair_spectrum(frames, center_resolved=center_resolved)
    comp = AlchemicalCompression(species, 3, "random", seed=1, center_resolved=center_resolved)
    with torch.no_grad():
        return structure_features(comp(spectrum), spectrum.n_atoms).numpy(), comp(spectrum).numpy()


@pytest.mark.parametrize("center_resolved", [False, True])
def test_invariances_rotation_translation_permutation_supercell(center_resolved):
    atoms = build_elpasolite("Bi", "Na", "Cs", "Cl")
    atoms.rattle(0.05, seed=2)
    species = [11, 17, 55, 83]
    rotated = atoms.copy()
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    rotated.positions = atoms.positions @ rot.T
    rotated.cell = atoms.cell.array @ rot.T
    shifted = atoms.copy()
    shifted.translate([0.7, -2.3, 5.1])
    perm = atoms[np.random.default_rng(0).permutation(len(atoms))]
    super_cell = atoms.repeat((2, 2, 2))
    feats, raw = _normalized([atoms, rotated, shifted, perm, super_cell], species, center_resolved)
    for i in range(1, 5):
        np.testing.assert_allclose(feats[i], feats[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(raw[4], 8 * raw[0], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(raw[1:4], np.repeat(raw[:1], 3, 0), rtol=1e-9, atol=1e-10)


def test_batching_and_local_relabelling_do_not_change_results(crystals):
    extra = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    frames = crystals + [extra]
    together = compute_pair_spectrum(frames, batch_size=10, center_resolved=True)
    one_by_one = [compute_pair_spectrum([f], center_resolved=True) for f in frames]
    for s, single in enumerate(one_by_one):
        k = single.values.shape[1]
        np.testing.assert_allclose(together.values[s, :k, :k, :k], single.values[0], atol=1e-12)
        assert together.values[s, k:].abs().max() == 0 if k < together.values.shape[1] else True
        assert together.numbers[s, :k].tolist() == single.numbers[0].tolist()
    assert together.numbers[-1].tolist() == [1, 8, 0, 0]
    assert together.n_atoms.tolist() == [10, 10, 10, 10, 3]


def test_summed_spectrum_is_the_sum_over_centres(crystals):
    resolved = compute_pair_spectrum(crystals, center_resolved=True)
    summed = compute_pair_spectrum(crystals)
    assert summed.values.shape[1] == 1 and not summed.center_resolved
    np.testing.assert_allclose(summed.values[:, 0], resolved.values.sum(1), atol=1e-12)
    comp = AlchemicalCompression([9, 11, 13, 19], 2, "random", center_resolved=True)
    with pytest.raises(ValueError, match="compute it with center_resolved=True"):
        comp(compute_pair_spectrum(crystals[:1]))


def test_make_hypers_shape():
    h = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
    spectrum = compute_pair_spectrum(
        [build_elpasolite("Al", "Na", "K", "F")], h, center_resolved=True
    )
    assert spectrum.values.shape == (1, 4, 4, 4, 3, 4, 4)


H2 = [[0, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize(
    "atoms, message",
    [
        (Atoms(), "is empty"),
        (Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "NaN or inf positions"),
        (Atoms("H2", positions=H2, cell=[0, 3, 3], pbc=True), "cell vector is zero"),
        (Atoms("H2", positions=H2, cell=[[1, 0, 0], [2, 0, 0], [0, 0, 3]], pbc=True), "degenerate"),
    ],
)  # fmt: skip
def test_bad_structures_get_specific_errors(atoms, message):
    with pytest.raises(ValueError, match=message):
        compute_pair_spectrum([build_elpasolite("Al", "Na", "K", "F"), atoms])


def test_bad_hypers():
    with pytest.raises(ValueError, match="basis.max_angular"):
        compute_pair_spectrum([build_elpasolite("Al", "Na", "K", "F")], {"cutoff": 5.0})


@pytest.mark.parametrize("distance", [1.0, 2.0, 3.3])
def test_radial_scaling_is_willatt2018(distance):
    """featomic's native path multiplies each neighbour's density by exactly
    u(r) = c / (c + (r/r0)^m): checked on a two-atom system before relying on it
    (featomic's Python helper ``featomic.density.Willatt2018.compute`` in 0.6.x has its
    branches swapped, so the formula is checked here, not taken from there)."""
    rate, scale, exponent = 1.5, 2.0, 4
    atoms = Atoms("HO", positions=[[0, 0, 0], [0.6 * distance, 0.8 * distance, 0]])
    scaling = {"type": "Willatt2018", "rate": rate, "scale": scale, "exponent": exponent}
    plain = make_hypers(cutoff=4.0, scaling=None)
    scaled = make_hypers(cutoff=4.0, scaling=scaling)
    expected = rate / (rate + (distance / scale) ** exponent)
    ratios = {True: [], False: []}
    for key, block in featomic.SphericalExpansion(**plain).compute(atoms).items():
        other = featomic.SphericalExpansion(**scaled).compute(atoms).block(key)
        mask = np.abs(block.values) > 1e-10
        self_term = int(key["center_type"]) == int(key["neighbor_type"])
        ratios[self_term].append(other.values[mask] / block.values[mask])
    neighbour, own = np.concatenate(ratios[False]), np.concatenate(ratios[True])
    assert len(neighbour) > 10 and len(own) > 2
    np.testing.assert_allclose(neighbour, expected, rtol=1e-10)
    np.testing.assert_allclose(own, 1.0, rtol=1e-12)  # the centre's own density: u(0) = 1


def test_default_hypers_use_radial_scaling():
    assert DEFAULT_HYPERS["density"]["scaling"]["type"] == "Willatt2018"
    assert "scaling" not in make_hypers(scaling=None)["density"]
    h = make_hypers()
    h["density"]["scaling"]["scale"] = 99.0  # callers get copies, never the default itself
    assert DEFAULT_HYPERS["density"]["scaling"]["scale"] == 3.0


@pytest.mark.parametrize("center_resolved", [False, True])
def test_unique_columns_keep_every_dot_product(crystals, center_resolved):
    """Dropping the symmetric (n, n') duplicates of the J = J' blocks (with sqrt 2 on the
    kept off-diagonal ones) changes no dot product, and leaves no duplicate behind:
    multi-scale features (two scales, different l ranges) with a random d_J = 3 U."""
    scales = [
        make_hypers(cutoff=3.5, max_radial=3, max_angular=2),
        make_hypers(cutoff=6.0, max_radial=3, max_angular=1),
    ]
    rattled = [a.copy() for a in crystals]
    for i, a in enumerate(rattled):
        a.rattle(0.05, seed=i)
    spectrum = compute_pair_spectrum(rattled, scales, center_resolved=center_resolved)
    species = sorted({int(z) for a in crystals for z in a.numbers})
    comp = AlchemicalCompression(species, 3, "random", seed=4, center_resolved=center_resolved)
    with torch.no_grad():
        x = structure_features(comp(spectrum), spectrum.n_atoms, scale_sizes=[3 * 16, 2 * 16])
    index, weights, widths = comp.unique_columns([(3, 4), (2, 4)])
    reduced = x[:, index] * weights
    n_rows = 6 * (3 if center_resolved else 1)  # 6 pairs J <= J' (x 3 central I)
    # 3 diagonal pairs keep 10 of 16 (n, n'), 3 off-diagonal keep all 16, per l
    assert widths == [n_rows // 6 * (3 * 10 + 3 * 16) * n_l for n_l in (3, 2)]
    assert x.shape[1] == n_rows * 16 * 5 and reduced.shape[1] == sum(widths)
    torch.testing.assert_close(reduced @ reduced.T, x @ x.T, rtol=1e-13, atol=1e-14)
    # each scale's columns stay together: per-scale dot products are kept too
    near, far = reduced.split(widths, 1)
    torch.testing.assert_close(near @ near.T, x[:, : n_rows * 48] @ x[:, : n_rows * 48].T)
    torch.testing.assert_close(far @ far.T, x[:, n_rows * 48 :] @ x[:, n_rows * 48 :].T)
    # no two kept columns are copies of each other any more
    columns = reduced.T.round(decimals=12)
    nonzero = columns[columns.abs().sum(1) > 0]
    assert len(torch.unique(nonzero, dim=0)) == len(nonzero)
