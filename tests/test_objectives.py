import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.heads import CategoricalHead, GaussianHead
from rnnkit.models import SequenceModel
from rnnkit.normalization import FeatureNormalizer
from rnnkit.objectives import (
    OpenLoop,
    ProfessorForcing,
    ScheduledSampling,
    TeacherForcing,
    make_objective,
)
from rnnkit.objectives.schedules import Exponential, InverseSigmoid, Linear, make_schedule
from rnnkit.rollout import forecast, free_run
from rnnkit.train import Batch, forward_window


def make_batch(inputs, targets, **kw):
    shape = inputs.shape[:2]
    return Batch(inputs, targets, torch.ones(shape, dtype=torch.bool),
                 torch.zeros(shape, dtype=torch.bool), **kw)


def forecaster(features=2, hidden=8, seed=0):
    torch.manual_seed(seed)
    return SequenceModel(nn.Identity(), nn.LSTM(features, hidden, batch_first=True),
                         GaussianHead(hidden, features), FeatureNormalizer(features))


def series_batch(b=3, t=7, f=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t + 1, f, generator=g).cumsum(1)
    return make_batch(x[:, :-1], x[:, 1:])


def carried_state(model, b=3):
    return model(torch.randn(b, 4, 2))[1]


def test_teacher_forcing_is_the_next_step_nll():
    model, batch = forecaster(), series_batch()
    state = carried_state(model)
    loss, new_state, _ = TeacherForcing()(model, batch, state)
    params, expected_state = model(batch.inputs, state)
    torch.testing.assert_close(loss, model.loss(params, batch.targets))
    torch.testing.assert_close(new_state[0], expected_state[0])


def test_open_loop_with_horizon_1_equals_teacher_forcing():
    model, batch = forecaster(), series_batch()
    state = carried_state(model)
    tf, tf_state, _ = TeacherForcing()(model, batch, state)
    ol, ol_state, metrics = OpenLoop(horizon=1, weight=0.7)(model, batch, state)
    torch.testing.assert_close(ol, tf)
    torch.testing.assert_close(ol_state[1], tf_state[1])
    assert metrics["horizon"] == 1.0


def test_open_loop_scores_every_rolled_step_against_the_targets():
    model, batch = forecaster(), series_batch(b=2, t=6)
    state = carried_state(model, b=2)
    objective = OpenLoop(horizon=3, weight=1.0)
    one_step, multi, _ = objective.rollout_losses(model, batch, state, horizon=3)
    for s in range(6):  # independent reference: warm up on x_<=s, roll, average the NLLs
        _, warm = model(batch.inputs[:, :s], state) if s else (None, state)
        steps = min(3, 6 - s)
        params, _ = forecast(model, batch.inputs[:, s:s + 1], steps, warm)
        expected = model.loss(params, batch.targets[:, s:s + steps]).mean(1)
        torch.testing.assert_close(multi[:, s], expected)
    loss, _, _ = objective(model, batch, state)
    torch.testing.assert_close(loss, multi)


def test_rollout_feeds_predictions_not_the_data():
    model, batch = forecaster(), series_batch(b=2, t=8)
    context = 3
    objective = OpenLoop(horizon=4, context=context, stride=100)  # one start: s = context
    _, clean, _ = objective.rollout_losses(model, batch, None, horizon=4)
    poisoned = make_batch(batch.inputs.clone(), batch.targets)
    poisoned.inputs[:, context + 1:] = 1e6  # the true values after the context
    _, dirty, _ = objective.rollout_losses(model, poisoned, None, horizon=4)
    torch.testing.assert_close(dirty[:, context], clean[:, context])
    assert not torch.allclose(dirty[:, context + 1:], clean[:, context + 1:])  # teacher-forced
    # and they are the losses of an open-loop forecast from the context
    params, _ = forecast(model, batch.inputs[:, :context + 1], 4)
    expected = model.loss(params, batch.targets[:, context:context + 4]).mean(1)
    torch.testing.assert_close(dirty[:, context], expected)


