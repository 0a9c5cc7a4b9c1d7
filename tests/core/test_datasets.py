import pickle

import numpy as np
import pytest
from ase.data import atomic_numbers, covalent_radii
from ase.spacegroup import crystal

from ase_alchemical.data import datasets
from ase_alchemical.data.datasets import (
    DataNotFoundError,
    build_elpasolite,
    load_elpasolite_table,
    split,
)
from ase_alchemical.data.files import read_structures


def _r(s):
    return covalent_radii[atomic_numbers[s]]


@pytest.mark.parametrize(
    "sites", [("Al", "Na", "K", "F"), ("Bi", "Na", "Cs", "Cl"), ("H", "Li", "Ba", "I")]
)
def test_prototype_follows_the_hard_sphere_rule(sites):
    atoms = build_elpasolite(*sites)
    a_site, b_site, c_site, d_site = sites
    d_ad, d_bd, s = _r(a_site) + _r(d_site), _r(b_site) + _r(d_site), _r(c_site) + _r(d_site)
    a = max(2 * (d_ad + d_bd), 4 / 3 * (d_ad + np.sqrt(max(3 * s**2 - 2 * d_ad**2, 0))))
    assert atoms.info["a"] == pytest.approx(a)
    assert len(atoms) == 10 and atoms.pbc.all()
    assert atoms.get_volume() == pytest.approx(a**3 / 4)
    dist = atoms.get_all_distances(mic=True)
    # A (index 0) has 6 D neighbours at d_AD; C-D contacts are never shorter than s
    assert np.sort(dist[0, 4:]) == pytest.approx([d_ad] * 6)
    assert dist[2, 4:].min() >= s - 1e-9 and dist[3, 4:].min() >= s - 1e-9
    # same crystal as ASE's space-group builder (compare all interatomic distances)
    ref = crystal(
        [a_site, b_site, c_site, d_site],
        [(0, 0, 0), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (atoms.info["x"], 0, 0)],
        spacegroup=225, cellpar=[a, a, a, 90, 90, 90], primitive_cell=True,
    )  # fmt: skip
    assert sorted(ref.get_chemical_symbols()) == sorted(atoms.get_chemical_symbols())
    assert np.sort(ref.get_all_distances(mic=True).ravel()) == pytest.approx(
        np.sort(dist.ravel()), abs=1e-8
    )


def test_prototype_example_from_data_readme():
    atoms = build_elpasolite("Al", "Na", "K", "F")
    assert atoms.info["a"] == pytest.approx(8.02, abs=0.005)
    assert atoms.info["x"] == pytest.approx(0.222, abs=0.0005)


def test_unknown_symbol():
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        build_elpasolite("Xx", "Na", "K", "F")


def test_csv_and_pickle_agree(data_dir):
    if not (data_dir / "train_set.pkl").is_file() or not (data_dir / "elpasolites.csv").is_file():
        pytest.skip("needs both elpasolites.csv and train_set.pkl")
    s_csv, e_csv = load_elpasolite_table(data_dir / "elpasolites.csv")
    s_pkl, e_pkl = load_elpasolite_table(data_dir / "train_set.pkl")
    assert len(s_csv) == 10590 and s_csv == s_pkl
    assert np.abs(e_csv - e_pkl).max() < 1e-9
    assert len({x for s in s_csv for x in s}) == 39


def test_load_elpasolites_energies_are_totals(elpasolites, data_dir):
    _, e = load_elpasolite_table(data_dir)
    assert len(elpasolites) == 10590
    assert elpasolites[7].info["energy"] == pytest.approx(10 * e[7])


def test_missing_data_names_every_option(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.DATA_ENV, raising=False)
    monkeypatch.setattr(datasets, "elpasolite_cache_dir", lambda: tmp_path / "cache")
    with pytest.raises(DataNotFoundError) as info:
        load_elpasolite_table()
    msg = str(info.value)
    assert "path=" in msg and datasets.DATA_ENV in msg and "fetch_elpasolites" in msg
    with pytest.raises(DataNotFoundError, match="the path argument"):
        load_elpasolite_table(tmp_path / "nothing.csv")


def test_env_variable_is_used(monkeypatch, data_dir):
    monkeypatch.setenv(datasets.DATA_ENV, str(data_dir))

    def no_cache():  # a data folder must not need the cache (nor pooch, its only user)
        raise AssertionError("the user cache was looked up")

    monkeypatch.setattr(datasets, "elpasolite_cache_dir", no_cache)
    sites, _ = load_elpasolite_table()
    assert len(sites) == 10590


def test_checksum_mismatch(tmp_path):
    bad = tmp_path / "elpasolites.csv"
    bad.write_text("A,B,C,D,formation_energy_ev_per_atom\nAl,Na,K,F,-1.0\n")
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_elpasolite_table(bad)
    sites, energies = load_elpasolite_table(bad, verify=False)
    assert sites == [("Al", "Na", "K", "F")] and energies.tolist() == [-1.0]


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "train_set.pkl"
    path.write_bytes(pickle.dumps({"ANs": Evil(), "FEs": np.zeros(2)}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        load_elpasolite_table(path, verify=False)


def test_split_is_disjoint_reproducible_and_keeps_test_fixed():
    items = list(range(100))
    tr, op, te = split(items, 30, 20, 10, seed=3)
    assert len(set(tr) | set(op) | set(te)) == 60
    assert split(items, 30, 20, 10, seed=3) == (tr, op, te)
    tr2, op2, te2 = split(items, 50, 20, 10, seed=3)
    assert te2 == te and op2 == op and tr2[:30] == tr  # fixed test/opt, nested training
    assert split(items, 30, 20, 10, seed=4)[2] != te
    with pytest.raises(ValueError, match="cannot split 100"):
        split(items, 90, 20, 10)


def test_read_structures_extxyz(tmp_path, crystals):
    import ase.io

    for i, atoms in enumerate(crystals):
        atoms.info = {"energy": -float(i)}
    path = tmp_path / "s.xyz"
    ase.io.write(path, crystals)
    frames = read_structures(path)
    assert [f.info["energy"] for f in frames] == [0.0, -1.0, -2.0, -3.0]
    crystals[0].info = {}
    ase.io.write(path, crystals[:1])
    with pytest.raises(ValueError, match="has no energy"):
        read_structures(path)


def test_atomic_write_makes_a_normal_file_and_cleans_up(tmp_path):
    import os

    from ase_alchemical.core.fileio import atomic_write

    path = atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("ok"))
    assert path.read_text() == "ok" and (os.stat(path).st_mode & 0o044) == 0o044

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "a.txt", boom)
    assert path.read_text() == "ok" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_geometry_rules():
    hard = build_elpasolite("Bi", "Na", "Cs", "Cl")
    octa = build_elpasolite("Bi", "Na", "Cs", "Cl", rule="octahedral")
    fixed = build_elpasolite("Bi", "Na", "Cs", "Cl", rule="fixed")
    d_ad, d_bd = _r("Bi") + _r("Cl"), _r("Na") + _r("Cl")
    assert octa.info["a"] == pytest.approx(2 * (d_ad + d_bd))
    assert hard.info["a"] >= octa.info["a"]
    assert (fixed.info["a"], fixed.info["x"]) == (8.0, 0.25)
    # a C-D contact that sets the lattice: the rules differ
    h, o = (
        build_elpasolite("H", "H", "Cs", "I"),
        build_elpasolite("H", "H", "Cs", "I", "octahedral"),
    )
    assert h.info["a"] > o.info["a"]
    with pytest.raises(ValueError, match="unknown geometry rule"):
        build_elpasolite("Al", "Na", "K", "F", rule="relaxed")
