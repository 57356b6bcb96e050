"""``rnnkit train``: settings -> task and data -> model -> Trainer, in a run directory."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import torch

from rnnkit import kernels
from rnnkit.cli import report, rundir
from rnnkit.cli.settings import (
    ALIASES,
    ConfigError,
    TrainSettings,
    build_settings,
    resolve_model_size,
    set_threads,
    task_kind,
)
from rnnkit.data.errors import DataError
from rnnkit.data.split import split_documents, split_tail
from rnnkit.objectives import make_objective
from rnnkit.tasks import load_task
from rnnkit.train import StreamBatcher, TrainConfig, Trainer
from rnnkit.train import distributed as ddp
from rnnkit.train.presets import (
    DEEP,
    MODEL_SIZES,
    TextPlan,
    epoch_steps,
    eval_batches,
    plan_text,
    seconds_per_step,
)
from rnnkit.train.trainer import resolve_device

# What may change when a run is resumed: the budget and where it runs, never the model or data.
RESUMABLE = {"max_time", "max_steps", "max_epochs", "device", "progress", "plot", "patience",
             "threads"}
# TrainSettings' fields that are TrainConfig's too, passed by name.
TRAINER_FIELDS = ({f.name for f in dataclasses.fields(TrainConfig)}
                  & {f.name for f in dataclasses.fields(TrainSettings)})


def _objective_params(text: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"objective_args: expected key=value, got {item!r}")
        for cast in (int, float):
            try:
                params[key.strip()] = cast(value)
                break
            except ValueError:
                continue
        else:
            lowered = value.strip().lower()
            params[key.strip()] = {"true": True, "false": False}.get(lowered, value.strip())
    return params


def check_chunk(train_steps: int, s: TrainSettings) -> None:
    """Refuse a chunk longer than each of the batch's parallel streams (before any run dir)."""
    stream = train_steps // s.batch_size
    if s.chunk_length > stream:
        raise DataError(
            f"chunk length {s.chunk_length} is longer than the data allows: {train_steps} "
            f"training steps in {s.batch_size} streams give {stream} steps each; use a smaller "
            "--chunk-length or --batch-size, or more data"
        )


def step_budget(s: TrainSettings, train_steps: int) -> int:
    """The run's budget in optimizer steps (0: none): ``--max-steps``, or ``--max-epochs``
    passes over the training data, whichever is smaller. One pass is what the batcher reads:
    ``train_steps // batch_size`` steps per stream, in whole chunks of ``chunk_length``."""
    budgets = [s.max_steps] if s.max_steps else []
    if s.max_epochs:
        budgets.append(epoch_steps(s.max_epochs, train_steps, s.batch_size, s.chunk_length))
    return min(budgets, default=0)


def epochs_bind(s: TrainSettings, max_steps: int) -> bool:
    """Whether the step budget is the one ``--max-epochs`` gives (for the messages)."""
    return bool(max_steps) and max_steps != s.max_steps


def eval_max_batches(s: TrainSettings) -> int:
    """The batches an evaluation reads at most (0: the whole validation split): the flag, or
    ``presets.eval_batches`` of ``--eval-every`` when it is not given."""
    return eval_batches(s.eval_every) if s.eval_max_batches is None else s.eval_max_batches


