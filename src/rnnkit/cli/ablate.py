"""``rnnkit ablate``: what each trick buys the default model of ``rnnkit train``.

The study trains the model ``rnnkit train FILE`` would train under the same budget (the same
TrainSettings path: :func:`rnnkit.cli.train.settings_for` and :func:`run_training`), then the
same model with each trick of :data:`TOGGLES` toggled one at a time (off where the default has
it on, on where it has it off), every run under the same budget and seeds.

Honest splits: the file's last ``--test-fraction`` is cut off as the test split and never
given to a run; each run trains on the rest (its own validation split is the last 10% of
that, which keeps its best checkpoint), and the study scores the best checkpoint on the test
split. The report's numbers are those test losses (rnnkit.cli.ablate_report).

Output directory::

    data/train.txt, data/test.txt   the splits (train.txt is what every run reads)
    runs/<trick>-seed<k>/           each run's directory, as ``rnnkit train`` writes it
    runs/<trick>-seed<k>.log        what the run printed
    results/<trick>-seed<k>.json    one per finished run: a rerun skips these
    study.json                      the data, budget and base settings of the study
    report.md, ablation.json, effects.png, curves.png
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import multiprocessing
import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from rnnkit.cli import ablate_report, rundir
from rnnkit.cli.settings import AblateSettings, ConfigError, TrainSettings, task_kind
from rnnkit.cli.train import check_chunk, run_training, settings_for
from rnnkit.data.errors import DataError
from rnnkit.data.split import split_tail
from rnnkit.data.text import DEFAULT_CORPUS_NAME, load_texts

Overrides = Callable[[TrainSettings], dict[str, Any]]


# ------------------------------------------------------------------ the toggles


def switch(name: str) -> Overrides:
    """A boolean setting flipped."""
    return lambda s: {name: not getattr(s, name)}


def amount(name: str, on: float) -> Overrides:
    """A rate or count: ``on`` where the default has none, none where it has some."""
    return lambda s: {name: type(on)(0) if getattr(s, name) else on}


def either(name: str, a: Any, b: Any) -> Overrides:
    """``b`` where the default is ``a``, else ``a``."""
    return lambda s: {name: b if getattr(s, name) == a else a}


def fixed(**values: Any) -> Overrides:
    """These values, whatever the default (a row equal to the default is skipped)."""
    return lambda s: dict(values)


def scaled(name: str, factor: float) -> Overrides:
    return lambda s: {name: max(1, round(getattr(s, name) * factor))}


def summed_layers(s: TrainSettings) -> dict[str, Any]:
    """S4: one layer of H units becomes two of H/2 whose outputs are summed (the same units,
    split in depth); a deeper default flips sum_outputs."""
    if s.num_layers == 1:
        return {"num_layers": 2, "hidden_size": max(1, s.hidden_size // 2), "sum_outputs": True}
    return {"sum_outputs": not s.sum_outputs}


def always(s: TrainSettings) -> str:
    return ""


def lstm_only(s: TrainSettings) -> str:
    return "" if s.cell == "lstm" else f"an LSTM setting; the default cell is {s.cell.upper()}"


@dataclass(frozen=True)
class Toggle:
    """One row of the study: a named override of the default TrainSettings. ``skip`` says why
    the row does not apply to a default ('' when it does)."""

    name: str
    overrides: Overrides
    skip: Callable[[TrainSettings], str] = always


# One row per trick; adding a trick is adding a row (its name is what --tricks takes).
TOGGLES: list[Toggle] = [
    Toggle("cell", either("cell", "gru", "lstm")),                      # S1
    Toggle("layer_norm", switch("layer_norm")),                         # S2
    Toggle("input_layers", amount("input_layers", 1)),                  # S3
    Toggle("sum_outputs", summed_layers),                               # S4
    Toggle("learned_initial_state", switch("learned_initial_state")),   # S5
    Toggle("forget_bias", either("forget_bias", 1.0, 0.0), lstm_only),  # S6
    Toggle("recurrent_dropout", amount("recurrent_dropout", 0.1)),      # S7
    Toggle("zoneout", amount("zoneout", 0.05)),                         # S7
    Toggle("dropout", amount("dropout", 0.2)),
    Toggle("embed_dropout", amount("embed_dropout", 0.1)),
    Toggle("weight_decay", amount("weight_decay", 0.1)),
    Toggle("ema_decay", amount("ema_decay", 0.995)),
    Toggle("clip_none", fixed(clip="none")),                            # O2
    Toggle("clip_norm", fixed(clip="norm")),
    Toggle("clip_auto", fixed(clip="auto")),
    Toggle("chunk_half", scaled("chunk_length", 0.5)),                  # O4
    Toggle("chunk_double", scaled("chunk_length", 2)),
    Toggle("open_loop", fixed(objective="open_loop", objective_args="horizon=8; weight=0.5")),
    Toggle("scheduled_sampling", fixed(objective="scheduled_sampling")),  # O6
    Toggle("professor", fixed(objective="professor")),
    # the AWD-LSTM switches (issue 19)
    Toggle("weight_drop", amount("weight_drop", 0.2)),
    Toggle("locked_dropout", fixed(dropout_mode="locked", input_dropout=0.1, output_dropout=0.1)),
    Toggle("recurrent_dropout_per_sequence", fixed(recurrent_dropout=0.1,
                                                   recurrent_dropout_mode="per_sequence")),
    Toggle("embed_dropout_words", fixed(embed_dropout=0.1, embed_dropout_mode="words")),
    Toggle("ar_tar", fixed(ar=2.0, tar=1.0)),
    Toggle("init_orthogonal", fixed(init="orthogonal")),
    Toggle("chrono_init", fixed(chrono_init=200.0)),
    # the AWD-LSTM recipe as one row (Merity et al. 2018): issue 19's comparison
    Toggle("awd", fixed(weight_drop=0.2, dropout_mode="locked", input_dropout=0.1,
                        output_dropout=0.1, embed_dropout=0.1, embed_dropout_mode="words",
                        ar=2.0, tar=1.0)),
]

# A series study toggles the forecaster's settings (rnnkit.forecasting.ForecastConfig,
# docs/forecasting.md) against the default config for the data.
SERIES_TOGGLES: list[Toggle] = [
    Toggle("lags", fixed(lags=(1,))),                                   # seasonal lags off
    Toggle("calendar", fixed(calendar=())),                             # calendar features off
    Toggle("scaling_mean_abs", fixed(scaling="mean_abs")),              # DeepAR's scaling
    Toggle("scaling_none", fixed(scaling="none")),
    Toggle("likelihood", either("likelihood", "student_t", "gaussian")),
    Toggle("skip", either("skip", "least_squares", "")),                # the linear AR highway
    Toggle("loss_on", either("loss_on", "all", "horizon")),
    Toggle("open_loop", either("objective", "teacher_forcing", "open_loop")),  # multi-step
    Toggle("calibrate_crps", either("calibrate", "coverage", "crps")),
    Toggle("calibrate_off", fixed(calibrate="")),
    Toggle("context_spread", either("context_spread", True, False)),   # the spread floor
    Toggle("num_layers", either("num_layers", 2, 1)),
    Toggle("hidden_half", scaled("hidden_size", 0.5)),
    Toggle("hidden_double", scaled("hidden_size", 2)),
    Toggle("dropout", amount("dropout", 0.1)),
    Toggle("context_double", scaled("context_length", 2)),
]

# --quick: a few tricks, a tiny model, a slice of the data (flags given win).
QUICK_TRICKS = ["cell", "layer_norm", "forget_bias", "zoneout", "clip_auto"]
QUICK_SERIES_TRICKS = ["lags", "calendar", "skip", "likelihood"]  # a CSV: the forecaster's
QUICK = {"steps": 40, "seeds": 2}
QUICK_MODEL = {"embed_dim": 16, "hidden_size": 48, "batch_size": 8, "chunk_length": 32,
               "eval_every": 10, "lr": 1e-2}
QUICK_CHARS = 60_000
# Fields that may differ between the study's invocations without changing what a run means.
VOLATILE = {"threads", "progress"}
DEFAULT = "default"


# ------------------------------------------------------------------ the plan


@dataclass
class Row:
    """A setting of the report: the default or one toggle, and its runs' ids (one per seed)."""

    trick: str
    setting: str
    overrides: dict[str, Any]
    run_ids: list[str]


