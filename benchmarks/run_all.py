"""Run every benchmark in one command, in a quick (minutes) or a full mode.

    python benchmarks/run_all.py --quick      # smoke-size runs; tables to benchmarks/results/quick/
    python benchmarks/run_all.py --full       # the committed numbers; benchmarks/results/
    python benchmarks/run_all.py --quick --only baselines screen
    python benchmarks/run_all.py --full --device cuda --only learning_curve_gpu \
        model_search_seeds model_search_dj_scan   # the runs meant for a GPU

Each benchmark runs as its own process, one after the other (so timings do not compete);
its printed table is saved as ``<name>.txt`` next to the markdown tables the scripts
write themselves. A failing benchmark is reported and the others still run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from ase_alchemical.data.datasets import DATA_ENV

HERE = Path(__file__).resolve().parent

#: name -> (script, relative to benchmarks/; arguments in quick mode; whether it takes --out)
BENCHMARKS = {
    "learning_curve": ("accuracy/learning_curve.py", ["--quick"], True),
    "baselines": ("accuracy/baselines.py", ["--quick"], True),
    "calculator_speed": ("speed/calculator_speed.py", ["--quick"], False),
    "load_time": ("speed/load_time.py", ["--models", "elpasolite-dj4"], True),
    "call_parts": ("speed/call_parts.py", ["--repeats", "50"], False),
    "screen": ("speed/screen.py", ["--quick"], True),
    "screen_dask": ("speed/screen_dask.py", ["--n-elements", "8", "--chunk-size", "200"], True),
    "float32_store": ("speed/float32_store.py", ["--repeat", "20"], True),
    "export_speed": ("speed/export_speed.py", ["--repeat", "3", "--md-steps", "3"], True),
    "hypers_study": ("studies/hypers_study.py", ["--quick"], False),
    "radial_scaling": ("studies/radial_scaling.py", ["--quick"], True),
    "feature_options": ("studies/feature_options.py", ["--quick"], True),
    "normalization": ("studies/normalization.py", ["--quick"], True),
    "geometry_rule": ("studies/geometry_rule.py", ["--quick"], True),
    "multiscale": ("studies/multiscale.py", ["--quick"], True),
    "refit": ("studies/refit.py", ["--quick"], True),
    "schedule": ("studies/schedule.py", ["--quick"], True),
    "small_data": ("studies/small_data.py", ["--quick"], True),
    "small_zeta": (
        "studies/small_zeta.py",
        ["--n-train", "100", "--d-j", "2", "--steps", "5"],
        True,
    ),
    "small_steps": (
        "studies/small_steps.py",
        ["--n-train", "250", "--d-j", "2", "--steps", "4", "--checkpoints", "2", "4"],
        True,
    ),
    "small_steps_cosine": (
        "studies/small_steps.py",
        ["--schedule", "cosine", "--n-train", "250", "--d-j", "2", "--checkpoints", "2", "4"],
        True,
    ),
    "plain_soap": (
        "studies/plain_soap.py",
        ["--n-train", "300", "--n-opt", "200", "--only", "no radial scaling"],
        True,
    ),
    "plain_soap_6000": (
        "studies/plain_soap.py",
        ["--n-train", "300", "--n-opt", "200", "--grid", "--only", "no radial scaling"],
        True,
    ),
    "potential_hea": ("accuracy/potential_hea.py", ["--quick"], True),
    "potential_speed": (
        "speed/potential_speed.py",
        ["--repeats", "1", "2", "--md-steps", "3"],
        True,
    ),
    "potential_elpasolites": (
        "accuracy/potential_elpasolites.py",
        ["--n-train", "500", "--steps", "20", "--local-steps", "0"],
        True,
    ),
    # the GFN1-xTB labels (resumable, in the user cache; needs tblite), then the evaluation
    "potential_xtb_labels": ("accuracy/potential_xtb.py", ["label", "--n", "20"], False),
    "potential_xtb": (
        "accuracy/potential_xtb.py",
        ["evaluate", "--n", "20", "--checks", "1", "--md-steps", "50"],
        True,
    ),
    # full size these are meant for a GPU (minutes on an H100; hours on 2 CPU cores)
    "model_search": ("accuracy/model_search.py", ["--quick", "--only", "d_J 4", "d_J 8"], True),
    "model_search_seeds": (
        "accuracy/model_search.py",
        [
            "--quick",
            "--only",
            "d_J 4, 500 steps, cosine",
            "d_J 4, 500 steps, cosine, radially resolved",
        ],
        True,
    ),
    "model_search_dj_scan": (
        "accuracy/model_search.py",
        ["--quick", "--only", "d_J 2, 500 steps, cosine", "d_J 2, 500 steps, cosine, seed 1"],
        True,
    ),
    "learning_curve_gpu": (
        "accuracy/learning_curve.py",
        ["--quick", "--d-j", "--no-plain-soap", "--best", "--n-train", "500", "--steps", "5"],
        True,
    ),
    # the best recipe at the sizes the GPU run leaves out, on the CPU cores
    "learning_curve_best_cpu": (
        "accuracy/learning_curve.py",
        ["--quick", "--d-j", "--no-plain-soap", "--best", "--n-train", "100", "--steps", "5"],
        True,
    ),
    "final_regularizer": ("studies/final_regularizer.py", ["--quick"], True),
    # full size: 12 fits at 6,000 / 2,000 (a rerun skips the fits its JSON already holds)
    "periodic_table": (
        "studies/periodic_table.py",
        ["--d-j", "2", "--seeds", "0", "--steps", "5"],
        True,
    ),
}

#: arguments in full mode, where they differ from the script's defaults
FULL_ARGS = {
    "learning_curve": ["--seeds", "0", "1", "2"],
    "schedule": ["--n-train", "6000", "--steps", "250", "--seeds", "0", "1", "2"],
    "final_regularizer": ["--model", "elpasolite-dj4", "elpasolite-dj10-multiscale"],
    "model_search_seeds": ["--seeds-run"],
    "model_search_dj_scan": ["--dj-scan"],
    "learning_curve_gpu": ["--d-j", "4", "2", "1", "--no-plain-soap", "--best",
                           "--n-train", "500", "1000", "3000", "6000"],
    "learning_curve_best_cpu": ["--d-j", "--no-plain-soap", "--best", "--n-train", "100", "250"],
    "potential_elpasolites": ["--n-train", "1000", "6000", "--local-steps", "0"],
    "potential_xtb_labels": ["label", "--n", "300"],
    "potential_xtb": ["evaluate", "--n", "300"],
    "periodic_table": ["--steps", "120"],
    "plain_soap_6000": ["--n-train", "6000", "--n-opt", "2000", "--grid", "--only",
                        "as in the learning curve (5 Å, radial scaling, n 5, l 4, normalised)"],
    "small_steps_cosine": ["--schedule", "cosine", "--checkpoints", "250", "750",
                           "--n-train", "250", "500", "--seeds", "0", "1", "2", "--d-j", "4", "2"],
}  # fmt: skip
#: the scripts that take ``--device`` (passed on when given)
DEVICE_AWARE = {
    "learning_curve",
    "learning_curve_gpu",
    "learning_curve_best_cpu",
    "calculator_speed",
    "call_parts",
    "screen",
    "model_search",
    "model_search_seeds",
    "model_search_dj_scan",
    "periodic_table",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="small sizes, few steps (minutes)")
    mode.add_argument("--full", action="store_true", help="the committed sizes (hours)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument(
        "--data", default=None,
        help="folder with elpasolites.csv, given to every benchmark as $ASE_ALCHEMICAL_DATA",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="torch device for the scripts that take one")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.data:  # through the environment: not every script takes --data
        if not Path(args.data).is_dir():
            parser.error(f"--data must be a folder holding elpasolites.csv, got {args.data!r}")
        env[DATA_ENV] = str(Path(args.data).resolve())
    out_dir = HERE / "results" / ("quick" if args.quick else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    failed, summary = [], []
    for name in args.only or BENCHMARKS:
        script, quick_args, takes_out = BENCHMARKS[name]
        cmd = [sys.executable, str(HERE / script)]
        cmd += quick_args if args.quick else FULL_ARGS.get(name, [])
        if args.device and name in DEVICE_AWARE:
            cmd += ["--device", args.device]
        if takes_out:
            cmd += ["--out", str(out_dir / f"{name}.md")]
        print(f"=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
        (out_dir / f"{name}.txt").write_text(proc.stdout)
        print(proc.stdout, end="")
        if proc.returncode != 0:
            failed.append(name)
            print(proc.stderr[-3000:], file=sys.stderr)
        summary.append((name, seconds, proc.returncode))
    print("\n=== summary")
    for name, seconds, rc in summary:
        print(f"{name:<18}{seconds:>8.0f} s  {'ok' if rc == 0 else f'FAILED (exit {rc})'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
