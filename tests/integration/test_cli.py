import csv
import io

import ase.io
import numpy as np
import pytest
import torch

from ase_alchemical import load_model
from ase_alchemical.cli import main
from ase_alchemical.data.datasets import build_elpasolite


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("cli") / "model.pt"
    code = main([
        "train", "--d-j", "2", "--n-train", "300", "--n-opt", "100", "--n-test", "200",
        "--steps", "5", "--zeta", "2", "--solver", "sparse", "--n-support", "150",
        "--max-radial", "3", "--max-angular", "2", "--lr-schedule", "cosine",
        "--data", str(data_dir), "--out", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    return out


def test_train_writes_model_with_provenance(trained, capsys):
    model = load_model(trained)
    meta = model.metadata_
    assert meta["n_train"] == 300 and meta["n_test"] == 200 and meta["split_seed"] == 0
    assert meta["data_sha256"] in {
        "b6a7acbf652ab35d26ea556d06b8b526de487c9b92878fd5b9598d9c88e32772",
        "1281342b1c68984e3056433c42afa0f5f3b95db0da4a0ef089ca028abdac88ac",
    }
    assert 0 < meta["test_mae_ev_per_atom"] < 1.0
    assert model.d_j == 2 and len(model.loss_history_) == 5
    assert model.lr_schedule == "cosine" and model.loss_history_[-1]["learning_rate"] < 0.1


def test_evaluate_reproduces_recorded_mae(trained, data_dir, capsys):
    assert main(["evaluate", str(trained), "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    mae = float(out.split("test MAE")[1].split()[0])
    assert mae == pytest.approx(load_model(trained).metadata_["test_mae_ev_per_atom"], abs=1e-4)


def test_predict_matches_python_api(trained, tmp_path, capsys):
    frames = [build_elpasolite("Al", "Na", "K", "F"), build_elpasolite("Bi", "Na", "Cs", "Cl")]
    path = tmp_path / "s.xyz"
    ase.io.write(path, frames)
    assert main(["predict", str(trained), str(path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    expected = load_model(trained).predict(frames)
    np.testing.assert_allclose([float(r["energy_ev"]) for r in rows], expected, atol=1e-5)
    assert main(["predict", str(trained), str(path), "--out", str(tmp_path / "e.csv")]) == 0
    assert len((tmp_path / "e.csv").read_text().splitlines()) == 3


def test_user_errors_are_one_clear_line(trained, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    assert main(["predict", str(bad), str(tmp_path / "x.xyz")]) == 1
    assert "not a readable ase-alchemical model" in capsys.readouterr().err
    path = tmp_path / "u.xyz"
    ase.io.write(path, build_elpasolite("Fe", "Na", "Cs", "Cl"))  # Fe: not in the data
    assert main(["predict", str(trained), str(path)]) == 1
    err = capsys.readouterr().err
    assert "element(s) Fe unknown to this model; it knows 39:" in err
    assert (
        main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt")]) == 1
    )
    assert "elpasolite data not found" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "pseudo-elements" in capsys.readouterr().out
    assert main([]) == 2


def test_energy_command_matches_calculator(trained, tmp_path, capsys):
    from ase_alchemical import AlchemicalCalculator

    frame = build_elpasolite("Bi", "Na", "Cs", "Cl")
    frame.rattle(0.05, seed=0)
    path = tmp_path / "one.xyz"
    ase.io.write(path, frame)
    args = ["energy", str(path), "--elpasolite", "Al,Na,K,F", "--model", str(trained)]
    assert main(args + ["--forces"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    calc = AlchemicalCalculator(str(trained), device="cpu")
    frames = [frame, build_elpasolite("Al", "Na", "K", "F")]
    for row, atoms in zip(rows, frames):
        atoms.calc = calc
        assert float(row["energy_ev"]) == pytest.approx(atoms.get_potential_energy(), abs=1e-5)
        assert float(row["max_force_ev_per_a"]) == pytest.approx(
            abs(atoms.get_forces()).max(), abs=1e-5
        )
    assert main(["energy", "--elpasolite", "Al,Na,K", "--model", str(trained)]) == 1
    assert "four element symbols" in capsys.readouterr().err


def test_radial_scaling_option_parses_and_rejects_nonsense():
    from ase_alchemical.cli import _scaling

    assert _scaling("1,3,6") == {"type": "Willatt2018", "rate": 1.0, "scale": 3.0, "exponent": 6}
    assert _scaling("none") is None
    with pytest.raises(ValueError, match="C,R0,M"):
        _scaling("1,3")
    with pytest.raises(ValueError, match="integer"):
        _scaling("1,3,2.5")


def test_info_reads_a_file_or_a_shipped_name_without_building_the_model(
    trained, tmp_path, capsys, monkeypatch
):
    import json

    from ase_alchemical import AlchemicalKRR

    def no_featurizing(*args, **kwargs):
        raise AssertionError("info built the model")

    monkeypatch.setattr(AlchemicalKRR, "pair_spectrum", no_featurizing)
    assert main(["info", str(trained)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"]["d_j"] == 2 and info["n_support"] == 150
    assert info["metadata"]["n_train"] == 300 and len(info["species"].split()) == 39
    assert main(["info", "elpasolite-dj4"]) == 0
    shipped = json.loads(capsys.readouterr().out)
    assert shipped["n_support"] == 8000 and shipped["metadata"]["test_mae_ev_per_atom"] < 0.09
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main(["info", str(bad)]) == 1
    assert "not a readable ase-alchemical model file" in capsys.readouterr().err
    assert main(["info", "nosuch"]) == 1
    assert "no shipped model named 'nosuch'" in capsys.readouterr().err


def test_malformed_structure_file_and_missing_device_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nbad comment line\nNa 0 0 0\n")
    assert main(["energy", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(bad) in err and "not a readable structure file" in err and "XYZError" in err
    assert main(["energy", str(tmp_path / "missing.xyz")]) == 1
    assert "does not exist" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["energy", "--elpasolite", "Al,Na,K,F", "--device", "cuda"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "device 'cuda' was asked for" in err


@pytest.mark.parametrize(
    "option",
    [["--solver", "full"], ["--n-train", "100"], ["--gradient-flow", "detach"],
     ["--regularizer", "0.01"], ["--refit-on-all"]],
)  # fmt: skip
def test_structure_options_are_an_error_for_a_local_potential(option, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--kernel", "local", "--data", "frames.xyz", *option])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{option[0]} does not apply to --kernel local (the local potential" in err
    assert "it is an option of --kernel structure" in err


@pytest.mark.parametrize(
    "option",
    [["--forces"], ["--stress"], ["--solve-on-opt"], ["--force-sigma", "0.1"],
     ["--energy-sigma", "0.01"], ["--baseline", "mean"]],
)  # fmt: skip
def test_local_options_are_an_error_for_the_structure_kernel(option, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *option])  # --kernel structure is the default
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{option[0]} does not apply to --kernel structure (the elpasolite structure" in err
    assert "of --kernel local" in err


def test_every_foreign_option_is_named(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--kernel", "local", "--solver", "full", "--n-opt", "5", "--forces"])
    error = capsys.readouterr().err.splitlines()[-1]  # below the usage
    assert "--n-opt, --solver do not apply to --kernel local" in error
    assert "they are options of --kernel structure" in error and "--forces" not in error


def _constructor_default(cls, name):
    import inspect

    return inspect.signature(cls.__init__).parameters[name].default


def test_train_defaults_are_the_constructors(capsys):
    from ase_alchemical import AlchemicalKRR, AlchemicalPotential
    from ase_alchemical.cli import parse_args

    rotation = {"auto": "auto", True: "on", False: "off"}
    shared = {"d_j": "d_j", "zeta": "zeta", "n_support": "n_support", "steps": "n_steps",
              "learning_rate": "learning_rate", "lr_schedule": "lr_schedule",
              "n_folds": "n_folds", "init": "init", "seed": "seed",
              "radially_resolved": "radially_resolved"}  # fmt: skip
    own = {
        AlchemicalKRR: {"normalization": "normalization", "regularizer": "regularizer",
                        "solver": "solver", "gradient_flow": "gradient_flow",
                        "step_train_size": "step_train_size"},
        AlchemicalPotential: {"baseline": "baseline", "energy_sigma": "energy_sigma",
                              "force_sigma": "force_sigma"},
    }  # fmt: skip
    for kind, cls in [("structure", AlchemicalKRR), ("local", AlchemicalPotential)]:
        args = parse_args(["train", "--kernel", kind])
        for dest, name in (shared | own[cls]).items():
            assert getattr(args, dest) == _constructor_default(cls, name), (kind, dest)
        assert args.rotation == rotation[_constructor_default(cls, "rotation")]
    # the help shows the constructors' defaults: both kinds' where they differ
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    structure, local = (_constructor_default(cls, "n_steps") for cls in own)
    note = f"{structure}; local: {local}" if structure != local else f"{structure}"
    steps_help = help_text[help_text.index("Adam steps on U"):]
    assert steps_help.split(" --")[0].endswith(f"(default: {note})")
    sigma = _constructor_default(AlchemicalPotential, "force_sigma")
    assert f"force noise (eV/A) (default: {sigma})" in help_text


def test_train_options_given_are_kept_and_the_other_kinds_stay_unset():
    from ase_alchemical.cli import parse_args

    args = parse_args(["train", "--kernel", "local", "--steps", "0", "--n-support", "0",
                       "--forces", "--force-sigma", "0.5"])  # fmt: skip
    assert (args.steps, args.n_support, args.forces, args.force_sigma) == (0, 0, True, 0.5)
    assert args.stress is False and args.solver is None and args.n_train is None
    args = parse_args(["train", "--solver", "sparse", "--step-train-size", "0"])
    assert args.solver == "sparse" and args.step_train_size == 0 and args.forces is None
    assert args.n_train == 6000 and args.refit_on_all is False


def test_zeta_takes_candidates_for_the_structure_kernel_only(capsys):
    from ase_alchemical.cli import parse_args

    assert parse_args(["train", "--zeta", "2", "3"]).zeta == (2, 3)
    assert parse_args(["train", "--zeta", "2"]).zeta == 2
    assert parse_args(["train", "--kernel", "local", "--zeta", "3"]).zeta == 3
    assert parse_args(["train", "--zeta", "auto"]).zeta == "auto"
    for kind, zeta, message in [
        ("local", ["2", "3"], "--kernel local takes one integer --zeta"),
        ("local", ["auto"], "--kernel local takes one integer --zeta"),
        ("structure", ["auto", "2"], "--zeta takes auto alone or integers"),
        ("structure", ["two"], "expected an integer or auto, got 'two'"),
    ]:
        with pytest.raises(SystemExit) as info:
            parse_args(["train", "--kernel", kind, "--zeta", *zeta])
        assert info.value.code == 2
        assert message in capsys.readouterr().err


def test_steps_take_auto_for_the_structure_kernel_only(capsys):
    from ase_alchemical.cli import parse_args

    assert parse_args(["train"]).steps == "auto"  # AlchemicalKRR's default
    assert parse_args(["train", "--steps", "auto"]).steps == "auto"
    assert parse_args(["train", "--steps", "40"]).steps == 40
    assert parse_args(["train", "--kernel", "local"]).steps == 20
    for kind, steps, message in [
        ("local", "auto", "--kernel local takes an integer --steps"),
        ("structure", "many", "expected an integer or auto, got 'many'"),
    ]:
        with pytest.raises(SystemExit) as info:
            parse_args(["train", "--kernel", kind, "--steps", steps])
        assert info.value.code == 2
        assert message in capsys.readouterr().err
