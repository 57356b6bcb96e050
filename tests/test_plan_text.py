"""rnnkit.train.presets.plan_text: the char model's size and regularization from the text's
size, the budget and the measured step rates; one test per branch, and the CLI's use of it."""

import itertools

import pytest
import torch
from torch import nn

from rnnkit.cli import train as cli_train
from rnnkit.train import presets
from rnnkit.train.presets import (
    DEEP,
    DEEP_MIN_STEPS,
    LARGE_MIN_STEPS,
    LIGHT,
    LIGHT_FROM_PASSES,
    MEDIUM_MAX_PASSES,
    MEDIUM_MIN_STEPS,
    MEDIUM_UNTIL_LARGE_STEPS,
    MODEL_SIZES,
    PATIENCE,
    REGULARIZE_FROM_PASSES,
    REGULARIZED,
    plan_text,
    seconds_per_step,
)

BATCH = presets.TRAINING["batch_size"]
# step rates where 95 s buys neither wider preset its steps (the small model is chosen)
RATES = {"small": 12.0, "medium": 5.0, "large": 2.0}
# ... and where 600 s buys the large one enough steps to take it over the medium one
LONG = {"small": 12.0, "medium": 5.0, "large": MEDIUM_UNTIL_LARGE_STEPS / 600}


def chars_for(passes: float, size: str, max_time: float, rate: float) -> int:
    """The training text on which ``size`` makes ``passes`` passes in the budget."""
    return int(max_time * rate * BATCH * MODEL_SIZES[size]["chunk_length"] / passes)


def test_a_short_budget_on_a_large_text_keeps_the_small_preset():
    plan = plan_text(chars_for(3, "small", 95, 12.0), 95, RATES)  # the large model: 190 steps
    assert (plan.size, plan.changes) == ("small", {})
    assert plan.passes == pytest.approx(3, rel=1e-3)
    assert "~3 passes in 95 s: the small model as preset" in plan.reason


def test_a_budget_that_buys_the_large_model_its_steps_takes_it():
    plan = plan_text(chars_for(5, "large", 600, LONG["large"]), 600, LONG)
    assert (plan.size, plan.changes) == ("large", {})  # though the medium one makes 3000 steps
    rates = {**RATES, "large": LARGE_MIN_STEPS / 600}  # 600 s: the medium one 3000 steps ...
    text = chars_for(MEDIUM_MAX_PASSES * 1.5, "medium", 600, rates["medium"])  # ... too many passes
    assert plan_text(text, 600, rates).size == "large"
    short = plan_text(text, 600, {**rates, "large": rates["large"] * 0.99})
    assert short.size == "small"


def test_a_budget_that_buys_the_medium_model_its_steps_in_few_passes_takes_it():
    rates = {**RATES, "medium": MEDIUM_MIN_STEPS / 600}  # the large one: 1200 steps
    plan = plan_text(chars_for(3, "medium", 600, rates["medium"]), 600, rates)
    assert (plan.size, plan.changes) == ("medium", {})
    assert "~3 passes in 600 s: the medium model as preset" in plan.reason
    fewer = plan_text(chars_for(3, "medium", 600, rates["medium"]), 600,
                      {**rates, "medium": rates["medium"] * 0.99})
    assert fewer.size == "large"
    # the small one, wider, with the light regularizers at any number of passes; past 16
    # passes the small one's dropout as well, and past MEDIUM_MAX_PASSES the large model
    assert MODEL_SIZES["medium"] == {**MODEL_SIZES["small"], **LIGHT["small"],
                                     "hidden_size": 320}
    assert plan_text(chars_for(LIGHT_FROM_PASSES + 1, "medium", 600, rates["medium"]), 600,
                     rates).changes == {}
    many = plan_text(chars_for(MEDIUM_MAX_PASSES * 0.9, "medium", 600, rates["medium"]),
                     600, rates)
    assert MEDIUM_MAX_PASSES * 0.9 > REGULARIZE_FROM_PASSES
    assert (many.size, many.changes) == ("medium", REGULARIZED["small"])
    too_many = plan_text(chars_for(MEDIUM_MAX_PASSES * 1.01, "medium", 600, rates["medium"]),
                         600, rates)
    assert too_many.size == "large"


def test_many_passes_regularize_the_small_model():
    rates = RATES
    plan = plan_text(chars_for(REGULARIZE_FROM_PASSES * 2, "small", 95, 12.0), 95, rates)
    assert plan.size == "small" and plan.changes == REGULARIZED["small"]
    assert plan.changes["dropout"] > MODEL_SIZES["small"]["dropout"]
    assert "dropout 0.3" in plan.reason
    just_under = plan_text(chars_for(REGULARIZE_FROM_PASSES * 0.99, "small", 95, 12.0), 95,
                           rates)
    assert just_under.changes == LIGHT["small"]  # the light branch, below


