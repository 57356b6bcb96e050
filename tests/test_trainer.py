"""The training loop: clipping, non-finite steps, early stopping, logs, plots, callbacks."""

import math

import numpy as np
import pytest
import torch
from trainhelpers import ContinuousLSTM, TinyLSTM, read_metrics, small_config, text_ids

from rnnkit.train import (
    EarlyStopping,
    GradClipper,
    LRSchedule,
    NextStep,
    PaddedBatcher,
    Trainer,
    load_checkpoint,
    model_weights,
)


def test_fit_trains_and_writes_metrics_plot_and_checkpoints(tmp_path):
    evals = []
    trainer = Trainer(
        TinyLSTM(),
        small_config(max_steps=40, eval_every=20, lr=1e-2, plot=True),
        text_ids(2000),
        text_ids(400, seed=1),
        run_dir=tmp_path,
        on_eval=lambda t, m: evals.append(m),
    )
    summary = trainer.fit()
    assert summary["steps"] == 40 and summary["stop_reason"] == "max_steps"
    records = read_metrics(tmp_path)
    train = [r for r in records if r.get("split") != "eval"]
    assert len(train) == 40 and [e["step"] for e in evals] == [20, 40]
    assert train[-1]["nats_per_step"] < train[0]["nats_per_step"] - 0.2  # it learns
    r = train[0]
    assert r["bits_per_step"] == pytest.approx(r["nats_per_step"] / math.log(2))
    assert summary["best_eval_loss"] == min(e["loss"] for e in evals)
    for name in ("plot.png", "last.pt", "best.pt"):
        assert (tmp_path / name).stat().st_size > 0


def test_norm_clipping_bounds_the_norm():
    model = ContinuousLSTM()
    model(torch.randn(2, 5, 3) * 100)[0].square().sum().backward()
    params = list(model.parameters())
    clipper = GradClipper("norm", max_norm=0.5)
    norm = clipper.norm(params)
    assert norm > 0.5
    clipper.clip(params, norm, clipper.threshold(norm.item()))
    assert clipper.norm(params).item() == pytest.approx(0.5, rel=1e-4)


def test_auto_clip_follows_the_percentile_of_the_history(tmp_path):
    clipper = GradClipper("auto", percentile=25)
    norms = [3.0, 1.0, 7.0, 2.0, 10.0, 0.5]
    for i, n in enumerate(norms):
        assert clipper.threshold(n) == pytest.approx(np.percentile(norms[: i + 1], 25))
    assert clipper.threshold(math.inf) is None and len(clipper.history) == len(norms)
    # and in the loop: every step's threshold is the percentile of the norms so far
    Trainer(
        TinyLSTM(), small_config(clip="auto", clip_percentile=30), text_ids(1000), run_dir=tmp_path
    ).fit()
    train = [r for r in read_metrics(tmp_path) if r.get("split") != "eval"]
    seen = [r["grad_norm"] for r in train]
    for i, r in enumerate(train):
        assert r["clip_threshold"] == pytest.approx(np.percentile(seen[: i + 1], 30))


