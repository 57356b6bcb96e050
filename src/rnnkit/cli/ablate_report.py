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

from rnnkit.stats import t_quantile

HELPS, HURTS, UNCLEAR = "helps", "hurts", "no clear effect at this budget"


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (``stats.t_quantile``:
    exact for 1 and 2, within 0.11% from 3)."""
    if df < 1:
        raise ValueError(f"t975: degrees of freedom must be >= 1, got {df}")
    return t_quantile(0.975, float(df))


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
        scored = [r for r in runs if r.get("test_coverage") is not None]
        if scored:  # a series study: interval quality beside the point forecast's
            entry["test_coverage_mean"] = statistics.fmean(r["test_coverage"] for r in scored)
            entry["test_scaled_crps_mean"] = statistics.fmean(r["test_scaled_crps"]
                                                              for r in scored)
        if row is not rows[0]:
            mean, low, high, pairs = paired_effect(losses, default)
            entry.update(effect=mean, ci_low=low, ci_high=high, pairs=pairs,
                         verdict=verdict(low, high) if pairs else "no finished pair")
        table.append(entry)
    return table


def number(value: float | None, digits: int = 4, sign: bool = False) -> str:
    """A table cell: ``value`` with ``digits`` decimals (a sign with ``sign``), "-" for None."""
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def table_markdown(table: Sequence[dict[str, Any]], metric: str = "loss (nats/char)"
                   ) -> list[str]:
    intervals = any("test_coverage_mean" in e for e in table)  # a series study
    extra = " scaled CRPS | 80% coverage |" if intervals else ""
    lines = [f"| trick | setting | test {metric}, mean ± sd | seeds | difference to the "
             f"default [95% CI] | steps/s | verdict |{extra}",
             "| --- | --- | --- | --- | --- | --- | --- |" + " --- | --- |" * intervals]
    for e in table:
        loss = f"{number(e['test_loss_mean'])} ± {number(e['test_loss_sd'])}"
        if "effect" in e:
            interval = (f" [{number(e['ci_low'], sign=True)}, {number(e['ci_high'], sign=True)}]"
                        if e["ci_low"] is not None else "")
            effect, judged = number(e["effect"], sign=True) + interval, e["verdict"]
        else:
            effect, judged = "(reference)", ""
        seeds = f"{e['seeds']}" + (f" ({e['failed']} failed)" if e["failed"] else "")
        lines.append(f"| {e['trick']} | {e['setting']} | {loss} | {seeds} | {effect} | "
                     f"{number(e['steps_per_second'], 1)} | {judged} |" + (
                         f" {number(e.get('test_scaled_crps_mean'))} | "
                         f"{number(e.get('test_coverage_mean'), 2)} |" if intervals else ""))
    return lines


def report_markdown(study: dict[str, Any], base: Any, table: Sequence[dict[str, Any]],
                    skipped: Sequence[tuple[str, str]], unseen: int = 0,
                    default: str = "", baselines: dict[str, float] | None = None) -> str:
    """The report: what ran, the table, what was skipped, the plots. ``default`` describes
    the default model; ``baselines`` (a series study) the baselines' mean test MASE."""
    budget = f"{study['budget']:g} s" if study["budget"] else f"{study['steps']} steps"
    lines = ["# rnnkit ablate: what each trick buys the default model", ""]
    if study["quick"]:
        lines += ["**--quick: a smoke check of the machinery (a tiny model on a slice of the "
                  "data, a few dozen steps). Its numbers say nothing about the tricks.**", ""]
    series = study.get("kind") == "series"
    if series:
        h, w = study["horizon"], study["windows"]
        lines += [
            f"- data: {study['file']} (sha256 {study['data_sha256'][:12]}), {study['series']} "
            f"{study['frequency']} series; the test split is the last {w} x {h} rows of each "
            f"series ({w} forecast origins {h} steps apart), never given to a run; each run "
            "trains once on the rows before the first origin (keeping its best weights on "
            "the forecaster's own validation rows, the last of those) and forecasts every "
            "origin from the true history before it",
            f"- default: the forecaster of `rnnkit forecast` for this data: {default}"]
    else:
        lines += [
            f"- data: {study['file']} (sha256 {study['data_sha256'][:12]}); the "
            f"{'first' if study.get('test_at') == 'start' else 'last'} "
            f"{study['test_fraction']:.0%} is the test split, never given to a run; each run "
            f"trains on the rest and keeps its best checkpoint on its own validation split "
            f"(the last {base.val_fraction:.0%} of the rest)",
            f"- default: the model of `rnnkit train` with this budget: {default}"]
    lines += [
        f"- every run: a budget of {budget}, seeds 0 to {study['seeds'] - 1}; each trick is "
        "toggled alone (off where the default has it on, on where it has it off); "
        f"{study['machine']}"]
    if series:
        shown = ", ".join(f"{name} {value:.4f}" for name, value in (baselines or {}).items())
        lines.append(
            "- test MASE: the median forecast's mean absolute error over the horizon divided "
            "by the in-sample seasonal-naive MAE, averaged over origins and series (lower is "
            f"better); the baselines on the same origins: {shown}. Scaled CRPS: the sample "
            "paths' CRPS over MASE's scale; coverage: the share of test values inside the "
            "80% interval (80% is right). The difference to the "
            "default is paired by seed, with a 95% t-interval over the per-seed differences. "
            "Negative is better: *helps* or *hurts* when the interval excludes 0.")
    else:
        lines.append(
            "- test loss: the best checkpoint's mean nats/char on the test split; the "
            "difference to the default is paired by seed, with a 95% t-interval over the "
            "per-seed differences. Negative is better: *helps* or *hurts* when the interval "
            "excludes 0.")
    lines += ["", *table_markdown(table, study.get("metric", "loss (nats/char)")), ""]
    if unseen:
        lines += [f"Characters of the test split that training never saw: {unseen}; every "
                  "run's test loss skips them.", ""]
    lines += [f"Skipped {trick}: {why}." for trick, why in skipped]
    lines += ["", "![effects](effects.png)", "", "![learning curves](curves.png)", "",
              "Raw results: `ablation.json` (and `results/` per run; each run's directory "
              "under `runs/`).", ""]
    return "\n".join(lines)


