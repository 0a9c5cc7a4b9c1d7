"""The prototype geometry rule is a modelling choice: accuracy on the data vs real sizes.

For each rule of :data:`ase_alchemical.data.datasets.GEOMETRY_RULES` (hard-sphere, octahedral
only, fixed a = 8 Å) the same model (d_J = 4, defaults) is fitted on the same split of
the same compositions, and we report

* the optimization-set RMSE and the test MAE on the data;
* for two crystals with a known lattice constant (K2NaAlF6, about 8.1 Å, from the data
  README; Cs2NaBiCl6, 10.8 Å, from a CIF quoted in issue 5), the energy-vs-lattice-constant
  curve E(a) of each model (the cell scaled uniformly): where its minimum lies and how
  much the energy at the real lattice constant differs from the prediction on the rule's
  own geometry. A model that answers real-sized crystals sensibly has its minimum near
  the real a and a small difference.

    python benchmarks/studies/geometry_rule.py               # n_train 3,000, 60 steps
    python benchmarks/studies/geometry_rule.py --quick       # n_train 1,000, 20 steps
    python benchmarks/studies/geometry_rule.py --out benchmarks/results/geometry_rule.md
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import torch

from ase_alchemical import AlchemicalKRR, __version__
from ase_alchemical.core.features import compute_pair_spectrum
from ase_alchemical.core.fileio import atomic_write
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import GEOMETRY_RULES, build_elpasolite, load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import STUDY_RECIPE, fit_and_score, save_figure, study_arguments

#: (A, B, C, D) sites and a lattice constant (Å) measured on the real crystal.
REAL = {"K2NaAlF6": (("Al", "Na", "K", "F"), 8.1), "Cs2NaBiCl6": (("Bi", "Na", "Cs", "Cl"), 10.8)}


def energy_curve(model, sites, rule, lattice):
    """E(a) per atom with the cell of the rule's prototype scaled to each a."""
    base = build_elpasolite(*sites, rule=rule)
    frames = []
    for a in lattice:
        atoms = base.copy()
        atoms.set_cell(atoms.cell * (a / base.info["a"]), scale_atoms=True)
        frames.append(atoms)
    return model.predict_per_atom(frames), model.predict_per_atom([base])[0], base.info["a"]


def main() -> None:
    args, n_train, steps = study_arguments(__doc__.splitlines()[0], d_j=False)
    lattice = np.linspace(7.0, 12.5, 56)

    rows, curves = [], {}
    print(
        f"{'rule':<13}{'opt RMSE':>10}{'test MAE':>10}{'fit s':>7}  E(a): a_min, E(a_real)-E(rule)"
    )
    for rule in GEOMETRY_RULES:
        frames = load_elpasolites(args.data, rule=rule)
        train, opt, test = split(frames, n_train, 1000, 1000, seed=0)
        spectra = [compute_pair_spectrum(s) for s in (train, opt, test)]
        y_test = per_atom_energies(test)
        model = AlchemicalKRR(d_j=4, n_steps=steps, seed=0, **STUDY_RECIPE)
        opt_rmse, mae, fit_s = fit_and_score(model, spectra, y_test, train, opt)
        real = {}
        for name, (sites, a_real) in REAL.items():
            e, e_rule, a_rule = energy_curve(model, sites, rule, lattice)
            e_real = energy_curve(model, sites, rule, [a_real])[0][0]
            curves[rule, name] = e
            real[name] = (lattice[np.argmin(e)], e_real - e_rule, a_rule)
        rows.append((rule, opt_rmse, mae, fit_s, real))
        text = "; ".join(f"{n} {v[0]:.2f} A, {v[1]:+.3f}" for n, v in real.items())
        print(f"{rule:<13}{opt_rmse:>10.4f}{mae:>10.4f}{fit_s:>7.0f}  {text}", flush=True)
    if args.out:
        _write(args.out, rows, curves, lattice, n_train, steps)


def _write(out, rows, curves, lattice, n_train, steps) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(REAL)
    lines = [
        f"# Geometry rule (ase-alchemical {__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads)",
        "",
        f"d_J = 4, n_train {n_train}, n_opt 1000, fixed test set of 1000 (same compositions "
        f"for every rule), {steps} Adam steps. E(a): predicted eV/atom with the rule's cell "
        "scaled uniformly; a_min is the minimum of the curve on a 0.1 Å grid from 7 to "
        "12.5 Å, dE = E(real a) - E(rule's own a).",
        "",
        "| rule | opt RMSE | test MAE | fit (s) | "
        + " | ".join(f"{n}: rule a / a_min / dE (real a {REAL[n][1]} Å)" for n in names)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(names),
    ]
    for rule, opt_rmse, mae, fit_s, real in rows:
        cells = " | ".join(
            f"{real[n][2]:.2f} / {real[n][0]:.1f} / {real[n][1]:+.3f}" for n in names
        )
        lines.append(f"| {rule} | {opt_rmse:.4f} | {mae:.4f} | {fit_s:.0f} | {cells} |")
    text = "\n".join(lines) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5))
    for ax, name in zip(axes, names):
        for rule, *_ in rows:
            ax.plot(lattice, curves[rule, name], label=rule)
        ax.axvline(REAL[name][1], color="k", ls=":", lw=1, label="real a")
        ax.set(title=name, xlabel="lattice constant a (Å)", ylabel="predicted E (eV/atom)")
    axes[0].legend(fontsize=8)
    save_figure(fig, out)


if __name__ == "__main__":
    main()