class Scripted:
    """NextStep, but the loss of chosen training calls is NaN; snapshots params per call."""

    def __init__(self, nan_calls=(), eval_losses=(), eval_every=1):
        self.inner, self.calls, self.snapshots = NextStep(), 0, []
        self.nan_calls, self.eval_losses = set(nan_calls), list(eval_losses)
        self.eval_every = eval_every

    def __call__(self, model, batch, state):
        per_step, state, extra = self.inner(model, batch, state)
        if not torch.is_grad_enabled():  # evaluation: the scripted loss
            loss = self.eval_losses[self.calls // self.eval_every - 1]
            return torch.full_like(per_step, loss), state, extra
        self.calls += 1
        self.snapshots.append([p.detach().clone() for p in model.parameters()])
        if self.calls in self.nan_calls:
            per_step = per_step * math.nan
        return per_step, state, {"calls": float(self.calls)}


def test_non_finite_step_is_skipped_and_params_unchanged():
    objective = Scripted(nan_calls={3})
    trainer = Trainer(
        TinyLSTM(), small_config(max_steps=5, eval_every=100), text_ids(1000), objective=objective
    )
    summary = trainer.fit()
    assert summary["skipped_steps"] == 1 and summary["steps"] == 5
    before, after = objective.snapshots[2], objective.snapshots[3]  # around the NaN step 3
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not torch.equal(objective.snapshots[3][0], objective.snapshots[4][0])  # it goes on
    assert len(trainer.clipper.history) == 4  # the NaN norm is not in the history


def test_non_finite_steps_in_a_row_stop_with_a_clear_message():
    trainer = Trainer(
        TinyLSTM(),
        small_config(max_nonfinite_steps=3),
        text_ids(1000),
        objective=Scripted(nan_calls=range(1, 100)),
    )
    summary = trainer.fit()
    assert summary["steps"] == 3
    assert "3 steps in a row had non-finite gradients" in summary["stop_reason"]


def test_early_stopping_on_a_scripted_loss_sequence():
    stop = EarlyStopping(patience=2)
    decisions = [stop.update(s, loss, 1.0) for s, loss in enumerate([3.0, 2.0, 2.5, 2.1, 1.0])]
    assert [d[0] for d in decisions[:4]] == [True, True, False, False]
    assert decisions[3][1] and "has not improved on 2.0000 (step 1)" in decisions[3][1]
    flat = EarlyStopping(patience=None, plateau_patience=2)
    reasons = [flat.update(s, None, t)[1] for s, t in enumerate([5.0, 4.0, 4.0, 4.5])]
    assert reasons[:3] == [None, None, None] and "plateaued at 4.0000" in reasons[3]


def test_trainer_stops_early_and_keeps_the_best_checkpoint(tmp_path):
    objective = Scripted(eval_losses=[1.0, 0.8, 0.9, 0.95, 0.7], eval_every=2)
    trainer = Trainer(
        TinyLSTM(),
        small_config(max_steps=100, eval_every=2, patience=2),
        text_ids(1000),
        text_ids(300, seed=1),
        objective=objective,
        run_dir=tmp_path,
    )
    summary = trainer.fit()
    assert summary["steps"] == 8 and summary["best_step"] == 4
    assert summary["best_eval_loss"] == pytest.approx(0.8)
    assert summary["stop_reason"].startswith("early stop: the evaluation loss")
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["step"] == 4
    params_after_4 = objective.snapshots[4]  # snapshot taken at the start of step 5
    assert all(
        torch.equal(a, b) for a, b in zip(best["model"].values(), params_after_4, strict=True)
    )


def test_an_eval_fn_scores_and_keep_best_loads_the_best_weights_without_a_run_dir():
    # a score per evaluation instead of a loss over eval_data (the forecaster's CRPS)
    objective, scores = Scripted(eval_every=2), iter([1.0, 0.8, 0.9, 0.95, 0.7])
    trainer = Trainer(TinyLSTM(), small_config(max_steps=100, eval_every=2, patience=2),
                      text_ids(1000), objective=objective, eval_fn=lambda model: next(scores),
                      keep_best=True)
    summary = trainer.fit()
    assert (summary["steps"], summary["best_step"]) == (8, 4)
    assert summary["best_eval_loss"] == 0.8 and summary["best_checkpoint"] is None
    # the model holds the weights after step 4 (snapshot at the start of step 5), not step 8's
    after_4 = objective.snapshots[4]
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), after_4, strict=True))
    with pytest.raises(ValueError, match="eval_data or eval_fn, not both"):
        Trainer(TinyLSTM(), small_config(), text_ids(1000), text_ids(300), eval_fn=len)


def test_without_keep_best_the_model_keeps_its_last_weights():
    scores = iter([1.0, 2.0, 3.0])
    trainer = Trainer(TinyLSTM(), small_config(), text_ids(1000), eval_fn=lambda m: next(scores))
    trainer.fit()
    last = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.best_state is None and not trainer.restore_best()
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), last, strict=True))


