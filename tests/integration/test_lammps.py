"""An exported potential in LAMMPS' ``pair_style metatomic``: the energy and forces of the
native calculator. Needs a metatomic-enabled LAMMPS (``lmp``, e.g. conda-forge's
``lammps-metatomic``); skipped where there is none."""

import shutil
import subprocess

import numpy as np
import pytest
from ase.io import write

pytest.importorskip("metatomic_ase")

from ase_alchemical import AlchemicalCalculator  # noqa: E402
from ase_alchemical.export import export_metatomic  # noqa: E402


def _lammps() -> str:
    lmp = shutil.which("lmp")
    if lmp is None:
        pytest.skip("no LAMMPS executable (lmp) on PATH")
    styles = subprocess.run([lmp, "-h"], capture_output=True, text=True, timeout=60).stdout
    if "metatomic" not in styles:
        pytest.skip("this LAMMPS has no pair_style metatomic")
    return lmp


#: The input documented in the book (chapter "Use it elsewhere"), with one run 0.
INPUT = """units metal
atom_style atomic
boundary p p p
read_data system.data
pair_style metatomic hea.pt device cpu extensions hea-extensions
pair_coeff * * {numbers}
thermo_style custom step pe
thermo_modify format float %.10f
dump forces all custom 1 forces.dump id fx fy fz
dump_modify forces sort id format float %.10f
run 0
"""


def test_lammps_pair_style_metatomic_gives_the_native_energy(small_hea_potential, tmp_path):
    lmp = _lammps()
    model, atoms = small_hea_potential
    atoms = atoms.copy()
    export_metatomic(model, tmp_path / "hea.pt")
    order = sorted(set(atoms.numbers))
    symbols = [atoms[int(np.flatnonzero(atoms.numbers == z)[0])].symbol for z in order]
    write(tmp_path / "system.data", atoms, format="lammps-data", specorder=symbols, masses=True)
    (tmp_path / "in.lmp").write_text(INPUT.format(numbers=" ".join(map(str, order))))
    done = subprocess.run([lmp, "-in", "in.lmp"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"])
    energy = float(lines[header + 1].split()[1])
    atoms.calc = AlchemicalCalculator(model)
    assert abs(energy - atoms.get_potential_energy()) < 1e-6
    dump = (tmp_path / "forces.dump").read_text().splitlines()
    start = next(i for i, line in enumerate(dump) if line.startswith("ITEM: ATOMS")) + 1
    forces = np.array([[float(v) for v in line.split()[1:]] for line in dump[start:]])
    assert np.abs(forces - atoms.get_forces()).max() < 1e-6  # an orthorhombic cell: no rotation
