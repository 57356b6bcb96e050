"""Layer norm, zoneout and recurrent dropout against references written from their papers,
and the cells against torch.nn's cells."""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import functional


def _np_ln(x, gain, bias, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return gain * (x - mu) / np.sqrt(var + eps) + bias


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_layer_norm_lstm_step_matches_ba_et_al_equations_in_numpy():
    """Ba et al. 2016, eq. (20)-(22): gates = LN(W_h h) + LN(W_x x) + b, h = o * tanh(LN(c))."""
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(3, 4, layer_norm=True).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_()
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (3, 4, 4))
    h1, c1 = cell(x, (h, c))
    P = {n: p.detach().numpy() for n, p in cell.named_parameters()}
    gates = (_np_ln(x.numpy() @ P["weight_ih"].T, P["ln_weight_ih"], P["bias_ih"])
             + _np_ln(h.numpy() @ P["weight_hh"].T, P["ln_weight_hh"], P["bias_hh"]))
    i, f, g, o = np.split(gates, 4, axis=1)
    c_ref = _sigmoid(f) * c.numpy() + _sigmoid(i) * np.tanh(g)
    h_ref = _sigmoid(o) * np.tanh(_np_ln(c_ref, P["ln_weight_cell"], P["ln_bias_cell"]))
    np.testing.assert_allclose(c1.detach().numpy(), c_ref, rtol=1e-10)
    np.testing.assert_allclose(h1.detach().numpy(), h_ref, rtol=1e-10)


def test_layer_norm_gru_step_matches_numpy():
    torch.manual_seed(0)
    cell = rnnkit.GRUCell(3, 4, layer_norm=True).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_()
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    P = {n: p.detach().numpy() for n, p in cell.named_parameters()}
    xs = np.split(_np_ln(x.numpy() @ P["weight_ih"].T, P["ln_weight_ih"], P["bias_ih"]), 3, 1)
    hs = np.split(_np_ln(h.numpy() @ P["weight_hh"].T, P["ln_weight_hh"], P["bias_hh"]), 3, 1)
    r, z = _sigmoid(xs[0] + hs[0]), _sigmoid(xs[1] + hs[1])
    n = np.tanh(xs[2] + r * hs[2])
    np.testing.assert_allclose(cell(x, h).detach().numpy(), (1 - z) * n + z * h.numpy(),
                               rtol=1e-10)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_layer_norm_statistics_are_per_input(mode):
    """Scaling W_ih (one input of the gate map) changes nothing when each input has its own
    LN; a single LN over the summed inputs would change."""
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 4, layer_norm=True)
    x = torch.randn(5, 2, 3)
    before = m(x)[0]
    with torch.no_grad():
        m.weight_ih_l0.mul_(10.0)
    torch.testing.assert_close(m(x)[0], before, atol=1e-3, rtol=0)  # up to LN eps
    plain = getattr(rnnkit, mode)(3, 4)
    before = plain(x)[0]
    with torch.no_grad():
        plain.weight_ih_l0.mul_(10.0)
    assert not torch.allclose(plain(x)[0], before, atol=1e-2)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_cells_equal_torch_nn_cells(mode):
    torch.manual_seed(0)
    ref = getattr(torch.nn, f"{mode}Cell")(3, 5)
    ours = getattr(rnnkit, f"{mode}Cell")(3, 5)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 3)
    h = torch.randn(4, 5)
    state = (h, torch.randn(4, 5)) if mode == "LSTM" else h
    a, b = ref(x, state), ours(x, state)
    for u, v in zip(a if mode == "LSTM" else (a,), b if mode == "LSTM" else (b,)):
        torch.testing.assert_close(v, u)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_cell_step_equals_one_step_of_the_module(mode):
    kw = dict(zoneout_cell=0.3, zoneout_hidden=0.2) if mode == "LSTM" else dict(zoneout=0.3)
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, layer_norm=True, **kw).eval()
    cell = getattr(rnnkit, f"{mode}Cell")(3, 5, layer_norm=True, **kw).eval()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in m.state_dict().items()})
    x = torch.randn(2, 3)
    out, state = m.step(x, m.initial_state(2))
    cell_out = cell(x)
    torch.testing.assert_close(cell_out[0] if mode == "LSTM" else cell_out, out)


