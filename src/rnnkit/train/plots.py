"""The training plot: losses over steps, and the gradient norm with its clip threshold."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["plot_metrics"]


def plot_metrics(metrics_path: str | Path, out_path: str | Path) -> None:
    """Draw metrics.jsonl (as the trainer writes it) to a PNG with two panels.

    Top: training loss (per step, normalized) and evaluation loss (nats per step) against
    the optimizer step. Bottom: the global gradient norm (log scale) and, where clipping is
    on, the threshold it was clipped at.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    train: dict[str, list[float]] = {
        k: [] for k in ("step", "loss", "grad_norm", "clip_step", "clip")
    }
    evals: dict[str, list[float]] = {"step": [], "loss": []}
    with open(metrics_path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("split") == "eval":
                if "loss" not in rec:  # no evaluation data: only the training loss
                    continue
                evals["step"].append(rec["step"])
                evals["loss"].append(rec["loss"])
            elif not rec.get("skipped"):
                train["step"].append(rec["step"])
                train["loss"].append(rec["nats_per_step"])
                train["grad_norm"].append(rec["grad_norm"])
                if rec.get("clip_threshold") is not None:
                    train["clip_step"].append(rec["step"])
                    train["clip"].append(rec["clip_threshold"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(train["step"], train["loss"], lw=0.6, alpha=0.7, label="train (per step)")
    if evals["step"]:
        top.plot(evals["step"], evals["loss"], "o-", label="eval (per step)")
    top.set_ylabel("loss (nats / time step)")
    top.legend()
    bottom.plot(train["step"], train["grad_norm"], lw=0.6, label="gradient norm")
    if train["clip"]:
        bottom.plot(train["clip_step"], train["clip"], lw=1.2, label="clip threshold")
    bottom.set_yscale("log")
    bottom.set_xlabel("step")
    bottom.set_ylabel("global L2 norm")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
