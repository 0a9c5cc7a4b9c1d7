"""Data: the elpasolite formation energies, prototype crystals, their loaders, splits.

Structure files of the user's own data are read by :mod:`~ase_alchemical.data.files`.

The 10,590 elpasolite energies come from Faber, Lindmaa, von Lilienfeld and Armiento,
PRL 117, 135502 (2016). Their DFT-relaxed geometries are not public, so every crystal is
built on the ideal elpasolite prototype with sizes from covalent radii (the
"hard-sphere prototype", :func:`build_elpasolite`). A model trained on these is a model
of *composition on a prototype*, not of relaxed crystals.

The data are never shipped with the package. :func:`load_elpasolites` reads them from,
in order: an explicit ``path``; the directory named by ``$ASE_ALCHEMICAL_DATA``; the
user cache filled by :func:`fetch_elpasolites` (a checksum-pinned download).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

from ..errors import DataNotFoundError

__all__ = [
    "DATA_ENV",
    "ELPASOLITE_CSV_SHA256",
    "ELPASOLITE_PKL_SHA256",
    "ELPASOLITE_PKL_URL",
    "DataNotFoundError",
    "GEOMETRY_RULES",
    "build_elpasolite",
    "elpasolite_cell",
    "elpasolite_geometry",
    "elpasolite_cache_dir",
    "fetch_elpasolites",
    "load_elpasolite_table",
    "load_elpasolites",
    "split",
]

#: Environment variable naming a directory with ``elpasolites.csv`` or ``train_set.pkl``.
DATA_ENV = "ASE_ALCHEMICAL_DATA"
#: SHA-256 of ``elpasolites.csv``.
ELPASOLITE_CSV_SHA256 = "b6a7acbf652ab35d26ea556d06b8b526de487c9b92878fd5b9598d9c88e32772"
#: SHA-256 of ``train_set.pkl``.
ELPASOLITE_PKL_SHA256 = "1281342b1c68984e3056433c42afa0f5f3b95db0da4a0ef089ca028abdac88ac"
#: Public copy of the data (GPL-3.0 repository jeherr/Elpasolite-Formation-Energy-Predictor),
#: pinned to a commit; the file is verified against :data:`.ELPASOLITE_PKL_SHA256`.
ELPASOLITE_PKL_URL = (
    "https://raw.githubusercontent.com/jeherr/Elpasolite-Formation-Energy-Predictor/"
    "e96647546774e74440b339ff682897d8cf1245dc/train_set.pkl"
)
_CSV_NAME = "elpasolites.csv"
_PKL_NAME = "train_set.pkl"
_ATOMS_PER_CELL = 10


# --------------------------------------------------------------------------- geometry
#: The geometry rules of the prototype, "hard-sphere" (the data README's rule, the default),
#: "octahedral" (lattice constant from the A-D and B-D contacts only) and "fixed"
#: (a = 8 Å, x = 1/4 for every crystal: composition only).
GEOMETRY_RULES = ("hard-sphere", "octahedral", "fixed")


def elpasolite_geometry(r_a, r_b, r_c, r_d, rule: str = "hard-sphere"):
    """Lattice constant ``a`` (Å) and D-site parameter ``x`` of the prototype.

    Works element-wise on arrays of radii (used to enumerate millions of compositions)
    as on scalars; :func:`build_elpasolite` documents the rules.
    """
    if rule not in GEOMETRY_RULES:
        raise ValueError(f"unknown geometry rule {rule!r}; use one of {GEOMETRY_RULES}")
    d_ad, d_bd, s_cd = r_a + r_d, r_b + r_d, r_c + r_d
    if rule == "fixed":
        shape = np.shape(d_ad + d_bd + s_cd)
        return np.full(shape, 8.0)[()], np.full(shape, 0.25)[()]
    a_oct = 2.0 * (d_ad + d_bd)
    if rule == "octahedral":
        return a_oct, d_ad / a_oct
    a_cd = 4.0 / 3.0 * (d_ad + np.sqrt(np.maximum(3.0 * s_cd**2 - 2.0 * d_ad**2, 0.0)))
    a = np.maximum(a_oct, a_cd)
    return a, d_ad / a


def elpasolite_cell(numbers: Sequence[int], a: float, x: float) -> Atoms:
    """The 10-atom primitive cell of the prototype with sites A, B, C, D = ``numbers``.

    Atoms are ordered A, B, C, C, D x 6; see :func:`build_elpasolite`.
    """
    # Conventional fractional coordinates of one primitive cell's worth of atoms:
    # writing them directly is ~1000x faster than ase.spacegroup.crystal.
    frac = np.array(
        [
            [0.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.25, 0.25, 0.25],
            [0.75, 0.75, 0.75],
            [x, 0.0, 0.0],
            [-x, 0.0, 0.0],
            [0.0, x, 0.0],
            [0.0, -x, 0.0],
            [0.0, 0.0, x],
            [0.0, 0.0, -x],
        ]
    )
    cell = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    z_a, z_b, z_c, z_d = (int(z) for z in numbers)
    atoms = Atoms(numbers=[z_a, z_b, z_c, z_c] + [z_d] * 6, positions=frac * a, cell=cell, pbc=True)
    atoms.wrap()
    return atoms


def build_elpasolite(
    a_site: str, b_site: str, c_site: str, d_site: str, rule: str = "hard-sphere"
) -> Atoms:
    """Build the 10-atom primitive cell of the elpasolite ABC2D6 on the ideal prototype.

    Space group Fm-3m (225): A on 4a (0,0,0), B on 4b (1/2,1/2,1/2), C on 8c
    (1/4,1/4,1/4), D on 24e (x,0,0). Sizes follow the hard-sphere rule of the data
    README, from ASE's covalent radii r::

        d_AD = r_A + r_D,  d_BD = r_B + r_D,  s = r_C + r_D
        a = max(2 (d_AD + d_BD), 4/3 (d_AD + sqrt(max(3 s^2 - 2 d_AD^2, 0))))
        x = d_AD / a

    Other rules (``rule``), for studying the choice: ``"octahedral"`` keeps only the
    first term (a = 2 (d_AD + d_BD)); ``"fixed"`` puts every crystal on a = 8 Å,
    x = 1/4, so that only the composition varies.

    Parameters
    ----------
    a_site, b_site, c_site, d_site
        Element symbols of the A, B, C and D sites (e.g. ``"Al", "Na", "K", "F"`` for
        the prototype K2NaAlF6).
    rule
        Geometry rule, one of :data:`GEOMETRY_RULES`.

    Returns
    -------
    ase.Atoms
        Periodic primitive fcc cell, atoms ordered A, B, C, C, D x 6; ``info`` holds the
        lattice constant ``"a"``, ``"x"`` and the ``"sites"``.
    """
    symbols = [a_site, b_site, c_site, d_site]
    for s in symbols:
        if s not in atomic_numbers or s == "X":
            raise ValueError(f"unknown element symbol {s!r} in elpasolite {symbols}")
    numbers = [atomic_numbers[s] for s in symbols]
    a, x = elpasolite_geometry(*(covalent_radii[z] for z in numbers), rule=rule)
    atoms = elpasolite_cell(numbers, float(a), float(x))
    atoms.info.update(a=float(a), x=float(x), sites=f"{a_site},{b_site},{c_site},{d_site}")
    return atoms


# --------------------------------------------------------------------------- loading
def elpasolite_cache_dir() -> Path:
    """Directory where :func:`fetch_elpasolites` stores the download."""
    import pooch

    return Path(pooch.os_cache("ase-alchemical"))


def fetch_elpasolites(cache_dir: str | os.PathLike | None = None) -> Path:
    """Download the elpasolite data (pickle, checksum-verified) into the user cache.

    Parameters
    ----------
    cache_dir
        Where to store the file; default :func:`elpasolite_cache_dir`.

    Returns
    -------
    pathlib.Path
        Path of the verified ``train_set.pkl``.
    """
    import pooch

    target = Path(cache_dir) if cache_dir is not None else elpasolite_cache_dir()
    path = pooch.retrieve(
        url=ELPASOLITE_PKL_URL,
        known_hash=f"sha256:{ELPASOLITE_PKL_SHA256}",
        fname=_PKL_NAME,
        path=target,
        progressbar=False,
    )
    return Path(path)


def _resolve_data_file(path: str | os.PathLike | None) -> Path:
    """Find the data file: explicit path, then ``$ASE_ALCHEMICAL_DATA``, then the cache."""
    tried = []
    candidates: list[Path] = []
    if path is not None:
        p = Path(path)
        if p.is_dir():
            candidates += [p / _CSV_NAME, p / _PKL_NAME]
        else:
            candidates.append(p)
        tried.append(f"the path argument ({p})")
    else:
        env = os.environ.get(DATA_ENV)
        if env:
            p = Path(env)
            candidates += [p / _CSV_NAME, p / _PKL_NAME]
            tried.append(f"${DATA_ENV} ({p})")
        else:
            tried.append(f"${DATA_ENV} (not set)")
    for c in candidates:
        if c.is_file():
            return c
    if path is None:  # only now: the cache location needs pooch, a data folder does not
        cache = elpasolite_cache_dir()
        tried.append(f"the user cache ({cache})")
        for c in (cache / _CSV_NAME, cache / _PKL_NAME):
            if c.is_file():
                return c
    raise DataNotFoundError(
        "elpasolite data not found; looked in " + ", ".join(tried) + ". Either pass "
        "path='.../elpasolites.csv' (or the directory holding it), set "
        f"{DATA_ENV}=<directory with elpasolites.csv or train_set.pkl>, or run "
        "ase_alchemical.data.datasets.fetch_elpasolites() (shell: `ase-alchemical fetch-data`) "
        "to download it into the user cache."
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that admits numpy arrays and nothing else (a pickle can run code)."""

    _RECONSTRUCT = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self._RECONSTRUCT:
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def _read_pickle(path: Path) -> tuple[list[tuple[str, str, str, str]], np.ndarray]:
    with open(path, "rb") as f:
        data = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    if not isinstance(data, dict) or "ANs" not in data or "FEs" not in data:
        raise ValueError(f"{path} is not the elpasolite pickle (expected keys 'ANs', 'FEs')")
    numbers = np.asarray(data["ANs"], dtype=int)
    energies = np.asarray(data["FEs"], dtype=float) / _ATOMS_PER_CELL  # eV/f.u. -> eV/atom
    sites = [tuple(chemical_symbols[z] for z in row) for row in numbers]
    return sites, energies