def test_zoneout_eval_is_the_expectation_and_train_a_per_unit_choice():
    torch.manual_seed(0)
    p = 0.3
    cell = rnnkit.LSTMCell(3, 50, zoneout_cell=p, zoneout_hidden=p)
    plain = rnnkit.LSTMCell(3, 50)
    plain.load_state_dict(cell.state_dict())
    x, h, c = torch.randn(8, 3), torch.randn(8, 50), torch.randn(8, 50)
    h_new, c_new = plain(x, (h, c))
    cell.eval()
    h_eval, c_eval = cell(x, (h, c))
    torch.testing.assert_close(h_eval, p * h + (1 - p) * h_new)
    torch.testing.assert_close(c_eval, p * c + (1 - p) * c_new)
    cell.train()
    h_tr, c_tr = cell(x, (h, c))
    kept = torch.isclose(h_tr, h) & ~torch.isclose(h_tr, h_new)
    updated = torch.isclose(h_tr, h_new)
    assert bool((kept | updated).all())  # every unit is exactly old or exactly new
    assert 0.2 < kept.float().mean() < 0.4  # about p of them kept
    kept_c = torch.isclose(c_tr, c) & ~torch.isclose(c_tr, c_new)
    assert not torch.equal(kept, kept_c)  # separate masks for c and h


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_recurrent_dropout_drops_the_candidate_once_per_sequence_and_keeps_the_memory(mode):
    """From a zero state, a unit whose candidate is dropped stays exactly 0 at every step:
    the same units are dropped at every step (one mask per sequence) and the memory path
    (f * c, or z * h) is not dropped."""
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 64, recurrent_dropout=0.5).train()
    out, _ = m(torch.randn(10, 4, 3))
    zero = out == 0
    assert 0.3 < zero[0].float().mean() < 0.7
    assert torch.equal(zero, zero[:1].expand_as(zero))
    m.eval()
    plain = getattr(rnnkit, mode)(3, 64)
    plain.load_state_dict(m.state_dict())
    x = torch.randn(10, 4, 3)
    torch.testing.assert_close(m(x)[0], plain(x)[0])


def test_candidate_mask_leaves_the_memory_path_untouched():
    torch.manual_seed(0)
    gates, h, c = torch.randn(2, 16), torch.randn(2, 4), torch.randn(2, 4)
    w = torch.randn(16, 4)
    _, c_dropped = functional.lstm_step(gates, h, c, w, candidate_mask=torch.zeros(2, 4))
    f = (gates + h @ w.T).chunk(4, 1)[1]
    torch.testing.assert_close(c_dropped, torch.sigmoid(f) * c)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_rate_zero_equals_eval_and_positive_rate_differs_in_training(mode):
    zone = dict(zoneout_cell=0.3, zoneout_hidden=0.3) if mode == "LSTM" else dict(zoneout=0.3)
    x = torch.randn(6, 2, 3)
    torch.manual_seed(0)
    plain = getattr(rnnkit, mode)(3, 5).train()
    for kw in (zone, dict(recurrent_dropout=0.3)):
        m = getattr(rnnkit, mode)(3, 5, **kw).train()
        m.load_state_dict(plain.state_dict())
        assert not torch.allclose(m(x)[0], plain(x)[0])
    zero = dict.fromkeys(zone, 0.0) | {"recurrent_dropout": 0.0}
    m = getattr(rnnkit, mode)(3, 5, **zero).train()
    m.load_state_dict(plain.state_dict())
    torch.testing.assert_close(m(x)[0], plain.eval()(x)[0])
