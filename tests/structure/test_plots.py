import matplotlib
import numpy as np
import pytest
from scipy.stats import ortho_group

from ase_alchemical.plots import (
    aligned_u,
    calibration_curve,
    periodic_table_position,
    plot_calibration,
    plot_elements,
    plot_periodic_table,
)

matplotlib.use("Agg")


def test_alignment_removes_the_rotation_gauge():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(10, 3)) * [3.0, 1.0, 0.3]
    rotated = 2.5 * u @ ortho_group.rvs(3, random_state=1)
    np.testing.assert_allclose(aligned_u(rotated), aligned_u(u), atol=1e-10)


@pytest.mark.parametrize(
    "symbol, position",
    [("H", (1, 1)), ("He", (1, 18)), ("Na", (3, 1)), ("Ga", (4, 13)), ("Xe", (5, 18)),
     ("Ba", (6, 2)), ("Bi", (6, 15)), ("Sc", (4, 3))],
)  # fmt: skip
def test_periodic_table_positions(symbol, position):
    assert periodic_table_position(symbol) == position


def test_plots_label_every_element():
    species = [1, 3, 9, 11, 17, 55, 56, 83]
    u = np.random.default_rng(2).normal(size=(len(species), 2))
    ax = plot_elements(u, species=species)
    assert {t.get_text() for t in ax.texts} == {"H", "Li", "F", "Na", "Cl", "Cs", "Ba", "Bi"}
    ax = plot_periodic_table(u, species=species, component=1)
    assert len(ax.patches) == len(species) and "group" in ax.get_xlabel()
    with pytest.raises(ValueError, match="pass species="):
        plot_elements(u)


def test_rgb_periodic_table_colours_follow_aligned_u():
    species = [3, 11, 19, 9, 17]
    u = np.random.default_rng(3).normal(size=(len(species), 3))
    ax = plot_periodic_table(u, species=species, component="rgb")
    expected = (aligned_u(u) + 1) / 2
    colours = np.array([p.get_facecolor()[:3] for p in ax.patches])
    np.testing.assert_allclose(colours, expected, atol=1e-6)


def test_calibration_curve_of_gaussian_errors_is_the_diagonal():
    rng = np.random.default_rng(0)
    sigmas = rng.uniform(0.1, 2.0, 200_000)
    expected, observed = calibration_curve(rng.normal(0, sigmas), sigmas)
    np.testing.assert_allclose(observed, expected, atol=0.005)
    assert expected[0] == 0 and expected[-1] == pytest.approx(0.9973, abs=1e-4)
    # over-confident sigmas (half the true spread) fall below the diagonal
    _, low = calibration_curve(rng.normal(0, sigmas), sigmas / 2)
    assert np.all(low[1:] < expected[1:])
    assert plot_calibration(rng.normal(0, sigmas[:100]), sigmas[:100]) is not None


def test_element_similarity_is_gauge_free_and_ordered_by_group():
    from ase_alchemical.plots import element_similarity

    species = [1, 3, 9, 11, 17, 19]  # H, Li, F, Na, Cl, K
    rng = np.random.default_rng(0)
    u = rng.normal(size=(6, 3))
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    similarity, ordered = element_similarity(u, species)
    assert ordered == [1, 3, 11, 19, 9, 17]  # group 1 by period, then group 17
    np.testing.assert_allclose(np.diag(similarity), 1.0)
    rotated, _ = element_similarity(2.5 * u @ rotation, species)
    np.testing.assert_allclose(rotated, similarity, atol=1e-12)
    i, j = species.index(3), species.index(17)  # Li and Cl, rows 1 and 5 of the order
    expected = u[i] @ u[j] / np.linalg.norm(u[i]) / np.linalg.norm(u[j])
    assert similarity[1, 5] == pytest.approx(expected)


def test_spread_labels_keeps_labels_apart():
    from ase_alchemical.plots import spread_labels

    points = np.array([[0.0, 0.0], [0.001, 0.0], [0.0, 0.001], [1.0, 1.0]])
    labels = spread_labels(points, min_distance=0.06)
    gaps = [np.linalg.norm(labels[i] - labels[j]) for i in range(4) for j in range(i)]
    assert min(gaps) > 0.04  # started on top of each other
    assert np.linalg.norm(labels - points, axis=1).max() < 0.3  # still beside their points


def test_group_coherence_of_known_u():
    """A U whose rows are their group's one-hot vector (plus a little noise) groups every
    element with its group; swapping two elements' rows breaks their pairs."""
    from ase_alchemical.plots import group_coherence, nearest_elements

    species = [3, 11, 19, 9, 17, 35, 4, 12, 20]  # Li Na K, F Cl Br, Be Mg Ca
    columns = {1: 0, 17: 1, 2: 2}
    rng = np.random.default_rng(0)
    u = np.zeros((len(species), 3))
    for row, z in enumerate(species):
        u[row, columns[periodic_table_position(z)[1]]] = 1.0
    u += 0.01 * rng.normal(size=u.shape)
    assert group_coherence(u, species) == 1.0
    assert nearest_elements(u, species)["Li"] in {"Na", "K"}
    swapped = u.copy()
    swapped[[0, 3]] = swapped[[3, 0]]  # Li's row is now a halogen's, F's an alkali's
    neighbours = nearest_elements(swapped, species)
    assert neighbours["Li"] in {"Cl", "Br"} and neighbours["F"] in {"Na", "K"}
    # Li and F are now wrong, Be, Mg and Ca still right; the other four depend on the noise
    assert 3 / 9 <= group_coherence(swapped, species) <= 7 / 9
    rotated = 2.5 * swapped @ ortho_group.rvs(3, random_state=0)  # the gauge: no change
    assert group_coherence(rotated, species) == group_coherence(swapped, species)
