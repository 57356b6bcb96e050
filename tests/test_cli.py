"""The command line, run in-process with tiny models: round trips, resume, and user errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main, report
from rnnkit.cli import train as cli_train
from rnnkit.cli.settings import EvalSettings, SampleSettings, TrainSettings
from rnnkit.data.split import split_documents

TINY = ["--hidden-size", "16", "--embed-dim", "8", "--batch-size", "2", "--chunk-len", "16",
        "--eval-every", "4", "--sample-length", "20", "--no-progress", "--max-time", "0",
        "--lr", "0.03", "--threads", "1"]


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)  # tiny models: threads only add overhead


def text_file(name="t.txt", repeats=40):
    path = Path(name)
    path.write_text("the cat sat on the mat. a dog ate the hat!\n" * repeats, encoding="utf-8")
    return str(path)


def csv_file(name="s.csv", rows=300):
    path = Path(name)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "value", "other", "label"])
        for t in range(rows):
            writer.writerow([t, f"{math.sin(t / 5):.4f}", f"{math.cos(t / 7):.4f}", "x"])
    return str(path)


def one_error_line(capsys, code, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "Traceback" not in err[0]
    import re

    assert re.search(pattern, err[0]), err[0]


def test_text_train_sample_eval_round_trip(capsys):
    path = text_file()
    assert main(["train", path, *TINY, "--max-steps", "8"]) == 0
    run = Path("runs/t")
    for name in ("config.yaml", "task.json", "metrics.jsonl", "best.pt", "last.pt", "plot.png",
                 "samples.txt"):
        assert (run / name).is_file(), name
    evals = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r.get("split") == "eval"]
    assert [r["step"] for r in evals] == [4, 8]
    assert evals[-1]["loss"] < evals[0]["loss"] < math.log(len(set(Path(path).read_text())))
    assert "=== step 8 ===" in (run / "samples.txt").read_text()
    capsys.readouterr()

    assert main(["sample", "runs/t", "--prime", "the ", "--length", "30", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the ") and len(first) == len("the ") + 30 + 1
    assert main(["sample", str(run), "--prime", "the ", "--length", "30", "--seed", "3"]) == 0
    assert capsys.readouterr().out == first  # same seed, same text

    assert main(["eval", "t", path]) == 0
    out = capsys.readouterr().out
    assert "nats/char" in out and "bits/char" in out


def test_default_name_does_not_overwrite_a_run(capsys):
    path = text_file()
    assert main(["train", path, *TINY, "--max-steps", "2"]) == 0
    assert main(["train", path, *TINY, "--max-steps", "2"]) == 0
    assert Path("runs/t").is_dir() and Path("runs/t-2").is_dir()
    # 2 steps < eval_every 4: the final model is still evaluated, kept and sampled
    records = [json.loads(ln) for ln in Path("runs/t/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("split") == "eval"] == [2]
    assert Path("runs/t/best.pt").is_file() and Path("runs/t/samples.txt").is_file()


def test_python_dash_m_rnnkit():
    import os
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "rnnkit", "eval", "--help"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--checkpoint" in done.stdout


def test_forecast_train_sample_eval(capsys):
    path = csv_file()
    code = main(["train", path, "--task", "forecast", "--columns", "value,other", *TINY,
                 "--max-steps", "8", "--name", "f"])
    assert code == 0
    run = Path("runs/f")
    task = json.loads((run / "task.json").read_text())
    assert task["kind"] == "forecast" and task["columns"] == ["value", "other"]
    assert task["files"] == [str(Path(path).resolve())]
    assert (run / "forecasts" / "step_0000008.csv").is_file()
    assert (run / "forecasts" / "latest.png").is_file()
    assert not (run / "forecast.png").exists()  # left for `sample`, which must not overwrite
    assert main(["sample", "f", "--length", "12"]) == 0
    assert (run / "forecast.png").is_file()
    rows = list(csv.reader(open(run / "forecast.csv")))
    assert rows[0] == ["step", "value", "other"] and len(rows) == 13
    assert all(math.isfinite(float(v)) for row in rows[1:] for v in row)
    capsys.readouterr()
    assert main(["eval", "f", path]) == 0
    assert "nats/step" in capsys.readouterr().out


def test_forecast_dropout_on_one_layer_is_said_to_do_nothing(capsys):
    """A forecast model has no dropout before its head: --dropout on one layer changes
    nothing, and the run says so instead of silently ignoring it."""
    path = csv_file()
    losses = []
    for dropout, name in (("0.5", "a"), ("0", "b")):
        args = ["train", path, "--columns", "value", *TINY, "--max-steps", "4", "--name", name]
        assert main([*args, "--dropout", dropout]) == 0
        err = capsys.readouterr().err
        assert ("--dropout 0.5 does nothing here" in err) == (dropout == "0.5")
        losses.append(json.loads(Path(f"runs/{name}/metrics.jsonl").read_text().split("\n")[3]))
    assert losses[0]["loss"] == losses[1]["loss"]  # the same run: nothing was dropped
    assert main(["train", path, "--columns", "value", *TINY, "--max-steps", "4", "--name", "c",
                 "--dropout", "0.5", "--num-layers", "2"]) == 0
    assert "does nothing" not in capsys.readouterr().err


def test_resume_continues_exactly(monkeypatch, capsys):
    path = text_file()
    args = ["train", path, *TINY, "--max-steps", "8", "--dropout", "0.2"]
    assert main([*args, "--name", "straight"]) == 0

    real = report.EvalReport.__call__

    def interrupt_at_4(self, trainer, record):  # as if Ctrl-C arrived during step 4
        real(self, trainer, record)
        if record["step"] == 4:
            trainer.request_stop()

    monkeypatch.setattr(report.EvalReport, "__call__", interrupt_at_4)
    assert main([*args, "--name", "cut"]) == 130  # interrupted: its checkpoint is saved
    assert torch.load("runs/cut/last.pt", weights_only=True)["step"] < 8  # stopped early
    monkeypatch.setattr(report.EvalReport, "__call__", real)
    assert main(["train", "--resume", "cut", "--no-progress"]) == 0

    a = torch.load("runs/straight/last.pt", weights_only=True)
    b = torch.load("runs/cut/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert (Path("runs/straight/samples.txt").read_text()
            == Path("runs/cut/samples.txt").read_text())


def lrs_by_step(run):
    records = [json.loads(ln) for ln in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["lr"] for r in records if r.get("split") != "eval"}


def test_resume_with_a_larger_budget_never_raises_the_learning_rate(capsys):
    path = text_file()
    assert main(["train", path, *TINY, "--max-steps", "8", "--name", "r"]) == 0
    stopped = lrs_by_step("runs/r")[8]
    assert main(["train", "--resume", "r", "--max-steps", "16", "--no-progress"]) == 0
    assert "anneals from" in capsys.readouterr().err
    lrs = [lr for step, lr in sorted(lrs_by_step("runs/r").items()) if step > 8]
    assert len(lrs) == 8 and lrs[0] <= stopped
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(0.03 * 0.05, rel=0.3)  # down to --min-lr-ratio at the end

    assert main(["train", path, *TINY, "--max-steps", "8", "--name", "up"]) == 0
    assert main(["train", "--resume", "up", "--max-steps", "16", "--no-progress",
                 "--restart-schedule"]) == 0
    assert lrs_by_step("runs/up")[9] > 5 * stopped  # asked for: the new budget's cosine


def test_restart_schedule_needs_resume(capsys):
    code = main(["train", text_file(), *TINY, "--restart-schedule"])
    one_error_line(capsys, code, r"--restart-schedule goes with --resume")


@pytest.mark.parametrize("budget, said", [
    (["--max-steps", "2"], "a step or epoch budget alone"),
    (["--max-steps", "2", "--max-time", "0"], "--max-time 0"),
    (["--max-steps", "2", "--max-time", "0", "--model-size", "large"], None),
    (["--max-steps", "2", "--max-time", "30"], None),  # small: nothing to say
])
def test_the_large_preset_picked_for_want_of_a_time_budget_is_said(budget, said, capsys):
    tiny = [a for a in TINY if a not in ("--max-time", "0")]
    assert main(["train", text_file(), *tiny, *budget]) == 0
    err = capsys.readouterr().err
    if said is None:
        assert "--model-size small to keep" not in err
    else:
        assert "model (large)" in err and said in err
        assert "several times slower per step" in err and "--model-size small" in err


def test_config_file_and_flag_precedence(capsys):
    path = text_file()
    Path("c.toml").write_text('hidden_size = 12\nlr = 0.01\nname = "fromfile"\n')
    assert main(["train", path, "--config", "c.toml", *TINY, "--max-steps", "2",
                 "--lr", "0.02"]) == 0
    import yaml

    saved = yaml.safe_load(Path("runs/fromfile/config.yaml").read_text())
    assert saved["hidden_size"] == 16  # TINY's flag beats the file's 12
    assert saved["lr"] == 0.02  # the flag beats the file
    assert saved["name"] == "fromfile"  # from the file
    assert saved["batch_size"] == 2 and saved["max_time"] == 0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_runs_config_yaml_passed_back_with_config_resolves_the_same(cell, capsys):
    import yaml

    path = text_file()
    for preset in ("small", "medium", "large"):
        first, again = f"{cell}-{preset}", f"{cell}-{preset}-again"
        assert main(["train", path, *TINY, "--max-steps", "2", "--cell", cell,
                     "--model-size", preset, "--name", first]) == 0
        assert main(["train", path, "--config", f"runs/{first}/config.yaml",
                     "--name", again]) == 0, capsys.readouterr().err
        a = yaml.safe_load(Path(f"runs/{first}/config.yaml").read_text())
        b = yaml.safe_load(Path(f"runs/{again}/config.yaml").read_text())
        assert {**a, "name": again} == b


def test_a_config_file_setting_the_other_cells_option_is_still_refused(capsys):
    path = text_file()
    Path("c.yaml").write_text("cell: gru\nforget_bias: 3.0\n")
    code = main(["train", path, "--config", "c.yaml", *TINY, "--max-steps", "2"])
    one_error_line(capsys, code, r"--forget-bias is for --cell lstm; this model's cell is gru")
    assert not Path("runs").exists()


@pytest.mark.parametrize("command, cls", [("train", TrainSettings), ("sample", SampleSettings),
                                          ("eval", EvalSettings)])
def test_help_lists_every_option_with_default(command, cls, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    import dataclasses

    for f in dataclasses.fields(cls):
        if not f.metadata.get("positional"):
            assert "--" + f.name.replace("_", "-") in text, f.name
    optional = [f for f in dataclasses.fields(cls) if not f.metadata.get("positional")]
    assert text.count("(default:") >= len(optional)


def write_bytes(name, data):
    Path(name).write_bytes(data)
    return name


@pytest.mark.parametrize(
    "make, extra, pattern",
    [
        (lambda: "missing.txt", [], r"missing.txt: no such file"),
        (lambda: write_bytes("e.txt", b""), [], r"e.txt: file is empty"),
        (lambda: write_bytes("b.txt", b"\x00\x01\x02binary"), [], r"looks binary"),
        (lambda: write_bytes("l.txt", b"caf\xe9\n" * 50), [], r"not valid UTF-8 \(byte 3"),
        (lambda: write_bytes("n.csv", b"date,w\n1,rain\n2,sun\n"), [], r"no numeric column"),
        (lambda: write_bytes("nan.csv", b"t,x\n1,1\n2,nan\n3,2\n"), ["--columns", "x"],
         r"column 'x' has 1 NaN or infinite value\(s\) at line\(s\) 3"),
        (lambda: text_file(repeats=2), ["--chunk-len", "500"], r"chunk length 500 is longer"),
        (lambda: text_file(), ["--columns", "x"], r"--columns only applies to --task forecast"),
        (lambda: text_file(), ["--max-steps", "0", "--max-epochs", "0"], r"set a budget"),
    ],
)
def test_user_errors_are_one_line(make, extra, pattern, capsys):
    code = main(["train", make(), *TINY, "--max-steps", "2", *extra])
    one_error_line(capsys, code, pattern)
    assert not Path("runs").exists()  # nothing was created for a refused run


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["train", "--hidden-size", "0"],
         r"hidden_size \(--hidden-size\) must be in \[1, 1000000\], got 0"),
        (["train", "--dropout", "1.5"], r"dropout \(--dropout\) must be in \[0, 1\), got 1.5"),
        (["train", "--batch-size", "0"], r"batch_size \(--batch-size\) must be >= 1"),
        (["sample", "r", "--temperature", "-1"], r"temperature .* must be >= 0, got -1.0"),
        (["sample", "r", "--length", "0"],
         r"length \(--length\) must be in \[1, 10000000\], got 0"),
    ],
)
def test_out_of_range_flags(argv, pattern, capsys):
    one_error_line(capsys, main(argv), pattern)


def test_existing_run_directory_is_left_alone(capsys):
    path = text_file()
    assert main(["train", path, *TINY, "--max-steps", "2", "--name", "keep"]) == 0
    before = {p.name: p.read_bytes() for p in Path("runs/keep").iterdir() if p.is_file()}
    capsys.readouterr()
    code = main(["train", path, *TINY, "--max-steps", "2", "--name", "keep"])
    one_error_line(capsys, code, r"run directory runs/keep already exists")
    after = {p.name: p.read_bytes() for p in Path("runs/keep").iterdir() if p.is_file()}
    assert after == before


def test_sampling_and_eval_errors(capsys):
    path = text_file()
    assert main(["train", path, *TINY, "--max-steps", "4", "--name", "r"]) == 0
    capsys.readouterr()
    one_error_line(capsys, main(["sample", "r", "--prime", "the Zebra"]),
                   r"character 'Z' \(position 4\) is not in the model's vocabulary")
    one_error_line(capsys, main(["sample", "nope"]), r"no run 'nope'")
    Path("other.txt").write_text("QQQ", encoding="utf-8")
    one_error_line(capsys, main(["eval", "r", "other.txt"]), r"character 'Q'")
    Path("runs/r/last.pt").write_bytes(b"garbage")
    Path("runs/r/best.pt").unlink()
    one_error_line(capsys, main(["sample", "r", "--checkpoint", "last"]),
                   r"checkpoint runs/r/last.pt")


def test_config_errors(capsys):
    path = text_file()
    Path("bad.yaml").write_text("hidden_size: 8\nlayers: 3\n")
    one_error_line(capsys, main(["train", path, "--config", "bad.yaml"]),
                   r"bad.yaml: unknown key 'layers'")
    Path("typo.toml").write_text('hidden_size = "big"\n')
    one_error_line(capsys, main(["train", path, "--config", "typo.toml"]),
                   r"typo.toml: key 'hidden_size' must be an integer, got str 'big'")
    assert main(["train", path, *TINY, "--max-steps", "2", "--name", "r"]) == 0
    capsys.readouterr()
    one_error_line(capsys, main(["train", "--resume", "r", "--hidden-size", "64"]),
                   r"--hidden-size cannot change")
    one_error_line(capsys, main(["train", "--resume", "r"]), r"has done its 2 steps")


def test_max_epochs_is_a_step_budget_from_the_data_size(capsys):
    path = text_file()  # 1720 chars: 1548 train, so 1547 next-char steps
    assert main(["train", path, *TINY, "--max-epochs", "0.5", "--name", "e"]) == 0
    per_epoch = 1547 // 2 // 16  # TINY: 2 streams of 773 steps, read in whole chunks of 16
    steps = math.ceil(0.5 * per_epoch)
    assert torch.load("runs/e/last.pt", weights_only=True)["step"] == steps
    err = capsys.readouterr().err
    assert f"budget {steps} steps (0.5 epochs)" in err
    assert f"done: {steps} steps (max_epochs 0.5)" in err
    one_error_line(capsys, main(["train", "--resume", "e"]),
                   rf"has done its {steps} steps \(0.5 epochs\); pass a larger --max-epochs")
    assert main(["train", "--resume", "e", "--max-epochs", "1", "--no-progress"]) == 0
    assert torch.load("runs/e/last.pt", weights_only=True)["step"] == per_epoch


@pytest.mark.parametrize("max_steps, max_epochs, expected", [
    (0, 0.0, 0), (7, 0.0, 7), (0, 2.0, 62), (50, 2.0, 50), (70, 2.0, 62), (0, 1e-6, 1),
])
def test_step_budget_takes_the_smaller_budget(max_steps, max_epochs, expected):
    s = TrainSettings(batch_size=4, chunk_length=8, max_steps=max_steps, max_epochs=max_epochs)
    assert cli_train.step_budget(s, train_steps=1000) == expected  # 250 per stream: 31 chunks


@pytest.mark.parametrize("flags, max_time, max_epochs", [
    ({"max_epochs": 2.0}, 0.0, 2.0),  # an epoch budget alone: no time limit, large preset
    ({"max_steps": 5000}, 0.0, 0.0),  # a step budget the user gives is not cut at 6 epochs
    ({"max_steps": 0}, 180.0, 0.0),  # "no step limit" keeps the default time budget
    ({"max_time": 600.0}, 600.0, 6.0),  # the large preset's epochs
])
def test_budget_flags_given_alone(flags, max_time, max_epochs):
    settings, _ = cli_train.settings_for({"files": ["t.txt"], **flags}, {}, "flags", None)
    assert (settings.max_time, settings.max_epochs) == (max_time, max_epochs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_device_cuda_without_gpu(capsys):
    one_error_line(capsys, main(["train", text_file(), *TINY, "--device", "cuda"]),
                   r"--device cuda: no CUDA GPU")


def test_usage_error_is_one_line(capsys):
    assert main(["train", "--hidden-size", "big"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid int value: 'big'" in err[0]


def test_split_documents_holds_out_the_last_fraction_in_order():
    docs = [torch.arange(0, 60), torch.arange(60, 100)]
    train, val = split_documents(docs, 0.25)
    assert [d.tolist() for d in train] == [list(range(60)), list(range(60, 75))]
    assert [d.tolist() for d in val] == [list(range(75, 100))]
    train, val = split_documents(docs, 0.5)
    assert [len(d) for d in train] == [50] and [len(d) for d in val] == [10, 40]


def test_sample_and_eval_use_the_averaged_weights():
    from rnnkit.cli.infer import load_model
    from rnnkit.train import load_checkpoint

    path = text_file()
    assert main(["train", path, *TINY, "--max-steps", "8", "--ema-decay", "0.5",
                 "--weight-decay", "0.1", "--embed-dropout", "0.1", "--name", "avg"]) == 0
    model, _ = load_model("avg", "last")
    ckpt = load_checkpoint("runs/avg/last.pt")
    weight = model.head.proj.weight
    assert torch.equal(weight, ckpt["averaged_model"]["head.proj.weight"])
    assert not torch.equal(weight, ckpt["model"]["head.proj.weight"])


def test_a_run_written_by_version_0_1_0_still_samples_evaluates_and_resumes(capsys):
    """tests/data/run-0.1.0 was written before the settings took the trainer's names
    (chunk_len, clip_norm, lr_final) and before the one learning-rate schedule."""
    import shutil

    shutil.copytree(Path(__file__).parent / "data" / "run-0.1.0", "old")
    assert main(["sample", "old", "--length", "5", "--prime", "the "]) == 0
    assert capsys.readouterr().out.startswith("the ")
    assert main(["eval", "old", "old/tiny.txt"]) == 0
    assert "nats/char" in capsys.readouterr().out
    shutil.copy("old/tiny.txt", "tiny.txt")  # the run's config names it relative to here
    assert main(["train", "--resume", "old", "--max-steps", "8", "--no-progress"]) == 0
    records = [json.loads(line) for line in open("old/metrics.jsonl")]
    assert [r["step"] for r in records if r.get("split") != "eval"][-2:] == [7, 8]
    assert records[-1]["split"] == "eval" and records[-1]["step"] == 8


def test_no_plot_writes_no_plot_png(capsys):
    assert main(["train", text_file(), *TINY, "--max-steps", "4", "--no-plot", "--name", "np"]) == 0
    assert Path("runs/np/metrics.jsonl").exists() and not Path("runs/np/plot.png").exists()