@dataclass
class Plan:
    rows: list[Row]
    skipped: list[tuple[str, str]]  # (trick, why)
    jobs: list[dict[str, Any]]      # what run_one takes, one per run


def choose_toggles(names: Iterable[str], toggles: list[Toggle] | None = None) -> list[Toggle]:
    """The rows named (all when none), in the table's order; an unknown name is an error."""
    toggles = TOGGLES if toggles is None else toggles
    table = {t.name: t for t in toggles}
    names = list(names)
    for name in names:
        if name not in table:
            close = difflib.get_close_matches(name, table, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"--tricks: unknown trick {name!r}{hint} (tricks: "
                              f"{', '.join(table)})")
    return [t for t in toggles if not names or t.name in names]


def describe(overrides: dict[str, Any], base: TrainSettings) -> str:
    """'layer_norm True -> False, ...': each changed setting, default first."""
    return ", ".join(f"{k} {_show(getattr(base, k))} -> {_show(v)}" for k, v in overrides.items())


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) and not value else str(value)


def plan_rows(toggles: Iterable[Toggle], base: Any, default: str,
              unfit: Callable[[dict[str, Any]], str]) -> tuple[list[Row], list[tuple[str, str]]]:
    """The default row and one row per toggle that changes ``base`` and that ``unfit`` (the
    reason the overridden settings cannot run on this data, '' when they can) accepts."""
    rows = [Row(DEFAULT, default, {}, [])]
    skipped: list[tuple[str, str]] = []
    for toggle in toggles:
        why = toggle.skip(base)
        overrides = {k: v for k, v in toggle.overrides(base).items() if getattr(base, k) != v}
        if not why and not overrides:
            why = "the same as the default"
        if not why:
            why = unfit(overrides)
        if why:
            skipped.append((toggle.name, why))
        else:
            rows.append(Row(toggle.name, describe(overrides, base), overrides, []))
    return rows, skipped


