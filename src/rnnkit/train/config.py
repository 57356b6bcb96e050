"""TrainConfig: every setting of the trainer, one commented field each.

``TrainConfig()`` holds defaults for any model; ``TrainConfig.preset("small")`` holds those
``rnnkit train`` tuned for its char models (rnnkit.train.presets). A field whose default differs
says why in its comment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rnnkit.train.presets as presets
from rnnkit.train.clipping import CLIP_MODES
from rnnkit.train.schedule import LR_SCHEDULES

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    # --- data layout and truncated BPTT (O4) ---
    batch_size: int = 32  # B: parallel streams (or sequences) per step, over all processes
    # T = k1: new, scored steps per optimizer step. The presets' 64 / 128 were tuned for their
    # char models within minutes; 200 lets the gradient reach further back, for data whose
    # dependency length is unknown.
    chunk_length: int = 200
    # Curriculum: ((from_step, chunk_length), ...) sorted by step, e.g. ((0, 50), (2000, 200));
    # empty = chunk_length throughout. The first entry must start at step 0.
    chunk_schedule: tuple[tuple[int, int], ...] = ()
    burn_in: int = 0  # steps repeated from the previous chunk to warm the state, no gradient
    # k2 of k1/k2 TBPTT: backpropagate through this many steps (k1 <= k2 <= 2*k1), of which
    # the last chunk_length are scored. None = chunk_length (plain TBPTT).
    backprop_length: int | None = None

    # --- optimizer (O1) ---
    optimizer: str = "adam"  # name of a torch.optim class, any case: adam, adamw, sgd, ...
    # peak learning rate. Adam's usual 1e-3 suits a model of any size; the presets' 4e-3 was
    # tuned with clipping at norm 1 and a cosine decay on their own small char models.
    lr: float = 1e-3
    weight_decay: float = 0.0  # passed to the optimizer
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"betas": [0.9, 0.99]}
    # "constant" or "cosine": decay to min_lr_ratio * lr at the end of the budget (steps or time).
    # Constant here: with patience on, a run may stop long before its budget, where a cosine
    # over that budget has barely decayed; the presets run their whole, known budget.
    lr_schedule: str = "constant"
    warmup_steps: int = 0  # linear warm-up from 0 to lr over this many steps
    min_lr_ratio: float = 0.1  # final lr / peak lr of the cosine schedule (presets: 0.05)
    # Polyak averaging: evaluate, and save for use, an exponential moving average of the
    # weights, ema = decay * ema + (1 - decay) * weights after each step; 0 = off
    ema_decay: float = 0.0

    # --- gradient norm (O2) ---
    # "none", "norm" (at clip_max_norm) or "auto" (AutoClip percentile). AutoClip here: it
    # adapts to a model's gradient scale, which the library cannot know; the presets clip at
    # norm 1: their ablation found no clear difference (clip_auto row, docs/evidence/).
    clip: str = "auto"
    clip_max_norm: float = 1.0  # threshold of clip="norm"
    clip_percentile: float = 10.0  # p of clip="auto" (Seetharaman et al. 2020 use 10)
    max_nonfinite_steps: int = 20  # stop after this many non-finite steps in a row

    # --- stopping (O5) ---
    # Budgets count the whole run, resumes included; 0 (or None) = no limit, but one is needed.
    # optimizer steps. A step budget here (the presets: 180 s of time) so that a library run
    # does the same work on any machine.
    max_steps: int = 10_000
    max_time: float = 0.0  # seconds of training (the presets: 180; see max_steps)
    # steps between evaluations (and early-stopping checks); the presets evaluate every 100,
    # which suits their 180 s budget, too often for 10,000 steps of a larger model
    eval_every: int = 500
    eval_chunk_length: int | None = None  # chunk length for evaluation; None = chunk_length
    # evaluate on at most this many chunks of each stream; None = all. The presets read an
    # eighth of the batches trained between evaluations (presets.eval_batches)
    eval_max_batches: int | None = None
    # evaluations without a new best loss before stopping; 0 (or None) = off. On here: with a
    # step budget of unknown size, stopping when validation stops improving saves the rest;
    # the presets keep training to the end of their short budget and keep the best checkpoint.
    patience: int = 5
    plateau_patience: int | None = None  # evaluations with a flat training loss; None = off
    min_delta: float = 0.0  # smallest decrease of a loss that counts as an improvement

    # --- output ---
    checkpoint_every: int = 1000  # steps between last.pt checkpoints (also at every eval)
    progress: bool = True  # tqdm progress bar (rank 0 only)
    log_every: int = 10  # steps between progress-bar updates
    plot: bool = True  # write plot.png (losses, gradient norm, clip threshold) at evaluations
    # evaluate (and checkpoint) after the last step too, when it was not an evaluation step:
    # a time budget usually ends between two evaluations, and the last steps would go unscored
    eval_at_end: bool = False  # the presets: True

    # --- run ---
    # seeds torch, random and numpy at the start of a fresh run; None = leave them as the
    # caller set them (e.g. seeded before building the model, whose init drew from them)
    seed: int | None = 0
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...

    def __post_init__(self) -> None:
        def need(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise ValueError(f"{name} must be {expected}, got {getattr(self, name)!r}")

        # one convention for "off": 0; None is accepted for it
        self.max_steps = self.max_steps or 0
        self.max_time = float(self.max_time or 0.0)
        self.patience = self.patience or 0
        for name in (
            "batch_size",
            "chunk_length",
            "eval_every",
            "log_every",
            "max_nonfinite_steps",
        ):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, ">= 1")
        for name in ("max_steps", "patience"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name,
                 ">= 0 (0 = off)")
        need(self.max_time >= 0 and self.max_time == self.max_time, "max_time", ">= 0 (0 = off)")
        if not self.max_steps and not self.max_time:
            raise ValueError("set a budget: max_steps or max_time (both are 0)")
        need(self.burn_in >= 0, "burn_in", ">= 0")
        need(self.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0 = only at evaluations)")
        need(self.warmup_steps >= 0, "warmup_steps", ">= 0")
        need(self.lr > 0, "lr", "> 0")
        need(0.0 <= self.ema_decay < 1.0, "ema_decay", "in [0, 1) (0 = off)")
        need(self.clip in CLIP_MODES, "clip", f"one of {CLIP_MODES}")
        need(self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"one of {LR_SCHEDULES}")
        self.chunk_schedule = tuple((int(s), int(t)) for s, t in self.chunk_schedule)
        if self.chunk_schedule:
            steps = [s for s, _ in self.chunk_schedule]
            need(
                steps[0] == 0 and steps == sorted(steps),
                "chunk_schedule",
                "sorted by step and starting at step 0",
            )
            need(
                all(t >= 1 for _, t in self.chunk_schedule),
                "chunk_schedule",
                "made of chunk lengths >= 1",
            )
        shortest = min([self.chunk_length, *(t for _, t in self.chunk_schedule)])
        need(self.burn_in <= shortest, "burn_in", f"<= the shortest chunk length {shortest}")
        if self.backprop_length is not None:
            need(
                not self.chunk_schedule,
                "backprop_length",
                "None when chunk_schedule is set (k2 - k1 must stay fixed)",
            )
            need(
                self.chunk_length <= self.backprop_length <= 2 * self.chunk_length,
                "backprop_length",
                f"between chunk_length and 2 * chunk_length "
                f"({self.chunk_length}..{2 * self.chunk_length})",
            )
            need(self.burn_in == 0, "burn_in", "0 when backprop_length is set")

    @classmethod
    def preset(cls, size: str = "small", task: str = "text", train_steps: int | None = None,
               **overrides: Any) -> TrainConfig:
        """The settings ``rnnkit train`` uses with preset ``size`` ("small" or "large") for
        ``task`` ("text" or "forecast"): presets.TRAINING, the preset's chunk length, weight
        decay (AdamW when above 0) and weight average, an evaluation after the last step, and
        evaluations capped at ``presets.eval_batches(eval_every)`` batches.
        ``train_steps`` (the training data's length in steps) turns the preset's epoch cap
        into a step budget as the CLI does; without it the large preset's 6 epochs are not
        applied. ``overrides`` win, as flags do."""
        preset = presets.model_options(size, task)
        fields = cls.__dataclass_fields__
        values = {**presets.TRAINING, **{k: v for k, v in preset.items() if k in fields},
                  "eval_at_end": True, **overrides}
        if train_steps is not None and preset["max_epochs"] and "max_steps" not in overrides:
            cap = presets.epoch_steps(preset["max_epochs"], train_steps, values["batch_size"],
                                      values["chunk_length"])
            values["max_steps"] = min(cap, values["max_steps"] or cap)
        values.setdefault("eval_max_batches", presets.eval_batches(values["eval_every"]))
        # AdamW with no decay is Adam; naming Adam keeps older runs' optimizer exact
        values.setdefault("optimizer", "adamw" if values.get("weight_decay") else "adam")
        return cls(**values)

    def chunk_length_at(self, step: int) -> int:
        """The chunk length of the curriculum at optimizer step `step`."""
        length = self.chunk_length
        for start, value in self.chunk_schedule:
            if step >= start:
                length = value
        return length

    @property
    def overlap(self) -> int:
        """Steps each window repeats from the previous one (burn-in or k2 - k1)."""
        if self.backprop_length is not None:
            return self.backprop_length - self.chunk_length
        return self.burn_in