def trainer_config(s: TrainSettings, device: str, max_steps: int) -> TrainConfig:
    """The Trainer's settings: the fields of the same name, the step budget, and the
    optimizer (AdamW with decoupled weight decay, Adam without)."""
    if not s.max_time and not max_steps:
        raise ConfigError("set a budget: --max-time SECONDS, --max-steps N or --max-epochs E "
                          "(all are 0)")
    values = {name: getattr(s, name) for name in TRAINER_FIELDS}
    values["eval_max_batches"] = eval_max_batches(s) or None  # the trainer's None: all
    try:
        return TrainConfig(
            **{**values, "max_steps": max_steps, "device": device},
            # AdamW with no decay is Adam; naming Adam then keeps older runs' optimizer exact
            optimizer="adamw" if s.weight_decay else "adam",
            eval_at_end=True,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None


def settings_for(argv_flags: dict[str, Any], config_values: dict[str, Any], source: str,
                 resume: str | None) -> tuple[TrainSettings, Path | None]:
    """The settings of a new run (defaults < config file < flags), or of the resumed run
    (its saved config < the budget flags)."""
    in_file = {ALIASES.get(k, k) for k in (str(k).replace("-", "_") for k in config_values)}
    given = set(argv_flags) | in_file
    if resume is None:
        settings = _steps_only(build_settings(TrainSettings, config_values, argv_flags, source),
                               given)
        plan = plan_auto_text(settings, given)
        if plan:
            settings.model_size = plan.size
        settings = resolve_model_size(settings, given, in_file - set(argv_flags))
        if plan:
            for name, value in plan.changes.items():
                if name not in given:
                    setattr(settings, name, value)
            # not a field (config.yaml records the settings it chose, not why): the start note
            settings.__dict__["plan"] = plan
        return settings, None
    run = rundir.find_run(resume)
    only = ", ".join("--" + k.replace("_", "-") for k in sorted(RESUMABLE))
    changed = sorted(set(argv_flags) - RESUMABLE - {"files"})
    if changed or argv_flags.get("files"):
        bad = ", ".join("--" + k.replace("_", "-") for k in changed) or "FILE"
        raise ConfigError(f"--resume continues {run} with its saved settings; {bad} cannot "
                          f"change (only {only} can)")
    from_file = {str(k).replace("-", "_"): v for k, v in config_values.items()}
    if set(from_file) - RESUMABLE:
        bad = ", ".join(sorted(set(from_file) - RESUMABLE))
        raise ConfigError(f"--resume continues {run} with its saved settings; the config file's "
                          f"{bad} cannot change (only {only} can)")
    saved = {**rundir.read_settings(run), **from_file}
    settings = build_settings(TrainSettings, saved, argv_flags, str(run / rundir.CONFIG))
    return _steps_only(settings, given), run


def plan_auto_text(settings: TrainSettings, given: set[str]) -> TextPlan | None:
    """``--model-size auto`` on text with a time budget: the plan of
    :func:`rnnkit.train.presets.plan_text` for this text, budget and machine (each preset's
    step rate timed on two steps, with the run's threads and the flags given). None when auto
    does not plan (another size, a CSV, no time budget), cannot (the data or a model fails to
    load: the run itself then says why), or must not: under torchrun each process would time
    its own steps and might plan another model than its peers, so there the budget decides."""
    if (settings.model_size != "auto" or task_kind(settings) != "text" or not settings.max_time
            or int(os.environ.get("WORLD_SIZE", "1")) > 1):
        return None
    try:
        task, docs = load_task("text", settings.files, settings.columns)
        train_chars = split_tail(sum(len(d) for d in docs), settings.val_fraction)
        if train_chars < 1:
            return None
        set_threads(settings.threads)

        def rate(size: str, **fields: Any) -> float:
            """Steps a second of preset ``size``, with ``fields`` not given changed."""
            probe = resolve_model_size(dataclasses.replace(settings, model_size=size), given)
            probe = dataclasses.replace(probe, **{k: v for k, v in fields.items()
                                                  if k not in given})
            model = task.build_model(probe, [])
            return 1.0 / seconds_per_step(model, len(task.vocab), probe.batch_size,
                                          probe.chunk_length)

        rates = {size: rate(size) for size in MODEL_SIZES}
        # the two-layer large model is timed only where the plan asks (the large one overfits)
        return plan_text(train_chars, settings.max_time, rates, settings.batch_size,
                         lambda: rate("large", **DEEP))
    except (DataError, ConfigError, ValueError, TypeError, RuntimeError):
        return None


def auto_size_note(settings: TrainSettings, given: set[str]) -> str:
    """What a new run's start says when ``--model-size auto`` took the large preset for want
    of a time budget (a step or epoch budget alone, or --max-time 0): it is several times
    slower per step than the small one, which a short step budget may not expect. When auto
    planned for the text and budget (:func:`plan_auto_text`), the plan's reason."""
    plan = settings.__dict__.get("plan")
    if plan is not None and "model_size" not in given:
        # a flag given wins over the plan: say what ran in its place
        kept = ", ".join(f"{name} {getattr(settings, name):g}" for name in plan.changes
                         if name in given and getattr(settings, name) != plan.changes[name])
        return f"auto: {plan.reason}" + (f" (as given: {kept})" if kept else "")
    if "model_size" in given or settings.model_size != "large" or settings.max_time:
        return ""
    budget = "--max-time 0" if "max_time" in given else "a step or epoch budget alone"
    return (f"note: the large model preset, as --model-size auto picks with no time budget "
            f"({budget}): it is several times slower per step than the small one; pass "
            "--model-size small to keep the small one")


def _steps_only(settings: TrainSettings, given: set[str]) -> TrainSettings:
    """A step or epoch budget given alone turns the (default) time budget off."""
    budgets = {name for name in ("max_steps", "max_epochs") if getattr(settings, name)}
    if given & budgets and "max_time" not in given:
        settings.max_time = 0.0
    return settings


def run_training(s: TrainSettings, resume_run: Path | None = None,
                 restart_schedule: bool = False, note: str = "") -> dict[str, Any]:
    """Train as the settings say; returns the trainer's summary plus the run directory.
    ``restart_schedule``: a resumed run with a new budget follows the schedule over all of it
    (see Trainer.resume). ``note``: a line said after the start lines (on rank 0).

    Under torchrun every process runs this; rank 0 alone makes and writes the run directory
    (the trainer writes only on rank 0 too), and every rank trains in the one directory."""
    if s.model_size == "auto" and resume_run is None:
        s = resolve_model_size(s)  # a caller that built TrainSettings itself
    threads = set_threads(s.threads)
    try:
        device = str(resolve_device(s.device))
    except ValueError as err:
        raise ConfigError(f"--device {s.device}: {err}") from None
    task, docs = load_task(task_kind(s), s.files, s.columns)
    train, val = split_documents(docs, s.val_fraction)
    val = [v for v in val if len(v) >= 2]  # a 1-step piece has no next-step target
    if s.val_fraction > 0 and not val:
        raise DataError(f"the validation split (last {s.val_fraction:.0%}) is too short to "
                        "score; use more data or a larger --val-fraction")
    train_steps = sum(len(t) - 1 for t in train)
    try:
        check_chunk(train_steps, s)
    except DataError as err:
        if task.kind != "forecast":
            raise
        raise DataError(f"{err}; for a dated series, `rnnkit forecast {s.files[0]}` trains "
                        "on windows and takes short series") from None
    max_steps = step_budget(s, train_steps)
    cfg = trainer_config(s, device, max_steps)
    try:
        regularizers = {k: v for k, v in (("ar", s.ar), ("tar", s.tar)) if v}
        objective = make_objective(s.objective, **_objective_params(s.objective_args),
                                   **regularizers)
        torch.manual_seed(s.seed)
        model = task.build_model(s, train)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None
    except (RuntimeError, MemoryError) as err:  # e.g. a width whose weights cannot be allocated
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"cannot build the model ({s.cell} {s.num_layers}x{s.hidden_size}): "
                          f"{first}") from None
    if device == "cpu":
        kernels.available()  # compile the step kernels (first use) before the clock starts

    ddp.init_from_env(torch.device(device))
    try:
        rank, _ = ddp.rank_and_world()
        run = resume_run or _make_run(s, task, rank)
        with rundir.lock(run) if rank == 0 else contextlib.nullcontext():
            return _train_in(run, s, task, model, objective, cfg, train, val, device, threads,
                             max_steps, resume_run is not None, restart_schedule, note)
    finally:
        ddp.shutdown()


