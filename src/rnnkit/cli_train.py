"""``rnnkit train``: data -> model -> Trainer, with a run directory, a budget and samples."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from rnnkit import rundir
from rnnkit.cli_config import ConfigError, TrainSettings, build_settings, resolve_model_size
from rnnkit.data.errors import DataError
from rnnkit.multistep import make_objective
from rnnkit.tasks import (
    Task,
    TextTask,
    bits,
    check_chunk,
    load_task_data,
    split_documents,
)
from rnnkit.train import StreamBatcher, TrainConfig, Trainer, save_checkpoint
from rnnkit.train.plots import plot_metrics

# What may change when a run is resumed: the budget and where it runs, never the model or data.
RESUMABLE = {"max_time", "max_steps", "max_epochs", "device", "progress", "patience"}
UNLIMITED_STEPS = 10**12


def resolve_device(name: str) -> str:
    """``auto`` -> cuda when a GPU is there, else cpu; ``cuda`` without a GPU is refused."""
    if name == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class BudgetCosine:
    """Cosine learning-rate decay over the run's budget, in steps or in seconds, whichever
    runs out first: ``lr * (final + (1 - final) * (1 + cos(pi * progress)) / 2)``.

    A time budget is the CLI's default, so the schedule must know the clock; its state (steps
    and seconds used) goes into the checkpoint, so a resumed run continues the same curve.
    It also drives the progress bar, which shows the share of the budget that is spent.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_steps: int, max_time: float,
                 final: float, progress: bool) -> None:
        self.optimizer, self.final = optimizer, final
        self.max_steps, self.max_time = max_steps, max_time
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.steps, self.seconds_before = 0, 0.0
        self.clock = time.monotonic()
        self.show_progress, self.bar = progress, None
        # For the bar only: () -> (nats, count) summed by the trainer since its last evaluation.
        self.watch: Callable[[], tuple[float, float]] | None = None
        self._seen, self.recent_loss = (0.0, 0.0), math.nan
        self._apply()

    def progress(self) -> float:
        parts = [0.0]
        if self.max_steps:
            parts.append(self.steps / self.max_steps)
        if self.max_time:
            parts.append((self.seconds_before + time.monotonic() - self.clock) / self.max_time)
        return min(max(parts), 1.0)

    def _apply(self) -> None:
        p = self.progress()
        factor = self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * p))
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        if self.bar is not None:
            self._track_loss()
            self.bar.n = round(100 * p, 1)
            self.bar.set_postfix_str(f"step {self.steps}, loss {self.recent_loss:.3f}, "
                                     f"lr {base * factor:.2e}", refresh=False)
            self.bar.refresh()

    def _track_loss(self) -> None:
        """A moving average of the per-step training loss, from the trainer's running sums."""
        if self.watch is None:
            return
        nats, count = self.watch()
        seen_nats, seen_count = self._seen if count >= self._seen[1] else (0.0, 0.0)
        if count > seen_count:
            loss = (nats - seen_nats) / (count - seen_count)
            old = loss if math.isnan(self.recent_loss) else self.recent_loss
            self.recent_loss = 0.8 * old + 0.2 * loss
        self._seen = (nats, count)

    def step(self) -> None:
        if self.bar is None:  # opened at the first step, after the run's header lines
            self.bar = tqdm(total=100, disable=not self.show_progress, unit="%",
                            dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")
        self.steps += 1
        self._apply()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps,
                "seconds": self.seconds_before + time.monotonic() - self.clock}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.seconds_before = state["steps"], state["seconds"]
        self.clock = time.monotonic()
        self._apply()


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