def test_a_plateau_scheduler_steps_at_evaluations_on_their_score():
    # halve after 2 evaluations without a new best: scores 1, 2, 3 (halve), 0.5, 4, 5 (halve)
    scores = iter([1.0, 2.0, 3.0, 0.5, 4.0, 5.0])
    trainer = Trainer(
        TinyLSTM(), small_config(max_steps=12, eval_every=2, patience=0, lr=0.1),
        text_ids(1000), eval_fn=lambda m: next(scores),
        scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=1, threshold=0.0),
        on_eval=lambda t, m: lrs.append(t.optimizer.param_groups[0]["lr"]))
    lrs = []
    trainer.fit()
    assert lrs == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05]  # lr of the steps each evaluation scored
    assert trainer.optimizer.param_groups[0]["lr"] == 0.025


def test_seed_none_leaves_the_generators_as_the_caller_set_them():
    def draw_after_fit(seed):
        torch.manual_seed(123)
        Trainer(TinyLSTM(), small_config(max_steps=1, seed=seed), text_ids(1000)).fit()
        return torch.rand(1)

    assert torch.equal(draw_after_fit(None), draw_after_fit(None))
    assert not torch.equal(draw_after_fit(None), draw_after_fit(0))  # seed 0 reseeds


def test_extra_metrics_are_logged_and_max_time_stops(tmp_path):
    trainer = Trainer(
        TinyLSTM(),
        small_config(max_time=1e-9),
        text_ids(1000),
        objective=Scripted(),
        run_dir=tmp_path,
    )
    summary = trainer.fit()
    assert summary["stop_reason"] == "max_time" and summary["steps"] == 1
    assert read_metrics(tmp_path)[0]["calls"] == 1.0


def test_any_torch_optimizer_and_scheduler():
    model = TinyLSTM()
    trainer = Trainer(
        model,
        small_config(optimizer="SGD", lr=0.1, optimizer_kwargs={"momentum": 0.9}),
        text_ids(1000),
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 2, 0.5),
    )
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    trainer.fit()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**6)
    with pytest.raises(
        ValueError, match="optimizer must name a torch.optim optimizer .* got 'adamx'"
    ):
        Trainer(model, small_config(optimizer="adamx"), text_ids(1000))


def test_cosine_schedule_with_warmup(tmp_path):
    trainer = Trainer(
        TinyLSTM(),
        small_config(lr_schedule="cosine", warmup_steps=2, min_lr_ratio=0.1, max_steps=10),
        text_ids(1000),
        run_dir=tmp_path,
    )
    trainer.fit()
    lrs = [r["lr"] for r in read_metrics(tmp_path) if r.get("split") != "eval"]
    assert len(lrs) == 10
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))  # decaying after the warm-up
    assert trainer.lr_schedule.factor(10) == pytest.approx(0.1)


def test_a_continued_schedule_anneals_from_where_it_stopped():
    before = LRSchedule("cosine", warmup_steps=2, min_lr_ratio=0.1, max_steps=10)
    after = before.continued(10, 3.0, max_steps=30, max_time=0.0)
    assert after.factor(10, 3.0) == pytest.approx(0.1)  # spent: it stays at the floor
    midway = before.continued(6, 3.0, max_steps=30, max_time=0.0)
    factors = [midway.factor(step) for step in range(6, 31)]
    assert factors[0] == pytest.approx(before.factor(6))  # no jump at the resumed step
    assert all(a > b for a, b in zip(factors, factors[1:]))
    assert factors[-1] == pytest.approx(0.1)
    by_time = LRSchedule("cosine", min_lr_ratio=0.0, max_time=10.0).continued(5, 5.0, 0, 20.0)
    assert by_time.factor(5, 5.0) == pytest.approx(0.5)
    assert by_time.factor(5, 12.5) == pytest.approx(0.25)  # half the remaining 15 s
    assert LRSchedule("constant").continued(3, 1.0, 9, 0.0).factor(5) == 1.0