def _make_run(s: TrainSettings, task: Any, rank: int) -> Path:
    """Rank 0 picks the name and makes the directory; the other ranks learn it from rank 0."""
    run = None
    if rank == 0:
        run = rundir.pick_name(s.runs_dir, s.name, _default_name(s))
        files = [str(Path(f).resolve()) for f in s.files]  # so `sample` works from anywhere
        rundir.create(run, dataclasses.asdict(s), {**task.describe(), "files": files})
    return Path(ddp.broadcast_object(str(run) if run else None))


def _train_in(run: Path, s: TrainSettings, task: Any, model: torch.nn.Module, objective: Any,
              cfg: TrainConfig, train: list[torch.Tensor], val: list[torch.Tensor], device: str,
              threads: int, max_steps: int, resuming: bool,
              restart_schedule: bool = False, note: str = "") -> dict[str, Any]:
    eval_data = None
    if val:
        val_steps = sum(len(v) - 1 for v in val)
        eval_data = StreamBatcher(val, min(s.batch_size, val_steps), device=device)
    trainer = Trainer(model, cfg, train, eval_data, objective, run,
                      on_eval=report.EvalReport(task, run, s.seed, s.sample_length, train, val))
    if resuming:
        trainer.resume(run / "last.pt", restart_schedule)
        _check_budget_left(trainer, s, max_steps)
        if trainer.rank == 0:
            _say_schedule(trainer, restart_schedule)
    if trainer.rank == 0:
        report.announce(task, s, run, model, sum(len(t) for t in train),
                        sum(len(v) for v in val), f"{device}, {threads} threads", max_steps,
                        epochs_bind(s, max_steps))
        if note:
            print(note, file=sys.stderr)
    summary = trainer.fit()
    if summary["stop_reason"] == "max_steps" and epochs_bind(s, max_steps):
        summary["stop_reason"] = f"max_epochs {s.max_epochs:g}"
    summary["run"] = str(run)
    if trainer.rank == 0:
        report.finish(task, summary, run)
    return summary


def _default_name(s: TrainSettings) -> str:
    return Path(s.files[0]).stem if s.files else "pydoc-topics"


def _say_schedule(trainer: Trainer, restarted: bool) -> None:
    """A resumed run whose budget changed: say where its learning rate goes from here."""
    schedule = trainer.lr_schedule
    if schedule.kind == "constant" or not (restarted or schedule.start_step == trainer.step):
        return
    lr = trainer.base_lrs[0] * schedule.factor(trainer.step, trainer.elapsed)
    if restarted:
        print(f"note: --restart-schedule: the learning rate follows the cosine over the new "
              f"budget, {lr:.3g} at step {trainer.step}", file=sys.stderr)
    else:
        print(f"note: the budget changed: the learning rate anneals from {lr:.3g}, where the "
              f"run stopped, to the new budget's end (--restart-schedule follows the cosine "
              "over the whole new budget instead)", file=sys.stderr)


def _check_budget_left(trainer: Trainer, s: TrainSettings, max_steps: int) -> None:
    if max_steps and trainer.step >= max_steps:
        by_epochs = epochs_bind(s, max_steps)
        done = f" ({s.max_epochs:g} epochs)" if by_epochs else ""
        raise DataError(f"the run has done its {max_steps} steps{done}; pass a larger "
                        f"{'--max-epochs' if by_epochs else '--max-steps'} to continue")
    if s.max_time and trainer.elapsed >= s.max_time:
        raise DataError(f"the run has used its {s.max_time:g} s; pass a larger --max-time "
                        "to continue")
