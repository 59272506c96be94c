import json
import subprocess
import sys

import pytest

from genprior.cli.main import build_parser, main
from genprior.experiments.tasks import TASKS
from genprior.io import read_csv


def _commands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


@pytest.mark.parametrize("command", [(), *_commands(build_parser())])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: genprior" in capsys.readouterr().out


def test_unknown_dataset_is_one_line_without_traceback():
    process = subprocess.run(
        [sys.executable, "-m", "genprior.cli.main", "cs", "--dataset", "no-such-set"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert process.returncode != 0
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no-such-set" in lines[0] and "mnist" in lines[0] and "digits" in lines[0]
    assert "Traceback" not in process.stderr


def test_unknown_method_is_a_clear_error(capsys, tiny_vae_dir, tmp_path):
    code = main(
        [
            "recover",
            "--task",
            "phase",
            "--dataset",
            "digits",
            "--checkpoint",
            str(tiny_vae_dir),
            "--methods",
            "lasso-dct",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    expected = "for task phase must be one of vae, amplitude-flow-dct, amplitude-flow-wavelet"
    assert f"method (--methods) {expected}; received 'lasso-dct'" in err


def test_missing_checkpoint_is_a_clear_error(capsys, tmp_path):
    code = main(
        [
            "cs",
            "--dataset",
            "digits",
            "--checkpoint",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "which is not an existing folder" in capsys.readouterr().err


def test_mismatched_checkpoint_is_a_clear_error(capsys, tmp_path):
    code = main(["cs", "--dataset", "digits", "--quick", "--out", str(tmp_path)])
    assert code == 2
    assert "output shape (1, 28, 28), expected (1, 8, 8)" in capsys.readouterr().err


def _recover(tmp_path, tiny_vae_dir, task, params, methods=None):
    out = tmp_path / task
    args = [
        "recover",
        "--task",
        task,
        "--dataset",
        "digits",
        "--checkpoint",
        str(tiny_vae_dir),
        "--params",
        *map(str, params),
        "--n-images",
        "6",
        "--steps",
        "30",
        "--restarts",
        "2",
        "--out",
        str(out),
    ]
    if methods:
        args += ["--methods", *methods]
    assert main(args) == 0
    return out


def test_cs_end_to_end_on_digits(tmp_path, tiny_vae_dir, capsys):
    out = _recover(
        tmp_path, tiny_vae_dir, "cs", [10, 30], ["vae", "lasso-dct", "lasso-wavelet", "pinv"]
    )
    rows = read_csv(out / "results.csv")
    assert {"method", "m", "image", "mse", "psnr", "seconds"} <= set(rows[0])
    assert len(rows) == 2 * 4 * 6
    summary = json.loads((out / "summary.json").read_text())
    assert {(row["method"], row["m"]) for row in summary["summary"]} == {
        (method, m)
        for method in ("vae", "lasso-dct", "lasso-wavelet", "pinv")
        for m in (10.0, 30.0)
    }
    assert (out / "error.png").stat().st_size > 1000
    assert (out / "grid.png").stat().st_size > 1000
    assert read_csv(out / "summary.csv")[0]["mse_se"]
    assert "per-pixel MSE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("task", "params"),
    [("inpaint", [0.3]), ("superres", [2]), ("denoise", [0.2]), ("phase", [30])],
)
def test_every_task_runs(tmp_path, tiny_vae_dir, task, params):
    out = _recover(tmp_path, tiny_vae_dir, task, params)
    rows = read_csv(out / "results.csv")
    assert rows and all(float(row["mse"]) >= 0 for row in rows)
    assert {row["method"] for row in rows} == set(TASKS[task].default_methods)


def test_rerun_resumes_finished_points(tmp_path, tiny_vae_dir, monkeypatch):
    out = _recover(tmp_path, tiny_vae_dir, "cs", [10], ["pinv"])
    first = (out / "results.csv").read_text()
    from genprior.experiments import recovery

    def fail(*args, **kwargs):
        raise AssertionError("a finished point was recomputed")

    monkeypatch.setattr(recovery, "_run_point", fail)
    _recover(tmp_path, tiny_vae_dir, "cs", [10], ["pinv"])
    assert (out / "results.csv").read_text() == first


def _run(args):
    return main(args)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--params", "2.5"], "m must be whole numbers for task cs; received 2.5"),
        (["--params", "10", "1000"], "--params: m=1000 is invalid"),
        (["--n-images", "0"], r"n_images \(--n-images\) must be >= 1; received 0"),
        (["--steps", "0"], r"steps \(--steps\) must be >= 1"),
        (["--lr", "0"], r"lr \(--lr\) must be finite and > 0"),
        (["--seed", "-1"], r"seed \(--seed\) must be >= 0"),
        (["--noise-std", "nan"], r"noise_std \(--noise-std\) must be finite"),
    ],
)
def test_bad_settings_fail_before_any_work(tmp_path, tiny_vae_dir, capsys, extra, message):
    args = [
        "cs",
        "--dataset",
        "digits",
        "--checkpoint",
        str(tiny_vae_dir),
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]
    assert _run(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_denoise_rejects_noise_std(tmp_path, capsys):
    args = [
        "recover",
        "--task",
        "denoise",
        "--dataset",
        "digits",
        "--noise-std",
        "0.9",
        "--methods",
        "pinv",
        "--out",
        str(tmp_path),
    ]
    assert _run(args) == 2
    assert "--noise-std) does not apply to the denoise task" in capsys.readouterr().err


def test_out_must_be_a_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    args = [
        "cs",
        "--dataset",
        "digits",
        "--methods",
        "pinv",
        "--params",
        "10",
        "--out",
        str(tmp_path / "file"),
    ]
    assert _run(args) == 2
    assert "must be a folder" in capsys.readouterr().err


def test_other_settings_in_out_need_overwrite(tmp_path, tiny_vae_dir, capsys):
    out = _recover(tmp_path, tiny_vae_dir, "cs", [10], ["pinv"])
    args = [
        "recover",
        "--task",
        "cs",
        "--dataset",
        "digits",
        "--params",
        "20",
        "--methods",
        "pinv",
        "--n-images",
        "6",
        "--out",
        str(out),
    ]
    assert _run(args) == 2
    err = capsys.readouterr().err
    assert "holds another run (differing in" in err and "params" in err
    assert _run([*args, "--overwrite"]) == 0
    assert {row["m"] for row in read_csv(out / "results.csv")} == {"20"}


def test_rows_of_an_unfinished_point_are_dropped_on_resume(tmp_path, tiny_vae_dir):
    out = _recover(tmp_path, tiny_vae_dir, "cs", [10, 20], ["pinv"])
    progress = json.loads((out / "progress.json").read_text())
    progress["done"] = progress["done"][:1]  # as if killed after writing rows, before progress
    (out / "progress.json").write_text(json.dumps(progress))
    _recover(tmp_path, tiny_vae_dir, "cs", [10, 20], ["pinv"])
    rows = read_csv(out / "results.csv")
    assert len(rows) == 2 * 6
    assert [row["m"] for row in rows] == ["10"] * 6 + ["20"] * 6


def test_checkpoint_file_instead_of_folder(tmp_path, tiny_vae_dir, capsys):
    args = [
        "cs",
        "--dataset",
        "digits",
        "--checkpoint",
        str(tiny_vae_dir / "model.safetensors"),
        "--out",
        str(tmp_path),
    ]
    assert _run(args) == 2
    assert "which is a file, not a folder" in capsys.readouterr().err


def test_verbose_after_the_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["data", "info", "-v", "--help"])
    assert "--verbose" in capsys.readouterr().out


def test_corrupt_reconstructions_restart_the_run(tmp_path, tiny_vae_dir):
    out = _recover(tmp_path, tiny_vae_dir, "cs", [10], ["pinv"])
    (out / "reconstructions.npz").write_bytes(b"PK\x03\x04 truncated")
    _recover(tmp_path, tiny_vae_dir, "cs", [10], ["pinv"])
    assert read_csv(out / "results.csv")


def test_interrupt_message_says_whether_the_command_resumes(capsys):
    from genprior.cli.common import run_safely

    def interrupted(args):
        raise KeyboardInterrupt

    parser = build_parser()
    sobolev = parser.parse_args(["sobolev", "regression", "--quick"])
    assert run_safely(interrupted, sobolev) == 130
    assert "does not resume" in capsys.readouterr().err
    theory = parser.parse_args(["theory", "noise", "--quick"])
    assert run_safely(interrupted, theory) == 130
    assert "a rerun resumes" in capsys.readouterr().err
