"""Locked (variational) dropout, Gal & Ghahramani 2016, and per-sequence recurrent-dropout
masks (Semeniuta et al. 2016): one mask per sequence and row, shared over time, kept across
chunks of a stream and step() calls, redrawn where a row resets."""

import pytest
import torch

import rnnkit
from rnnkit import functional
from rnnkit.regularizers import dropout_mask

MODES = ["LSTM", "GRU"]
LOCKED = dict(dropout=0.5, dropout_mode="locked", input_dropout=0.5, output_dropout=0.5)


def _first(state):
    return state[0] if isinstance(state, tuple) else state


def _layer(m, k, **kw):
    """Layer k of m as its own one-layer module (same weights), in eval mode."""
    one = type(m)(m.input_size if k == 0 else m.hidden_size, m.hidden_size, **kw).eval()
    one.load_state_dict({n.replace(f"_l{k}", "_l0"): p for n, p in m.state_dict().items()
                         if n.endswith(f"_l{k}")})
    return one


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["fused", "loop"])
def test_locked_dropout_equals_gal_and_ghahramani(mode, path):
    """out = L2(m_b * L1(m_i * x)) * m_o, each m [B, F] the same at every step."""
    torch.manual_seed(0)
    kw = {} if path == "fused" else dict(layer_norm=True)
    m = getattr(rnnkit, mode)(3, 16, 2, **LOCKED, **kw)
    x = torch.randn(7, 4, 3)
    out, _ = m(x)
    masks = m.sequence_masks.masks
    assert set(masks) == {"input", "between_l1", "output"}
    assert masks["input"].shape == (4, 3) and masks["output"].shape == (4, 16)
    with torch.no_grad():
        h1, _ = _layer(m, 0, **kw)(x * masks["input"])
        h2, _ = _layer(m, 1, **kw)(h1 * masks["between_l1"])
    torch.testing.assert_close(out, h2 * masks["output"], atol=1e-5, rtol=1e-4)
    # Shared over time: a dropped output unit is 0 at every step of its row.
    zero = masks["output"] == 0
    assert zero.any() and (out[:, zero] == 0).all()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trick", [dict(), dict(recurrent_dropout=0.3,
                                                recurrent_dropout_mode="per_sequence")])
def test_masks_are_kept_across_chunks_and_steps_of_a_stream(mode, trick):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 8, 2, **LOCKED, **trick)
    x = torch.randn(9, 2, 3)
    torch.manual_seed(1)
    full, s_full = m(x)
    torch.manual_seed(1)
    a, s = m(x[:4])
    b, s = m(x[4:], s)
    torch.testing.assert_close(torch.cat([a, b]), full, atol=1e-6, rtol=0)
    torch.testing.assert_close(_first(s), _first(s_full), atol=1e-6, rtol=0)
    torch.manual_seed(1)
    steps, s = [], None
    for t in range(9):
        y, s = m.step(x[t], s)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps), full, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("at", [0, 2])  # 0: the fused kernel runs
def test_a_reset_redraws_that_rows_masks_from_the_reset_step(mode, at):
    torch.manual_seed(0)
    rd = dict(recurrent_dropout=0.5, recurrent_dropout_mode="per_sequence") if at else {}
    m = getattr(rnnkit, mode)(32, 64, 2, **LOCKED, **rd)
    x = torch.randn(6, 2, 32)
    _, s = m(x)
    before = {k: v.clone() for k, v in m.sequence_masks.masks.items()}
    reset = torch.zeros(6, 2, dtype=torch.bool)
    reset[at, 0] = True
    out, _ = m(x, s, reset=reset)
    after = dict(m.sequence_masks.masks)
    for site in before:
        assert torch.equal(after[site][1], before[site][1]), site  # row 1 keeps its masks
        assert not torch.equal(after[site][0], before[site][0]), site
    # Before the reset row 0 still uses its old output mask, after it the new one.
    zero_old, zero_new = before["output"][0] == 0, after["output"][0] == 0
    assert (out[:at, 0][:, zero_old] == 0).all() and (out[at:, 0][:, zero_new] == 0).all()
    # A call without a state starts new sequences: every mask is drawn again.
    m(x)
    assert not torch.equal(m.sequence_masks.masks["output"], after["output"])


@pytest.mark.parametrize("mode", MODES)
def test_masked_resets_run_the_same_on_the_fast_and_reference_loops(mode):
    torch.manual_seed(0)
    kw = dict(**LOCKED, recurrent_dropout=0.3, recurrent_dropout_mode="per_sequence")
    fast = getattr(rnnkit, mode)(3, 8, 2, **kw)
    ref = getattr(rnnkit, mode)(3, 8, 2, fast=False, **kw)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(7, 3, 3)
    reset = torch.zeros(7, 3, dtype=torch.bool)
    reset[3, 0] = reset[5, 2] = reset[0, 1] = True
    outs = []
    for m in (fast, ref):
        torch.manual_seed(2)
        out, s = m(x)
        out2, _ = m(x, s, reset=reset)
        out2.sum().backward()
        outs.append((out2, m.weight_hh_l0.grad))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(outs[0][1], outs[1][1], atol=1e-5, rtol=1e-4)