def make_plan(s: AblateSettings, base: TrainSettings, out: Path, test_file: Path,
              train_steps: int, threads: int) -> Plan:
    """The default row and one row per applicable toggle, each with a job per seed."""
    rows, skipped = plan_rows(
        choose_toggles(s.tricks), base, "the default of rnnkit train",
        lambda overrides: _too_long(dataclasses.replace(base, **overrides), train_steps))
    jobs = []
    for row in rows:
        for seed in range(s.seeds):
            run_id = f"{row.trick}-seed{seed}"
            row.run_ids.append(run_id)
            settings = dataclasses.replace(base, seed=seed, name=run_id, **row.overrides)
            jobs.append({"id": run_id, "trick": row.trick, "setting": row.setting,
                         "seed": seed, "settings": dataclasses.asdict(settings),
                         "kind": "text", "threads": threads, "test_file": str(test_file),
                         "result": str(out / "results" / f"{run_id}.json"),
                         "log": str(out / "runs" / f"{run_id}.log")})
    return Plan(rows, skipped, jobs)


def _too_long(settings: TrainSettings, train_steps: int) -> str:
    try:
        check_chunk(train_steps, settings)
    except DataError as err:
        return str(err).split(";")[0]
    return ""


# ------------------------------------------------------------------ data and settings


def resolve_study(s: AblateSettings, given: set[str]) -> AblateSettings:
    """--quick's values for what was not given; exactly one budget."""
    if s.quick:
        values = {**QUICK, "tricks": QUICK_SERIES_TRICKS if is_series(s) else QUICK_TRICKS}
        if "budget" in given:
            values.pop("steps")
        s = dataclasses.replace(s, **{k: v for k, v in values.items() if k not in given})
    if s.budget and s.steps:
        raise ConfigError(f"give --budget or --steps, not both (got --budget {s.budget:g} and "
                          f"--steps {s.steps})")
    if not s.budget and not s.steps:
        raise ConfigError("set a budget per run: --budget SECONDS or --steps N")
    if len(s.files) > 1:
        raise ConfigError(f"rnnkit ablate studies one file, got {len(s.files)}: "
                          f"{', '.join(s.files)}")
    choose_toggles(s.tricks, SERIES_TOGGLES if is_series(s) else TOGGLES)  # before any mkdir
    return s