def _read_csv(path: Path) -> tuple[list[tuple[str, str, str, str]], np.ndarray]:
    sites, energies = [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        expected = {"A", "B", "C", "D", "formation_energy_ev_per_atom"}
        if reader.fieldnames is None or not expected <= set(reader.fieldnames):
            raise ValueError(
                f"{path} does not look like elpasolites.csv: expected columns "
                f"{sorted(expected)}, got {reader.fieldnames}"
            )
        for row in reader:
            sites.append((row["A"], row["B"], row["C"], row["D"]))
            energies.append(float(row["formation_energy_ev_per_atom"]))
    return sites, np.asarray(energies)


def load_elpasolite_table(
    path: str | os.PathLike | None = None, verify: bool = True
) -> tuple[list[tuple[str, str, str, str]], np.ndarray]:
    """Read the elpasolite table: site compositions and formation energies (eV/atom).

    Parameters
    ----------
    path
        ``elpasolites.csv``, ``train_set.pkl`` or a directory holding one of them.
        Default: ``$ASE_ALCHEMICAL_DATA``, then the user cache.
    verify
        Check the file's SHA-256 against the pinned checksum.

    Returns
    -------
    sites, energies
        ``sites[i] = (A, B, C, D)`` element symbols; ``energies[i]`` in eV/atom.
    """
    file = _resolve_data_file(path)
    if verify:
        expected = ELPASOLITE_PKL_SHA256 if file.suffix == ".pkl" else ELPASOLITE_CSV_SHA256
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if digest != expected:
            raise ValueError(
                f"checksum mismatch for {file}: sha256 {digest}, expected {expected}. "
                "The file is corrupted or not the published data; pass verify=False to "
                "use it anyway."
            )
    if file.suffix == ".pkl":
        return _read_pickle(file)
    return _read_csv(file)


def load_elpasolites(
    path: str | os.PathLike | None = None, verify: bool = True, rule: str = "hard-sphere"
) -> list[Atoms]:
    """Load the 10,590 elpasolites as prototype crystals with their DFT energies.

    Parameters
    ----------
    path, verify
        See :func:`load_elpasolite_table`.
    rule
        Geometry rule of the prototype (:func:`build_elpasolite`).

    Returns
    -------
    list of ase.Atoms
        One 10-atom primitive cell per crystal (:func:`build_elpasolite`);
        ``info["energy"]`` is the *total* formation energy in eV (10 x eV/atom),
        ``info["index"]`` the row in the data file.
    """
    sites, energies = load_elpasolite_table(path, verify=verify)
    frames = []
    for i, (site, e) in enumerate(zip(sites, energies)):
        atoms = build_elpasolite(*site, rule=rule)
        atoms.info["energy"] = float(e) * len(atoms)
        atoms.info["index"] = i
        frames.append(atoms)
    return frames


# --------------------------------------------------------------------------- splits
def split(
    frames: Sequence,
    n_train: int,
    n_opt: int,
    n_test: int | None = None,
    seed: int = 0,
) -> tuple[list, list, list]:
    """Split into disjoint training, optimization and test sets, reproducibly.

    The test set is drawn first from a permutation that depends only on ``seed`` and
    ``len(frames)``, then the optimization set, then the training set: the test set
    depends only on ``n_test``, the optimization set only on ``n_test`` and ``n_opt``,
    and training sets of growing ``n_train`` are nested. Learning curves therefore share
    one fixed test set and one fixed optimization set.

    Parameters
    ----------
    frames
        Structures (or anything indexable).
    n_train
        Size of the training set (KRR weights are solved on it).
    n_opt
        Size of the optimization set (the compression U is optimized on its loss).
    n_test
        Size of the test set; default: all that remain.
    seed
        Seed of the permutation.

    Returns
    -------
    train, opt, test : lists
    """
    n = len(frames)
    if n_test is None:
        n_test = n - n_train - n_opt
    if min(n_train, n_opt, n_test) < 0 or n_train + n_opt + n_test > n:
        raise ValueError(
            f"cannot split {n} structures into n_train={n_train}, n_opt={n_opt}, "
            f"n_test={n_test}: sizes must be >= 0 and add up to at most {n}"
        )
    perm = np.random.default_rng(seed).permutation(n)
    test_idx = perm[:n_test]
    opt_idx = perm[n_test : n_test + n_opt]
    train_idx = perm[n_test + n_opt : n_test + n_opt + n_train]
    return (
        [frames[i] for i in train_idx],
        [frames[i] for i in opt_idx],
        [frames[i] for i in test_idx],
    )
