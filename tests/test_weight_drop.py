"""Weight drop (DropConnect on W_hh, Wan et al. 2013; Merity et al. 2018) against an explicit
module whose W_hh is the raw weight times the same mask."""

import pytest
import torch

import rnnkit
from rnnkit import rnn as rnn_module
from rnnkit.regularizers import dropout

MODES = ["LSTM", "GRU"]
P = 0.4


def _masks(module, seed):
    """The scaled masks weight_drop draws after ``torch.manual_seed(seed)``: one per layer,
    in layer order (dropout draws a Bernoulli of the weight's shape, whatever its values)."""
    torch.manual_seed(seed)
    return [dropout(torch.ones_like(getattr(module, f"weight_hh_l{k}")), P, True)
            for k in range(module.num_layers)]


def _explicit(module, masks, cls):
    """A copy without weight drop whose W_hh is the masked raw weight, as a leaf."""
    ref = cls(module.input_size, module.hidden_size, module.num_layers)
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    for k, m in enumerate(masks):
        state[f"weight_hh_l{k}"] = state[f"weight_hh_l{k}"] * m
    ref.load_state_dict(state)
    return ref


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["fused", "fast loop", "reference loop"])
def test_weight_drop_equals_an_explicitly_masked_w_hh(mode, path):
    torch.manual_seed(0)
    kw = {} if path == "fused" else dict(layer_norm=True, fast=path == "fast loop")
    m = getattr(rnnkit, mode)(3, 5, 2, weight_drop=P, **kw)
    if path == "fused":
        ref = _explicit(m, _masks(m, 1), getattr(torch.nn, mode))
    else:  # the same trick, without weight drop, on the plain autograd loop
        ref = getattr(rnnkit, mode)(3, 5, 2, layer_norm=True, fast=False)
        ref.load_state_dict(_explicit(m, _masks(m, 1), lambda *a: getattr(rnnkit, mode)(
            *a, layer_norm=True)).state_dict())
    masks = _masks(m, 1)
    x = torch.randn(7, 2, 3)
    torch.manual_seed(1)
    out, _ = m(x)
    ref_out, _ = ref(x)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-4)
    # dL/dW_raw = mask / (1 - p) * dL/dW_dropped
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (ref_out * weights).sum().backward()
    for k, mask in enumerate(masks):
        torch.testing.assert_close(getattr(m, f"weight_hh_l{k}").grad,
                                   getattr(ref, f"weight_hh_l{k}").grad * mask,
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(getattr(m, f"weight_ih_l{k}").grad,
                                   getattr(ref, f"weight_ih_l{k}").grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_weight_drop_is_the_identity_in_eval_and_keeps_torch_keys(mode):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, weight_drop=P).eval()
    plain = getattr(torch.nn, mode)(3, 5, 2)
    assert list(m.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(m.state_dict())
    x = torch.randn(6, 2, 3)
    torch.testing.assert_close(m(x)[0], plain(x)[0], atol=1e-5, rtol=1e-4)
    m.train()
    assert not torch.allclose(m(x)[0], plain(x)[0])  # a no-op would pass the eval check


def test_weight_drop_keeps_the_fused_kernel(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("weight drop left the fused kernel")
    monkeypatch.setattr(rnn_module._RecurrentBase, "_loop_forward", fail)
    m = rnnkit.LSTM(3, 5, 2, weight_drop=P)
    m(torch.randn(4, 2, 3))[0].sum().backward()


def test_one_mask_per_call():
    torch.manual_seed(0)
    m = rnnkit.LSTM(3, 5, weight_drop=0.5)
    x = torch.randn(4, 2, 3)
    a, b = m(x)[0], m(x)[0]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1])
def test_bad_weight_drop_is_named(bad):
    with pytest.raises(ValueError, match=f"weight_drop must be .*got {bad}"):
        rnnkit.GRU(3, 5, weight_drop=bad)