def test_gradients_flow_through_fed_back_predictions():
    model, batch = forecaster(), series_batch()
    grads = {}
    for detach in (False, True):
        model.zero_grad()
        loss, _, _ = OpenLoop(horizon=3, weight=1.0, detach_feedback=detach)(model, batch, None)
        loss.sum().backward()
        grads[detach] = model.head.proj.weight.grad.clone()
    assert not torch.allclose(grads[False], grads[True])
    fed = model.head(torch.randn(1, 8)).detach().requires_grad_()
    params, _, _ = free_run(model, model.feedback(fed), 2)
    params.sum().backward()
    assert fed.grad.abs().sum() > 0


def test_open_loop_respects_masks_and_episode_starts():
    model, batch = forecaster(), series_batch(b=2, t=6)
    batch.mask[1, 4:] = False
    batch.reset[0, 3] = True
    ol = OpenLoop(horizon=4, weight=1.0)
    loss, _, _ = ol(model, batch, None)
    assert (loss[1, 4:] == 0).all()
    _, multi, _ = ol.rollout_losses(model, batch, None, horizon=4)
    # row 0 from s=1: k=0,1 count; k=2 would cross the episode start at t=3
    params, _ = forecast(model, batch.inputs[:1, :2], 2)
    torch.testing.assert_close(multi[0, 1], model.loss(params, batch.targets[:1, 1:3]).mean())
    # row 0 from s=3: a fresh episode, the state before it is not used
    params, _ = forecast(model, batch.inputs[:1, 3:4], 3)
    torch.testing.assert_close(multi[0, 3], model.loss(params, batch.targets[:1, 3:6]).mean())
    # row 1 from s=2: k=0,1 count; t=4 is padding
    params, _ = forecast(model, batch.inputs[1:, :3], 2)
    torch.testing.assert_close(multi[1, 2], model.loss(params, batch.targets[1:, 2:4]).mean())


def test_objectives_run_inside_the_trainers_tbptt_window():
    torch.manual_seed(0)
    model = SequenceModel(nn.Identity(), rnnkit.LSTM(2, 8, batch_first=True),
                          GaussianHead(8, 2))
    batch = series_batch(b=2, t=9)
    batch.reset[1, 5] = True
    batch.burn_in, batch.carry_at = 2, 6
    state = carried_state(model, b=2)
    tf_loss, _, tf_state, _ = forward_window(TeacherForcing(), model, batch, state)
    for objective in (OpenLoop(horizon=1), ScheduledSampling(eps=0.0)):
        loss, mask, carried, _ = forward_window(objective, model, batch, state)
        assert loss.shape == mask.shape == (2, 7)
        torch.testing.assert_close(loss, tf_loss)
        torch.testing.assert_close(carried[0], tf_state[0])
        assert objective.step == 2  # the two scored segments; the burn-in does not count
    for objective in (OpenLoop(horizon=3), ScheduledSampling(eps=0.5), ProfessorForcing()):
        loss, _, _, _ = forward_window(objective, model, batch, state)
        loss.sum().backward()
        assert torch.isfinite(loss).all() and not torch.allclose(loss, tf_loss)


def test_a_fresh_batch_ignores_the_carried_state():
    model, batch = forecaster(), series_batch()
    state = carried_state(model)
    expected, _, _ = TeacherForcing()(model, batch, None)
    batch.fresh = True
    for objective in (TeacherForcing(), OpenLoop(horizon=1), ScheduledSampling(eps=0.0)):
        torch.testing.assert_close(objective(model, batch, state)[0], expected)