def step_budget(s: TrainSettings, train_steps: int) -> int:
    """The run's budget in optimizer steps (0: none): ``--max-steps``, or ``--max-epochs``
    passes over the training data, whichever is smaller. One pass is what the batcher reads:
    ``train_steps // batch_size`` steps per stream, in whole chunks of ``chunk_len``."""
    budgets = [s.max_steps] if s.max_steps else []
    if s.max_epochs:
        per_epoch = max(1, train_steps // s.batch_size // s.chunk_len)
        budgets.append(max(1, math.ceil(s.max_epochs * per_epoch)))
    return min(budgets, default=0)


def _epochs_bind(s: TrainSettings, max_steps: int) -> bool:
    """Whether the step budget is the one ``--max-epochs`` gives (for the messages)."""
    return bool(max_steps) and max_steps != s.max_steps


def trainer_config(s: TrainSettings, device: str, max_steps: int) -> TrainConfig:
    """The Trainer's settings from the CLI's and the step budget (TrainConfig's own checks,
    as ConfigError)."""
    if not s.max_time and not max_steps:
        raise ConfigError("set a budget: --max-time SECONDS, --max-steps N or --max-epochs E "
                          "(all are 0)")
    try:
        return TrainConfig(
            batch_size=s.batch_size, chunk_length=s.chunk_len, lr=s.lr,
            # AdamW with no decay is Adam; naming Adam then keeps older runs' optimizer exact
            optimizer="adamw" if s.weight_decay else "adam", weight_decay=s.weight_decay,
            ema_decay=s.ema_decay,
            clip=s.clip, clip_max_norm=s.clip_norm, clip_percentile=s.clip_percentile,
            max_steps=max_steps or UNLIMITED_STEPS, max_time=s.max_time or None,
            eval_every=s.eval_every, patience=s.patience or None,
            progress=False,  # BudgetCosine shows the budget, which may be time, not steps
            seed=s.seed, device=device,
        )
    except ValueError as err:
        raise ConfigError(str(err).replace("chunk_length", "chunk_len")) from None


class EvalReport:
    """After each evaluation: print the losses, and write a sample (text) or a forecast."""

    def __init__(self, task: Task, run: Path, settings: TrainSettings,
                 train: list[torch.Tensor], val: list[torch.Tensor]) -> None:
        self.task, self.run, self.s = task, run, settings
        self.train, self.val = train, val

    def __call__(self, trainer: Trainer, record: dict[str, float]) -> None:
        unit = self.task.unit
        line = f"step {record['step']:>6}  train {record['train_loss']:.4f}"
        if "loss" in record:
            line += f"  val {record['loss']:.4f} nats/{unit}"
            if isinstance(self.task, TextTask):
                line += f" ({bits(record['loss']):.3f} bits/{unit})"
        tqdm.write(line, file=sys.stderr)
        if self.s.sample_length > 0:
            try:
                self._write_example(trainer, record["step"])
            finally:
                trainer.eval_model.train()

    def _write_example(self, trainer: Trainer, step: int) -> None:
        model = trainer.eval_model
        device = next(model.parameters()).device
        # Own generator: sampling must not move the trainer's RNG, or resume would not be exact.
        gen = torch.Generator(device=device).manual_seed(self.s.seed + step)
        if isinstance(self.task, TextTask):
            text = "".join(self.task.generate(model, "", self.s.sample_length, 0.8, gen))
            with open(self.run / "samples.txt", "a", encoding="utf-8") as f:
                f.write(f"=== step {step} ===\n{text}\n\n")
            tqdm.write("  | " + text.strip().replace("\n", " ")[:100], file=sys.stderr)
        else:
            from rnnkit.cli_infer import write_forecast

            context = self.train[-1]
            truth = torch.cat(self.val)[: self.s.sample_length] if self.val else None
            horizon = len(truth) if truth is not None else self.s.sample_length
            pred = self.task.forecast(model, context, horizon)
            folder = self.run / "forecasts"
            folder.mkdir(exist_ok=True)
            write_forecast(folder / f"step_{step:07d}.csv", self.run / "forecast.png",
                           self.task.columns, context.numpy(), pred,
                           None if truth is None else truth.numpy(),
                           title=f"open-loop forecast after step {step}")


def settings_for(argv_flags: dict[str, Any], config_values: dict[str, Any], source: str,
                 resume: str | None) -> tuple[TrainSettings, Path | None]:
    """The settings of a new run (defaults < config file < flags), or of the resumed run
    (its saved config < the budget flags)."""
    given = set(argv_flags) | {str(k).replace("-", "_") for k in config_values}
    if resume is None:
        settings = build_settings(TrainSettings, config_values, argv_flags, source)
        return resolve_model_size(_steps_only(settings, given), given), None
    run = rundir.find_run(resume)
    changed = sorted(set(argv_flags) - RESUMABLE - {"files"} | set(config_values))
    if changed or argv_flags.get("files"):
        bad = ", ".join("--" + k.replace("_", "-") for k in changed) or "FILE"
        raise ConfigError(f"--resume continues {run} with its saved settings; {bad} cannot "
                          f"change (only {', '.join(sorted(RESUMABLE))} can)")
    saved = rundir.read_settings(run)
    settings = build_settings(TrainSettings, saved, argv_flags, str(run / rundir.CONFIG))
    return _steps_only(settings, given), run


def _steps_only(settings: TrainSettings, given: set[str]) -> TrainSettings:
    """A step or epoch budget given alone turns the (default) time budget off."""
    budgets = {name for name in ("max_steps", "max_epochs") if getattr(settings, name)}
    if given & budgets and "max_time" not in given:
        settings.max_time = 0.0
    return settings


def run_training(s: TrainSettings, resume_run: Path | None = None) -> dict[str, Any]:
    """Train as the settings say; returns the trainer's summary plus the run directory."""
    if s.model_size == "auto" and resume_run is None:
        s = resolve_model_size(s)  # a caller that built TrainSettings itself
    device = resolve_device(s.device)
    task, docs = load_task_data(s)
    train, val = split_documents(docs, s.val_fraction)
    val = [v for v in val if len(v) >= 2]  # a 1-step piece has no next-step target
    if s.val_fraction > 0 and not val:
        raise DataError(f"the validation split (last {s.val_fraction:.0%}) is too short to "
                        "score; use more data or a larger --val-fraction")
    train_steps = sum(len(t) - 1 for t in train)
    check_chunk(train_steps, s)
    max_steps = step_budget(s, train_steps)
    cfg = trainer_config(s, device, max_steps)
    objective = _make_objective(s)

    torch.manual_seed(s.seed)
    try:
        model = task.build_model(s, train)
    except ValueError as err:
        raise ConfigError(str(err)) from None

    if resume_run is None:
        run = rundir.pick_name(s.runs_dir, s.name, _default_name(s))
        files = [str(Path(f).resolve()) for f in s.files]  # so `sample` works from anywhere
        rundir.create(run, dataclasses.asdict(s), {**task.describe(), "files": files})
    else:
        run = resume_run
    eval_data = None
    if val:
        val_steps = sum(len(v) - 1 for v in val)
        eval_data = StreamBatcher(val, min(s.batch_size, val_steps), device=device)
    schedule: list[BudgetCosine] = []

    def make_schedule(opt: torch.optim.Optimizer) -> BudgetCosine:
        schedule.append(BudgetCosine(opt, max_steps, s.max_time, s.lr_final, s.progress))
        return schedule[0]

    trainer = Trainer(model, cfg, train, eval_data, objective, run, scheduler=make_schedule,
                      on_eval=EvalReport(task, run, s, train, val))
    schedule[0].watch = lambda: (trainer.train_nats, trainer.train_count)
    if resume_run is not None:
        trainer.resume(run / "last.pt")
        _check_budget_left(trainer, s, max_steps)
    _announce(task, s, run, model, sum(len(t) for t in train), sum(len(v) for v in val), device,
              max_steps)
    summary = trainer.fit()
    schedule[0].close()
    if summary["stop_reason"] == "max_steps" and _epochs_bind(s, max_steps):
        summary["stop_reason"] = f"max_epochs {s.max_epochs:g}"
    if summary["stop_reason"] != "interrupted":
        _final_evaluation(trainer, run)
        summary["best_eval_loss"] = trainer.stopper.best if val else None
    summary["run"] = str(run)
    _finish(task, summary, run)
    return summary


def _final_evaluation(trainer: Trainer, run: Path) -> None:
    """Evaluate the final model when the last step was not an evaluation step.

    The trainer evaluates every eval_every steps; a time budget (the CLI's default) usually
    ends between two evaluations, and the last steps would then never be scored, kept as
    best.pt, sampled or plotted. This does what the trainer does at an evaluation step.
    """
    if trainer.eval_source is None or trainer.step % trainer.config.eval_every == 0:
        return
    train_loss = trainer.train_nats / max(trainer.train_count, 1.0)
    trainer.train_nats, trainer.train_count = 0.0, 0.0
    result = trainer.evaluate()
    improved, _ = trainer.stopper.update(trainer.step, result["loss"], train_loss)
    record = {"step": trainer.step, "split": "eval", "train_loss": train_loss, **result,
              "best_loss": trainer.stopper.best, "best_step": trainer.stopper.best_step}
    payload = trainer.checkpoint()
    if improved:
        save_checkpoint(payload, run / "best.pt")
    save_checkpoint(payload, run / "last.pt")
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if trainer.config.plot:
        plot_metrics(run / "metrics.jsonl", run / "plot.png")
    if trainer.on_eval is not None:
        trainer.on_eval(trainer, record)


def _make_objective(s: TrainSettings) -> Any:
    try:
        return make_objective(s.objective, **_objective_params(s.objective_args))
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None


def _default_name(s: TrainSettings) -> str:
    return Path(s.files[0]).stem if s.files else "pydoc-topics"


def _check_budget_left(trainer: Trainer, s: TrainSettings, max_steps: int) -> None:
    if max_steps and trainer.step >= max_steps:
        by_epochs = _epochs_bind(s, max_steps)
        done = f" ({s.max_epochs:g} epochs)" if by_epochs else ""
        raise DataError(f"the run has done its {max_steps} steps{done}; pass a larger "
                        f"{'--max-epochs' if by_epochs else '--max-steps'} to continue")
    if s.max_time:
        left = s.max_time - trainer.elapsed
        if left <= 0:
            raise DataError(f"the run has used its {s.max_time:g} s; pass a larger --max-time "
                            "to continue")
        trainer.config.max_time = left  # the trainer counts time per fit() call


def _announce(task: Task, s: TrainSettings, run: Path, model: torch.nn.Module, n_train: int,
              n_val: int, device: str, max_steps: int) -> None:
    params = sum(p.numel() for p in model.parameters())
    what = (f"{len(task.vocab)} distinct characters" if isinstance(task, TextTask)
            else f"columns {', '.join(task.columns)}")
    source = ", ".join(s.files) or "Python's help topics (pydoc_data.topics)"
    epochs = f" ({s.max_epochs:g} epochs)" if _epochs_bind(s, max_steps) else ""
    budget = " and ".join(filter(None, [s.max_time and f"{s.max_time:g} s",
                                        max_steps and f"{max_steps} steps{epochs}"]))
    print(f"data: {source}: {n_train} train / {n_val} validation {task.unit}s, {what}",
          file=sys.stderr)
    size = f" ({s.model_size})" if s.model_size in ("small", "large") else ""
    norm = ", layer norm" if s.layer_norm else ""
    print(f"model{size}: {s.cell.upper()} {s.num_layers}x{s.hidden_size}{norm}, "
          f"{params / 1e6:.2f}M parameters, chunks of {s.chunk_len}, on {device}; budget "
          f"{budget}; run directory {run}", file=sys.stderr)
    if s.dropout > 0 and s.num_layers == 1 and not isinstance(task, TextTask):
        print(f"note: --dropout {s.dropout:g} does nothing here: a forecast model drops out only "
              "between layers, and it has 1 (see --num-layers, --recurrent-dropout, --zoneout)",
              file=sys.stderr)


def _finish(task: Task, summary: dict[str, Any], run: Path) -> None:
    best = summary.get("best_eval_loss")
    line = (f"done: {summary['steps']} steps ({summary['stop_reason']}) in "
            f"{summary['elapsed']:.0f} s")
    if best is not None and math.isfinite(best):
        line += f"; best validation loss {best:.4f} nats/{task.unit}"
        if isinstance(task, TextTask):
            line += f" ({bits(best):.3f} bits/{task.unit})"
    print(line, file=sys.stderr)
    print(f"run directory: {run} (plot.png, metrics.jsonl, best.pt, last.pt)", file=sys.stderr)
    if summary["stop_reason"] == "interrupted":
        print(f"continue with: rnnkit train --resume {run}", file=sys.stderr)
    if isinstance(task, TextTask):
        print(f"next: rnnkit sample {run} --length 500", file=sys.stderr)
    else:
        print(f"next: rnnkit sample {run} --length 100  (writes forecast.csv and .png)",
              file=sys.stderr)
