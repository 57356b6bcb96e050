"""rnnkit.LSTM / GRU: the drop-in promise against torch.nn, and each structural trick."""

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit import kernels
from rnnkit import rnn as rnn_module

MODES = ["LSTM", "GRU"]


def _pair(mode, *args, **kw):
    torch.manual_seed(0)
    ref = getattr(torch.nn, mode)(*args, **kw)
    ours = getattr(rnnkit, mode)(*args, **kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _states(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.fixture(params=["fused", "loop"])
def plain_path(request, monkeypatch):
    """Run a module with every trick off through torch's fused kernel (and fail if it falls
    back to a time loop), then through the fast loop, which a GRU takes on CPU."""
    use_loop = request.param == "loop"
    for cls in (rnnkit.LSTM, rnnkit.GRU):
        monkeypatch.setattr(cls, "_loop_is_faster", lambda self, x: use_loop)
    if not use_loop:
        def fail(*a, **k):
            raise AssertionError("the per-step loop ran where the fused kernel was expected")
        monkeypatch.setattr(rnn_module._RecurrentBase, "_loop_forward", fail)
    return request.param


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers,batch_first,bias", [(1, False, True), (2, True, True),
                                                          (3, False, False)])
def test_equals_torch_nn_outputs_states_and_gradients(mode, num_layers, batch_first, bias,
                                                      plain_path):
    ref, ours = _pair(mode, 5, 7, num_layers, bias=bias, batch_first=batch_first)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(4, 6, 5, requires_grad=True)
    h0 = torch.randn(num_layers, 4 if batch_first else 6, 7)
    state = (h0, torch.randn_like(h0)) if mode == "LSTM" else h0
    results = []
    for m in (ref, ours):
        out, s = m(x, state)
        loss = out.square().sum() + sum(t.sin().sum() for t in _states(s))
        results.append((out, _states(s), torch.autograd.grad(loss, [x, *m.parameters()])))
    (o1, s1, g1), (o2, s2, g2) = results
    torch.testing.assert_close(o2, o1, atol=1e-5, rtol=0)
    for a, b in zip(s1 + g1, s2 + g2):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_state_dict_round_trips_both_ways(mode):
    ref, ours = _pair(mode, 3, 4, 2)
    back = getattr(torch.nn, mode)(3, 4, 2)
    back.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(back(x)[0], ref(x)[0])


