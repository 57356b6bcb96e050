"""Truncated BPTT: stream layout, carried state, burn-in, k1/k2 windows, resets, padding."""

import pytest
import torch
from torch import nn
from trainhelpers import ContinuousLSTM, TinyLSTM, text_ids

from rnnkit.train import (
    NextStep,
    PaddedBatcher,
    StreamBatcher,
    TrainConfig,
    forward_model,
    forward_window,
)


def test_streams_are_contiguous_next_step_pairs():
    data = torch.arange(101)
    b = StreamBatcher(data, batch_size=4)  # 100 pairs -> 4 streams of 25
    first, second = b.next_batch(10), b.next_batch(10)
    assert first.inputs[2].tolist() == list(range(50, 60))
    assert first.targets[2].tolist() == list(range(51, 61))
    assert second.inputs[2].tolist() == list(range(60, 70))
    assert first.fresh and first.reset[:, 0].all() and not second.fresh
    wrapped = b.next_batch(10)  # only 5 steps left: the stream wraps and the state resets
    assert wrapped.inputs[0].tolist() == list(range(10)) and wrapped.fresh and b.epoch == 1


def _chunked_losses(model, batcher, chunk_length, n_chunks):
    """Per-step losses of consecutive windows with the carried state, concatenated."""
    objective, state, losses = NextStep(), None, []
    for _ in range(n_chunks):
        batch = batcher.next_batch(chunk_length)
        per_step, mask, state, _ = forward_window(objective, model, batch, state)
        assert mask[:, -chunk_length:].all()
        losses.append(per_step[:, -chunk_length:])
    return torch.cat(losses, dim=1)


@pytest.mark.parametrize(
    "overlap, overlap_grad",
    [(0, False), (4, False), (10, False), (4, True), (10, True)],
    ids=["plain", "burn_in", "burn_in=k1", "k1k2", "k2=2k1"],
)
def test_carried_state_equals_one_full_pass(overlap, overlap_grad):
    torch.manual_seed(0)
    model, data = TinyLSTM(), text_ids(241)
    batcher = StreamBatcher(data, batch_size=3, overlap=overlap, overlap_grad=overlap_grad)
    chunked = _chunked_losses(model, batcher, chunk_length=10, n_chunks=8)
    full = StreamBatcher(data, batch_size=3).next_batch(80)
    full_losses, _, _ = NextStep()(model, full, None)
    torch.testing.assert_close(chunked, full_losses, rtol=1e-5, atol=1e-6)


def _input_grad(overlap: int, overlap_grad: bool):
    """d(loss of the 3rd window)/d(inputs) over the whole stream (targets are constant)."""
    torch.manual_seed(0)
    x = torch.randn(60, 3, requires_grad=True)
    batcher = StreamBatcher(
        x, batch_size=1, targets=torch.zeros(60, 3), overlap=overlap, overlap_grad=overlap_grad
    )
    model, objective, state = ContinuousLSTM(), NextStep(), None
    for _ in range(2):
        _, _, state, _ = forward_window(objective, model, batcher.next_batch(10), state)
    per_step, mask, _, _ = forward_window(objective, model, batcher.next_batch(10), state)
    per_step[mask].sum().backward()
    return x.grad.abs().sum(dim=1)  # [60]


def test_no_gradient_crosses_a_chunk_boundary():
    grad = _input_grad(overlap=0, overlap_grad=False)
    assert grad[:20].eq(0).all()  # chunks 1 and 2
    assert grad[20:30].gt(0).all()  # chunk 3


def test_gradient_flows_through_the_k2_window_only():
    grad = _input_grad(overlap=6, overlap_grad=True)  # k1 = 10, k2 = 16
    assert grad[:14].eq(0).all()
    assert grad[14:30].gt(0).all()


def test_burn_in_contributes_no_gradient():
    grad = _input_grad(overlap=6, overlap_grad=False)
    assert grad[:20].eq(0).all()  # the burn-in steps 14..19 included
    assert grad[20:30].gt(0).all()


