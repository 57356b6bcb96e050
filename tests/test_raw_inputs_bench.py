"""benchmarks/raw_inputs.py: the split, the windows, the pairing of arms and the summary."""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import raw_inputs as bench  # noqa: E402

needs_data = pytest.mark.skipif(
    not all(d.path.exists() for d in bench.DATASETS.values()),
    reason="needs ../shared/data")


def test_split_holds_out_the_last_fifth_and_a_validation_slice_before_it():
    val_start, test_start = bench.split_rows(100)
    assert (val_start, test_start) == (65, 80)
    with pytest.raises(ValueError, match="got 5"):
        bench.split_rows(5)


def test_standardize_uses_only_the_training_rows():
    values = torch.randn(50, 3)
    a = bench.standardize(values, 30)
    changed = values.clone()
    changed[30:] += 100.0
    b = bench.standardize(changed, 30)
    torch.testing.assert_close(a[:30], b[:30])
    torch.testing.assert_close(a[:30].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="constant"):
        bench.standardize(torch.ones(10, 2), 5)


def test_windows_never_train_on_held_out_targets_and_predict_from_the_rows_before():
    x = torch.arange(40.0).unsqueeze(1)  # row t holds t
    inputs, targets = bench.training_windows(x, 20, 5)
    assert targets.max() == 19 and inputs.shape == (15, 5, 1)
    torch.testing.assert_close(targets, inputs + 1)
    inputs, targets = bench.held_out_windows(x, 30, 40, 5)
    assert targets[:, 0].tolist() == list(range(30, 40))
    assert inputs[0, :, 0].tolist() == [25, 26, 27, 28, 29]
    with pytest.raises(ValueError, match="3..10"):
        bench.held_out_windows(x, 3, 10, 5)


@pytest.mark.parametrize("cell", bench.CELLS)
def test_arms_of_a_seed_share_the_initial_weights_of_their_shared_parts(cell):
    default = dict(bench.build(cell, "default", 4, 3).named_parameters())
    same = dict(bench.build(cell, "no_clip", 4, 3).named_parameters())
    assert all(torch.equal(default[n], same[n]) for n in default)
    mlp = dict(bench.build(cell, "input_layers_1", 4, 3).named_parameters())
    assert "rnn.input_layers.0.weight" in mlp and mlp["rnn.weight_ih_l0"].shape[1] == 32
    for name in ("rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "head.weight"):
        assert torch.equal(mlp[name], default[name]), name
    norm = dict(bench.build(cell, "layer_norm", 4, 3).named_parameters())
    for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight", "head.bias"):
        assert torch.equal(norm[name], default[name]), name
    assert not torch.equal(norm["rnn.bias_hh_l0"], default["rnn.bias_hh_l0"])
    assert not torch.equal(bench.build(cell, "default", 4, 4).head.weight, default["head.weight"])


def test_arms_see_the_same_batches_and_only_no_clip_changes_clipping():
    x = torch.randn(40, 6, 2)
    train = (x, torch.randn(40, 6, 2))
    losses = []
    for arm in ("default", "input_layers_1"):
        model = bench.build("gru", arm, 2, 0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses.append(bench.train_step(model, opt, train, torch.Generator().manual_seed(5),
                                       bench.ARMS[arm][2]))
    assert losses[0][0] != losses[1][0]  # different models, but the same rows were drawn:
    pick = torch.randint(40, (bench.BATCH,), generator=torch.Generator().manual_seed(5))
    model = bench.build("gru", "default", 2, 0)
    with torch.no_grad():
        expected = float(((model(x[pick]) - train[1][pick]) ** 2).mean())
    assert losses[0][0] == pytest.approx(expected)
    assert bench.ARMS["no_clip"][2] is False
    assert all(bench.ARMS[a][2] for a in bench.ARMS if a != "no_clip")


def _run(arm, seed, value, data="uschange"):
    return {"data": data, "cell": "gru", "arm": arm, "seed": seed, "steps_per_second": 10.0,
            "at_best": {"test": value, "validation": value},
            "at_last": {"test": 2 * value, "validation": value}}


def test_summary_pairs_each_arm_against_the_default_by_seed():
    runs = [_run("default", s, 1.0 + s) for s in range(3)]
    runs += [_run("input_layers_1", s, 0.9 + s + 0.01 * s) for s in range(3)]
    baselines = {"uschange": {"test": {"persistence": 2.0, "training_mean": 1.5}}}
    rows = bench.summarize(runs, baselines)
    assert [(r["arm"], r["read"]) for r in rows] == [("input_layers_1", "at_best"),
                                                      ("input_layers_1", "at_last")]
    best, last = rows
    assert best["difference"] == pytest.approx(-0.09)
    assert last["difference"] == pytest.approx(-0.18)
    assert best["ci_high"] < 0 and best["verdict"] == "helps"
    assert best["default_over_persistence"] == pytest.approx(1.0)
    assert "| uschange | gru | input_layers_1 | best validation |" in bench.table(rows)


@needs_data
def test_load_cuts_uschange_in_time_order_with_baselines():
    data = bench.load("uschange")
    assert data["rows"] == {"train": 122, "validation": 28, "test": 37}
    assert data["test"][1].shape == (37, 5) and data["test"][0].shape == (37, 16, 5)
    assert data["train"][1].shape[1:] == (16, 5)
    assert data["baselines"]["test"]["persistence"] > 0
    with pytest.raises(ValueError, match="'nope'"):
        bench.load("nope")


@needs_data
def test_quick_study_writes_the_json_and_summarize_reprints_it(tmp_path, capsys):
    out = tmp_path / "quick.json"
    torch.set_num_threads(1)
    bench.main(["--quick", "--data", "uschange", "--cells", "gru",
                "--arms", "input_layers_1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert {r["arm"] for r in result["runs"]} == {"default", "input_layers_1"}
    assert len(result["runs"]) == 4 and len(result["rows"]) == 2
    assert all(r["best_step"] % 10 == 0 for r in result["runs"])
    printed = capsys.readouterr().out
    bench.main(["--summarize", "--out", str(out)])
    assert bench.table(result["rows"]) in capsys.readouterr().out
    assert "| uschange | gru | input_layers_1 |" in printed


def test_bad_arguments_name_the_bad_value():
    with pytest.raises(SystemExit, match="'lstm,rnn'"):
        bench.plan(bench.parse_args(["--cells", "lstm,rnn"]))
    with pytest.raises(SystemExit, match="got 5 and 10"):
        bench.plan(bench.parse_args(["--steps", "5"]))
    with pytest.raises(ValueError, match="'x'"):
        bench.build("gru", "x", 2, 0)