def test_a_run_resumed_twice_at_a_new_budget_continues_exactly(tmp_path):
    def trainer(run_dir, max_steps, on_eval=None):
        return Trainer(TinyLSTM(), small_config(lr_schedule="cosine", max_steps=max_steps,
                                                eval_every=3), text_ids(2000),
                       text_ids(200, seed=1), run_dir=run_dir, on_eval=on_eval)

    def stop_at(step):
        def stop(trainer, metrics):
            if metrics["step"] == step:
                trainer.request_stop()  # as Ctrl-C does
        return stop

    for run in ("a", "b"):  # stopped midway down the cosine of 9 steps
        assert trainer(tmp_path / run, 9, stop_at(3)).fit()["steps"] == 4
    straight = trainer(tmp_path / "a", 12).resume(tmp_path / "a")
    straight.fit()
    cut = trainer(tmp_path / "b", 12, stop_at(6)).resume(tmp_path / "b")
    assert cut.fit()["steps"] == 7
    again = trainer(tmp_path / "b", 12).resume(tmp_path / "b")
    assert 0.2 < again.lr_schedule.start_factor < 1.0
    assert again.lr_schedule.start_step == straight.lr_schedule.start_step == 4
    again.fit()
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "b") if r.get("split") != "eval"}
    assert lrs == {r["step"]: r["lr"] for r in read_metrics(tmp_path / "a")
                   if r.get("split") != "eval"}
    for a, b in zip(straight.model.state_dict().values(), again.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_schedule_runs_over_the_budget_in_time_or_steps():
    schedule = LRSchedule("cosine", min_lr_ratio=0.0, max_steps=100, max_time=10.0)
    assert schedule.factor(0, 0.0) == pytest.approx(1.0)
    assert schedule.factor(10, 5.0) == pytest.approx(0.5)  # half the time: cos(pi / 2)
    assert schedule.factor(50, 1.0) == pytest.approx(0.5)  # half the steps
    assert schedule.factor(10, 20.0) == pytest.approx(0.0)  # the budget is spent
    assert LRSchedule("constant", warmup_steps=4).factor(1) == pytest.approx(0.5)


def test_continuous_targets_use_mse_and_the_curriculum(tmp_path):
    series = torch.sin(torch.linspace(0, 60, 1200)).unsqueeze(1).repeat(1, 3)
    trainer = Trainer(
        ContinuousLSTM(), small_config(chunk_schedule=((0, 5), (6, 15))), series, run_dir=tmp_path
    )
    trainer.fit()
    train = [r for r in read_metrics(tmp_path) if r.get("split") != "eval"]
    assert [r["chunk_length"] for r in train] == [5] * 6 + [15] * 6
    assert "bits_per_step" not in train[0]


def test_bad_data_is_named():
    with pytest.raises(TypeError, match="data must be a tensor .* got str"):
        Trainer(TinyLSTM(), small_config(), "text.txt")
    with pytest.raises(ValueError, match="clip must be one of .* got 'sometimes'"):
        small_config(clip="sometimes")


class ResetLSTM(TinyLSTM):
    """TinyLSTM whose forward takes reset=: the trainer must pass it."""

    def forward(self, inputs, state=None, reset=None):
        self.resets = getattr(self, "resets", 0) + int(reset.sum())
        if state is not None and reset[:, 0].any():
            keep = (~reset[:, 0]).float().view(1, -1, 1)
            state = tuple(s * keep for s in state)
        return super().forward(inputs, state)


@pytest.mark.parametrize("overlap", [dict(burn_in=4), dict(backprop_length=14)])
def test_overlapping_windows_and_documents_train(overlap):
    docs = [text_ids(300, seed=i) for i in range(4)]
    model = ResetLSTM()
    summary = Trainer(model, small_config(**overlap), docs, docs[:1]).fit()
    assert summary["steps"] == 12 and summary["skipped_steps"] == 0
    assert model.resets > 0  # document starts reached the model


def test_padded_episodes_train_with_masks():
    episodes = [text_ids(n, seed=n) for n in (15, 40, 23, 31, 12, 50, 28, 19)]
    trainer = Trainer(
        TinyLSTM(),
        small_config(max_steps=10, eval_every=5),
        PaddedBatcher(episodes, batch_size=4),
        PaddedBatcher(episodes[:4], 4),
    )
    summary = trainer.fit()
    assert summary["steps"] == 10 and math.isfinite(summary["best_eval_loss"])


class RnnkitCharModel(torch.nn.Module):
    """Embedding -> rnnkit.LSTM (learned initial state, takes reset=) -> logits."""

    def __init__(self, vocab: int = 7, hidden: int = 12) -> None:
        super().__init__()
        import rnnkit

        self.emb = torch.nn.Embedding(vocab, hidden)
        self.rnn = rnnkit.LSTM(hidden, hidden, batch_first=True, learned_initial_state=True)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, inputs, state=None, reset=None):
        out, state = self.rnn(self.emb(inputs), state, reset=reset)
        return self.head(out), state