def _reference_lstm(m, x, mask):
    """One-layer LSTM with the Semeniuta candidate mask ([B, H], or [T, B, H]: one per
    step), from functional.lstm_step."""
    h = c = torch.zeros(x.shape[1], m.hidden_size)
    outs = []
    for t in range(x.shape[0]):
        gates = x[t] @ m.weight_ih_l0.T + m.bias_ih_l0
        h, c = functional.lstm_step(gates, h, c, m.weight_hh_l0, m.bias_hh_l0,
                                    candidate_mask=mask[t] if mask.dim() == 3 else mask)
        outs.append(h)
    return torch.stack(outs), (h, c)


@pytest.mark.parametrize("mode", ["per_call", "per_sequence"])
def test_recurrent_dropout_modes(mode):
    """per_call (the default, as before): a new [B, H] mask at every forward call, shared by
    its steps; per_sequence: one mask for the whole stream, across calls."""
    torch.manual_seed(0)
    m = rnnkit.LSTM(3, 32, recurrent_dropout=0.5, recurrent_dropout_mode=mode)
    assert rnnkit.LSTM(3, 4).recurrent_dropout_mode == "per_call"
    x = torch.randn(8, 2, 3)
    torch.manual_seed(1)
    full, _ = m(x)
    torch.manual_seed(1)
    a, s = m(x[:4])
    b, _ = m(x[4:], s)
    torch.testing.assert_close(a, full[:4], atol=1e-6, rtol=0)
    if mode == "per_sequence":
        torch.testing.assert_close(b, full[4:], atol=1e-6, rtol=0)
        mask = m.sequence_masks.masks["recurrent_l0"]
        ref, _ = _reference_lstm(m, x, mask)
        torch.testing.assert_close(full, ref, atol=1e-5, rtol=1e-4)
    else:
        assert not torch.allclose(b, full[4:])  # chunk 2 drew its own mask
        assert not m.sequence_masks.masks
        torch.manual_seed(1)
        mask = dropout_mask((2, 32), 0.5, True, x).clone()
        ref, _ = _reference_lstm(m, x[:4], mask)
        torch.testing.assert_close(a, ref, atol=1e-5, rtol=1e-4)


def test_eval_is_unchanged_and_bad_modes_are_named():
    torch.manual_seed(0)
    m = rnnkit.GRU(3, 8, 2, **LOCKED, recurrent_dropout=0.3,
                   recurrent_dropout_mode="per_sequence").eval()
    plain = torch.nn.GRU(3, 8, 2).eval()
    plain.load_state_dict(m.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(m(x)[0], plain(x)[0], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="dropout_mode must be one of .*got 'variational'"):
        rnnkit.LSTM(3, 4, dropout_mode="variational")
    with pytest.raises(ValueError, match="recurrent_dropout_mode must be .*got 'per_chunk'"):
        rnnkit.LSTM(3, 4, recurrent_dropout_mode="per_chunk")
    with pytest.raises(ValueError, match="input_dropout must be .*got 1.5"):
        rnnkit.LSTM(3, 4, input_dropout=1.5)


def test_packed_input_with_locked_dropout_between_layers():
    torch.manual_seed(0)
    m = rnnkit.LSTM(3, 8, 2, dropout=0.5, dropout_mode="locked")
    x = torch.randn(6, 3, 3)
    lengths = torch.tensor([6, 2, 4])
    out, _ = m(x, lengths=lengths)
    mask = m.sequence_masks.masks["between_l1"]
    with torch.no_grad():
        h1, _ = _layer(m, 0)(x, lengths=lengths)
        h2, _ = _layer(m, 1)(h1 * mask, lengths=lengths)
    torch.testing.assert_close(out, h2, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fast", [True, False])
def test_per_step_recurrent_dropout_draws_a_mask_at_every_step(fast):
    torch.manual_seed(0)
    m = rnnkit.LSTM(3, 32, recurrent_dropout=0.5, recurrent_dropout_mode="per_step",
                    fast=fast)
    x = torch.randn(6, 2, 3)
    torch.manual_seed(1)
    out, _ = m(x)
    torch.manual_seed(1)
    masks = dropout_mask((6, 2, 32), 0.5, True, x).clone()
    assert not torch.equal(masks[0], masks[1])
    ref, _ = _reference_lstm(m, x, masks)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    out.sum().backward()  # the autograd loop runs it, with gradients
    assert m.weight_hh_l0.grad is not None