@pytest.mark.parametrize("mode", MODES)
def test_dropout_between_layers_matches_torch_nn_in_training(mode, plain_path, monkeypatch):
    # torch.nn draws its masks with bernoulli_, rnnkit with its own generator
    # (test_masks.py); with torch's draw the outputs are equal: same sites, same scaling
    monkeypatch.setattr(rnn_module, "dropout", lambda x, p, training: F.dropout(x, p, training))
    ref, ours = _pair(mode, 3, 8, 3, dropout=0.5)
    x = torch.randn(6, 4, 3)
    torch.manual_seed(5)
    o1 = ref(x)[0]
    torch.manual_seed(5)
    o2 = ours(x)[0]
    torch.testing.assert_close(o2, o1)
    assert not torch.allclose(ours.eval()(x)[0], o2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layer_norm", [False, True])
def test_lengths_zero_outputs_and_return_last_valid_state(mode, layer_norm):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, batch_first=True, layer_norm=layer_norm)
    x = torch.randn(3, 6, 3)
    lengths = torch.tensor([6, 2, 4])
    out, state = m(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_state = m(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], alone[0], atol=1e-6, rtol=0)
        assert out[b, n:].abs().max() == 0 if n < 6 else True
        for s, a in zip(_states(state), _states(alone_state)):
            torch.testing.assert_close(s[:, b], a[:, 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_packed_sequence_matches_torch_nn(mode):
    ref, ours = _pair(mode, 3, 5, 2)
    x = torch.randn(6, 3, 3)
    packed = pack_padded_sequence(x, torch.tensor([4, 6, 2]), enforce_sorted=False)
    (o1, s1), (o2, s2) = ref(packed), ours(packed)
    torch.testing.assert_close(o2.data, o1.data, atol=1e-6, rtol=0)
    for a, b in zip(_states(s1), _states(s2)):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("learned", [False, True])
def test_reset_restarts_rows_from_the_initial_state(mode, learned):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, batch_first=True, learned_initial_state=learned)
    if learned:
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() == 2 and p.shape[0] == 2:
                    p.normal_()
    x = torch.randn(2, 7, 3)
    reset = torch.zeros(2, 7, dtype=torch.bool)
    reset[0, 3] = True
    out, _ = m(x, m.initial_state(2) if not learned else None, reset=reset)
    first, _ = m(x[:1, :3])
    second, _ = m(x[:1, 3:])  # a fresh start from the initial state
    torch.testing.assert_close(out[0], torch.cat([first[0], second[0]]), atol=1e-6, rtol=0)
    whole, _ = m(x[1:])
    torch.testing.assert_close(out[1], whole[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_sum_outputs_is_the_sum_of_every_layers_output(mode, plain_path):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 3, sum_outputs=True)
    x = torch.randn(6, 2, 3)
    layers = []
    for k in range(3):
        single = getattr(torch.nn, mode)(3 if k == 0 else 5, 5)
        single.load_state_dict({n.replace(f"_l{k}", "_l0"): p for n, p in m.state_dict().items()
                                if n.endswith(f"_l{k}")})
        layers.append(single)
    expected, h = 0, x
    for single in layers:
        h, _ = single(h)
        expected = expected + h
    torch.testing.assert_close(m(x)[0], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_learned_initial_state_is_used_and_gets_gradients(mode):
    m = getattr(rnnkit, mode)(3, 4, 2, learned_initial_state=True)
    names = [n for n, _ in m.named_parameters() if n.startswith("initial_")]
    assert names == (["initial_h", "initial_c"] if mode == "LSTM" else ["initial_h"])
    with torch.no_grad():
        m.initial_h.fill_(0.5)
    x = torch.randn(5, 3, 3)
    out, _ = m(x)
    zero_state = tuple(torch.zeros(2, 3, 4) for _ in names)
    assert not torch.allclose(out, m(x, zero_state if mode == "LSTM" else zero_state[0])[0])
    out.sum().backward()
    for n in names:
        assert getattr(m, n).grad is not None and getattr(m, n).grad.abs().sum() > 0


def test_gate_bias_init_values():
    lstm = rnnkit.LSTM(3, 4, 2, forget_bias=1.0)
    for k in range(2):
        total = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
        assert torch.equal(total[4:8], torch.ones(4))
    gru = rnnkit.GRU(3, 4, 2, update_bias=1.0, reset_bias=-1.0)
    for k in range(2):
        total = getattr(gru, f"bias_ih_l{k}") + getattr(gru, f"bias_hh_l{k}")
        assert torch.equal(total[:4], -torch.ones(4))  # r
        assert torch.equal(total[4:8], torch.ones(4))  # z: keep more of the previous state
    ln = rnnkit.LSTM(3, 4, layer_norm=True, forget_bias=1.0)
    assert torch.equal(ln.bias_ih_l0[4:8] + ln.bias_hh_l0[4:8], torch.ones(4))
    assert torch.equal(ln.ln_weight_hh_l0, torch.ones(16))


def test_positive_update_bias_makes_the_gru_remember_more():
    torch.manual_seed(0)
    x = torch.randn(20, 8, 3)
    h0 = torch.randn(1, 8, 6)
    drift = {}
    for bias in (-2.0, 2.0):
        torch.manual_seed(1)
        gru = rnnkit.GRU(3, 6, update_bias=bias)
        out, _ = gru(x, h0)
        drift[bias] = (out[0] - h0[0]).abs().mean()
    assert drift[2.0] < drift[-2.0]


@pytest.mark.parametrize("mode", MODES)
def test_input_layers_feed_the_recurrence(mode):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, input_layers=2)
    assert m.weight_ih_l0.shape[1] == 5
    x = torch.randn(6, 2, 3)
    ref = getattr(torch.nn, mode)(5, 5)
    ref.load_state_dict({k: v for k, v in m.state_dict().items() if "_l0" in k})
    torch.testing.assert_close(m(x)[0], ref(m.input_layers(x))[0])


@pytest.mark.parametrize("mode", MODES)
def test_step_api_equals_the_sequence_call(mode):
    tricks = dict(layer_norm=True, sum_outputs=True, learned_initial_state=True, input_layers=1,
                  recurrent_dropout=0.3)
    tricks.update(dict(zoneout_cell=0.2, zoneout_hidden=0.3) if mode == "LSTM" else
                  dict(zoneout=0.3))
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, batch_first=True, **tricks).eval()
    x = torch.randn(2, 6, 3)
    out, state = m(x)
    s, steps = None, []
    for t in range(6):
        y, s = m.step(x[:, t], s)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), out, atol=1e-6, rtol=0)
    for a, b in zip(_states(s), _states(state)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trick", ["layer_norm", "zoneout", "recurrent_dropout", "sum_outputs",
                                   "learned_initial_state", "input_layers", "gate_bias"])
