"""benchmarks/short_sequences.py: the two arms are paired, the metrics and the summary."""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import short_sequences as bench  # noqa: E402


@pytest.mark.parametrize("cell", bench.CELLS)
def test_both_arms_of_a_seed_start_from_the_same_model(cell):
    zeros, learned = bench.build(cell, "zeros", 3), bench.build(cell, "learned", 3)
    extra = {n: p for n, p in learned.named_parameters() if n.startswith("rnn.initial_")}
    assert extra and all(p.abs().max() == 0 for p in extra.values())
    shared = {n: p for n, p in learned.named_parameters() if n not in extra}
    assert shared.keys() == dict(zeros.named_parameters()).keys()
    for name, p in zeros.named_parameters():
        assert torch.equal(p, shared[name]), name
    x = torch.randn(4, 6, 1)
    torch.testing.assert_close(zeros(x), learned(x))  # before training: the same function


def test_the_learned_state_is_trained_and_the_zero_state_is_not_a_parameter():
    model = bench.build("gru", "learned", 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    bench.train_step(model, opt, torch.Generator().manual_seed(0))
    assert model.rnn.initial_h.abs().max() > 0
    assert not any("initial" in n for n, _ in bench.build("gru", "zeros", 0).named_parameters())


def test_metrics_average_the_first_k_steps():
    per_step = [4.0, 2.0, 0.0, 2.0, 2.0, 0.0]
    m = bench.metrics(per_step)
    assert m == {"first_1": 4.0, "first_3": 2.0, "first_5": 2.0, "all": 10.0 / 6}


def test_summary_pairs_learned_against_zeros_by_seed():
    def run(arm, seed, value):
        test = {m: value for m in bench.METRICS}
        return {"cell": "gru", "arm": arm, "seed": seed, "steps_per_second": 10.0,
                "at": {"5": {"test": test}}}

    runs = [run("zeros", s, 1.0 + s) for s in range(3)]
    runs += [run("learned", s, 0.9 + s + 0.01 * s) for s in range(3)]
    rows = bench.summarize(runs, ["gru"], [5])
    assert [r["metric"] for r in rows] == list(bench.METRICS)
    assert rows[0]["difference"] == pytest.approx(-0.09)
    assert rows[0]["ci_high"] < 0 and rows[0]["verdict"] == "helps"
    assert "| 5 | gru | first 1 |" in bench.table(rows)


def test_first_step_floor_is_below_guessing_the_mean():
    test = bench.sine_episodes(2000, 4, 1, noise=bench.NOISE)
    floor = bench.first_step_floor(test, n=50_000, bins=50)
    assert 0.1 < floor < float(test[1][:, 0].var())


def test_bad_arguments_name_the_value():
    with pytest.raises(SystemExit, match="--cells: .* got 'rnn'"):
        bench.plan(bench.parse_args(["--cells", "rnn"]))
    with pytest.raises(SystemExit, match="--budgets: .* got '500,100'"):
        bench.plan(bench.parse_args(["--budgets", "500,100"]))
