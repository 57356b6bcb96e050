"""The truncated-BPTT training loop (O1-O5). `Trainer.fit` reads top to bottom:

batch -> forward (burn-in, carry split) -> normalized loss -> backward -> average
gradients across ranks -> measure the gradient norm (the step's one host sync) ->
skip if not finite, else clip and step -> log -> evaluate, early-stop, checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from rnnkit.losses import masked_step_sum, normalized_sequence_loss
from rnnkit.objectives.base import PENALTY, Objective, TeacherForcing
from rnnkit.state import map_state
from rnnkit.train import distributed as ddp
from rnnkit.train.batching import BatchSource, StreamBatcher
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.clipping import GradClipper
from rnnkit.train.config import TrainConfig
from rnnkit.train.early_stopping import EarlyStopping
from rnnkit.train.plots import plot_metrics
from rnnkit.train.schedule import LRSchedule, budget_progress
from rnnkit.train.tbptt import forward_window

__all__ = ["Trainer", "build_optimizer", "resolve_device"]

log = logging.getLogger("rnnkit.train")

OptimizerArg = torch.optim.Optimizer | Callable[[Any], torch.optim.Optimizer] | None
SchedulerArg = Callable[[torch.optim.Optimizer], Any] | None


def build_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The torch.optim class named by config.optimizer (any case), e.g. Adam (the default)."""
    classes = {
        name.lower(): cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and name != "LBFGS"
    }
    cls = classes.get(config.optimizer.lower())
    if cls is None:
        raise ValueError(
            f"optimizer must name a torch.optim optimizer ({', '.join(sorted(classes))}), "
            f"got {config.optimizer!r}"
        )
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, **config.optimizer_kwargs)


