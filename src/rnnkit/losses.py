"""Normalized, masked sequence losses (O3).

The loss of a batch of sequences is the per-step loss summed over time, divided by the
maximum sequence length, and averaged over the batch. Summing over time (rather than
averaging over valid steps) keeps every step's weight the same whatever the length of its
sequence; dividing by the maximum length keeps the loss on the same scale across datasets
of different lengths, so the same learning rate and clipping threshold carry over.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "normalized_sequence_loss",
    "masked_step_sum",
    "activation_regularization",
    "temporal_activation_regularization",
]


def normalized_sequence_loss(
    per_step: Tensor, mask: Tensor | None = None, max_length: int | Tensor | None = None
) -> Tensor:
    """Sum over time, divide by the maximum sequence length, mean over the batch.

        loss = (1 / B) * sum_b sum_t mask[b, t] * per_step[b, t] / T_max

    Args:
        per_step: [B, T] loss of every step.
        mask: [B, T] bool, True where a step counts; None = every step counts. Masked steps
            contribute nothing, even if their loss is NaN or infinite (padding).
        max_length: T_max. None = the number of time positions where at least one row of
            the batch is valid (the longest sequence in the batch), at least 1.

    Returns:
        A scalar tensor.
    """
    if per_step.dim() != 2:
        raise ValueError(f"per_step must have shape [B, T], got {tuple(per_step.shape)}")
    if mask is None:
        total = per_step.sum(dim=1)
        length = per_step.shape[1] if max_length is None else max_length
    else:
        if mask.shape != per_step.shape:
            raise ValueError(
                f"mask must have the shape of per_step {tuple(per_step.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        # where(), not multiplication: NaN * 0 is NaN, and padded steps may hold garbage.
        total = torch.where(mask, per_step, per_step.new_zeros(())).sum(dim=1)
        length = mask.any(dim=0).sum().clamp(min=1) if max_length is None else max_length
    return (total / length).mean()


def masked_step_sum(per_step: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(sum of the loss over valid steps, number of valid steps), both scalar tensors.

    Their ratio is the loss per step (e.g. nats per character), independent of the
    normalization above; keeping sum and count apart lets them be added over chunks and ranks.
    """
    if mask is None:
        return per_step.sum(), per_step.new_tensor(float(per_step.numel()))
    kept = torch.where(mask, per_step, per_step.new_zeros(()))
    return kept.sum(), mask.sum().to(per_step.dtype)


def _masked_mean_of_squares(d: Tensor, mask: Tensor | None, time_dim: int) -> Tensor:
    """Mean of ``d ** 2`` over every element whose step is valid: [B, T, H] (or [T, B, H]
    with ``time_dim=0``) with mask [B, T] / [T, B]; padded steps count neither above nor
    below the line, even when they hold NaN."""
    if mask is None:
        return d.pow(2).mean()
    if mask.shape != d.shape[:2]:
        raise ValueError(f"mask must have shape {tuple(d.shape[:2])} (the activations' first "
                         f"two dims, time on dim {time_dim}), got {tuple(mask.shape)}")
    sq = torch.where(mask.unsqueeze(-1), d.pow(2), d.new_zeros(()))
    count = mask.sum() * d[0, 0].numel()
    return sq.sum() / count.clamp(min=1)


def activation_regularization(h: Tensor, alpha: float, mask: Tensor | None = None,
                              time_dim: int = 1) -> Tensor:
    """AR (Merity et al. 2018, sec. 4.6): ``alpha * mean(h ** 2)``.

    As awd-lstm-lm computes it: ``alpha * h.pow(2).mean()`` over every batch row, step and
    unit of the *last layer's outputs after output dropout* (its ``dropped_rnn_hs[-1]``).

    Args:
        h: [B, T, H] (``time_dim=1``) or [T, B, H] (``time_dim=0``).
        alpha: the weight (awd-lstm-lm's default 2).
        mask: bool [B, T] / [T, B], True on real steps: the mean is over those only.
    Returns:
        A scalar tensor.
    """
    return alpha * _masked_mean_of_squares(h, mask, time_dim)


def temporal_activation_regularization(h: Tensor, beta: float, mask: Tensor | None = None,
                                       time_dim: int = 1) -> Tensor:
    """TAR (Merity et al. 2018, sec. 4.6): ``beta * mean((h_t - h_{t-1}) ** 2)``.

    As awd-lstm-lm computes it: ``beta * (h[1:] - h[:-1]).pow(2).mean()`` over the
    differences of consecutive steps of the *last layer's outputs before output dropout*
    (its ``rnn_hs[-1]``). With ``mask``, a difference counts when both of its steps are
    valid. Shapes as :func:`activation_regularization`; a scalar tensor (0 when T = 1).
    """
    if h.shape[time_dim] < 2:
        return h.new_zeros(())
    if time_dim == 0:
        diff = h[1:] - h[:-1]
        pairs = None if mask is None else mask[1:] & mask[:-1]
    else:
        diff = h[:, 1:] - h[:, :-1]
        pairs = None if mask is None else mask[:, 1:] & mask[:, :-1]
    return beta * _masked_mean_of_squares(diff, pairs, time_dim)
