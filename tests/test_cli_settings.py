"""CLI settings: defaults < config file (TOML/YAML) < flags; unknown keys and bad types refused."""

import argparse

import pytest

from rnnkit.cli.settings import (
    MODEL_SIZES,
    ONE_LAYER,
    ConfigError,
    TrainSettings,
    add_arguments,
    build_settings,
    load_config_file,
    resolve_model_size,
)


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainSettings)
    return vars(parser.parse_args(argv))


def test_flags_only_hold_what_was_given():
    assert parse([]) == {}
    flags = parse(["--columns", "x,y", "a.txt", "--hidden-size", "64", "--no-layer-norm"])
    assert flags["hidden_size"] == 64 and flags["layer_norm"] is False
    assert flags["columns"] == ["x", "y"] and flags["files"] == ["a.txt"]


def test_help_lists_every_option_with_its_default(capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainSettings)
    help_text = " ".join(parser.format_help().split())
    for name in ("--hidden-size", "--max-time", "--layer-norm", "--device", "--columns",
                 "--model-size"):
        assert name in help_text
    assert f"(default: {TrainSettings().lr})" in help_text
    assert "units per recurrent layer (default: set by --model" in help_text


@pytest.mark.parametrize("flags,size", [
    ({}, "small"),  # the default 180 s budget
    ({"max_time": 600.0}, "large"),
    ({"max_time": 0.0, "max_steps": 500}, "large"),  # steps only: no time pressure
    ({"max_time": 600.0, "files": ["x.csv"]}, "small"),  # forecasting keeps the small preset
    ({"model_size": "large"}, "large"),
    ({"model_size": "small", "max_time": 600.0}, "small"),
])
def test_model_size_picks_a_preset_by_budget_and_task(flags, size):
    s = resolve_model_size(TrainSettings(**flags), set(flags))
    assert s.model_size == size
    for name, value in MODEL_SIZES[size].items():
        if name == "max_epochs" and flags.get("max_steps"):
            value = 0.0  # a given step budget is not cut by the preset's epochs
        if "files" in flags:  # the CSV next-step model keeps one layer
            value = ONE_LAYER.get(name, value)
        assert getattr(s, name) == value
    if "files" in flags:
        assert (s.num_layers, s.sum_outputs) == (1, False)


def test_model_size_leaves_given_fields_alone():
    given = {"max_time": 600.0, "hidden_size": 256, "cell": "gru"}
    s = resolve_model_size(TrainSettings(**given), set(given))
    assert (s.model_size, s.hidden_size, s.cell) == ("large", 256, "gru")
    assert s.layer_norm is True and s.chunk_length == 128  # the rest of the large preset
    # without a record of what was given, fields that differ from their default count
    s = resolve_model_size(TrainSettings(max_time=600.0, hidden_size=256))
    assert (s.hidden_size, s.cell) == (256, "lstm")


