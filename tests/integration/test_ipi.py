"""An exported local potential drives i-PI: NVE over a Unix socket (this machine only),
through i-PI's own metatomic driver in a separate process, conserving energy."""

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from ase.io import write

pytest.importorskip("ipi")
pytest.importorskip("metatomic_ase")

from ase_alchemical.export import export_metatomic  # noqa: E402

STEPS = 40

INPUT = """<simulation verbosity="low" safe_stride="1000">
  <output prefix="md">
    <properties stride="1" filename="out">[step, conserved{{electronvolt}},
      potential{{electronvolt}}, kinetic_md{{electronvolt}}]</properties>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>12345</seed></prng>
  <ffsocket name="alchemical" mode="unix" pbc="false">
    <address>{address}</address>
    <latency>1e-3</latency>
  </ffsocket>
  <system>
    <initialize nbeads="1">
      <file mode="ase"> init.xyz </file>
      <velocities mode="thermal" units="kelvin"> 300 </velocities>
    </initialize>
    <forces><force forcefield="alchemical"/></forces>
    <motion mode="dynamics">
      <dynamics mode="nve"><timestep units="femtosecond"> 1.0 </timestep></dynamics>
    </motion>
    <ensemble><temperature units="kelvin"> 300 </temperature></ensemble>
  </system>
</simulation>
"""


def _executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH although ipi is installed")
    return path


def test_ipi_nve_with_the_exported_potential_conserves_energy(small_hea_potential, tmp_path):
    model, frame = small_hea_potential
    export_metatomic(model, tmp_path / "hea.pt")
    write(tmp_path / "init.xyz", frame)

    address = f"ase-alchemical-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    (tmp_path / "input.xml").write_text(INPUT.format(steps=STEPS, address=address))
    server = subprocess.Popen(
        [_executable("i-pi"), "input.xml"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        socket = Path(f"/tmp/ipi_{address}")
        deadline = time.monotonic() + 60
        while not socket.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert socket.exists(), "i-PI did not open its socket"
        driver = subprocess.run(
            [_executable("i-pi-py_driver"), "-u", "-a", address, "-m", "metatomic", "-o",
             "template=init.xyz,model=hea.pt,extensions=hea-extensions"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert driver.returncode == 0, driver.stderr[-2000:]
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, server.stdout.read().decode()[-2000:]

    out = np.loadtxt(tmp_path / "md.out", ndmin=2)
    assert len(out) == STEPS + 1
    step, conserved, potential = out[:, 0], out[:, 1], out[:, 2]
    assert np.array_equal(step, np.arange(STEPS + 1))
    # the driver ran this model: i-PI's first potential energy is the native one
    assert abs(potential[0] - model.predict([frame])[0]) < 1e-5
    drift = np.abs(conserved - conserved[0]).max()
    assert drift / len(frame) < 1e-4  # eV/atom over 40 fs of NVE
    assert np.ptp(potential) > 100 * drift  # ... while the potential energy moved