def is_series(s: AblateSettings) -> bool:
    """A CSV file: a study of the forecaster (rnnkit forecast's), not of the char LM."""
    return bool(s.files) and task_kind(TrainSettings(files=s.files)) == "forecast"


def out_dir(s: AblateSettings) -> Path:
    stem = Path(s.files[0]).stem if s.files else "pydoc-topics"
    return Path(s.out or f"runs/ablate-{stem}" + ("-quick" if s.quick else "")).resolve()


def write_splits(s: AblateSettings, out: Path) -> tuple[Path, Path, str]:
    """Cut the text into train and test (``test_fraction`` of it, at its end or, with
    ``test_at="start"``, at its start) files under ``out/data``; the sha256 of the whole
    text names the data in study.json."""
    text = load_texts(s.files)[0]
    if s.quick:
        text = text[:QUICK_CHARS]
    cut = split_tail(len(text), s.test_fraction)
    if s.test_at == "start":
        cut = len(text) - cut
        test, train = text[:cut], text[cut:]
    else:
        train, test = text[:cut], text[cut:]
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    paths = (data / "train.txt", data / "test.txt")
    for path, part in zip(paths, (train, test)):
        if not path.exists() or path.read_text(encoding="utf-8") != part:
            path.write_text(part, encoding="utf-8", newline="")
    return *paths, hashlib.sha256(text.encode("utf-8")).hexdigest()


def base_settings(s: AblateSettings, train_file: Path, out: Path, threads: int
                  ) -> TrainSettings:
    """What ``rnnkit train TRAIN --max-time B --threads T`` (or ``--max-steps N``) would run,
    quietly: no progress bar, samples or plot.png (the study draws every run's curves from
    its metrics). The runs' ``threads`` go in: ``--model-size auto`` times its steps with them,
    and a plan timed on every core counts more passes than a 1-thread run makes."""
    flags: dict[str, Any] = {"files": [str(train_file)], "runs_dir": str(out / "runs"),
                             "progress": False, "sample_length": 0, "plot": False,
                             "device": s.device, "threads": threads}
    flags.update({"max_time": s.budget} if s.budget else {"max_steps": s.steps})
    if s.quick:
        flags.update(QUICK_MODEL)
    return settings_for(flags, {}, "rnnkit ablate", None)[0]


def check_study(out: Path, study: dict[str, Any]) -> None:
    """A rerun must study the same data with the same budget and base settings: its finished
    runs are reused."""
    path = out / "study.json"
    if path.exists():
        old = json.loads(path.read_text())
        old.setdefault("test_at", "end")  # a study from before --test-at cut the end
        for key in ("data_sha256", "test_fraction", "test_at", "budget", "steps", "base"):
            if old.get(key) != study[key]:
                raise ConfigError(f"{out} holds a study with another {key} ({old.get(key)!r}, "
                                  f"now {study[key]!r}); choose another --out")
    write_json(path, study)


def comparable(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in VOLATILE}


def finished(job: dict[str, Any]) -> bool:
    """Whether the job's result is stored, for the same settings (else an error naming it)."""
    path = Path(job["result"])
    if not path.exists():
        return False
    try:
        old = json.loads(path.read_text())["settings"]
    except (ValueError, KeyError, TypeError):
        return False  # a damaged result: run it again
    new = comparable(job["settings"])
    if comparable(old) != new:
        key = next(k for k in new if old.get(k) != new[k])
        raise ConfigError(f"{path} is a run with {key} {old.get(key)!r}, this study's has "
                          f"{new[key]!r}; choose another --out")
    return True


def write_json(path: Path, data: Any) -> None:
    """Write whole or not at all: an interrupted study never leaves half a result."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------ one run


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job of either kind and store its result JSON; returns the result. Runs in a
    worker process or a Ray task."""
    result = (run_series if job.get("kind") == "series" else run_text)(job)
    write_json(Path(job["result"]), result)
    return result