def test_precedence_default_file_flag(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('hidden_size = 64\nlr = 0.01\ncell = "gru"\n')
    settings = build_settings(TrainSettings, load_config_file(path), {"lr": 0.5}, str(path))
    assert settings.hidden_size == 64  # from the file
    assert settings.lr == 0.5  # the flag wins
    assert settings.cell == "gru"
    assert settings.batch_size == TrainSettings().batch_size  # the default


def test_yaml_file_with_dashed_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("hidden-size: 32\nlayer_norm: true\ncolumns: [a, b]\nmax_time: 5\n")
    settings = build_settings(TrainSettings, load_config_file(path), {}, str(path))
    assert settings.hidden_size == 32 and settings.layer_norm is True
    assert settings.columns == ["a", "b"] and settings.max_time == 5.0


@pytest.mark.parametrize(
    "values, message",
    [
        ({"hiden_size": 3}, r"unknown key 'hiden_size'; did you mean 'hidden_size'\?"),
        ({"hidden_size": "big"}, r"key 'hidden_size' must be an integer, got str 'big'"),
        ({"hidden_size": 3.5}, r"key 'hidden_size' must be an integer, got float 3.5"),
        ({"layer_norm": 1}, r"key 'layer_norm' must be true or false, got int 1"),
        ({"lr": "fast"}, r"key 'lr' must be a number"),
        ({"cell": "rnn"}, r"key 'cell' must be one of \['lstm', 'gru'\], got 'rnn'"),
    ],
)
def test_bad_config_values_are_refused_by_name(values, message):
    with pytest.raises(ConfigError, match="c.toml: " + message):
        build_settings(TrainSettings, values, {}, "c.toml")


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("hidden_size = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml: cannot parse"):
        load_config_file(bad)
    other = tmp_path / "c.json"
    other.write_text("{}")
    with pytest.raises(ConfigError, match="expected .toml, .yaml or .yml"):
        load_config_file(other)
    listy = tmp_path / "l.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config_file(listy)


def test_a_training_option_is_the_trainer_field_of_the_same_name():
    from rnnkit.cli.train import TRAINER_FIELDS, trainer_config

    assert {"chunk_length", "clip_max_norm", "min_lr_ratio", "max_time", "patience", "lr",
            "lr_schedule", "batch_size", "eval_every", "seed"} <= TRAINER_FIELDS
    s = TrainSettings(chunk_length=7, clip_max_norm=0.5, min_lr_ratio=0.2, patience=3,
                      max_time=30.0, lr_schedule="constant")
    config = trainer_config(s, "cpu", max_steps=0)
    for name in TRAINER_FIELDS - {"max_steps", "device", "eval_max_batches"}:
        assert getattr(config, name) == getattr(s, name), name
    assert config.max_steps == 0 and config.eval_at_end


def test_an_evaluation_reads_an_eighth_of_the_batches_trained_between_two():
    from rnnkit.cli.train import trainer_config

    def cap(**flags):
        return trainer_config(TrainSettings(max_time=30.0, **flags), "cpu", 0).eval_max_batches

    assert cap() == 13  # eval_every 100
    assert cap(eval_every=400) == 50 and cap(eval_every=3) == 1
    assert cap(eval_max_batches=7) == 7
    assert cap(eval_max_batches=0) is None  # all of the validation split
    with pytest.raises(ConfigError, match=r"eval_max_batches \(--eval-max-batches\) must be "
                       r">= 0 \(0: all\), got -1"):
        TrainSettings(eval_max_batches=-1)


def test_names_of_version_0_1_0_are_read_as_the_new_ones(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("chunk_len: 12\nclip_norm: 0.25\nlr_final: 0.5\n")
    s = build_settings(TrainSettings, load_config_file(path), {}, str(path))
    assert (s.chunk_length, s.clip_max_norm, s.min_lr_ratio) == (12, 0.25, 0.5)
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainSettings)
    assert vars(parser.parse_args(["--chunk-len", "9"]))["chunk_length"] == 9


def test_a_config_files_old_key_names_count_as_given_against_the_preset():
    from rnnkit.cli.train import settings_for

    # the large preset (no time budget) sets chunks of 128 unless the file's chunk_len counts
    settings, _ = settings_for({}, {"chunk_len": 16, "max_time": 0, "max_steps": 5}, "c.yaml",
                               None)
    assert (settings.model_size, settings.chunk_length) == ("large", 16)


# --- one home for the defaults: rnnkit.train.presets ---------------------------------------

def cli_trainer_config(size, task="text", train_steps=10**6, **flags):
    """The TrainConfig `rnnkit train` builds for these flags (as run_training does)."""
    from rnnkit.cli.train import step_budget, trainer_config

    files = ["x.csv"] if task == "forecast" else []
    s = resolve_model_size(TrainSettings(model_size=size, files=files, **flags), set(flags))
    return trainer_config(s, "auto", step_budget(s, train_steps))


@pytest.mark.parametrize("size,task", [("small", "text"), ("large", "text"),
                                       ("small", "forecast"), ("large", "forecast")])
def test_library_preset_is_the_cli_default(size, task):
    from rnnkit.train import TrainConfig

    assert TrainConfig.preset(size, task, train_steps=10**6) == cli_trainer_config(size, task)
    # without the data's length the large preset's epoch cap is not applied
    assert TrainConfig.preset(size, task).max_steps == 0


def test_library_preset_overrides_win_as_flags_do():
    from rnnkit.train import TrainConfig

    flags = {"lr": 2e-3, "weight_decay": 0.01, "max_steps": 50}
    assert (TrainConfig.preset("small", train_steps=10**6, **flags)
            == cli_trainer_config("small", **flags))
    assert TrainConfig.preset("small", weight_decay=0.01).optimizer == "adamw"
    with pytest.raises(ValueError, match="size must be one of"):
        TrainConfig.preset("huge")


def test_presets_have_one_home():
    from rnnkit.train import presets

    assert MODEL_SIZES is presets.MODEL_SIZES and ONE_LAYER is presets.NEXT_STEP
    assert presets.model_options("small", "forecast")["num_layers"] == 1
    for name, value in presets.TRAINING.items():
        assert getattr(TrainSettings(), name) == value


def test_train_config_default_differing_from_the_cli_says_why():
    """A TrainConfig() default that differs from TrainConfig.preset('small') (what the CLI
    trains with) has a comment naming the presets, on its line or just above it."""
    import dataclasses
    import inspect

    from rnnkit.train import TrainConfig

    lines = inspect.getsource(TrainConfig).splitlines()
    plain, preset = TrainConfig(), TrainConfig.preset("small")
    differ = [f.name for f in dataclasses.fields(TrainConfig)
              if getattr(plain, f.name) != getattr(preset, f.name)]
    assert "lr" in differ and "clip" in differ
    for name in differ:
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name}:"))
        comment = [lines[at]]
        for line in reversed(lines[:at]):
            if not line.strip().startswith("#"):
                break
            comment.append(line)
        assert "presets" in " ".join(comment), f"TrainConfig.{name}: say why it differs"


def test_forecast_cli_defaults_are_the_librarys():
    """The forecaster's preset is the library's (ForecastConfig from windows.default_config,
    which the CLI calls too); the CLI's budget, samples and windows are the functions'."""
    import inspect

    from rnnkit.cli.settings import BacktestSettings, ForecastSettings
    from rnnkit.forecasting.backtest import backtest
    from rnnkit.forecasting.fit import train_forecaster
    from rnnkit.forecasting.model import Forecaster

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    f, b = ForecastSettings(), BacktestSettings()
    assert f.max_time == b.max_time == default(train_forecaster, "max_time")
    assert f.samples == default(Forecaster.forecast, "num_samples")
    assert b.windows == default(backtest, "windows")
    assert b.samples == default(backtest, "num_samples")
