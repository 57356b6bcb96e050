"""``rnnkit ablate``: the toggles table, the statistics, and a tiny study end to end (the
report's structure and resuming, not its numbers)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from rnnkit.cli import ablate, main
from rnnkit.cli.ablate_report import HELPS, HURTS, UNCLEAR, paired_effect, t975, verdict
from rnnkit.cli.settings import MODEL_SIZES, AblateSettings, TrainSettings

TRICKS = ["layer_norm", "forget_bias", "clip_norm", "zoneout"]
TINY = ["--quick", "--steps", "4", "--seeds", "2", "--tricks", ",".join(TRICKS), "--jobs", "1",
        "--threads", "1", "--out", "study", "--no-progress"]
RUN_ONE = ablate.run_one


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)


def text_file(name="t.txt"):
    Path(name).write_text("the cat sat on the mat. a dog ate the hat!\n" * 200, encoding="utf-8")
    return name


def count_runs(monkeypatch, stop_after=None):
    """Record the ids run_one trains; raise KeyboardInterrupt (Ctrl-C) after ``stop_after``."""
    ran = []

    def counting(job):
        if stop_after is not None and len(ran) == stop_after:
            raise KeyboardInterrupt
        ran.append(job["id"])
        return RUN_ONE(job)

    monkeypatch.setattr(ablate, "run_one", counting)
    return ran


def test_quick_study_reports_every_trick_and_a_rerun_skips_finished_runs(monkeypatch, capsys):
    path = text_file()
    ran = count_runs(monkeypatch, stop_after=3)
    assert main(["ablate", path, *TINY]) == 130  # interrupted after 3 runs
    assert len(ran) == 3 and len(list(Path("study/results").glob("*.json"))) == 3

    ran = count_runs(monkeypatch)
    assert main(["ablate", path, *TINY]) == 0
    total = 2 * 4  # the default and 3 applicable tricks (clip_norm is the default), 2 seeds
    assert len(ran) == total - 3  # the finished runs were skipped

    out = Path("study")
    report = (out / "report.md").read_text()
    assert "| trick | setting | test loss (nats/char), mean ± sd |" in report
    for trick in ["default", "layer_norm", "forget_bias", "zoneout"]:
        row = re.search(rf"^\| {trick} \|.*\|$", report, re.M)
        assert row, trick
        assert row.group(0).count("|") == 8
    assert "Skipped clip_norm: the same as the default." in report
    assert "layer_norm True -> False" in report  # the default (large preset) has layer norm
    for verdict_row in re.findall(r"^\| (?:layer_norm|forget_bias|zoneout) \|.*$", report, re.M):
        assert verdict_row.rstrip(" |").endswith((HELPS, HURTS, UNCLEAR))
    raw = json.loads((out / "ablation.json").read_text())
    assert len(raw["runs"]) == total and all(r["test_loss"] > 0 for r in raw["runs"])
    assert [e["trick"] for e in raw["table"]] == ["default", "layer_norm", "forget_bias",
                                                  "zoneout"]
    assert (out / "effects.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    # the test split is the file's tail and no run read it
    text = Path(path).read_text()
    test = (out / "data" / "test.txt").read_text()
    assert text.endswith(test) and (out / "data" / "train.txt").read_text() + test == text
    settings = raw["runs"][0]["settings"]
    assert settings["files"] == [str((out / "data" / "train.txt").resolve())]

    ran = count_runs(monkeypatch)
    assert main(["ablate", path, *TINY]) == 0
    assert ran == []  # everything finished: nothing runs again
    assert "(8 already done)" in capsys.readouterr().err


def test_a_run_stopped_by_ctrl_c_is_not_stored(monkeypatch):
    """The trainer turns Ctrl-C into an 'interrupted' summary: such a run is not finished."""
    monkeypatch.setattr(ablate, "run_training", lambda s: {"stop_reason": "interrupted"})
    assert main(["ablate", text_file(), *TINY]) == 130
    assert list(Path("study/results").iterdir()) == []


def test_a_study_directory_refuses_other_settings(capsys):
    path = text_file()
    with open(path, "a", encoding="utf-8") as f:
        f.write("ZZ\n")  # in the test split only: skipped, and said so
    assert main(["ablate", path, *TINY, "--tricks", "clip_norm", "--seeds", "1"]) == 0
    report = Path("study/report.md").read_text()
    assert "Characters of the test split that training never saw: 2;" in report
    study = json.loads(Path("study/study.json").read_text())
    del study["test_at"]  # a study made before --test-at: it cut the end, and resumes
    Path("study/study.json").write_text(json.dumps(study))
    assert main(["ablate", path, *TINY, "--tricks", "clip_norm", "--seeds", "1"]) == 0
    capsys.readouterr()
    assert main(["ablate", path, *TINY, "--tricks", "clip_norm", "--seeds", "1",
                 "--steps", "5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a study with another steps (4, now 5)" in err[0]


@pytest.mark.parametrize("argv, pattern", [
    (["--steps", "3", "--tricks", "layer_nrom"], r"unknown trick 'layer_nrom'; did you mean "
                                                 r"'layer_norm'\?"),
    (["--steps", "3", "--budget", "5"], r"give --budget or --steps, not both"),
    ([], r"set a budget per run: --budget SECONDS or --steps N"),
    (["--steps", "3", "--seeds", "0"], r"seeds \(--seeds\) must be in \[1, 1000\], got 0"),
])
def test_user_errors_are_one_line(argv, pattern, capsys):
    assert main(["ablate", text_file(), *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(pattern, err[0]), err


def monthly_csv(name="s.csv", rows=120):
    lines = ["month,sales"] + [f"{2000 + i // 12}-{i % 12 + 1:02d}-01,"
                               f"{100 + 10 * ((i % 12) - 6) ** 2 / 36 + i / 6:.3f}"
                               for i in range(rows)]
    Path(name).write_text("\n".join(lines) + "\n")
    return name


def test_a_series_study_scores_the_forecaster_on_the_last_origins(capsys):
    """A CSV studies rnnkit forecast's forecaster: one row per toggle, test MASE at the
    last W origins (the test split), the baselines on the same origins, resumable."""
    argv = ["ablate", monthly_csv(), "--steps", "6", "--seeds", "2", "--horizon", "6",
            "--windows", "2", "--tricks", "lags,open_loop,calendar", "--jobs", "1",
            "--threads", "1", "--out", "series", "--no-progress"]
    assert main(argv) == 0
    report = Path("series/report.md").read_text()
    assert "| trick | setting | test MASE, mean ± sd |" in report
    assert "the last 2 x 6 rows of each series" in report
    for trick in ["default", "lags", "open_loop", "calendar"]:
        assert re.search(rf"^\| {trick} \|.*\|$", report, re.M), trick
    assert "objective teacher_forcing -> open_loop" in report
    raw = json.loads(Path("series/ablation.json").read_text())
    assert len(raw["runs"]) == 8 and all(r["test_loss"] > 0 for r in raw["runs"])
    assert all(r["steps"] == 6 for r in raw["runs"])
    baselines = {json.dumps(r["baselines_mase"], sort_keys=True) for r in raw["runs"]}
    assert len(baselines) == 1  # every run is scored on the same origins
    assert raw["study"]["kind"] == "series" and raw["study"]["horizon"] == 6
    capsys.readouterr()
    assert main(argv) == 0
    assert "(8 already done)" in capsys.readouterr().err


def test_series_toggles_change_the_default_or_say_why():
    from rnnkit.forecasting import default_config
    from rnnkit.forecasting.frequency import FREQUENCIES

    base = default_config([300], FREQUENCIES["monthly"], 12)
    rows, skipped = ablate.plan_rows(ablate.SERIES_TOGGLES, base, "d", lambda o: "")
    assert {r.trick for r in rows[1:]} | {t for t, _ in skipped} == {
        t.name for t in ablate.SERIES_TOGGLES}
    for row in rows[1:]:
        assert row.overrides and all(getattr(base, k) != v for k, v in row.overrides.items())
        default_config([300], FREQUENCIES["monthly"], 12, **row.overrides)  # a valid config


def test_a_series_too_short_for_the_test_split_is_one_line(capsys):
    assert main(["ablate", monthly_csv(rows=40), "--steps", "3", "--windows", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give fewer --windows or a shorter --horizon" in err[0]


def test_the_test_split_can_be_the_start_of_the_file():
    path = text_file()
    with open(path, "a", encoding="utf-8") as f:
        f.write("the end.\n")
    assert main(["ablate", path, *TINY, "--tricks", "clip_norm", "--seeds", "1",
                 "--test-at", "start"]) == 0
    text = Path(path).read_text()
    test = Path("study/data/test.txt").read_text()
    assert text.startswith(test) and test + Path("study/data/train.txt").read_text() == text
    assert "the first 10% is the test split" in Path("study/report.md").read_text()


def base(size: str) -> TrainSettings:
    return TrainSettings(**MODEL_SIZES[size], model_size=size)


@pytest.mark.parametrize("size", ["small", "large"])
def test_every_toggle_changes_the_default_or_says_why_not(size):
    s = base(size)
    plan = ablate.make_plan(AblateSettings(steps=3, seeds=2), s, Path("o"), Path("test.txt"),
                            train_steps=10**6, threads=1)
    names = [t.name for t in ablate.TOGGLES]
    assert len(set(names)) == len(names) and "default" not in names
    shown = {row.trick for row in plan.rows} | {trick for trick, _ in plan.skipped}
    assert shown == {"default"} | {t.name for t in ablate.TOGGLES}
    for row in plan.rows[1:]:
        assert row.overrides and all(getattr(s, k) != v for k, v in row.overrides.items())
        dataclasses.replace(s, **row.overrides)  # a valid TrainSettings
    assert len(plan.jobs) == 2 * len(plan.rows)
    assert all(job["settings"]["seed"] in (0, 1) for job in plan.jobs)
    skipped = dict(plan.skipped)
    assert skipped["clip_norm"] == "the same as the default"
    if s.cell == "gru":
        assert skipped["forget_bias"] == "an LSTM setting; the default cell is GRU"


def test_toggles_flip_against_the_default():
    small, large = base("small"), base("large")
    rows = {t.name: t for t in ablate.TOGGLES}
    assert rows["layer_norm"].overrides(small) == {"layer_norm": True}
    assert rows["layer_norm"].overrides(large) == {"layer_norm": False}
    assert rows["dropout"].overrides(small) == {"dropout": 0.2}
    assert rows["dropout"].overrides(large) == {"dropout": 0.0}
    assert rows["cell"].overrides(small) == {"cell": "lstm"}
    assert rows["sum_outputs"].overrides(large) == {"num_layers": 2, "hidden_size": 256,
                                                    "sum_outputs": True}
    assert rows["chunk_half"].overrides(large) == {"chunk_length": 64}


def test_a_chunk_longer_than_the_data_skips_the_row():
    plan = ablate.make_plan(AblateSettings(steps=3, tricks=["chunk_double"]), base("small"),
                            Path("o"), Path("t.txt"), train_steps=32 * 100, threads=1)
    assert [r.trick for r in plan.rows] == ["default"]
    assert plan.skipped[0][1].startswith("chunk length 128 is longer than the data allows")


def test_paired_interval_and_verdict():
    # scipy.stats.t.ppf(0.975, df): exact at 1 and 2, the expansion within 0.11% from 3
    exact = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 10: 2.2281, 30: 2.0423}
    for df, q in exact.items():
        assert abs(t975(df) / q - 1) < (1e-4 if df <= 2 else 1.2e-3), (df, t975(df))
    assert abs(t975(60) - 2.000) < 1e-3 and abs(t975(120) - 1.980) < 1e-3
    default = {0: 1.50, 1: 1.52, 2: 1.49}
    better = {0: 1.40, 1: 1.43, 2: 1.38}  # differences -0.10, -0.09, -0.11
    mean, low, high, n = paired_effect(better, default)
    assert n == 3 and mean == pytest.approx(-0.10)
    assert (high - low) / 2 == pytest.approx(4.302653 * 0.01 / 3**0.5, rel=1e-5)  # t(0.975, 2)
    assert verdict(low, high) == HELPS
    assert verdict(0.01, 0.2) == HURTS and verdict(-0.1, 0.1) == UNCLEAR
    assert paired_effect({0: 1.0}, default)[1:] == (None, None, 1)
    assert paired_effect({5: 1.0}, default) == (None, None, None, 0)


def test_ray_backend_runs_the_study(capsys):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rnnkit[ray]'")
    path = text_file()
    try:
        code = main(["ablate", path, *TINY, "--tricks", "layer_norm", "--seeds", "1",
                     "--backend", "ray"])
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert code == 0, capsys.readouterr().err
    raw = json.loads(Path("study/ablation.json").read_text())
    assert [r["id"] for r in raw["runs"]] == ["default-seed0", "layer_norm-seed0"]


def test_help_lists_every_option_with_default(capsys):
    assert main(["ablate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(AblateSettings):
        if not f.metadata.get("positional"):
            assert "--" + f.name.replace("_", "-") in text, f.name
    assert text.count("(default:") >= len(dataclasses.fields(AblateSettings))


def test_the_default_is_planned_with_the_runs_threads(monkeypatch):
    # --model-size auto times its steps to count the passes a budget makes: timed on every
    # core, a study of 1-thread runs planned for more passes than they make (and another
    # branch of the plan)
    from rnnkit.cli import train

    timed = []

    def timing(*args, **kwargs):
        timed.append(torch.get_num_threads())
        return 0.01

    monkeypatch.setattr(train, "seconds_per_step", timing)
    monkeypatch.setattr(ablate, "run_one", lambda job: (_ for _ in ()).throw(KeyboardInterrupt))
    path = text_file()
    argv = ["ablate", path, "--budget", "5", "--seeds", "1", "--tricks", "dropout", "--jobs",
            "1", "--threads", "3", "--out", "study", "--no-progress"]
    assert main(argv) == 130
    assert timed and set(timed) == {3}
