"""Initializations (rnnkit.init): orthogonal and identity W_hh blocks, chrono gate biases
(Tallec & Ollivier 2018), and how they compose with the gate-bias arguments."""

import math

import pytest
import torch

import rnnkit
from rnnkit import init

MODES = ["LSTM", "GRU"]


def _blocks(w, H):
    return w.detach().split(H, dim=0)


def _total_bias(m, layer, gate):
    H = m.hidden_size
    b = getattr(m, f"bias_ih_l{layer}") + getattr(m, f"bias_hh_l{layer}")
    return b[gate * H : (gate + 1) * H].detach()


@pytest.mark.parametrize("mode", MODES)
def test_orthogonal_blocks_are_orthogonal(mode):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 6, 2, init="orthogonal")
    for layer in range(2):
        for w in _blocks(getattr(m, f"weight_hh_l{layer}"), 6):
            torch.testing.assert_close(w.T @ w, torch.eye(6), atol=1e-5, rtol=0)
    # The function takes torch.nn modules as well (same parameter names).
    nn_lstm = init.orthogonal_(getattr(torch.nn, mode)(3, 6))
    for w in _blocks(nn_lstm.weight_hh_l0, 6):
        torch.testing.assert_close(w.T @ w, torch.eye(6), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_identity_blocks(mode):
    m = getattr(rnnkit, mode)(3, 4, 2, init="identity")
    for layer in range(2):
        for w in _blocks(getattr(m, f"weight_hh_l{layer}"), 4):
            assert torch.equal(w, torch.eye(4))
    half = init.identity_(getattr(torch.nn, mode)(3, 4), scale=0.5)
    assert torch.equal(_blocks(half.weight_hh_l0, 4)[0], 0.5 * torch.eye(4))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_chrono_lstm_forget_and_input_biases(layer_norm):
    torch.manual_seed(0)
    t_max = 50
    m = rnnkit.LSTM(3, 200, 2, chrono_init=t_max, layer_norm=layer_norm)
    low, high = init.chrono_range(t_max)
    assert (low, high) == (0.0, math.log(t_max - 1))
    for layer in range(2):
        b_i, b_f = _total_bias(m, layer, 0), _total_bias(m, layer, 1)
        assert b_f.min() >= low and b_f.max() <= high
        torch.testing.assert_close(b_i, -b_f)
        # log(U(1, T_max - 1)) is not constant: it spreads over the range.
        assert b_f.max() - b_f.min() > 0.5 * (high - low)
        # Per unit, not one value: the paper's point is a spread of time scales.
        assert b_f.unique().numel() > 100


def test_chrono_gru_update_gate_keeps_the_state():
    """torch.nn.GRU: h' = (1 - z) * n + z * h, so z is the keep gate and gets log(u)."""
    torch.manual_seed(0)
    m = rnnkit.GRU(3, 100, chrono_init=20, reset_bias=-1.0)
    b_z = _total_bias(m, 0, 1)
    assert b_z.min() >= 0 and b_z.max() <= math.log(19)
    assert torch.equal(_total_bias(m, 0, 0), torch.full((100,), -1.0))  # reset_bias composes
    # A large b_z keeps more of the state: one step from h=1 with zero input stays near 1.
    with torch.no_grad():
        m.weight_hh_l0.zero_()
        _, h = m(torch.zeros(1, 1, 3), torch.ones(1, 1, 100))
    b_ih, b_hh = m.bias_ih_l0.detach(), m.bias_hh_l0.detach()
    z, r = torch.sigmoid(b_z), torch.sigmoid(b_ih[:100] + b_hh[:100])
    n = torch.tanh(b_ih[200:] + r * b_hh[200:])
    torch.testing.assert_close(h[0, 0], (1 - z) * n + z, atol=1e-6, rtol=0)


def test_inits_compose_with_gate_biases():
    torch.manual_seed(0)
    m = rnnkit.LSTM(3, 5, init="orthogonal", forget_bias=1.0)
    assert torch.equal(_total_bias(m, 0, 1), torch.ones(5))
    w = _blocks(m.weight_hh_l0, 5)[2]
    torch.testing.assert_close(w.T @ w, torch.eye(5), atol=1e-5, rtol=0)
    m = rnnkit.LSTM(3, 5, init="identity", chrono_init=10)
    assert torch.equal(_blocks(m.weight_hh_l0, 5)[0], torch.eye(5))
    # reset_parameters() draws again, with the same switches
    m.reset_parameters()
    assert torch.equal(_blocks(m.weight_hh_l0, 5)[0], torch.eye(5))
    assert (_total_bias(m, 0, 1) >= 0).all()


def test_bad_init_arguments_are_named():
    with pytest.raises(ValueError, match="init must be one of .*got 'xavier'"):
        rnnkit.LSTM(3, 4, init="xavier")
    with pytest.raises(ValueError, match="chrono_init must be .*got 2"):
        rnnkit.LSTM(3, 4, chrono_init=2)
    with pytest.raises(ValueError, match="chrono_init=10 sets the forget gate's bias"):
        rnnkit.LSTM(3, 4, chrono_init=10, forget_bias=1.0)
    with pytest.raises(ValueError, match="chrono_init=10 sets the update gate's bias"):
        rnnkit.GRU(3, 4, chrono_init=10, update_bias=1.0)
    with pytest.raises(ValueError, match="chrono_init=10 needs bias=True"):
        rnnkit.GRU(3, 4, bias=False, chrono_init=10)
