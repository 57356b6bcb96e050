"""Bad input to the command line: one line on stderr naming the value, a non-zero exit, and
nothing written; odd but valid input works."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main, rundir
from rnnkit.cli import train as cli_train
from rnnkit.cli.settings import TrainSettings

TINY = ["--hidden-size", "16", "--embed-dim", "8", "--batch-size", "2", "--chunk-length", "16",
        "--eval-every", "4", "--sample-length", "5", "--no-progress", "--lr", "0.03",
        "--threads", "1"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)


def text_file(name="t.txt"):
    Path(name).write_text("the cat sat on the mat. a dog ate the hat!\n" * 40, encoding="utf-8")
    return name


def one_line(capsys, code, pattern=None):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "Traceback" not in err[0]
    if pattern:
        assert pattern in err[0], err[0]
    return err[0]


def trained_run(name="r"):
    assert main(["train", text_file(), *TINY, "--max-steps", "4", "--name", name]) == 0
    return Path("runs") / name


NUMERIC = [f.name for f in dataclasses.fields(TrainSettings)
           if typing.get_type_hints(TrainSettings)[f.name] in (int, float)]


@pytest.mark.parametrize("flag", NUMERIC)
def test_every_numeric_flag_takes_any_value_without_a_traceback(flag, monkeypatch, capsys):
    """0, negative, nan, inf, huge and a word: each either is accepted or is refused with one
    line (exit 1, or 2 for a word argparse cannot read), and a refused value writes nothing."""
    def no_training(run, *args, **kwargs):  # everything up to the first step runs
        return {"stop_reason": "max_steps", "steps": 0, "elapsed": 0.0, "run": str(run)}

    monkeypatch.setattr(cli_train, "_train_in", no_training)
    path = text_file()
    for value in ("0", "-1", "nan", "inf", "1000000000000", "1e300", "word"):
        code = main(["train", path, *TINY, "--max-steps", "4", f"--{flag.replace('_', '-')}",
                     value, "--runs-dir", "out"])
        err = capsys.readouterr().err.strip().splitlines()
        assert "Traceback" not in "\n".join(err), (flag, value)
        if code:
            assert code in (1, 2) and len(err) == 1, (flag, value, err)
            assert not Path("out").exists(), (flag, value)
        else:
            import shutil

            shutil.rmtree("out", ignore_errors=True)


@pytest.mark.parametrize("flags, expected", [
    (["--max-epochs", "inf"], "max_epochs (--max-epochs) must be a finite number, got inf"),
    (["--seed", "100000000000000000000000"], "seed (--seed) must be in [0, "),
    (["--clip-max-norm", "0"], "must be > 0 with --clip norm, got 0.0"),
    (["--lr", "inf"], "lr (--lr) must be a finite number, got inf"),
])
def test_bad_numbers_are_refused_before_the_run_directory(flags, expected, capsys):
    code = main(["train", text_file(), *TINY, "--max-steps", "4", *flags])
    one_line(capsys, code, expected)
    assert not Path("runs").exists()


def test_config_file_that_is_not_utf8(capsys):
    Path("c.yaml").write_bytes(b"lr: 0.1\n\xff\xfe\n")
    one_line(capsys, main(["train", text_file(), "--config", "c.yaml"]), "not UTF-8")


def test_yaml_number_without_a_dot_is_a_number(capsys):
    Path("c.yaml").write_text("lr: 2e-3\nmax_steps: 2\n")  # YAML 1.1 reads 2e-3 as a string
    settings, _ = cli_train.settings_for({"files": ["t.txt"]}, {"lr": "2e-3"}, "c.yaml", None)
    assert settings.lr == 0.002


def test_runs_dir_that_is_a_file(capsys):
    Path("taken").write_text("x")
    code = main(["train", text_file(), *TINY, "--max-steps", "2", "--runs-dir", "taken"])
    one_line(capsys, code, "cannot make the run directory")


@pytest.mark.parametrize("damage, expected", [
    (lambda run: (run / "task.json").write_text("{not json"), "task.json: not JSON"),
    (lambda run: (run / "config.yaml").unlink(), "config.yaml is missing"),
    (lambda run: (run / "config.yaml").write_text("x: !!python/object:os.system ls\n"),
     "not a settings file rnnkit wrote"),
])
def test_damaged_run_directory(damage, expected, capsys):
    run = trained_run()
    capsys.readouterr()
    damage(run)
    one_line(capsys, main(["sample", str(run), "--length", "3"]), expected)


def test_a_tiny_temperature_samples_the_most_likely_characters(capsys):
    run = trained_run()
    capsys.readouterr()
    assert main(["sample", str(run), "--length", "20", "--temperature", "1e-45"]) == 0
    assert main(["sample", str(run), "--length", "20", "--temperature", "0"]) == 0
    tiny, greedy = capsys.readouterr().out.splitlines()[-2:]
    assert tiny == greedy


def test_sample_into_a_closed_pipe_is_quiet():
    run = trained_run()
    pipe = subprocess.run(f"{sys.executable} -m rnnkit sample {run} --length 200000 | head -c 5",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert len(pipe.stdout) == 5 and "Traceback" not in pipe.stderr, pipe.stderr


def test_forecast_output_in_a_missing_directory(capsys):
    with open("s.csv", "w") as f:
        f.write("t,v\n" + "".join(f"{i},{(i % 7) / 7}\n" for i in range(200)))
    assert main(["train", "s.csv", *TINY, "--max-steps", "2", "--name", "f"]) == 0
    capsys.readouterr()
    one_line(capsys, main(["sample", "f", "--output", "nowhere/x.csv"]), "does not exist")


def test_a_second_process_cannot_train_in_a_locked_run(capsys):
    run = trained_run()
    capsys.readouterr()
    with rundir.lock(run):
        code = main(["train", "--resume", str(run), "--max-steps", "6", "--no-progress"])
    one_line(capsys, code, f"is in use by process {os.getpid()}")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert main(["train", "--resume", str(run), "--max-steps", "6", "--no-progress"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) > len(lines)


def test_disk_full_while_saving_is_one_line(monkeypatch, capsys):
    import rnnkit.train.trainer as trainer_module

    def full(payload, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(trainer_module, "save_checkpoint", full)
    code = main(["train", text_file(), *TINY, "--max-steps", "4"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err  # after the start lines, one line for it:
    assert err.strip().splitlines()[-1] == ("rnnkit train: error: No space left on device: "
                                            "runs/t/best.pt")


def test_eval_can_skip_characters_the_model_has_not_seen(capsys):
    run = trained_run()
    Path("new.txt").write_text("the cat ZZ sat\n" * 5)
    capsys.readouterr()
    one_line(capsys, main(["eval", str(run), "new.txt"]), "'Z'")
    assert main(["eval", str(run), "new.txt", "--unknown", "skip"]) == 0
    assert "10 chars the model has not seen were skipped" in capsys.readouterr().out


def test_resume_with_a_config_file_names_what_cannot_change(capsys):
    run = trained_run()
    Path("c.yaml").write_text("hidden_size: 32\nmax_steps: 6\n")
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--config", "c.yaml"])
    line = one_line(capsys, code, "the config file's hidden_size cannot change")
    assert "max_time" not in line.split("cannot change")[0]


def test_a_run_whose_steps_all_fail_exits_with_an_error(capsys):
    code = main(["train", text_file(), *TINY, "--max-steps", "30", "--lr", "1e30",
                 "--clip", "none", "--eval-every", "100"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "steps in a row had non-finite gradients" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("command", [["sample"], ["eval", "FILE"], ["export"]])
@pytest.mark.parametrize("given", ["forecast-x", "runs/forecast-x"])
def test_a_forecasters_run_is_named_with_the_commands_that_read_it(command, given, capsys):
    run = Path("runs/forecast-x")
    run.mkdir(parents=True)
    (run / "forecaster.json").write_text("{}")
    (run / "forecaster.pt").write_bytes(b"")
    argv = [command[0], given, *command[1:]]
    line = one_line(capsys, main(argv), f"{run} is a forecaster's run (rnnkit forecast)")
    assert f"`rnnkit forecast {given}`" in line and f"`rnnkit backtest {given}`" in line
    assert sorted(p.name for p in run.iterdir()) == ["forecaster.json", "forecaster.pt"]


def test_a_directory_that_is_no_run_still_says_no_run(capsys):
    Path("runs/empty").mkdir(parents=True)
    one_line(capsys, main(["sample", "empty"]), r"no run 'empty'")


def test_help_texts_show_a_percent_sign_once(capsys):
    import argparse

    from rnnkit.cli.settings import _opt, add_arguments

    assert main(["backtest", "--help"]) == 0
    out = capsys.readouterr().out
    assert "80% interval" in " ".join(out.split()) and "%%" not in out

    @dataclasses.dataclass
    class Odd:
        level: float = _opt(0.8, "coverage of the 80% interval")

    parser = argparse.ArgumentParser()
    add_arguments(parser, Odd)
    assert "coverage of the 80% interval (default: 0.8)" in " ".join(
        parser.format_help().split())
