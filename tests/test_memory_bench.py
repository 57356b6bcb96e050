"""benchmarks/memory.py: the TBPTT cut, the settings it builds, and its paired summary."""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import memory as bench  # noqa: E402


def test_chunk_half_sends_no_gradient_to_the_first_half():
    torch.manual_seed(0)
    model = bench.Regressor(bench.make_rnn("default", 10))
    x = torch.randn(3, 10, 2, requires_grad=True)
    model(x, grad_steps=5).sum().backward()
    assert x.grad[:, :5].abs().max() == 0
    assert x.grad[:, 5:].abs().max() > 0
    x.grad = None
    model(x).sum().backward()  # full BPTT reaches the first step
    assert x.grad[:, 0].abs().max() > 0


def test_the_curriculum_grows_the_chunk_to_full_bptt_in_thirds():
    cuts = [bench.grad_steps("curriculum", 100, step, 9) for step in range(9)]
    assert cuts == [25] * 3 + [50] * 3 + [None] * 3
    assert bench.grad_steps("gru_curriculum", 100, 8, 9) is None
    assert bench.grad_steps("chunk_half", 100, 0, 9) == 50
    assert bench.grad_steps("default", 100, 0, 9) is None
    assert isinstance(bench.make_rnn("gru_curriculum", 10), type(bench.make_rnn("gru", 10)))


def test_settings_build_the_gate_biases_they_name():
    h = bench.HIDDEN
    forget = slice(h, 2 * h)  # torch's LSTM gate order i, f, g, o

    def total_forget_bias(rnn):
        return (rnn.bias_ih_l0 + rnn.bias_hh_l0)[forget]

    assert torch.allclose(total_forget_bias(bench.make_rnn("default", 100)), torch.ones(h))
    assert torch.allclose(total_forget_bias(bench.make_rnn("forget_bias_0", 100)),
                          torch.zeros(h))
    chrono = total_forget_bias(bench.make_rnn("chrono", 100))
    assert chrono.min() >= 0 and chrono.max() <= torch.log(torch.tensor(99.0)) + 1e-5
    assert isinstance(bench.make_rnn("gru", 100), bench.rnnkit.GRU)


def test_summary_pairs_by_seed_and_gives_a_verdict():
    runs = [{"setting": s, "length": 50, "seed": k, "test_mse": v, "steps_per_second": 10.0}
            for s, values in [("default", [0.16, 0.17, 0.15]), ("chrono", [0.005, 0.03, 0.02])]
            for k, v in enumerate(values)]
    rows = bench.summarize(runs, ["default", "chrono"], [50])
    assert rows[0]["verdict"] == "" and rows[0]["difference"] is None
    chrono = rows[1]
    assert chrono["difference"] == pytest.approx((-0.155 - 0.14 - 0.13) / 3)
    assert chrono["solved"] == 1 and rows[0]["solved"] == 0  # under 0.01 only
    assert chrono["ci_high"] < 0 and chrono["verdict"] == "helps"
    assert "| 1 / 3 |" in bench.table(rows)


def test_quick_run_writes_every_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "TEST_SIZE", 20)
    out = tmp_path / "m.json"
    bench.main(["--lengths", "6", "--steps", "2", "--seeds", "2", "--out", str(out)])
    result = json.loads(out.read_text())
    assert len(result["runs"]) == 2 * len(bench.SETTINGS)
    assert [r["setting"] for r in result["rows"]] == list(bench.SETTINGS)


def test_bad_settings_are_refused():
    with pytest.raises(SystemExit, match="--settings: expected 'default' first"):
        bench.plan(bench.parse_args(["--settings", "chrono,default"]))
    with pytest.raises(SystemExit, match="--steps: give one value or one per length"):
        bench.plan(bench.parse_args(["--lengths", "10,20,30", "--steps", "1,2"]))
    with pytest.raises(SystemExit, match="gru_chunk_half is paired with gru; add it"):
        bench.plan(bench.parse_args(["--settings", "default,gru_chunk_half"]))


def test_gru_chunk_half_is_paired_with_the_gru():
    runs = [{"setting": s, "length": 8, "seed": k, "test_mse": v, "steps_per_second": 1.0}
            for s, values in [("default", [0.1, 0.1]), ("gru", [0.001, 0.002]),
                              ("gru_chunk_half", [0.081, 0.082])]
            for k, v in enumerate(values)]
    row = bench.summarize(runs, ["default", "gru", "gru_chunk_half"], [8])[2]
    assert row["reference"] == "gru" and row["difference"] == pytest.approx(0.08)