def test_trains_an_rnnkit_lstm_with_resets_and_burn_in(tmp_path):
    docs = [text_ids(200, seed=i) for i in range(3)]
    trainer = Trainer(RnnkitCharModel(), small_config(burn_in=3), docs, docs[:1], run_dir=tmp_path)
    summary = trainer.fit()
    assert summary["steps"] == 12 and math.isfinite(summary["best_eval_loss"])
    resumed = Trainer(
        RnnkitCharModel(), small_config(burn_in=3, max_steps=14), docs, docs[:1], run_dir=tmp_path
    ).resume(tmp_path)
    assert resumed.fit()["steps"] == 14


def test_weight_average_is_an_ema_of_the_trained_weights_and_changes_nothing_else(tmp_path):
    decay, steps = 0.8, 12

    def run(ema_decay, run_dir):
        snapshots = []

        class RecordingAdam(torch.optim.Adam):
            def step(self, closure=None):
                out = super().step(closure)
                snapshots.append([p.detach().clone() for p in self.param_groups[0]["params"]])
                return out

        trainer = Trainer(
            TinyLSTM(dropout=0.2),
            small_config(max_steps=steps, eval_every=steps, lr=1e-2, ema_decay=ema_decay),
            text_ids(800),
            text_ids(200, seed=1),
            run_dir=run_dir,
            optimizer=lambda params: RecordingAdam(params, lr=1e-2),
        )
        return trainer, trainer.fit(), snapshots

    plain, plain_summary, plain_steps = run(0.0, tmp_path / "plain")
    averaged, summary, steps_taken = run(decay, tmp_path / "ema")
    # training itself is the same, step by step (the average draws no random numbers)
    for a, b in zip(plain_steps, steps_taken, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    assert plain.eval_model is plain.model
    # ema_1 = w_1; ema_t = decay * ema_{t-1} + (1 - decay) * w_t
    expected = [w.clone() for w in steps_taken[0]]
    for weights in steps_taken[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights, strict=True)]
    got = list(averaged.eval_model.parameters())
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e)
    # evaluation scores the average, and the checkpoints offer it for use
    assert summary["best_eval_loss"] == pytest.approx(averaged.evaluate()["loss"])
    assert summary["best_eval_loss"] != pytest.approx(plain_summary["best_eval_loss"])
    ckpt = load_checkpoint(tmp_path / "ema" / "last.pt")
    assert torch.equal(ckpt["model"]["head.weight"], averaged.model.head.weight)
    weights = model_weights(ckpt)
    names = [name for name, _ in averaged.model.named_parameters()]
    for name, e in zip(names, expected, strict=True):
        torch.testing.assert_close(weights[name], e)
    assert model_weights(load_checkpoint(tmp_path / "plain" / "last.pt")) is not None


def test_ema_decay_is_checked():
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\) \(0 = off\), got 1.0"):
        small_config(ema_decay=1.0)


def test_progress_bar_shows_the_first_loss_and_the_budget_spent():
    from rnnkit.train.trainer import _ProgressBar

    bar = _ProgressBar(small_config(max_time=10.0, progress=True, log_every=5), show=True)
    bar.bar.disable = False  # tqdm disables itself without a terminal; the text is what counts
    record = {"nats_per_step": 2.5, "skipped": False, "lr": 1e-3, "grad_norm": 1.0}
    bar.update(1, 5.0, record)
    assert "loss 2.500" in bar.bar.postfix and bar.bar.n == 50.0  # half the time budget
    bar.update(2, 6.0, {**record, "nats_per_step": math.nan, "skipped": True})
    assert bar.loss == 2.5  # a skipped step does not poison the average
    bar.close()


