"""The support-feature cache: a second load reads it, a bad entry is rebuilt, never trusted."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch

from ase_alchemical import AlchemicalKRR, load_model
from ase_alchemical.core import feature_cache as fc
from ase_alchemical.core.hypers import make_hypers

SMALL = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)


@pytest.fixture
def model_file(six_element_crystals, tmp_path, monkeypatch):
    monkeypatch.setenv(fc.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(fc.NO_CACHE_ENV, raising=False)
    frames = six_element_crystals(40, seed=5)
    for i, atoms in enumerate(frames):
        atoms.info["energy"] = -2.0 * len(atoms) + 0.02 * (i % 7)
    model = AlchemicalKRR(d_j=2, hypers=SMALL, n_steps=2, solver="full", zeta=2)
    model.fit(frames[:30], frames[30:])
    return model.save(tmp_path / "m.pt"), frames


def _entries(tmp_path):
    return sorted((tmp_path / "cache").glob("*"))


def _load_without_featurizing(path, monkeypatch):
    """Load, failing if any structure is featurized on the way."""

    def fail(*args, **kwargs):
        raise AssertionError("the support structures were featurized")

    with monkeypatch.context() as m:
        m.setattr(AlchemicalKRR, "pair_spectrum", fail)
        return load_model(path)


def test_second_load_reads_the_cache(model_file, tmp_path, monkeypatch, capsys, caplog):
    path, frames = model_file
    with caplog.at_level(logging.INFO, logger="ase_alchemical"):
        first = load_model(path)
    # the first load says so in the log, and writes nothing to stderr (a notebook's
    # stderr is an error in a strict book build)
    assert any("caching them" in r.getMessage() for r in caplog.records)
    assert capsys.readouterr().err == ""
    entries = _entries(tmp_path)
    assert len(entries) == 1 and entries[0].suffix == ".pt"  # no temporary file left
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ase_alchemical"):
        second = _load_without_featurizing(path, monkeypatch)
    assert not caplog.records and capsys.readouterr().err == ""
    assert torch.equal(second.support_features_, first.support_features_)
    assert np.array_equal(second.predict(frames), first.predict(frames))


@pytest.mark.parametrize("damage", ["truncate", "flip", "stale"])
def test_a_bad_entry_is_rebuilt(model_file, tmp_path, monkeypatch, damage):
    path, frames = model_file
    reference = load_model(path, cache=False).predict(frames)
    load_model(path)
    (entry,) = _entries(tmp_path)
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:1000])
    elif damage == "flip":  # the same key and shape, one value changed
        data = torch.load(entry, weights_only=True)
        data["support_features"][0, 0] += 1.0
        torch.save(data, entry)
    else:  # written by another version of the code
        data = torch.load(entry, weights_only=True)
        data["key"]["featomic"] = "0.0.1"
        torch.save(data, entry)
    with pytest.warns(UserWarning, match="stale or corrupted"):
        rebuilt = load_model(path)
    assert np.array_equal(rebuilt.predict(frames), reference)
    (entry,) = _entries(tmp_path)  # rebuilt in place, valid again
    assert np.array_equal(_load_without_featurizing(path, monkeypatch).predict(frames), reference)


def test_a_changed_model_file_gets_its_own_entry(model_file, tmp_path):
    path, frames = model_file
    load_model(path)
    model = load_model(path)
    model.refit(frames[:35])  # other weights, other support structures: another file
    model.save(path)
    assert np.array_equal(load_model(path).predict(frames), model.predict(frames))
    assert len(_entries(tmp_path)) == 2


def test_the_cache_can_be_disabled(model_file, tmp_path, monkeypatch):
    path, frames = model_file
    load_model(path, cache=False)
    assert _entries(tmp_path) == []
    monkeypatch.setenv(fc.NO_CACHE_ENV, "1")
    load_model(path)
    assert _entries(tmp_path) == []
    monkeypatch.delenv(fc.NO_CACHE_ENV)
    ase.io.write(tmp_path / "frames.xyz", frames[:3])
    cli = [sys.executable, "-m", "ase_alchemical.cli", "--no-cache", "predict", str(path),
           str(tmp_path / "frames.xyz")]  # fmt: skip
    done = subprocess.run(cli, env=dict(os.environ), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 4 and _entries(tmp_path) == []


def test_the_command_line_shows_the_first_load(model_file, tmp_path, capsys):
    """A shell user sees the slow first load on stderr, and a second load says nothing."""
    from ase_alchemical.cli import main

    path, frames = model_file
    ase.io.write(tmp_path / "one.xyz", frames[0])
    err = []
    for _ in range(2):
        assert main(["energy", str(tmp_path / "one.xyz"), "--model", str(path)]) == 0
        err.append(capsys.readouterr().err)
    first, second = err
    assert first.count("ase-alchemical: featurizing the 30 support structures") == 1
    assert second == ""
    # the command leaves the library's logger as it found it: a later load from Python
    # (a notebook in the same process) writes nothing to stderr
    logger = logging.getLogger("ase_alchemical")
    assert all(isinstance(h, logging.NullHandler) for h in logger.handlers)
    for entry in (tmp_path / "cache").glob("*"):
        entry.unlink()
    load_model(path)
    assert capsys.readouterr().err == ""
