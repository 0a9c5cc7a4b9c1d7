"""Shared fixtures: real elpasolite data (from $ASE_ALCHEMICAL_DATA) and small crystals."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from ase_alchemical.data.datasets import DATA_ENV, build_elpasolite, load_elpasolites


def _data_dir() -> Path | None:
    env = os.environ.get(DATA_ENV)
    if env and Path(env).is_dir():
        return Path(env)
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside if (beside / "elpasolites.csv").is_file() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Directory with the elpasolite data. In CI it must exist: a missing one fails."""
    d = _data_dir()
    if d is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the elpasolite data: set {DATA_ENV}")
        pytest.skip(f"elpasolite data not found (set {DATA_ENV})")
    return d


@pytest.fixture(scope="session")
def elpasolites(data_dir):
    """All 10,590 elpasolites (prototype geometries, total energies in info)."""
    return load_elpasolites(data_dir)


@pytest.fixture
def crystals():
    """A few real elpasolite compositions on the prototype."""
    return [
        build_elpasolite("Al", "Na", "K", "F"),
        build_elpasolite("Bi", "Na", "Cs", "Cl"),
        build_elpasolite("Ga", "Li", "Rb", "Br"),
        build_elpasolite("In", "K", "Cs", "I"),
    ]


#: Six elements (and their atomic numbers) for small synthetic problems.
SIX_ELEMENTS = ["Li", "Na", "K", "F", "Cl", "Br"]


@pytest.fixture(scope="session")
def six_element_crystals():
    """Factory ``(n, seed) -> frames``: n distinct random elpasolites over six elements."""

    def make(n: int, seed: int) -> list:
        rng = np.random.default_rng(seed)
        combos = list(itertools.product(SIX_ELEMENTS, repeat=4))
        return [build_elpasolite(*combos[i]) for i in rng.choice(len(combos), n, replace=False)]

    return make


@pytest.fixture(scope="session", autouse=True)
def _feature_cache_of_this_session(tmp_path_factory):
    """Model loads of the tests cache their support features in a directory of their own
    (built by the first load, read by the later ones), never in the user's cache."""
    from ase_alchemical.core.feature_cache import CACHE_DIR_ENV

    previous = os.environ.get(CACHE_DIR_ENV)
    os.environ[CACHE_DIR_ENV] = str(tmp_path_factory.mktemp("feature-cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_DIR_ENV, None)
    else:
        os.environ[CACHE_DIR_ENV] = previous


@pytest.fixture(scope="session")
def screen_model():
    """A small fitted model over 7 elements (420 compositions to screen), toy labels."""
    from ase_alchemical import AlchemicalKRR
    from ase_alchemical.core.hypers import make_hypers

    elements = ["Li", "Na", "Cs", "F", "Cl", "Al", "Tl"]
    rng = np.random.default_rng(3)
    combos = list(itertools.permutations(elements, 4))
    frames = []
    for i in rng.choice(len(combos), 200, replace=False):
        atoms = build_elpasolite(*combos[i])
        atoms.info["energy"] = len(atoms) * (0.05 * atoms.numbers.mean() + rng.normal(0, 0.02))
        frames.append(atoms)
    hypers = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
    params = dict(d_j=2, hypers=hypers, zeta=2, solver="full", n_steps=3, step_train_size=None)
    return AlchemicalKRR(**params).fit(frames[:150], frames[150:])


@pytest.fixture(scope="session")
def hea_file(data_dir):
    """The HEA sample of the shared data (energies, forces, stress)."""
    path = data_dir / "hea" / "hea25_bulk_100.xyz"
    if not path.is_file():
        pytest.fail(f"the HEA data {path} is missing from the shared data")
    return path


@pytest.fixture(scope="session")
def hea_frames(hea_file):
    from ase_alchemical.data.files import read_structures

    return read_structures(hea_file, forces=True, stress=True)


@pytest.fixture(scope="session")
def small_hea_potential(hea_frames):
    """A small local potential fitted to 6 HEA training frames (energies and forces), and
    a bare copy (positions, cell, numbers) of a training frame made of its elements."""
    from ase import Atoms

    from ase_alchemical import AlchemicalPotential
    from ase_alchemical.core.hypers import make_hypers
    from ase_alchemical.local.training import split_by_index

    train, held_out, _ = split_by_index(hea_frames)
    hypers = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)
    model = AlchemicalPotential(d_j=3, hypers=hypers, n_support=120, n_steps=0)
    model.fit(train[:6], held_out[:2], forces=True)
    frame = next(f for f in train if set(f.numbers) <= set(model.species))
    bare = Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    return model, bare
