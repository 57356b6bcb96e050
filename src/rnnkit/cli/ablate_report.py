"""The report of ``rnnkit ablate``: statistics over seeds, report.md, plots and the raw JSON.

Every loss here is a test-split loss (nats/char) of a run's best checkpoint; the effect of a
trick is its loss minus the default's, paired by seed, with a 95% t-interval over the seeds.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Student's t, 97.5% quantile, by degrees of freedom (two-sided 95% intervals).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
HELPS, HURTS, UNCLEAR = "helps", "hurts", "no clear effect at this budget"


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (a table to 30, then
    the Cornish-Fisher expansion, within 0.001)."""
    if df < 1:
        raise ValueError(f"t975: degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def paired_effect(trick: dict[int, float], default: dict[int, float]
                  ) -> tuple[float | None, float | None, float | None, int]:
    """Mean of the per-seed differences (trick - default) and its 95% t-interval; the
    interval is None with fewer than 2 paired seeds."""
    diffs = [trick[k] - default[k] for k in sorted(trick) if k in default]
    if not diffs:
        return None, None, None, 0
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, None, None, 1
    half = t975(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half, len(diffs)


def verdict(low: float | None, high: float | None) -> str:
    """Lower loss is better: an interval wholly below 0 helps, wholly above 0 hurts."""
    if low is None or high is None:
        return "one seed: no interval"
    if high < 0:
        return HELPS
    if low > 0:
        return HURTS
    return UNCLEAR


def _losses(results: Sequence[dict[str, Any]], trick: str) -> dict[int, float]:
    return {r["seed"]: r["test_loss"] for r in results
            if r["trick"] == trick and r.get("test_loss") is not None}


def summarize(rows: Sequence[Any], results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per row of the table: losses over seeds, the effect and its verdict."""
    default = _losses(results, rows[0].trick)
    table = []
    for row in rows:
        losses = _losses(results, row.trick)
        runs = [r for r in results if r["trick"] == row.trick]
        speeds = [r["steps_per_second"] for r in runs if r.get("steps_per_second")]
        values = list(losses.values())
        entry = {"trick": row.trick, "setting": row.setting, "overrides": row.overrides,
                 "seeds": len(values), "failed": len(runs) - len(values),
                 "test_loss_mean": statistics.fmean(values) if values else None,
                 "test_loss_sd": statistics.stdev(values) if len(values) > 1 else None,
                 "steps_per_second": statistics.fmean(speeds) if speeds else None}
        if row is not rows[0]:
            mean, low, high, pairs = paired_effect(losses, default)
            entry.update(effect=mean, ci_low=low, ci_high=high, pairs=pairs,
                         verdict=verdict(low, high) if pairs else "no finished pair")
        table.append(entry)
    return table


def _num(value: float | None, digits: int = 4, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def table_markdown(table: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| trick | setting | test loss, mean ± sd (nats/char) | seeds | difference to the "
             "default [95% CI] | steps/s | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for e in table:
        loss = f"{_num(e['test_loss_mean'])} ± {_num(e['test_loss_sd'])}"
        if "effect" in e:
            interval = (f" [{_num(e['ci_low'], sign=True)}, {_num(e['ci_high'], sign=True)}]"
                        if e["ci_low"] is not None else "")
            effect, judged = _num(e["effect"], sign=True) + interval, e["verdict"]
        else:
            effect, judged = "(reference)", ""
        seeds = f"{e['seeds']}" + (f" ({e['failed']} failed)" if e["failed"] else "")
        lines.append(f"| {e['trick']} | {e['setting']} | {loss} | {seeds} | {effect} | "
                     f"{_num(e['steps_per_second'], 1)} | {judged} |")
    return lines


def report_markdown(study: dict[str, Any], base: Any, table: Sequence[dict[str, Any]],
                    skipped: Sequence[tuple[str, str]], unseen: int = 0) -> str:
    """The report: what ran, the table, what was skipped, the plots."""
    budget = f"{study['budget']:g} s" if study["budget"] else f"{study['steps']} steps"
    lines = ["# rnnkit ablate: what each trick buys the default model", ""]
    if study["quick"]:
        lines += ["**--quick: a smoke check of the machinery (a tiny model on a slice of the "
                  "data, a few dozen steps). Its numbers say nothing about the tricks.**", ""]
    lines += [
        f"- data: {study['file']} (sha256 {study['data_sha256'][:12]}); the last "
        f"{study['test_fraction']:.0%} is the test split, never given to a run; each run "
        f"trains on the rest and keeps its best checkpoint on its own validation split (the "
        f"last {base.val_fraction:.0%} of the rest)",
        f"- default: the model of `rnnkit train` with this budget: {base.model_size} preset, "
        f"{base.cell.upper()} {base.num_layers}x{base.hidden_size}, embeddings "
        f"{base.embed_dim}, chunks of {base.chunk_length}, batch {base.batch_size}",
        f"- every run: a budget of {budget}, seeds 0 to {study['seeds'] - 1}; each trick is "
        "toggled alone (off where the default has it on, on where it has it off); "
        f"{study['machine']}",
        "- test loss: the best checkpoint's mean nats/char on the test split; the difference "
        "to the default is paired by seed, with a 95% t-interval over the per-seed "
        "differences. Negative is better: *helps* or *hurts* when the interval excludes 0.",
        "",
        *table_markdown(table), ""]
    if unseen:
        lines += [f"Characters of the test split that training never saw: {unseen}; every "
                  "run's test loss skips them.", ""]
    lines += [f"Skipped {trick}: {why}." for trick, why in skipped]
    lines += ["", "![effects](effects.png)", "", "![learning curves](curves.png)", "",
              "Raw results: `ablation.json` (and `results/` per run; each run's directory "
              "under `runs/`).", ""]
    return "\n".join(lines)


def write(out: Path, study: dict[str, Any], base: Any, rows: Sequence[Any],
          skipped: Sequence[tuple[str, str]], results: Sequence[dict[str, Any]]) -> None:
    """report.md, ablation.json, effects.png and curves.png in ``out``."""
    table = summarize(rows, results)
    unseen = max((r.get("test_skipped", 0) for r in results), default=0)
    (out / "report.md").write_text(report_markdown(study, base, table, skipped, unseen),
                                   encoding="utf-8")
    raw = {"study": study, "table": table, "skipped": [list(s) for s in skipped],
           "runs": list(results)}
    (out / "ablation.json").write_text(json.dumps(raw, indent=2) + "\n")
    plot_effects(table, out / "effects.png")
    plot_curves(rows, results, out / "curves.png")


def plot_effects(table: Sequence[dict[str, Any]], path: Path) -> None:
    """A bar per trick: the mean difference to the default, with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [e for e in table if e.get("effect") is not None]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.5))
    colors = {HELPS: "tab:green", HURTS: "tab:red"}
    for i, e in enumerate(rows):
        err = None
        if e["ci_low"] is not None:
            err = [[e["effect"] - e["ci_low"]], [e["ci_high"] - e["effect"]]]
        ax.barh(i, e["effect"], xerr=err, color=colors.get(e["verdict"], "tab:gray"),
                capsize=3)
    ax.set_yticks(range(len(rows)), [e["trick"] for e in rows])
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("test loss minus the default's (nats/char); 95% interval over seeds")
    ax.set_title("effect of toggling each trick (negative: better)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def eval_curve(metrics: Path) -> tuple[list[int], list[float]]:
    """(steps, validation losses) of a run's metrics.jsonl."""
    steps, losses = [], []
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            if record.get("split") == "eval" and "loss" in record:
                steps.append(record["step"])
                losses.append(record["loss"])
    return steps, losses


def plot_curves(rows: Sequence[Any], results: Sequence[dict[str, Any]], path: Path) -> None:
    """A panel per trick: its validation curves (one per seed) over the default's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {r["id"]: r for r in results}
    tricks = rows[1:] or rows[:1]
    cols = min(4, len(tricks))
    nrows = math.ceil(len(tricks) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False,
                             sharey=True)
    for ax, row in zip(axes.flat, tricks):
        for color, shown in (("tab:gray", rows[0]), ("tab:blue", row)):
            for k, run_id in enumerate(shown.run_ids):
                steps, losses = eval_curve(Path(runs[run_id]["run_dir"]) / "metrics.jsonl")
                ax.plot(steps, losses, color=color, marker=".", linewidth=1,
                        label=shown.trick if k == 0 else None)
        ax.set_title(row.trick, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(tricks):]:
        ax.axis("off")
    axes[0][0].set_ylabel("validation loss (nats/char)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