@pytest.mark.parametrize("gpus,env,name,expected", [
    (0, {}, "auto", "cpu"),
    (0, {}, "cuda", "no CUDA GPU"),
    (1, {}, "auto", "cuda:0"),
    (1, {}, "cuda", "cuda:0"),
    (1, {}, "cuda:1", "not here"),
    (1, {}, "cpu", "cpu"),
    # torchrun, 2 processes on a 1-GPU node: both on the CPU (NCCL can't share a GPU) or refused
    (1, dict(LOCAL_RANK="1", LOCAL_WORLD_SIZE="2", WORLD_SIZE="2"), "auto", "cpu"),
    (1, dict(LOCAL_RANK="0", LOCAL_WORLD_SIZE="2", WORLD_SIZE="2"), "auto", "cpu"),
    (1, dict(LOCAL_RANK="0", LOCAL_WORLD_SIZE="2", WORLD_SIZE="2"), "cuda", "2 processes"),
    (1, dict(LOCAL_RANK="1", WORLD_SIZE="2"), "auto", "cpu"),  # no LOCAL_WORLD_SIZE: one node
    (2, dict(LOCAL_RANK="1", LOCAL_WORLD_SIZE="2", WORLD_SIZE="4"), "auto", "cuda:1"),
    (2, dict(LOCAL_RANK="1", LOCAL_WORLD_SIZE="2", WORLD_SIZE="4"), "cuda", "cuda:1"),
])
def test_resolve_device_gives_every_process_its_own_gpu_or_none(gpus, env, name, expected,
                                                                 monkeypatch):
    from rnnkit.train.trainer import resolve_device

    for var in ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    if ":" in expected or expected == "cpu":
        assert resolve_device(name) == torch.device(expected)
    else:
        with pytest.raises(ValueError, match=expected):
            resolve_device(name)


def test_only_a_training_source_made_for_another_world_size_is_warned_about(monkeypatch,
                                                                               caplog):
    from rnnkit.train import StreamBatcher
    from rnnkit.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module.ddp, "rank_and_world", lambda: (0, 2))  # as torchrun
    monkeypatch.setattr(trainer_module.ddp, "broadcast_module", lambda module: None)

    def warned(train_world, eval_world):
        caplog.clear()
        train = StreamBatcher(text_ids(2000), 4, world_size=train_world)
        Trainer(TinyLSTM(), small_config(), train,
                StreamBatcher(text_ids(400), 4, world_size=eval_world))
        return "every rank reads the same rows" in caplog.text

    assert not warned(2, 1)  # validation read whole by every rank: right, not a mistake
    assert not warned(2, 2)
    assert warned(1, 1)  # training rows every rank reads alike: the mistake
    assert warned(2, 4)  # a share of the validation rows for 4 ranks on 2


def test_eval_max_batches_reads_the_first_chunks_of_every_stream(tmp_path):
    model = TinyLSTM()
    val = text_ids(400, seed=1)  # 4 streams of 99 steps: 9 chunks of 10 and one of 9
    whole = Trainer(model, small_config(), text_ids(2000), val, run_dir=tmp_path / "a")
    capped = Trainer(model, small_config(eval_max_batches=2), text_ids(2000), val,
                     run_dir=tmp_path / "b")
    assert whole.evaluate()["eval_steps"] == 4 * 99
    got = capped.evaluate()
    assert got["eval_steps"] == 2 * 4 * 10
    # the same as scoring only the first 2 chunks of each stream, state carried between them
    stream_len = (len(val) - 1) // 4
    inputs = torch.stack([val[i * stream_len: i * stream_len + 20] for i in range(4)])
    targets = torch.stack([val[i * stream_len + 1: i * stream_len + 21] for i in range(4)])
    model.eval()
    with torch.no_grad():
        logits, _ = model(inputs)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1))
    assert got["loss"] == pytest.approx(float(expected), rel=1e-5)