def test_gradcheck_every_trick(mode, trick):
    kw = {
        "layer_norm": dict(layer_norm=True),
        "zoneout": dict(zoneout_cell=0.3, zoneout_hidden=0.3) if mode == "LSTM"
        else dict(zoneout=0.3),
        "recurrent_dropout": dict(recurrent_dropout=0.3),
        "sum_outputs": dict(sum_outputs=True),
        "learned_initial_state": dict(learned_initial_state=True),
        "input_layers": dict(input_layers=1),
        "gate_bias": dict(forget_bias=1.0) if mode == "LSTM" else dict(update_bias=1.0,
                                                                          reset_bias=-1.0),
    }[trick]
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(2, 3, 2, dtype=torch.float64, **kw)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    params = list(m.parameters())

    def f(x, *ps):
        torch.manual_seed(3)  # the same masks at every evaluation
        out = torch.func.functional_call(m, dict(zip([n for n, _ in m.named_parameters()], ps)),
                                         (x,))
        return out[0]

    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("mode", MODES)
def test_bad_arguments_and_shapes_raise_clear_errors(mode):
    cls = getattr(rnnkit, mode)
    with pytest.raises(ValueError, match="hidden_size must be an int >= 1, got 0"):
        cls(3, 0)
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1.5"):
        cls(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="recurrent_dropout must be a probability"):
        cls(3, 4, recurrent_dropout=-0.1)
    m = cls(3, 4, 2)
    with pytest.raises(ValueError, match=r"input has 5 features, expected input_size=3"):
        m(torch.randn(6, 2, 5))
    with pytest.raises(ValueError, match=r"input must be 3-D \[T, B, input_size\], got shape"):
        m(torch.randn(6, 3))
    with pytest.raises(ValueError, match=r"state .* must have shape \(2, 2, 4\), got \(1, 2, 4\)"):
        bad = torch.zeros(1, 2, 4)
        m(torch.randn(6, 2, 3), (bad, bad) if mode == "LSTM" else bad)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 6\]"):
        m(torch.randn(6, 2, 3), lengths=torch.tensor([7, 2]))
    with pytest.raises(ValueError, match=r"reset must be a bool tensor of shape \(6, 2\)"):
        m(torch.randn(6, 2, 3), reset=torch.zeros(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="needs bias=True"):
        cls(3, 4, bias=False, **({"forget_bias": 1.0} if mode == "LSTM" else {"update_bias": 1.0}))
    with pytest.raises(NotImplementedError, match="bidirectional"):
        cls(3, 4, bidirectional=True)


@pytest.mark.parametrize("mode", MODES)
def test_reset_at_the_first_step_keeps_the_fused_kernel(mode, plain_path):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, learned_initial_state=True)
    with torch.no_grad():
        m.initial_h.normal_()
    x = torch.randn(4, 2, 3)
    state = m.initial_state(2)
    state = tuple(s + 1 for s in state) if mode == "LSTM" else state + 1
    reset = torch.zeros(4, 2, dtype=torch.bool)
    reset[0, 1] = True
    out, _ = m(x, state, reset=reset)
    torch.testing.assert_close(out[:, 0], m(x[:, :1], tuple(s[:, :1] for s in state)
                                             if mode == "LSTM" else state[:, :1])[0][:, 0])
    torch.testing.assert_close(out[:, 1], m(x[:, 1:])[0][:, 0])


def test_a_cpu_gru_takes_the_fast_loop_where_the_compiled_steps_run():
    """Plain GRUs on CPU run the fast loop in float32/64 once the kernels built; other dtypes,
    fast=False and the LSTM keep torch's kernel (the compiled steps are float32/64 only)."""
    x = torch.randn(6, 2, 3)
    assert rnnkit.GRU(3, 5)._loop_is_faster(x) == kernels.available()
    assert rnnkit.GRU(3, 5)._loop_is_faster(x.double()) == kernels.available()
    assert not rnnkit.GRU(3, 5)._loop_is_faster(x.bfloat16())
    assert not rnnkit.GRU(3, 5, fast=False)._loop_is_faster(x)
    assert not rnnkit.LSTM(3, 5)._loop_is_faster(x)
    ref, ours = _pair("GRU", 3, 5)
    ref, ours = ref.bfloat16(), ours.bfloat16()
    torch.testing.assert_close(ours(x.bfloat16())[0], ref(x.bfloat16())[0])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("bias", [True, False])
