"""The GPU path gives the CPU's numbers: fitting, the calculator and the screen.

Skipped without a CUDA device (as in CI); run on a GPU machine with the data at hand.
The CPU and GPU sum in other orders, so float64 results agree to rounding, not bit for bit.
"""

import copy
import csv
import itertools

import numpy as np
import pytest
import torch

from ase_alchemical import AlchemicalCalculator, AlchemicalKRR
from ase_alchemical.core.hypers import make_hypers
from ase_alchemical.data.datasets import build_elpasolite, split
from ase_alchemical.structure.screening import screen_elpasolites

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SMALL = make_hypers(cutoff=4.0, max_radial=3, max_angular=2)


def _params(device):
    return dict(d_j=3, hypers=SMALL, zeta=2, solver="sparse", n_steps=5, seed=0, device=device)


@pytest.fixture(scope="module")
def fitted(elpasolites):
    train, opt, test = split(elpasolites, 300, 100, 100, seed=2)
    cpu = AlchemicalKRR(**_params("cpu")).fit(train, opt)
    gpu = AlchemicalKRR(**_params("cuda")).fit(train, opt)
    return cpu, gpu, test


def test_fit_on_cuda_learns_the_cpu_u(fitted):
    cpu, gpu, test = fitted
    assert gpu.weights_.device.type == "cuda"
    u_cpu, u_gpu = cpu.compression_.U.detach(), gpu.compression_.U.detach().cpu()
    # five Adam steps from the same seed: Adam divides by the gradient's size, so
    # rounding differences reach ~3e-6 in U (measured on an H100); a wrong gradient
    # would move U by up to the learning rate (0.1) per step
    np.testing.assert_allclose(u_gpu.numpy(), u_cpu.numpy(), atol=1e-4)
    e_cpu, s_cpu = cpu.predict_per_atom(test, return_std=True)
    e_gpu, s_gpu = gpu.predict_per_atom(test, return_std=True)
    np.testing.assert_allclose(e_gpu, e_cpu, atol=1e-4)
    np.testing.assert_allclose(s_gpu, s_cpu, rtol=1e-3)


def test_fit_on_cuda_takes_spectra_computed_on_the_cpu(fitted, elpasolites):
    # the benchmarks featurize once on the CPU and fit on the GPU from those spectra
    train, opt, test = split(elpasolites, 300, 100, 100, seed=2)
    cpu_model = AlchemicalKRR(**_params("cpu"))
    rho_t, rho_o = cpu_model.pair_spectrum(train), cpu_model.pair_spectrum(opt)
    assert rho_t.values.device.type == "cpu"
    gpu = AlchemicalKRR(**_params("cuda")).fit(train, opt, rho_t, rho_o)
    np.testing.assert_allclose(
        gpu.predict_per_atom(test), fitted[1].predict_per_atom(test), rtol=0, atol=1e-9
    )


def test_radially_resolved_fit_on_cuda_learns_the_cpu_u(elpasolites):
    train, opt, test = split(elpasolites, 300, 100, 100, seed=2)
    models = [
        AlchemicalKRR(**{**_params(device), "radially_resolved": True}).fit(train, opt)
        for device in ("cpu", "cuda")
    ]
    u_cpu, u_gpu = (m.compression_.U.detach().cpu().numpy() for m in models)
    assert u_gpu.shape == (4, 39, 3)  # one mixing matrix per radial function (n = 0..3)
    assert np.abs(u_gpu[0] - u_gpu[1]).max() > 1e-3  # the channels were learned apart
    np.testing.assert_allclose(u_gpu, u_cpu, atol=1e-4)
    np.testing.assert_allclose(
        models[1].predict_per_atom(test), models[0].predict_per_atom(test), atol=1e-4
    )


@pytest.mark.parametrize("name", ["elpasolite-dj4", "elpasolite-dj10-multiscale"])
def test_shipped_models_on_cuda(name):
    atoms = build_elpasolite("Bi", "Na", "Cs", "Cl")
    atoms.rattle(0.05, seed=3)
    properties = ["energy", "forces", "stress", "energy_uncertainty"]
    cpu = AlchemicalCalculator(name, device="cpu")
    cpu.calculate(atoms, properties)
    gpu = AlchemicalCalculator(copy.deepcopy(cpu.model), device="cuda")
    assert gpu.model.support_features_.device.type == "cuda"
    gpu.calculate(atoms, properties)
    assert gpu.results["energy"] == pytest.approx(cpu.results["energy"], rel=1e-10)
    np.testing.assert_allclose(gpu.results["forces"], cpu.results["forces"], atol=1e-9)
    np.testing.assert_allclose(gpu.results["stress"], cpu.results["stress"], atol=1e-10)
    assert gpu.results["energy_uncertainty"] == pytest.approx(
        cpu.results["energy_uncertainty"], rel=1e-8
    )
    frames = [build_elpasolite(*s) for s in itertools.permutations(["Li", "K", "Cs", "F"])]
    np.testing.assert_allclose(
        gpu.get_energies(frames), cpu.get_energies(frames), rtol=1e-10, atol=1e-9
    )


def test_screen_on_cuda_matches_cpu(fitted, tmp_path):
    cpu = fitted[0]
    gpu = copy.deepcopy(cpu).to("cuda")  # the same model: only the arithmetic differs
    elements = ["Li", "Na", "Cs", "F", "Cl", "Al"]
    rows = []
    for model, name in [(cpu, "cpu.csv"), (gpu, "gpu.csv")]:
        result = screen_elpasolites(model, tmp_path / name, elements, progress=False)
        with open(result["path"], newline="") as f:
            rows.append(list(csv.DictReader(f)))
    assert len(rows[0]) == len(rows[1]) == 6 * 5 // 2 * 4 * 3
    for a, b in zip(*rows):
        assert (a["A"], a["B"], a["C"], a["D"]) == (b["A"], b["B"], b["C"], b["D"])
        assert abs(float(a["energy_ev_per_atom"]) - float(b["energy_ev_per_atom"])) < 2e-6
        assert abs(float(a["std_ev_per_atom"]) - float(b["std_ev_per_atom"])) < 2e-6