def test_scheduled_sampling_extremes():
    model, batch = forecaster(), series_batch()
    state = carried_state(model)
    tf, _, _ = TeacherForcing()(model, batch, state)
    ss0, _, m0 = ScheduledSampling(eps=0.0, seed=0)(model, batch, state)
    torch.testing.assert_close(ss0, tf)
    assert m0["fed_fraction"] == 0.0
    ss1, _, m1 = ScheduledSampling(eps=1.0, seed=0)(model, batch, state)
    params, _, _ = free_run(model, batch.inputs[:, 0], batch.inputs.shape[1], state)
    torch.testing.assert_close(ss1, model.loss(params, batch.targets))
    assert m1["fed_fraction"] == 1.0
    ss_half, _, m = ScheduledSampling(eps=0.5, seed=0)(model, batch, state)
    assert 0.0 < m["fed_fraction"] < 1.0
    assert not torch.allclose(ss_half, tf) and not torch.allclose(ss_half, ss1)


def test_scheduled_sampling_with_tokens_and_soft_feedback():
    torch.manual_seed(0)
    model = SequenceModel(nn.Embedding(5, 4), nn.GRU(4, 6, batch_first=True),
                          CategoricalHead(6, 5))
    tokens = torch.randint(0, 5, (2, 7))
    batch = make_batch(tokens[:, :-1], tokens[:, 1:])
    for mode in ("sample", "expected", "gumbel"):
        loss, _, _ = ScheduledSampling(eps=1.0, feedback=mode, seed=0)(model, batch, None)
        assert loss.shape == (2, 6) and torch.isfinite(loss).all()
    loss, _, _ = OpenLoop(horizon=3, feedback="expected")(model, batch, None)
    loss.sum().backward()
    assert model.encoder.weight.grad.abs().sum() > 0


def test_schedules_give_the_stated_values():
    lin = Linear(1.0, 24.0, steps=100)
    assert lin(0) == 1.0 and lin(50) == pytest.approx(12.5) and lin(100) == lin(500) == 24.0
    exp = Exponential(rate=0.99)  # Bengio eps_i = k^i
    assert exp(0) == 1.0 and exp(10) == pytest.approx(0.99**10)
    inv = InverseSigmoid(k=10.0)  # Bengio eps_i = k / (k + exp(i / k))
    for i in (0, 5, 37, 100):
        assert inv(i) == pytest.approx(10.0 / (10.0 + torch.tensor(i / 10.0).exp().item()))
    assert InverseSigmoid(k=10.0)(10**6) == 0.0
    rising = make_schedule("inverse_sigmoid:k=10,start=0,end=1")
    assert rising(37) == pytest.approx(1.0 - inv(37))
    assert make_schedule(0.3)(123) == 0.3
    assert make_schedule({"kind": "linear", "start": 0, "end": 1, "steps": 10})(5) == 0.5


def test_schedules_drive_the_objectives_and_count_training_steps():
    model, batch = forecaster(), series_batch()
    ol = OpenLoop(horizon="linear:start=1,end=3,steps=2", weight=Linear(0.0, 1.0, 2))
    horizons = [ol(model, batch, None)[2]["horizon"] for _ in range(3)]
    assert horizons == [1.0, 2.0, 3.0]
    model.eval()
    ol(model, batch, None)
    assert ol.step == 3  # eval calls do not advance schedules
    ss = ScheduledSampling(eps=Linear(0.0, 1.0, steps=4))
    model.train()
    assert [ss(model, batch, None)[2]["eps"] for _ in range(3)] == [0.0, 0.25, 0.5]
    ss.load_state_dict({"step": 4})
    assert ss(model, batch, None)[2]["eps"] == 1.0


def test_eval_mode_returns_the_one_step_loss():
    model, batch = forecaster(), series_batch()
    model.eval()
    tf, _, _ = TeacherForcing()(model, batch, None)
    for objective in (OpenLoop(horizon=4), ScheduledSampling(eps=1.0), ProfessorForcing()):
        torch.testing.assert_close(objective(model, batch, None)[0], tf)