def resolve_device(name: str) -> torch.device:
    """This process's device. ``auto``: its own GPU (``cuda:LOCAL_RANK``) when every process
    of the node has one, else the CPU for all of them (they decide alike). A CUDA device that
    is not there, or a process without a GPU of its own, is refused (ValueError)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    # torchrun sets LOCAL_WORLD_SIZE; a launcher that does not is taken as one node
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    if name == "auto":
        return torch.device("cuda", local_rank) if per_node <= gpus else torch.device("cpu")
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if gpus == 0:
        raise ValueError(f"no CUDA GPU is available here for device {name!r}; use 'cpu' or "
                         "'auto'")
    if device.index is None:
        if per_node > gpus:  # NCCL cannot run two processes on one GPU
            raise ValueError(f"{per_node} processes on this node need a GPU each, but there "
                             f"{'is' if gpus == 1 else 'are'} {gpus}; run at most {gpus} or "
                             "use 'cpu'")
        device = torch.device("cuda", local_rank if per_node > 1 else torch.cuda.current_device())
    if device.index >= gpus:
        raise ValueError(f"device {name!r} is not here: this machine has {gpus} CUDA GPU(s)")
    return device


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))


def _all_finite(state: Any) -> bool:
    if state is None:
        return True
    if isinstance(state, Tensor):
        return bool(torch.isfinite(state).all())
    return all(_all_finite(s) for s in state)


class Trainer:
    """Trains a recurrent model with truncated BPTT.

    Args:
        model: any nn.Module with `forward(inputs, state) -> (outputs, state)`; state None
            means the model's default. If forward accepts `reset=`, it gets the reset mask.
        config: TrainConfig.
        train_data: a BatchSource (StreamBatcher, PaddedBatcher, or one of your own), or a
            tensor [N, ...] / a list of documents, laid out as config.batch_size streams
            (next-step targets).
        eval_data: like train_data; evaluated every config.eval_every steps.
        eval_fn: instead of eval_data, a score of the model, lower is better (e.g. a
            forecast's CRPS on held-out rows): eval_fn(model) -> float, called every
            config.eval_every steps under no_grad with ``eval_model`` in eval mode. Early
            stopping, best.pt and keep_best follow it as they follow the evaluation loss.
        objective: objective(model, batch, state) -> (per_step_loss [B, T], state, metrics);
            default TeacherForcing() (the model's own loss(outputs, targets) if it has one,
            else cross-entropy for integer targets, MSE for float ones).
        run_dir: where metrics.jsonl, plot.png, last.pt and best.pt go (rank 0 only);
            None = write nothing.
        optimizer: an optimizer over model.parameters(), or a factory params -> optimizer;
            None = the one named in config (Adam by default).
        scheduler: a factory optimizer -> LR scheduler (stepped once per optimizer step; a
            ReduceLROnPlateau is stepped at each evaluation with its loss instead); None =
            config.lr_schedule with config.warmup_steps over the budget (steps or time, see
            rnnkit.train.schedule).
        on_eval: called on rank 0 after every evaluation as on_eval(trainer, metrics).
        keep_best: keep the weights of the best evaluation in memory (``best_state``) and
            load them into the model when fit() returns, as best.pt keeps them on disk (a
            run without run_dir); ``restore_best()`` loads them after an exception too.

    Example:
        >>> trainer = Trainer(model, TrainConfig(max_steps=1000), text_ids, run_dir="runs/a")
        >>> summary = trainer.fit()        # {"steps", "stop_reason", "best_eval_loss", ...}
        >>> Trainer(model, cfg, text_ids, run_dir="runs/a").resume("runs/a").fit()
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        train_data: Any,
        eval_data: Any = None,
        objective: Objective | None = None,
        run_dir: str | Path | None = None,
        *,
        optimizer: OptimizerArg = None,
        scheduler: SchedulerArg = None,
        on_eval: Callable[[Trainer, dict[str, float]], None] | None = None,
        eval_fn: Callable[[nn.Module], float] | None = None,
        keep_best: bool = False,
    ) -> None:
        if eval_data is not None and eval_fn is not None:
            raise ValueError("give the Trainer eval_data or eval_fn, not both")
        self.config = config
        self.device = self._device(config.device)
        ddp.init_from_env(self.device)
        self.rank, self.world_size = ddp.rank_and_world()
        self.model = model.to(self.device)
        if self.world_size > 1:
            ddp.broadcast_module(self.model)
        self.objective = objective if objective is not None else TeacherForcing()
        self.train_source = self._source(train_data, config.overlap)
        self.eval_source = None if eval_data is None else self._source(eval_data, 0, True)
        self.eval_fn = eval_fn
        params = list(self.model.parameters())
        if optimizer is None:
            self.optimizer = build_optimizer(params, config)
        elif isinstance(optimizer, torch.optim.Optimizer):
            self.optimizer = optimizer
        else:
            self.optimizer = optimizer(params)
        # a caller's torch scheduler, stepped once per step; else the budget's schedule
        self.scheduler = None if scheduler is None else scheduler(self.optimizer)
        # stepped with the evaluation loss at each evaluation, not once per step
        self.on_plateau = isinstance(self.scheduler, ReduceLROnPlateau)
        self.lr_schedule = LRSchedule(config.lr_schedule, config.warmup_steps,
                                      config.min_lr_ratio, config.max_steps, config.max_time)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        # a copy of the model whose weights are the moving average (None: off)
        self.averaged = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
            if config.ema_decay
            else None
        )
        self.clipper = GradClipper(config.clip, config.clip_max_norm, config.clip_percentile)
        self.stopper = EarlyStopping(config.patience or None, config.plateau_patience,
                                     config.min_delta)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.writes = self.rank == 0 and self.run_dir is not None
        self.on_eval = on_eval
        self.keep_best = keep_best
        self.best_state: dict[str, Any] | None = None  # keep_best: weights of the best evaluation
        # Progress of the run; all of it goes into checkpoints.
        self.step = 0  # optimizer steps taken (skipped ones included)
        self.state: Any = None  # hidden state carried to the next chunk (detached)
        self.skipped_steps = 0
        self.nonfinite_in_row = 0
        self.train_nats, self.train_count = 0.0, 0.0  # since the last evaluation
        self.elapsed = 0.0  # seconds spent in fit(), over all calls and resumes
        self._resumed = False
        self._interrupted = False

    # ----------------------------------------------------------------- setup helpers
    def _device(self, name: str) -> torch.device:
        return resolve_device(name)

    def _source(self, data: Any, overlap: int, for_eval: bool = False) -> BatchSource:
        if hasattr(data, "next_batch"):
            made_for = getattr(data, "world_size", self.world_size)
            # An eval source made for one process is read whole by every rank: evaluate()
            # sums nats and counts over the ranks, so the mean is the one process's.
            whole = for_eval and made_for == 1
            if made_for != self.world_size and not whole:
                log.warning(
                    "a batch source made for %d processes runs on %d: every rank reads the "
                    "same rows; pass rank= and world_size= to the batcher",
                    data.world_size,
                    self.world_size,
                )
            return data
        if isinstance(data, Tensor) or (
            isinstance(data, list | tuple) and data and isinstance(data[0], Tensor)
        ):
            return StreamBatcher(
                data,
                self.config.batch_size,
                overlap=overlap,
                overlap_grad=self.config.backprop_length is not None,
                rank=self.rank,
                world_size=self.world_size,
                device=self.device,
            )
        raise TypeError(
            "data must be a tensor [N, ...], a list of tensors, or a batch source with "
            f"next_batch() (StreamBatcher, PaddedBatcher), got {type(data).__name__}"
        )

    # ------------------------------------------------------------------- training loop
    def fit(self) -> dict[str, Any]:
        """Train until max_steps, max_time, early stopping, too many non-finite steps or
        Ctrl-C (which finishes the current step, checkpoints and returns).

        Returns:
            {"steps", "stop_reason", "best_eval_loss" (None without eval data),
             "best_train_loss", "best_step", "skipped_steps", "elapsed", "best_checkpoint"}
        """
        cfg = self.config
        if self.step == 0 and not self._resumed and cfg.seed is not None:
            self._seed(cfg.seed + self.rank)
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        nll = None
        metrics = self._open_metrics()
        bar = _ProgressBar(cfg, self.rank == 0)
        started, elapsed_before = time.monotonic(), self.elapsed
        stop_reason = self._budget_spent()
        with self._catch_sigint():
            while stop_reason is None:
                if self.scheduler is None:
                    self._set_lr(elapsed_before + time.monotonic() - started)
                chunk_length = cfg.chunk_length_at(self.step)
                batch = self.train_source.next_batch(chunk_length).to(self.device)

                # forward and backward over one window; the state is carried detached
                self.optimizer.zero_grad(set_to_none=True)
                per_step, mask, carried, extra = forward_window(
                    self.objective, self.model, batch, self.state
                )
                # T_max of the global batch: a rank's own rows may all end sooner
                max_length = mask.any(dim=0).sum().clamp(min=1)
                if self.world_size > 1:
                    ddp.all_reduce_max(max_length)
                loss = normalized_sequence_loss(per_step, mask, max_length)
                # a regularizer (AR/TAR) is optimized but not part of the reported loss
                penalty = extra.pop(PENALTY, None)
                (loss if penalty is None else loss + penalty).backward()
                if self.world_size > 1:
                    ddp.average_gradients(params)
                norm = GradClipper.norm(params)

                # one host sync per step: losses, norm, stop flags and the extra metrics
                out_of_time = bool(cfg.max_time) and (
                    elapsed_before + time.monotonic() - started > cfg.max_time
                )
                nats, count = masked_step_sum(per_step.detach(), mask)
                flags = [float(self._interrupted), float(out_of_time)]
                shared = torch.cat(
                    [torch.stack([loss.detach(), nats, count]), nats.new_tensor(flags)]
                )
                if self.world_size > 1:  # every rank must agree on the numbers and on stopping
                    ddp.all_reduce_sum(shared)
                names = [k for k, v in extra.items() if isinstance(v, Tensor)]
                host = torch.cat(
                    [
                        shared,
                        norm.reshape(1).to(shared),
                        *[extra[k].detach().reshape(1).to(shared) for k in names],
                    ]
                ).tolist()
                loss_v, nats_v, count_v, interrupted, timed_out, norm_v = host[:6]
                loss_v /= self.world_size

                # clip and step, or skip a non-finite step
                lr = self.optimizer.param_groups[0]["lr"]
                threshold = self.clipper.threshold(norm_v)
                if math.isfinite(norm_v):
                    self.clipper.clip(params, norm, threshold)
                    self.optimizer.step()
                    if self.scheduler is not None and not self.on_plateau:
                        self.scheduler.step()
                    if self.averaged is not None:
                        self.averaged.update_parameters(self.model)
                    self.nonfinite_in_row = 0
                    self.train_nats += nats_v
                    self.train_count += count_v
                    self.state = carried
                else:
                    self.skipped_steps += 1
                    self.nonfinite_in_row += 1
                    log.warning(
                        "step %d skipped: the gradient norm is %s (%d in a row)",
                        self.step + 1,
                        norm_v,
                        self.nonfinite_in_row,
                    )
                    self.state = carried if _all_finite(carried) else None
                self.step += 1
                self.elapsed = elapsed_before + time.monotonic() - started

                # log
                if nll is None:
                    nll = bool(getattr(self.objective, "loss_is_nll", False))
                record = {
                    "step": self.step,
                    "loss": loss_v,
                    "nats_per_step": nats_v / max(count_v, 1.0),
                    "grad_norm": norm_v,
                    "clip_threshold": threshold,
                    "lr": lr,
                    "chunk_length": chunk_length,
                    "skipped": not math.isfinite(norm_v),
                    "time": round(self.elapsed, 3),
                }
                if nll:
                    record["bits_per_step"] = record["nats_per_step"] / math.log(2)
                record.update({k: v for k, v in zip(names, host[6:], strict=True)})
                record.update({k: float(v) for k, v in extra.items() if not isinstance(v, Tensor)})
                if metrics is not None:
                    metrics.write(json.dumps(record) + "\n")
                bar.update(self.step, self.elapsed, record)

                # stop, evaluate, checkpoint
                if self.nonfinite_in_row >= cfg.max_nonfinite_steps:
                    stop_reason = (
                        f"stopped: {self.nonfinite_in_row} steps in a row had non-finite "
                        "gradients; lower the learning rate or turn on clipping"
                    )
                    log.error(stop_reason)
                elif interrupted:
                    stop_reason = "interrupted"
                elif timed_out:
                    stop_reason = "max_time"
                elif cfg.max_steps and self.step >= cfg.max_steps:
                    stop_reason = "max_steps"
                if self.step % cfg.eval_every == 0:
                    stop_reason = self._evaluate_and_checkpoint(metrics) or stop_reason
                elif cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._save("last.pt")
        self.elapsed = elapsed_before + time.monotonic() - started
        bar.close()
        if self.step % cfg.eval_every != 0:  # the final state, unless just saved
            if cfg.eval_at_end and stop_reason != "interrupted" and self.step:
                self._evaluate_and_checkpoint(metrics)
            else:
                self._save("last.pt")
        if metrics is not None:
            metrics.close()
            if cfg.plot:
                plot_metrics(self.run_dir / "metrics.jsonl", self.run_dir / "plot.png")
        if self.keep_best:
            self.restore_best()
        return self._summary(stop_reason)

    def _budget_spent(self) -> str | None:
        """Why fit() has nothing left to do (a resumed run whose budget is used), or None."""
        cfg = self.config
        if cfg.max_steps and self.step >= cfg.max_steps:
            return "max_steps"
        if cfg.max_time and self.elapsed >= cfg.max_time:
            return "max_time"
        return None

    def _set_lr(self, seconds: float) -> None:
        factor = self.lr_schedule.factor(self.step, seconds)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def _evaluate_and_checkpoint(self, metrics: Any) -> str | None:
        """Evaluate, update early stopping, save best.pt/last.pt, plot, call on_eval."""
        train_loss = self.train_nats / max(self.train_count, 1.0)
        self.train_nats, self.train_count = 0.0, 0.0
        result = self.evaluate() if self.evaluates else {}
        improved, stop_reason = self.stopper.update(self.step, result.get("loss"), train_loss)
        record = {
            "step": self.step,
            "split": "eval",
            "train_loss": train_loss,
            **result,
            "best_loss": self.stopper.best,
            "best_step": self.stopper.best_step,
        }
        if improved:
            self._save("best.pt")
            if self.keep_best:
                self.best_state = self._weights()
        self._save("last.pt")
        if metrics is not None:
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            if self.config.plot:
                plot_metrics(self.run_dir / "metrics.jsonl", self.run_dir / "plot.png")
        if self.on_eval is not None and self.rank == 0:
            self.on_eval(self, record)
        if self.on_plateau:
            self.scheduler.step(result.get("loss", train_loss))
        if stop_reason:
            log.info(stop_reason)
        return stop_reason

    @property
    def evaluates(self) -> bool:
        """Whether evaluations score the model (eval_data or eval_fn); else the training
        loss stands in for early stopping."""
        return self.eval_source is not None or self.eval_fn is not None

    def _weights(self) -> dict[str, Any]:
        """A copy of the weights (and of the moving average's)."""
        averaged = None if self.averaged is None else self.averaged.module.state_dict()
        return copy.deepcopy({"model": self.model.state_dict(), "averaged": averaged})

    def restore_best(self) -> bool:
        """Load the weights keep_best kept into the model; False when there are none (no
        evaluation yet, or keep_best off)."""
        if self.best_state is None:
            return False
        self.model.load_state_dict(self.best_state["model"])
        if self.averaged is not None and self.best_state["averaged"] is not None:
            self.averaged.module.load_state_dict(self.best_state["averaged"])
        return True

    @property
    def eval_model(self) -> nn.Module:
        """The model to evaluate and use: the averaged weights once there are any, else the
        trained ones."""
        if self.averaged is not None and self.averaged.n_averaged > 0:
            return self.averaged.module
        return self.model

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss per time step (nats) of ``eval_model`` over the evaluation data, starting from
        a fresh state; with eval_fn, its score as the loss.

        The objective (or eval_fn) is called under no_grad with the model in eval mode.
        """
        if not self.evaluates:
            raise ValueError("evaluate() needs eval_data or eval_fn, got neither")
        cfg = self.config
        model = self.eval_model
        model.eval()
        if self.eval_fn is not None:
            try:
                return {"loss": float(self.eval_fn(model))}
            finally:
                model.train()
        total = torch.zeros(2, device=self.device)
        state = None
        batches: Iterator = self.eval_source.iter_epoch(cfg.eval_chunk_length or cfg.chunk_length)
        for i, batch in enumerate(batches):
            if cfg.eval_max_batches is not None and i >= cfg.eval_max_batches:
                break
            batch = batch.to(self.device)
            per_step, state, _ = self.objective(model, batch, state)
            total += torch.stack(masked_step_sum(per_step, batch.mask)).to(total)
        model.train()
        nats, count = ddp.all_reduce_sum(total).tolist()
        result = {"loss": nats / max(count, 1.0), "eval_steps": count}
        if getattr(self.objective, "loss_is_nll", False):
            result["bits_per_step"] = result["loss"] / math.log(2)
        return result

    def _summary(self, stop_reason: str) -> dict[str, Any]:
        best = self.run_dir / "best.pt" if self.writes and self.stopper.best_step else None
        return {
            "steps": self.step,
            "stop_reason": stop_reason,
            "best_eval_loss": self.stopper.best if self.evaluates else None,
            "best_train_loss": self.stopper.best_train,
            "best_step": self.stopper.best_step,
            "skipped_steps": self.skipped_steps,
            "elapsed": self.elapsed,
            "best_checkpoint": str(best) if best else None,
        }

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any] | None:
        """Everything needed to continue exactly (None on ranks other than 0)."""
        state = map_state(lambda t: t.to("cpu"), self.state)
        per_rank = ddp.gather_to_rank0({"state": state, "rng": _rng_state()})
        if self.rank != 0:
            return None
        objective_state = getattr(self.objective, "state_dict", None)
        return {
            "config": dataclasses.asdict(self.config),
            "step": self.step,
            "elapsed": self.elapsed,
            "skipped_steps": self.skipped_steps,
            "nonfinite_in_row": self.nonfinite_in_row,
            "train_loss_since_eval": [self.train_nats, self.train_count],
            "model": self.model.state_dict(),
            "averaged_model": None if self.averaged is None else self.averaged.module.state_dict(),
            "n_averaged": 0 if self.averaged is None else int(self.averaged.n_averaged),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "lr_schedule": dataclasses.asdict(self.lr_schedule),
            "clipper": self.clipper.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "data": self.train_source.state_dict(),
            "ranks": per_rank,  # carried hidden state and RNG state of every rank
            "objective": objective_state() if callable(objective_state) else None,
        }

    def _save(self, name: str) -> None:
        if self.run_dir is None:  # must be None on every rank or on none
            return
        payload = self.checkpoint()  # a collective: every rank takes part
        if self.writes and payload is not None:
            save_checkpoint(payload, self.run_dir / name)

    def resume(self, path: str | Path, restart_schedule: bool = False) -> Trainer:
        """Load a checkpoint (a file, or a run directory's last.pt) to continue from it.

        Every rank loads the file; rank r takes rank r's hidden and RNG state, so resume with
        the same number of processes, data and batch_size. With the checkpoint's budget the
        run continues exactly; with another budget the learning rate anneals from where it
        stopped to the new budget's end (``LRSchedule.continued``), or, with
        ``restart_schedule``, follows this config's schedule over the whole new budget (it
        may rise). Returns self.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "last.pt"
        ckpt = load_checkpoint(path, map_location="cpu")
        if len(ckpt["ranks"]) != self.world_size:
            raise ValueError(
                f"the checkpoint {path} was written by {len(ckpt['ranks'])} processes; resume "
                f"with the same number, got {self.world_size}"
            )
        self.model.load_state_dict(ckpt["model"])
        if self.averaged is not None and ckpt.get("averaged_model") is not None:
            self.averaged.module.load_state_dict(ckpt["averaged_model"])
            self.averaged.n_averaged.fill_(ckpt["n_averaged"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["scheduler"] is not None and self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.clipper.load_state_dict(ckpt["clipper"])
        self.stopper.load_state_dict(ckpt["early_stopping"])
        self.train_source.load_state_dict(ckpt["data"])
        if ckpt["objective"] is not None:
            self.objective.load_state_dict(ckpt["objective"])
        mine = ckpt["ranks"][self.rank]
        self.state = map_state(lambda t: t.to(self.device), mine["state"])
        _set_rng_state(mine["rng"])
        self.step, self.elapsed = ckpt["step"], ckpt["elapsed"]
        if not restart_schedule:
            self.lr_schedule = self._schedule_after(ckpt)
        self.skipped_steps, self.nonfinite_in_row = ckpt["skipped_steps"], ckpt["nonfinite_in_row"]
        self.train_nats, self.train_count = ckpt["train_loss_since_eval"]
        self._resumed = True
        if self.writes and (self.run_dir / "metrics.jsonl").exists():
            self._truncate_metrics(self.run_dir / "metrics.jsonl", self.step)
        return self

    def _schedule_after(self, ckpt: dict[str, Any]) -> LRSchedule:
        """The schedule the checkpoint's run followed (checkpoints before it was saved: the one
        its config gives), continued over this config's budget when that changed."""
        saved = ckpt.get("lr_schedule")
        if saved is None:
            old = ckpt["config"]
            saved = dataclasses.asdict(dataclasses.replace(
                self.lr_schedule, max_steps=old["max_steps"], max_time=old["max_time"]))
        before = LRSchedule(**saved)
        now = (self.config.max_steps, self.config.max_time)
        if (before.max_steps, before.max_time) == now:
            return before
        return before.continued(self.step, self.elapsed, *now)

    # ------------------------------------------------------------------------- misc
    @staticmethod
    def _truncate_metrics(path: Path, step: int) -> None:
        """Drop records of steps after the checkpoint: they will be run again."""
        kept = []
        for line in path.read_text().splitlines(keepends=True):
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by a crash
        path.write_text("".join(kept))

    def _open_metrics(self) -> Any:
        if not self.writes:
            return None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return open(self.run_dir / "metrics.jsonl", "a", buffering=1 << 16)  # noqa: SIM115

    @staticmethod
    def _seed(seed: int) -> None:
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)

    @contextmanager
    def _catch_sigint(self) -> Iterator[None]:
        """First Ctrl-C: finish the step, checkpoint, return. Second: stop at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            self._interrupted = True
            signal.signal(signal.SIGINT, previous)
            log.warning("interrupt: finishing this step and saving a checkpoint (again to abort)")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self._interrupted = False

    def request_stop(self) -> None:
        """Stop after the current step, as Ctrl-C does (e.g. from an on_eval callback)."""
        self._interrupted = True


class _ProgressBar:
    """The run's one progress bar (rank 0): the share of the budget spent (percent, when
    there is a time budget) or the steps, with a moving average of the training loss."""

    def __init__(self, config: TrainConfig, show: bool) -> None:
        self.config, self.loss = config, math.nan
        by_time = bool(config.max_time)
        self.bar = tqdm(total=100 if by_time else config.max_steps, unit="%" if by_time else "step",
                        disable=not (config.progress and show), dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}" if by_time
                        else None)

    def update(self, step: int, seconds: float, record: dict[str, Any]) -> None:
        if self.bar.disable:
            return
        loss = record["nats_per_step"]
        if not record["skipped"]:
            self.loss = loss if math.isnan(self.loss) else 0.9 * self.loss + 0.1 * loss
        cfg = self.config
        if cfg.max_time:
            self.bar.n = round(100 * budget_progress(step, seconds, cfg.max_steps, cfg.max_time), 1)
        else:
            self.bar.n = step
        if step % cfg.log_every == 0 or step == 1:
            self.bar.set_postfix_str(f"step {step}, loss {self.loss:.3f}, lr {record['lr']:.2e}, "
                                     f"gnorm {record['grad_norm']:.3g}", refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
