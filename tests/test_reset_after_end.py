"""A reset flag past a row's end (t >= lengths[b]) leaves the returned state alone."""

import pytest
import torch

import rnnkit


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("fast", [True, False])
def test_reset_past_the_end_does_not_change_the_returned_state(mode, fast):
    torch.manual_seed(0)
    m = getattr(rnnkit, mode)(3, 5, 2, batch_first=True, fast=fast)
    x = torch.randn(2, 6, 3)
    lengths = torch.tensor([3, 6])
    state = m.initial_state(2)
    state = tuple(s + 0.5 for s in state) if isinstance(state, tuple) else state + 0.5
    reset = torch.zeros(2, 6, dtype=torch.bool)
    reset[0, 4] = True  # after row 0's last step (t = 2)
    reset[1, 2] = True  # inside row 1: a real restart
    out, s_reset = m(x, state, lengths=lengths, reset=reset)
    inside = torch.zeros_like(reset)
    inside[1, 2] = True
    ref_out, s_ref = m(x, state, lengths=lengths, reset=inside)
    torch.testing.assert_close(out, ref_out, atol=0, rtol=0)
    for a, b in zip(s_reset if isinstance(s_reset, tuple) else (s_reset,),
                    s_ref if isinstance(s_ref, tuple) else (s_ref,)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    # Row 0's state is the one after its third step, not the initial state.
    first, s_first = m(x[:1, :3], tuple(s[:, :1] for s in state) if isinstance(state, tuple)
                       else state[:, :1])
    h = s_reset[0] if isinstance(s_reset, tuple) else s_reset
    h_first = s_first[0] if isinstance(s_first, tuple) else s_first
    torch.testing.assert_close(h[:, 0], h_first[:, 0], atol=1e-6, rtol=0)
