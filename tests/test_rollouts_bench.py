"""benchmarks/rollouts.py: the arms are paired, the origins stay in their part, the summary."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import rollouts as bench  # noqa: E402


def small_data(n=2400, context=20):  # 1680 training rows: 32 streams of 52 >= a chunk
    t = np.arange(n, dtype=np.float32)
    values = np.stack([np.sin(0.1 * t), np.cos(0.07 * t)], 1).astype(np.float32)
    return bench.Data("toy", values, context, "u")


def test_origins_score_only_rows_of_their_part():
    data = small_data()
    validation, test = data.cuts
    assert (validation, test) == (1680, 1920)
    last = max(bench.HORIZONS)
    for part, (start, end) in {"validation": (validation, test),
                               "test": (test, len(data.values))}.items():
        origins = data.origins(part, 7)
        assert origins[0] == start - 1  # the first scored row is the part's first
        assert all(start <= o + 1 and o + last <= end - 1 for o in origins)
    with pytest.raises(ValueError, match="toy: the test part .* too short"):
        small_data(n=400).origins("test", 10)


def test_every_arm_of_a_seed_starts_from_the_same_model_and_data():
    data = small_data()
    a, b = bench.build(data, 3), bench.build(data, 3)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert any(not torch.equal(p, q) for p, q in
               zip(a.parameters(), bench.build(data, 4).parameters()))
    torch.testing.assert_close(a.normalizer.mean, torch.from_numpy(data.train.mean(0)))


def test_an_arm_that_reduces_to_teacher_forcing_trains_to_the_same_weights(monkeypatch):
    # open loop at horizon 1 is teacher forcing: same start, same batches -> same weights
    data = small_data()
    real = bench.objective_specs
    monkeypatch.setattr(bench, "objective_specs", lambda steps: {
        **real(steps), "open_loop": {"kind": "open_loop", "horizon": 1, "stride": 4}})
    runs = {arm: bench.train_one(data, arm, 0, 6, stride=40) for arm in ("teacher", "open_loop")}
    assert runs["teacher"]["test"] == runs["open_loop"]["test"]
    assert [c["step"] for c in runs["teacher"]["validation_curve"]] == [1, 2, 3, 4, 5, 6]


def test_objective_ramps_span_half_the_budget():
    specs = bench.objective_specs(800)
    assert list(specs) == list(bench.ARMS)
    assert "steps=400" in specs["open_loop"]["horizon"]
    assert "steps=400" in specs["scheduled_sampling"]["eps"]


def test_score_pools_origins_and_features_and_divides_by_persistence():
    data = small_data()
    model = bench.build(data, 0)
    origins = data.origins("test", 40)
    out = bench.score(model, data, origins)
    assert list(out) == [str(h) for h in bench.HORIZONS]
    series = torch.from_numpy(data.values)
    index = torch.tensor(origins)
    for h, s in out.items():
        base = (series[index] - series[index + int(h)]).pow(2).mean().sqrt()
        assert s["persistence"] == pytest.approx(float(base))
        assert s["relative"] == pytest.approx(s["rmse"] / s["persistence"])


def fake_run(arm, seed, rmse):
    test = {str(h): {"rmse": rmse * h, "persistence": 2.0, "relative": rmse * h / 2.0}
            for h in bench.HORIZONS}
    return {"dataset": "toy", "arm": arm, "seed": seed, "steps_per_second": 10.0,
            "test": test}


def test_summary_pairs_each_objective_against_teacher_forcing_by_seed():
    runs = [fake_run("teacher", s, 1.0 + s) for s in range(3)]
    runs += [fake_run("open_loop", s, 0.5 + s + 0.01 * s) for s in range(3)]
    rows = bench.summarize(runs, ["toy"], ["teacher", "open_loop"])
    assert [(r["arm"], r["horizon"]) for r in rows] == [("open_loop", h) for h in bench.HORIZONS]
    first = rows[0]
    assert first["difference"] == pytest.approx(-0.49)
    assert first["ci_high"] < 0 and first["verdict"] == "helps"
    ratios = [(0.5 + 1.01 * s) / (1.0 + s) for s in range(3)]
    assert first["ratio"] == pytest.approx(np.exp(np.mean(np.log(ratios))))
    assert first["ratio_low"] < first["ratio"] < first["ratio_high"]
    assert rows[-1]["difference"] == pytest.approx(100 * -0.49)
    assert "| toy | open_loop | 1 | 2.000 | 2.000 | 1.510 | -0.490 [" in bench.table(rows)


def test_quick_run_writes_the_json_and_summarize_reads_it(tmp_path, capsys):
    out = tmp_path / "r.json"
    bench.main(["--quick", "--datasets", "lorenz63", "--arms", "teacher,open_loop",
                "--out", str(out)])
    result = json.loads(out.read_text())
    assert [(r["arm"], r["seed"]) for r in result["runs"]] == [
        ("teacher", 0), ("open_loop", 0), ("teacher", 1), ("open_loop", 1)]
    assert len(result["rows"]) == len(bench.HORIZONS)
    assert result["datasets"]["lorenz63"]["test_rows"] == 4000
    capsys.readouterr()
    bench.main(["--summarize", "--out", str(out)])
    assert "| lorenz63 | open_loop | 100 |" in capsys.readouterr().out


def test_bad_arguments_name_the_value():
    with pytest.raises(SystemExit, match="--datasets: .* got 'air'"):
        bench.plan(bench.parse_args(["--datasets", "air"]))
    with pytest.raises(SystemExit, match="--arms: .*teacher first.* got 'open_loop'"):
        bench.plan(bench.parse_args(["--arms", "open_loop"]))
    with pytest.raises(SystemExit, match="--steps: must be >= 2, got 1"):
        bench.plan(bench.parse_args(["--steps", "1"]))
    with pytest.raises(ValueError, match="unknown data set 'air'"):
        bench.load_data("air")
