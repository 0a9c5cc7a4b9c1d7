"""The low layers: target energies and their standardisation, the device rule."""

import numpy as np
import pytest
import torch
from ase import Atoms

from ase_alchemical.core.devices import DeviceError, resolve_device
from ase_alchemical.core.targets import TargetScaler, per_atom_energies, total_energies


def _frames(energies):
    frames = []
    for n, e in zip((2, 4, 5), energies):
        atoms = Atoms("H" * n, positions=np.arange(3 * n).reshape(n, 3))
        if e is not None:
            atoms.info["energy"] = e
        frames.append(atoms)
    return frames


def test_energies_known_answer_and_clear_errors():
    frames = _frames([-2.0, -8.0, 5.0])
    np.testing.assert_array_equal(total_energies(frames), [-2.0, -8.0, 5.0])
    np.testing.assert_array_equal(per_atom_energies(frames), [-1.0, -2.0, 1.0])
    with pytest.raises(ValueError, match=r"structure 1 .*has no energy \(info\['energy'\]"):
        total_energies(_frames([-2.0, None, 1.0]))
    with pytest.raises(ValueError, match=r"structures \[2\] are NaN or inf"):
        per_atom_energies(_frames([-2.0, -8.0, float("nan")]))


def test_target_scaler_round_trip():
    y = torch.tensor([-1.0, -2.0, 1.0], dtype=torch.float64)
    scaler = TargetScaler.fit(y)
    assert scaler.mean == pytest.approx(-2.0 / 3) and scaler.std == pytest.approx(float(y.std()))
    z = scaler.transform(y)
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-15)
    assert float(z.std()) == pytest.approx(1.0)
    torch.testing.assert_close(scaler.inverse(z), y)
    torch.testing.assert_close(scaler.standardised(_frames([-2.0, -8.0, 5.0])), z)
    assert TargetScaler.fit(torch.tensor([3.0])).std == 1.0


def test_one_device_rule():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="not a torch device"):
        resolve_device("gpu-please")
    with pytest.raises(DeviceError, match="only 'cpu' and 'cuda'"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="device 'cuda:0' was asked for"):
            resolve_device("cuda:0")