def test_a_few_passes_give_the_small_model_the_light_regularizers_without_dropout():
    rates = RATES
    plan = plan_text(chars_for(8, "small", 95, 12.0), 95, rates)
    assert plan.size == "small" and plan.changes == LIGHT["small"]
    assert "dropout" not in plan.changes and plan.changes["ema_decay"] > 0
    assert plan.reason.endswith(
        "~8 passes in 95 s: the small model with embed_dropout 0.1, weight_decay 0.1, "
        "ema_decay 0.995")
    fewer = plan_text(chars_for(LIGHT_FROM_PASSES * 0.99, "small", 95, 12.0), 95, rates)
    assert fewer.changes == {} and fewer.reason.endswith("the small model as preset")
    assert LIGHT["medium"] == LIGHT["large"] == {}  # those presets have them already
    for name, value in LIGHT["small"].items():
        assert MODEL_SIZES["large"][name] == value != MODEL_SIZES["small"][name]


def test_more_passes_than_the_epoch_cap_replace_the_cap_with_patience():
    rates, rate = LONG, LONG["large"]
    cap = MODEL_SIZES["large"]["max_epochs"]
    plan = plan_text(chars_for(cap * 1.5, "large", 600, rate), 600, rates)
    assert plan.size == "large" and plan.changes == {"max_epochs": 0.0, "patience": PATIENCE}
    assert f"past its {cap:g} epochs while validation improves" in plan.reason
    within = plan_text(chars_for(cap * 0.9, "large", 600, rate), 600, rates)
    assert within.changes == {}  # the cap does not bind: the preset as it is


def test_many_passes_regularize_the_large_model_and_patience_replaces_its_epoch_cap():
    plan = plan_text(chars_for(50, "large", 600, LONG["large"]), 600, LONG)
    assert plan.size == "large"
    assert plan.changes == {**REGULARIZED["large"], "max_epochs": 0.0, "patience": PATIENCE}
    assert plan.changes["dropout"] > MODEL_SIZES["large"]["dropout"]


def test_past_the_regularizing_passes_the_large_model_takes_two_layers_where_they_fit():
    text = chars_for(20, "large", 600, LONG["large"])  # one layer: 1400 steps, ~20 passes
    deep = LONG["large"] / 2.2  # two layers: ~640 steps, ~9 passes
    plan = plan_text(text, 600, LONG, deep_steps_per_second=lambda: deep)
    assert plan.size == "large" and plan.passes == pytest.approx(20 / 2.2, rel=1e-3)
    cap = MODEL_SIZES["large"]["max_epochs"]
    assert plan.passes > cap  # so patience replaces the cap, as in the other branches
    assert plan.changes == {**DEEP, "max_epochs": 0.0, "patience": PATIENCE}
    assert plan.changes["num_layers"] == 2 > MODEL_SIZES["large"]["num_layers"]
    assert plan.changes["dropout"] < REGULARIZED["large"]["dropout"]
    assert "~9 passes in 600 s: the large model with num_layers 2, dropout 0.2 (one layer " \
           "would make ~20 passes)" in plan.reason
    regularized = {**REGULARIZED["large"], "max_epochs": 0.0, "patience": PATIENCE}
    # too few steps for two layers, or too many passes even for them: regularized as before
    few = plan_text(text, 600, LONG, deep_steps_per_second=lambda: DEEP_MIN_STEPS / 600 * 0.99)
    assert few.changes == regularized and few.passes == pytest.approx(20, rel=1e-3)
    small_text = chars_for(REGULARIZE_FROM_PASSES * 2.2 * 1.01, "large", 600, LONG["large"])
    assert plan_text(small_text, 600, LONG, deep_steps_per_second=lambda: deep).changes == \
        regularized
    # below the regularizing passes the two-layer model is not timed
    def untimed() -> float:
        raise AssertionError("timed without need")

    assert plan_text(chars_for(10, "large", 600, LONG["large"]), 600, LONG,
                     deep_steps_per_second=untimed).changes == {"max_epochs": 0.0,
                                                                "patience": PATIENCE}


def test_the_reason_says_the_size_of_the_text():
    assert plan_text(174_000, 95, RATES).reason.startswith("174 KB of training text")
    assert plan_text(2_500_000, 95, RATES).reason.startswith("2.5 MB of training text")


