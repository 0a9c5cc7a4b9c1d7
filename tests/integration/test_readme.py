"""The README's Python examples run as written, in order, in one namespace.

The examples name the data files a user would have beside them (``hea25_bulk_100.xyz``),
so each runs in a temporary directory holding a link to the shared copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


def test_readme_has_the_examples():
    blocks = _python_blocks()
    assert len(blocks) == 2
    assert "AlchemicalCalculator()" in blocks[0] and "AlchemicalPotential" in blocks[1]


def test_readme_python_examples_run(data_dir, tmp_path, monkeypatch, capsys):
    hea = data_dir / "hea" / "hea25_bulk_100.xyz"
    (tmp_path / hea.name).symlink_to(hea)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 (our own README)
    # the calculator example: a finite energy, forces and a positive uncertainty
    assert np.isfinite(namespace["energy"]) and namespace["forces"].shape == (10, 3)
    assert namespace["sigma"] > 0
    # the potential example: it printed its test errors, saved a file that the
    # calculator reads back, and that calculator reproduces the model
    assert "force_mae" in capsys.readouterr().out
    frame = namespace["test"][0]
    assert Path("hea.pt").is_file()
    expected = namespace["model"].predict([frame])[0]
    assert frame.get_potential_energy() == pytest.approx(expected, rel=1e-9)