def test_one_step_without_grad_runs_the_cell_kernel_with_the_same_numbers(mode, bias,
                                                                         monkeypatch):
    """Streaming generation (one step, no backward) goes layer by layer through torch's
    LSTMCell/GRUCell kernel; with gradients, or over many steps, the sequence kernels run.
    Both give the same outputs and states, and the cell path matches torch.nn.*Cell."""
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(5, 7, num_layers=2, bias=bias).eval()
    x = torch.randn(1, 3, 5)
    state = tuple(torch.randn(2, 3, 7) for _ in range(2 if mode == "LSTM" else 1))
    state = state if mode == "LSTM" else state[0]
    expected, s_expected = m(x, state)  # with grad: the sequence kernel or the compiled loop
    calls = []
    real = type(m)._cell_steps
    monkeypatch.setattr(type(m), "_cell_steps", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        out, s = m(x, state)
        assert calls == [1]
        m(torch.randn(4, 3, 5), state)  # a sequence keeps the sequence kernel
        assert calls == [1]
    torch.testing.assert_close(out, expected.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(s if mode == "LSTM" else (s,), s_expected if mode == "LSTM" else (s_expected,)):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)
    cell = getattr(torch.nn, mode + "Cell")(5, 7, bias=bias)
    cell.load_state_dict({k[:-3]: v for k, v in m.state_dict().items() if k.endswith("_l0")})
    first = cell(x[0], (state[0][0], state[1][0]) if mode == "LSTM" else state[0])
    h0 = first[0] if mode == "LSTM" else first
    torch.testing.assert_close((s[0] if mode == "LSTM" else s)[0], h0.detach())


def _assert_streamed_steps_equal_the_sequence_call(m, xs, monkeypatch) -> list:
    """Step ``m`` (eval, batch_first) through ``xs [B, T, I]`` one call at a time without
    gradients and check every output and the last state against one sequence call with
    gradients; every step must take the streaming shortcut. Returns the list that records
    each later shortcut call."""
    mode = type(m).__name__
    expected, s_expected = m(xs)  # with grad, T steps: the sequence path
    taken = []
    real = type(m)._streaming_forward
    monkeypatch.setattr(type(m), "_streaming_forward", lambda *a: taken.append(1) or real(*a))
    outs, state = [], None
    with torch.no_grad():
        for t in range(xs.shape[1]):
            out, state = m.step(xs[:, t], state)
            outs.append(out)
    assert taken == [1] * xs.shape[1]
    torch.testing.assert_close(torch.stack(outs, 1), expected.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(state if mode == "LSTM" else (state,),
                    s_expected if mode == "LSTM" else (s_expected,)):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)
    return taken


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("trick", ["layer_norm", "zoneout", "both"])
def test_streaming_shortcut_with_layer_norm_and_zoneout(mode, trick, monkeypatch):
    """Layer norm and zoneout's eval expectation change the step: a one-step call without
    gradients in eval still skips the sequence machinery (the reference loop's step, layer by
    layer) and gives the sequence call's numbers, with 2 layers, summed outputs and a learned
    initial state, all parameters random."""
    kw = dict(num_layers=2, batch_first=True, sum_outputs=True, learned_initial_state=True)
    if trick != "zoneout":
        kw["layer_norm"] = True
    if trick != "layer_norm":
        kw.update(dict(zoneout=0.3) if mode == "GRU" else dict(zoneout_cell=0.3,
                                                                zoneout_hidden=0.2))
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(5, 7, **kw).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5)
    _assert_streamed_steps_equal_the_sequence_call(m, torch.randn(3, 4, 5), monkeypatch)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_streaming_shortcut_equals_the_sequence_call(mode, monkeypatch):
    """A one-step call without gradients in eval skips the sequence machinery (input layers,
    summed outputs, learned initial state, batch_first and the eval identities of dropout,
    weight drop and recurrent dropout still apply) and gives the sequence call's numbers;
    layer norm and zoneout: see the next test."""
    torch.manual_seed(0)
    kw = dict(num_layers=2, batch_first=True, input_layers=1, sum_outputs=True,
              learned_initial_state=True, dropout=0.3, input_dropout=0.2, output_dropout=0.2,
              weight_drop=0.2, recurrent_dropout=0.2)
    m = getattr(rnnkit, mode)(5, 7, **kw).eval()
    with torch.no_grad():
        m.initial_h.normal_()
    xs = torch.randn(3, 4, 5)
    taken = _assert_streamed_steps_equal_the_sequence_call(m, xs, monkeypatch)
    taken.clear()
    with torch.no_grad():
        m.train().step(xs[:, 0])  # training: dropout applies, so the sequence path
    assert taken == [], "training"


