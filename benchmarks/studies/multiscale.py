"""Multi-scale kernels: a learned weighted sum of kernels at several cutoffs, side by side.

``AlchemicalKRR(hypers=[h_3, h_5, h_7])`` builds one normalised feature vector per cutoff
(all through the same U) and the kernel ``K = sum_s w_s K_s``; the weights w_s (a softmax,
so positive and summing to 1) are learned on the optimization set together with U and the
regulariser. Same split, optimizer and budget for every variant; choices are made on the
optimization-set RMSE, the test MAE is for information.

    python benchmarks/studies/multiscale.py               # n_train 3,000, 60 steps
    python benchmarks/studies/multiscale.py --quick       # n_train 1,000, 20 steps
    python benchmarks/studies/multiscale.py --out benchmarks/results/multiscale.md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ase_alchemical import AlchemicalKRR
from ase_alchemical.core.features import PairSpectrum, compute_pair_spectrum
from ase_alchemical.core.hypers import make_hypers, multiscale_hypers
from ase_alchemical.core.targets import per_atom_energies
from ase_alchemical.data.datasets import load_elpasolites, split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helpers
from _common import STUDY_RECIPE, fit_and_score, study_arguments

#: name -> (cutoffs in Å, learn the scale weights); default radial scaling everywhere
VARIANTS = {
    "5 Å (default, one scale)": ((5.0,), True),
    "3 + 5 Å": ((3.0, 5.0), True),
    "5 + 7 Å": ((5.0, 7.0), True),
    "3 + 5 + 7 Å": ((3.0, 5.0, 7.0), True),
    "3 + 5 + 7 Å, equal weights kept": ((3.0, 5.0, 7.0), False),
}


def _stacked(parts: list[PairSpectrum]) -> PairSpectrum:
    """Spectra of several scales of the same frames, stacked along l (as featomic would)."""
    first = parts[0]
    values = torch.cat([p.values for p in parts], dim=4)
    return PairSpectrum(values, first.numbers, first.n_atoms, first.center_resolved)


def main() -> None:
    args, n_train, steps = study_arguments(__doc__.splitlines()[0])
    frames = load_elpasolites(args.data)
    train, opt, test = split(frames, n_train, 1000, 1000, seed=0)
    y_test = per_atom_energies(test)

    cutoffs = sorted({c for cs, _ in VARIANTS.values() for c in cs})
    spectra, feat_s = {}, {}
    for c in cutoffs:  # each cutoff once; variants stack them
        t0 = time.perf_counter()
        spectra[c] = [compute_pair_spectrum(s, make_hypers(cutoff=c)) for s in (train, opt, test)]
        feat_s[c] = time.perf_counter() - t0
        print(f"features at {c} Å: {feat_s[c]:.0f} s", flush=True)

    rows = []
    print(f"{'variant':<34}{'opt RMSE':>10}{'test MAE':>10}{'fit s':>8}  weights")
    for name, (cs, learn) in VARIANTS.items():
        model = AlchemicalKRR(
            d_j=args.d_j, hypers=multiscale_hypers(cs), n_steps=steps, seed=0,
            learn_scale_weights=learn, **STUDY_RECIPE,
        )  # fmt: skip
        stacked = [_stacked([spectra[c][i] for c in cs]) for i in range(3)]
        opt_rmse, mae, fit_s = fit_and_score(model, stacked, y_test, train, opt)
        weights = " / ".join(f"{w:.2f}" for w in model.scale_weights_.tolist())
        fs = sum(feat_s[c] for c in cs)
        rows.append((name, opt_rmse, mae, fs, fit_s, weights))
        print(f"{name:<34}{opt_rmse:>10.4f}{mae:>10.4f}{fit_s:>8.0f}  {weights}", flush=True)
    if args.out:
        from _common import write_table

        write_table(
            args.out,
            "Multi-scale kernels",
            f"d_J = {args.d_j}, n_train {n_train}, n_opt 1000, fixed test set of 1000, {steps} "
            "Adam steps, default radial scaling (r0 = 3 Å, m = 6) at every cutoff, other "
            "settings default. Weights: the learned (or kept) w_s, smallest cutoff first.",
            ["variant", "best opt RMSE (eV/atom)", "test MAE (eV/atom)", "features (s)",
             "fit (s)", "scale weights"],
            [(n, f"{r:.4f}", f"{m:.4f}", f"{f:.0f}", f"{t:.0f}", w) for n, r, m, f, t, w in rows],
        )  # fmt: skip


if __name__ == "__main__":
    main()