def run_text(job: dict[str, Any]) -> dict[str, Any]:
    """Train one run as ``rnnkit train`` does and score its best checkpoint on the test
    split."""
    settings = TrainSettings(**{**job["settings"], "threads": job["threads"]})
    run_dir = Path(settings.runs_dir) / settings.name
    if run_dir.exists():  # an interrupted try of this run: start it again
        shutil.rmtree(run_dir)
    with open(job["log"], "w", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        summary = run_training(settings)
        if summary["stop_reason"] == "interrupted":  # Ctrl-C: not a finished run, store none
            raise KeyboardInterrupt
        test = test_score(run_dir, job["test_file"], settings.device)
    elapsed = summary["elapsed"]
    result = {key: job[key] for key in ("id", "trick", "setting", "seed")}
    result.update({
        "settings": comparable(job["settings"]), "steps": summary["steps"], "elapsed": elapsed,
        "steps_per_second": summary["steps"] / elapsed if elapsed > 0 else None,
        "stop_reason": summary["stop_reason"], "best_val_loss": summary["best_eval_loss"],
        "best_step": summary["best_step"], **test, "run_dir": str(run_dir),
    })
    return result


def test_score(run_dir: Path, test_file: str, device: str) -> dict[str, Any]:
    """The best checkpoint's mean loss (nats/char) on the test split. Characters the run never
    saw in training are skipped (the same ones for every run) and counted."""
    from rnnkit.cli.infer import load_model
    from rnnkit.tasks import score

    try:
        model, task = load_model(run_dir, "best", device)
    except DataError as err:  # e.g. the run diverged: no usable weights
        return {"test_loss": None, "test_error": str(err)}
    ids, skipped = task.read_file(test_file, unknown="skip")
    return {"test_loss": score(model, ids), "test_chars": len(ids), "test_skipped": skipped}


# ------------------------------------------------------------------ series studies


def plan_series(s: AblateSettings, out: Path, threads: int) -> tuple[Plan, Any, dict[str, Any]]:
    """A study of ``rnnkit forecast``'s forecaster on a dated CSV: the plan, the default
    ForecastConfig and what study.json records. The test split is the last ``windows * H``
    rows of each series (``windows`` origins H apart); no run trains on them."""
    from rnnkit.cli.forecast import load_csv_series, series_meta
    from rnnkit.forecasting import default_config
    from rnnkit.forecasting.backtest import min_train_rows
    from rnnkit.forecasting.data import default_horizon, series_frequency

    path = Path(s.files[0])
    meta = series_meta(s)
    series = load_csv_series(str(path), meta)
    horizon = s.horizon or default_horizon(series)
    freq = series_frequency(series)
    lengths = [len(x.values) - s.windows * horizon for x in series]
    need = min_train_rows(horizon, freq.season, panel=len(series) > 1)
    short = min(lengths) < need
    extra = {"embedding_dim": 4 if len(series) > 1 else 0}  # as train_forecaster's default

    def unfit(overrides: dict[str, Any]) -> str:
        try:
            default_config(lengths, freq, horizon, **extra, **overrides)
        except (DataError, ValueError) as err:
            return str(err).split(";")[0]
        return ""

    why = (f"too short ({need} rows needed)" if short else unfit({}))
    if why:
        raise DataError(f"{path}: {why}: the series leave {min(lengths)} rows before a test "
                        f"split of --windows {s.windows} x --horizon {horizon}; give fewer "
                        "--windows or a shorter --horizon")
    base = default_config(lengths, freq, horizon, **extra)
    rows, skipped = plan_rows(choose_toggles(s.tricks, SERIES_TOGGLES), base,
                              "the default of rnnkit forecast", unfit)
    jobs = []
    for row in rows:
        for seed in range(s.seeds):
            run_id = f"{row.trick}-seed{seed}"
            row.run_ids.append(run_id)
            settings = {"file": str(path.resolve()), **meta, "horizon": horizon,
                        "windows": s.windows, "max_time": s.budget or None,
                        "max_steps": s.steps or None, "seed": seed,
                        "overrides": row.overrides}
            jobs.append({"id": run_id, "trick": row.trick, "setting": row.setting,
                         "seed": seed, "kind": "series", "threads": threads,
                         "settings": json.loads(json.dumps(settings)),
                         "result": str(out / "results" / f"{run_id}.json"),
                         "log": str(out / "runs" / f"{run_id}.log")})
    study = {"kind": "series", "metric": "MASE", "series": len(series),
             "frequency": freq.name, "horizon": horizon, "windows": s.windows,
             "base": json.loads(json.dumps(dataclasses.asdict(base)))}
    return Plan(rows, skipped, jobs), base, study


def run_series(job: dict[str, Any]) -> dict[str, Any]:
    """Train the forecaster once on the rows before the first test origin and score its
    forecasts at every origin (rnnkit.forecasting.backtest, no refit): MASE of the median,
    mean over origins and series, beside SeasonalNaive's on the same origins."""
    from rnnkit.cli.forecast import load_csv_series
    from rnnkit.cli.settings import set_threads
    from rnnkit.forecasting import backtest

    st = job["settings"]
    set_threads(job["threads"])
    run_dir = Path(job["log"]).with_suffix("")
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in st["overrides"].items()}
    with open(job["log"], "w", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        out = backtest(load_csv_series(st["file"], st), st["horizon"], windows=st["windows"],
                       refit=False, max_time=st["max_time"], max_steps=st["max_steps"],
                       seed=st["seed"], **overrides)
    fit, methods = out["fits"][0], out["methods"]
    with open(run_dir / "metrics.jsonl", "w") as f:  # the curves plot reads these
        for check in fit["history"]:
            f.write(json.dumps({"split": "eval", "step": check["step"],
                                "loss": check["val_crps"]}) + "\n")
    result = {key: job[key] for key in ("id", "trick", "setting", "seed")}
    result.update({
        "settings": st, "steps": fit["steps"], "elapsed": fit["seconds"],
        "steps_per_second": fit["steps"] / fit["seconds"] if fit["seconds"] > 0 else None,
        "stop_reason": fit["stop_reason"], "best_val_loss": fit["best_score"],
        "best_step": fit["best_step"], "test_loss": methods["deepar"]["mase"],
        "test_scaled_crps": methods["deepar"].get("scaled_crps"),
        "test_coverage": methods["deepar"].get("coverage"),
        "baselines_mase": {name: methods[name]["mase"] for name in ("naive", "seasonal_naive")},
        "run_dir": str(run_dir),
    })
    return result


# ------------------------------------------------------------------ backends


def run_local(jobs: list[dict[str, Any]], workers: int, bar: tqdm) -> None:
    """``workers`` processes at once. A pool of processes that call run_one, not subprocesses
    of ``rnnkit train``: the same function serves the Ray backend, results come back as
    objects and a user error as its exception, with no output to parse. Spawned, not forked:
    a fork of a process that has used torch's thread pool can hang."""
    if workers == 1:
        for job in jobs:
            run_one(job)
            bar.update()
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending = {pool.submit(run_one, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # a failed run stops the study; finished ones stay stored
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(jobs: list[dict[str, Any]], workers: int, threads: int, bar: tqdm) -> None:
    """One Ray task per run (``num_cpus=threads`` each), on a local Ray instance of
    ``workers * threads`` CPUs, or on the cluster RAY_ADDRESS names (the output directory
    must then be on storage every node shares)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'rnnkit[ray]' (or ray>=2)"
                          ) from None
    started = not ray.is_initialized()
    if started:
        if os.environ.get("RAY_ADDRESS"):
            ray.init()
        else:
            ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": _import_path()}})
    task = ray.remote(num_cpus=threads)(run_one)
    pending = [task.remote(job) for job in jobs]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except ray.exceptions.RayTaskError as err:  # re-raise the run's own error
                raise err.cause if isinstance(err.cause, Exception) else err from None
            bar.update()
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


def _import_path() -> str:
    """PYTHONPATH for local Ray workers: this rnnkit first (a source checkout must not lose to
    an installed copy), then the driver's entries made absolute (workers start elsewhere)."""
    here = str(Path(__file__).resolve().parents[2])
    given = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
             if p]
    return os.pathsep.join(dict.fromkeys([here, *given]))


def cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ------------------------------------------------------------------ the study


def _plan_study(s: AblateSettings, out: Path, threads: int,
                workers: int) -> tuple[Any, Plan, dict[str, Any]]:
    """The default settings, the plan of runs and what study.json records."""
    base: Any
    if is_series(s):
        plan, base, study = plan_series(s, out, threads)
        sha = hashlib.sha256(Path(s.files[0]).read_bytes()).hexdigest()
    else:
        train_file, test_file, sha = write_splits(s, out)
        base = base_settings(s, train_file, out, threads)
        train_steps = split_tail(len(train_file.read_text(encoding="utf-8")),
                                 base.val_fraction) - 1
        plan = make_plan(s, base, out, test_file, train_steps, threads)
        study = {"kind": "text", "metric": "loss (nats/char)",
                 "base": comparable(dataclasses.asdict(base))}
    study.update({"file": s.files[0] if s.files else DEFAULT_CORPUS_NAME, "data_sha256": sha,
                  "quick": s.quick, "test_fraction": s.test_fraction, "test_at": s.test_at,
                  "budget": s.budget,
                  "steps": s.steps, "seeds": s.seeds,
                  "machine": f"{platform.machine()}, {cores()} cores; {workers} runs at once "
                             f"with {threads} threads each ({s.backend}); torch "
                             f"{torch.__version__}"})
    return base, plan, study


def run_study(s: AblateSettings, given: set[str]) -> Path:
    """Plan, run what is not finished, write the report; returns the output directory."""
    s = resolve_study(s, given)
    out = out_dir(s)
    workers = s.jobs or cores()
    threads = s.threads or max(1, cores() // workers)
    with rundir.removed_on_error(out, keep=out.exists()):  # a refused study leaves nothing
        try:
            (out / "results").mkdir(parents=True, exist_ok=True)
            (out / "runs").mkdir(exist_ok=True)
        except OSError as err:
            raise DataError(f"cannot make the output directory {out}: {err.strerror or err}"
                            ) from None
        base, plan, study = _plan_study(s, out, threads, workers)
        check_study(out, study)
    todo = [job for job in plan.jobs if not finished(job)]
    _announce(s, base, plan, todo, workers, threads, out)
    if todo:
        if getattr(base, "device", "cpu") == "cpu":
            from rnnkit import kernels

            kernels.available()  # compile the step kernels once, before the workers start
        with tqdm(total=len(plan.jobs), initial=len(plan.jobs) - len(todo), unit="run",
                  desc="ablate", disable=not s.progress, dynamic_ncols=True) as bar:
            if s.backend == "ray":
                run_ray(todo, min(workers, len(todo)), threads, bar)
            else:
                run_local(todo, min(workers, len(todo)), bar)
    results = [json.loads(Path(job["result"]).read_text()) for job in plan.jobs]
    ablate_report.write(out, study, base, plan.rows, plan.skipped, results,
                        describe_default(base))
    print(f"report: {out / 'report.md'} (effects.png, curves.png, ablation.json)",
          file=sys.stderr)
    return out


def describe_default(base: Any) -> str:
    """The default model in a few words (the report and the announcement say it)."""
    if isinstance(base, TrainSettings):
        return (f"{base.model_size} preset, {base.cell.upper()} {base.num_layers}x"
                f"{base.hidden_size}, embeddings {base.embed_dim}, chunks of "
                f"{base.chunk_length}, batch {base.batch_size}")
    return (f"LSTM {base.num_layers}x{base.hidden_size}, lags {list(base.lags)}, calendar "
            f"{list(base.calendar) or 'none'}, context {base.context_length}, horizon "
            f"{base.horizon}, {base.scaling} scaling, {base.likelihood} likelihood, "
            f"{base.objective.replace('_', ' ')}, batch {base.batch_size}")


def _announce(s: AblateSettings, base: Any, plan: Plan, todo: list, workers: int,
              threads: int, out: Path) -> None:
    budget = f"{s.budget:g} s" if s.budget else f"{s.steps} steps"
    print(f"ablate: {len(plan.rows)} settings x {s.seeds} seeds = {len(plan.jobs)} runs of "
          f"{budget} ({len(plan.jobs) - len(todo)} already done); default: "
          f"{describe_default(base)}; {workers} at once with {threads} threads each "
          f"({s.backend}); output {out}", file=sys.stderr)
    for trick, why in plan.skipped:
        print(f"skipped {trick}: {why}", file=sys.stderr)