def test_professor_discriminator_sees_both_trajectories_and_learns():
    model, batch = forecaster(seed=3), series_batch(b=8, t=10, seed=2)
    # Loud noise as the truth vs the model's own smooth predictions: easy to tell apart.
    batch.inputs = 10.0 * torch.randn(8, 10, 2, generator=torch.Generator().manual_seed(0))
    pf = ProfessorForcing(weight=0.0, lr=3e-2, discriminator_hidden=8, seed=0)
    pf(model, batch, None)
    seen = []
    pf.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    _, _, h_tf = model(batch.inputs, return_hidden=True)
    _, _, h_fr = free_run(model, batch.inputs[:, 0], 10, detach=True)
    _, _, first = pf(model, batch, None)
    torch.testing.assert_close(seen[0], h_tf)
    torch.testing.assert_close(seen[1], h_fr)
    assert not torch.allclose(h_tf, h_fr)
    losses = [pf(model, batch, None)[2]["pf_d_loss"] for _ in range(10)]
    assert losses[-1] < 0.6 * first["pf_d_loss"]
    assert pf(model, batch, None)[2]["pf_d_acc"] >= 0.8


def test_professor_generator_gets_the_adversarial_loss():
    model, batch = forecaster(), series_batch()
    pf = ProfessorForcing(weight=2.0, seed=0)
    loss, _, m = pf(model, batch, None)
    tf, _, _ = TeacherForcing()(model, batch, None)
    adversarial = (loss - tf)[:, 0] / 2.0
    torch.testing.assert_close(loss - tf, 2.0 * adversarial[:, None].expand_as(tf))
    assert adversarial.mean().item() == pytest.approx(m["pf_g_loss"], rel=1e-5)
    # -log D(h_fr) with D after its own step, on the free-running trajectory
    _, _, h_fr = free_run(model, batch.inputs[:, 0], batch.inputs.shape[1], detach=True)
    logit = pf.discriminator(h_fr, batch.mask)
    torch.testing.assert_close(adversarial, -torch.nn.functional.logsigmoid(logit))
    model.zero_grad()
    d_grads = [p.grad.clone() for p in pf.discriminator.parameters()]  # from D's own step
    (loss - tf).sum().backward()
    assert model.rnn.weight_hh_l0.grad.abs().sum() > 0
    for before, p in zip(d_grads, pf.discriminator.parameters(), strict=True):
        torch.testing.assert_close(p.grad, before)  # the generator loss leaves D alone
    state = pf.state_dict()
    resumed = ProfessorForcing(weight=2.0)
    resumed.load_state_dict(state)
    resumed.build(8)
    for a, b in zip(resumed.discriminator.parameters(), pf.discriminator.parameters(),
                    strict=True):
        torch.testing.assert_close(a, b)


def test_make_objective_from_plain_values():
    assert isinstance(make_objective("teacher"), TeacherForcing)
    ol = make_objective("multi-step", horizon=6, weight=0.25)
    assert isinstance(ol, OpenLoop) and ol.horizon(0) == 6 and ol.weight(0) == 0.25
    ss = make_objective("scheduled_sampling", eps="linear:start=0,end=1,steps=10")
    assert ss.eps(5) == 0.5
    assert isinstance(make_objective("professor_forcing", weight=0.5), ProfessorForcing)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="unknown kind 'beam'"):
        make_objective("beam")
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['eps'\]"):
        make_objective("open_loop", eps=0.1)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        OpenLoop(horizon=0)
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\], got 1.5"):
        OpenLoop(weight=1.5)
    with pytest.raises(ValueError, match=r"eps must be in \[0, 1\], got -0.1"):
        ScheduledSampling(eps=-0.1)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        OpenLoop(stride=0)
    with pytest.raises(ValueError, match="rate must be in \\(0, 1\\), got 1.5"):
        Exponential(rate=1.5)
    with pytest.raises(ValueError, match="unknown kind 'cosine'"):
        make_schedule("cosine:steps=3")
    with pytest.raises(ValueError, match="weight must be >= 0, got -1"):
        ProfessorForcing(weight=-1)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        forecast(forecaster(), torch.zeros(1, 2, 2), 0)