@pytest.mark.parametrize("mode, arg", [("LSTM", "forget_bias"), ("LSTM", "chrono_init"),
                                       ("GRU", "update_bias"), ("GRU", "reset_bias"),
                                       ("GRU", "chrono_init")])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_gate_bias_or_chrono_init_that_is_not_finite_is_refused(mode, arg, value):
    with pytest.raises(ValueError, match=rf"{mode}: {arg} must be a finite number, got"):
        getattr(rnnkit, mode)(4, 4, **{arg: value})


@pytest.mark.parametrize("mode, arg", [("LSTM", "zoneout_cell"), ("LSTM", "zoneout"),
                                       ("GRU", "zoneout")])
def test_a_zoneout_rate_out_of_range_is_refused(mode, arg):
    with pytest.raises(ValueError, match=rf"{arg} must be a probability in \[0, 1\), got nan"):
        getattr(rnnkit, mode)(4, 4, **{arg: float("nan")})


def test_lstm_zoneout_sets_both_rates_as_the_cli_does():
    lstm = rnnkit.LSTM(4, 4, zoneout=0.1)
    assert (lstm.zoneout_cell, lstm.zoneout_hidden) == (0.1, 0.1)
    lstm = rnnkit.LSTM(4, 4, zoneout=0.1, zoneout_cell=0.3)  # the one named wins
    assert (lstm.zoneout_cell, lstm.zoneout_hidden) == (0.3, 0.1)
    assert (rnnkit.LSTM(4, 4).zoneout_cell, rnnkit.LSTM(4, 4).zoneout_hidden) == (0.0, 0.0)


@pytest.mark.parametrize("mode, kw, message", [
    ("GRU", {"zoneout_cell": 0.1}, "GRU: zoneout_cell is an argument of rnnkit.LSTM; use zoneout"),
    ("GRU", {"forget_bias": 1.0}, "GRU: forget_bias is an argument of rnnkit.LSTM; use "
                                  "update_bias"),
    ("LSTM", {"update_bias": 1.0}, "LSTM: update_bias is an argument of rnnkit.GRU; use "
                                   "forget_bias"),
    ("LSTM", {"reset_bias": -1.0}, "LSTM: reset_bias is an argument of rnnkit.GRU; the LSTM "
                                   "has nothing like it"),
    ("LSTM", {"zonout": 0.1}, "LSTM: unexpected argument 'zonout'; did you mean zoneout"),
])
def test_an_argument_the_module_does_not_take_names_the_one_to_use(mode, kw, message):
    with pytest.raises(TypeError, match=message):
        getattr(rnnkit, mode)(4, 4, **kw)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kw", [{}, {"layer_norm": True}, {"zoneout": 0.1},
                                {"layer_norm": True, "num_layers": 2, "sum_outputs": True,
                                 "learned_initial_state": True}])
def test_an_empty_batch_gives_empty_outputs_and_states_as_torch_nn(mode, kw):
    ref_out, ref_state = getattr(torch.nn, mode)(4, 3, num_layers=kw.get("num_layers", 1),
                                                 batch_first=True)(torch.zeros(0, 5, 4))
    module = getattr(rnnkit, mode)(4, 3, batch_first=True, **kw)
    for training in (True, False):
        out, state = module.train(training)(torch.zeros(0, 5, 4))
        assert out.shape == ref_out.shape
        assert [s.shape for s in _states(state)] == [s.shape for s in _states(ref_state)]


def test_the_recurrent_base_is_split_by_concern():
    """_RecurrentBase (585 lines in one class) is its parts, one concern a class; each method
    is defined in one part, and LSTM/GRU override only the cell-specific ones."""
    parts = {"_Parameters": ["__init__", "reset_parameters", "_layer_norms"],
             "_State": ["initial_state", "_check_state", "_check_reset"],
             "_Dispatch": ["forward", "route"],
             "_FusedPath": ["_fused_forward"],
             "_LoopPath": ["_loop_forward", "_reference_layer", "_fast_layer"],
             "_Streaming": ["step", "_streaming_forward"]}
    base = rnn_module._RecurrentBase
    assert {b.__name__ for b in base.__bases__} == set(parts)
    assert not [n for n, v in vars(base).items() if inspect.isfunction(v)]
    for part, methods in parts.items():
        owned = vars(getattr(rnn_module, part))
        assert all(inspect.isfunction(owned.get(m)) for m in methods), part
    defined = [n for b in base.__bases__ for n, v in vars(b).items() if inspect.isfunction(v)]
    assert len(defined) == len(set(defined))