def write(out: Path, study: dict[str, Any], base: Any, rows: Sequence[Any],
          skipped: Sequence[tuple[str, str]], results: Sequence[dict[str, Any]],
          default: str = "") -> None:
    """report.md, ablation.json, effects.png and curves.png in ``out``; ``default`` says
    what the default model is."""
    table = summarize(rows, results)
    unseen = max((r.get("test_skipped", 0) for r in results), default=0)
    baselines = None
    if study.get("kind") == "series":  # the same for every run: take the default's first
        default_runs = [r for r in results if r["trick"] == rows[0].trick]
        baselines = default_runs[0]["baselines_mase"] if default_runs else None
    text = report_markdown(study, base, table, skipped, unseen, default, baselines)
    (out / "report.md").write_text(text, encoding="utf-8")
    raw = {"study": study, "table": table, "skipped": [list(s) for s in skipped],
           "runs": list(results)}
    (out / "ablation.json").write_text(json.dumps(raw, indent=2) + "\n")
    metric = study.get("metric", "loss (nats/char)")
    plot_effects(table, out / "effects.png", metric)
    plot_curves(rows, results, out / "curves.png",
                "validation CRPS / mean |y|" if study.get("kind") == "series"
                else "validation loss (nats/char)")


def plot_effects(table: Sequence[dict[str, Any]], path: Path,
                 metric: str = "loss (nats/char)") -> None:
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
    ax.set_xlabel(f"test {metric} minus the default's; 95% interval over seeds")
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


def plot_curves(rows: Sequence[Any], results: Sequence[dict[str, Any]], path: Path,
                ylabel: str = "validation loss (nats/char)") -> None:
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
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