def test_burn_in_is_not_scored_and_k2_prefix_is_masked():
    b = StreamBatcher(torch.arange(200), batch_size=2, overlap=5)
    b.next_batch(10)
    window = b.next_batch(10)
    assert window.length == 15 and window.burn_in == 5 and window.carry_at == 10
    k = StreamBatcher(torch.arange(200), batch_size=2, overlap=5, overlap_grad=True)
    k.next_batch(10)
    window = k.next_batch(10)
    assert window.burn_in == 0 and window.mask[:, :5].eq(False).all() and window.mask[:, 5:].all()


class ResetRecorder(nn.Module):
    """Accepts reset=; output = running sum of inputs since the last reset."""

    def forward(self, inputs, state, reset=None):
        self.seen = reset
        total = torch.zeros(inputs.shape[0]) if state is None else state
        outs = []
        for t in range(inputs.shape[1]):
            total = torch.where(reset[:, t], 0.0, total) + inputs[:, t]
            outs.append(total)
        return torch.stack(outs, 1), total


class NoResetSum(nn.Module):
    """Same running sum without a reset keyword: the trainer must emulate it."""

    def forward(self, inputs, state):
        total = torch.zeros(inputs.shape[0]) if state is None else state
        outs = []
        for t in range(inputs.shape[1]):
            total = total + inputs[:, t]
            outs.append(total)
        return torch.stack(outs, 1), total


def test_document_starts_reset_the_state_with_and_without_a_reset_keyword():
    docs = [torch.ones(5), torch.ones(7), torch.ones(6)]  # 4 + 6 + 5 = 15 next-step pairs
    batch = StreamBatcher(docs, batch_size=1).next_batch(15)
    assert batch.reset[0].nonzero().flatten().tolist() == [0, 4, 10]
    expected = [1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5]
    with_kw = ResetRecorder()
    out, _ = forward_model(with_kw, batch.inputs, None, batch)
    assert out[0].tolist() == expected and with_kw.seen is batch.reset
    out, _ = forward_model(NoResetSum(), batch.inputs, None, batch)
    assert out[0].tolist() == expected


def test_padded_batcher_masks_resets_and_covers_every_sequence():
    seqs = [torch.arange(n) for n in (5, 9, 3, 12, 7, 4)]
    b = PaddedBatcher(seqs, batch_size=2, seed=1)
    seen, fresh = [], 0
    while b.epoch == 0:
        batch = b.next_batch(4)
        if b.epoch:
            break
        fresh += batch.fresh
        for row in range(2):
            seen.append(batch.inputs[row][batch.mask[row]].tolist())
        assert batch.fresh == bool(batch.reset[:, 0].all())
    assert fresh == 3  # one fresh start per group of 2
    flat = sorted(x for s in seen for x in s)
    assert flat == sorted(x for s in seqs for x in s[:-1].tolist())


def test_padded_loss_is_normalized_by_the_longest_sequence():
    seqs = [torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1])]
    batch = PaddedBatcher(seqs, batch_size=2, shuffle=False).next_batch(10)
    assert batch.mask.tolist() == [[True, True, True], [True, False, False]]


def test_chunk_schedule_grows_the_chunk_length():
    cfg = TrainConfig(chunk_schedule=((0, 20), (100, 50), (300, 200)))
    assert [cfg.chunk_length_at(s) for s in (0, 99, 100, 299, 5000)] == [20, 20, 50, 50, 200]


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="chunk_length must be >= 1, got 0"):
        TrainConfig(chunk_length=0)
    with pytest.raises(ValueError, match="chunk_length must be an int >= 1, got 0"):
        StreamBatcher(torch.arange(50), batch_size=2).next_batch(0)
    with pytest.raises(ValueError, match=r"chunk_length must be <= the stream length 24"):
        StreamBatcher(torch.arange(50), batch_size=2).next_batch(30)
    with pytest.raises(ValueError, match="burn_in must be <= the shortest chunk length 20"):
        TrainConfig(chunk_schedule=((0, 20), (10, 50)), burn_in=30)
    with pytest.raises(ValueError, match=r"backprop_length must be between chunk_length"):
        TrainConfig(chunk_length=10, backprop_length=25)
    with pytest.raises(ValueError, match="chunk_schedule must be sorted by step and starting"):
        TrainConfig(chunk_schedule=((5, 20),))
    with pytest.raises(ValueError, match="batch_size must be divisible by the number of"):
        StreamBatcher(torch.arange(50), batch_size=3, world_size=2)