@pytest.mark.parametrize("args, message", [
    ((0, 95, RATES), "train_chars must be >= 1, got 0"),
    ((100, 0, RATES), "max_time must be > 0, got 0"),
    ((100, 95, {"small": 1.0, "medium": 1.0}),
     r"steps_per_second\['large'\] must be > 0, got None"),
    ((100, 95, {"small": 1.0, "medium": 0.0, "large": 1.0}),
     r"steps_per_second\['medium'\] must be > 0, got 0.0"),
])
def test_bad_inputs_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        plan_text(*args)


def test_seconds_per_step_times_a_pass_and_leaves_no_gradient():
    torch.manual_seed(0)

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.rnn = nn.Embedding(5, 4), nn.GRU(4, 8, batch_first=True)
            self.head = nn.Linear(8, 5)

        def forward(self, ids):
            out, state = self.rnn(self.embed(ids))
            return self.head(out), state

    model = Toy()
    seconds = seconds_per_step(model, 5, batch_size=2, chunk_length=3)
    assert 0 < seconds < 5
    assert all(p.grad is None for p in model.parameters())


def test_rnnkit_train_plans_for_a_small_text_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("the cat sat on the mat.\n" * 400)  # 9.6 KB
    # seconds a step of small, medium, large as on a 2-core machine: what a busy machine's
    # timing would make of them is not what this test is about
    timed = itertools.cycle([1 / 12, 1 / 5, 1 / 2])
    monkeypatch.setattr(cli_train, "seconds_per_step", lambda *args, **kwargs: next(timed))
    flags = {"files": ["t.txt"], "max_time": 60.0, "threads": 1}
    settings, _ = cli_train.settings_for(flags, {}, "flags", None)
    assert settings.model_size == "small"  # 60 s do not buy a wider model its steps here
    assert settings.dropout == REGULARIZED["small"]["dropout"]  # thousands of passes
    note = cli_train.auto_size_note(settings, set(flags))
    assert note.startswith("auto: 9 KB of training text") and "dropout 0.3" in note
    assert "as given" not in note
    given, _ = cli_train.settings_for({**flags, "dropout": 0.1}, {}, "flags", None)
    assert given.dropout == 0.1 and given.weight_decay == REGULARIZED["small"]["weight_decay"]
    # the start line says which of the plan's settings a flag replaced
    note = cli_train.auto_size_note(given, {*flags, "dropout"})
    assert note.endswith("(as given: dropout 0.1)") and "dropout 0.3" in note


@pytest.mark.parametrize("extra, world", [({"model_size": "small"}, "1"),
                                          ({"max_time": 0.0, "max_steps": 5}, "1"),
                                          ({}, "2")])  # torchrun: ranks must not plan apart
def test_no_plan_for_a_chosen_size_a_step_budget_or_torchrun(tmp_path, monkeypatch, extra,
                                                             world):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", world)
    (tmp_path / "t.txt").write_text("the cat sat on the mat.\n" * 400)
    flags = {"files": ["t.txt"], "max_time": 60.0, "threads": 1, **extra}
    settings, _ = cli_train.settings_for(flags, {}, "flags", None)
    assert settings.dropout == MODEL_SIZES[settings.model_size]["dropout"]
    assert not cli_train.auto_size_note(settings, set(flags)).startswith("auto:")


def test_rnnkit_train_times_the_two_layer_model_where_the_large_one_would_overfit(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("the cat sat on the mat.\n" * 12_500)  # 300 KB
    # seconds a step, in the order the plan times them: small, medium, large, large x 2
    timed = iter([1 / 12, 1 / 5, 600 / 1400, 1.0])
    seen = []

    def fake(model, vocab_size, batch_size, chunk_length):
        seen.append(sum(p.numel() for p in model.parameters()))
        return next(timed)

    monkeypatch.setattr(cli_train, "seconds_per_step", fake)
    flags = {"files": ["t.txt"], "max_time": 600.0, "threads": 1}
    settings, _ = cli_train.settings_for(flags, {}, "flags", None)
    assert len(seen) == 4 and seen[3] > 2 * seen[2]  # the fourth model is the deeper one
    assert (settings.model_size, settings.num_layers, settings.dropout) == ("large", 2, 0.2)
    assert settings.patience == PATIENCE and settings.max_epochs == 0.0
    note = cli_train.auto_size_note(settings, set(flags))
    assert "the large model with num_layers 2, dropout 0.2 (one layer would make ~" in note
    # a layer count given wins over the plan, and the timing uses it
    timed = iter([1 / 12, 1 / 5, 600 / 1400, 1.0])
    seen.clear()
    given, _ = cli_train.settings_for({**flags, "num_layers": 1}, {}, "flags", None)
    assert given.num_layers == 1 and seen[3] == seen[2]
