"""Probabilistic next-step heads: hidden state -> distribution over the next value.

A head maps RNN outputs ``h [..., H]`` to distribution parameters ``params`` (one plain
tensor, so generic code can detach, slice and concatenate it) and knows how to score,
summarize and sample that distribution. Every method works on any leading shape
(``[B, T]`` for a sequence, ``[B]`` for one step).

- ``loss(params, targets) -> [...]``: negative log-likelihood in nats per step.
- ``mean(params)``: the expectation (probabilities for a categorical, the mean for a Gaussian).
- ``sample(params, generator=None, temperature=1.0)``: a draw (indices / values).
- ``feedback(params, mode=...)``: what a rollout feeds back as the next input; the
  differentiable modes keep the graph so a multi-step loss can train through it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.regularizers import check_rate, dropout_mask

LOG_2PI = math.log(2.0 * math.pi)


def _not_finite() -> ValueError:
    return ValueError("CategoricalHead.sample: the logits are not finite (a model whose "
                      "training diverged?)")


def _check_temperature(owner: str, temperature: float) -> None:
    if temperature < 0:
        raise ValueError(f"{owner}: temperature must be >= 0, got {temperature}")


class CategoricalHead(nn.Module):
    """Logits over ``num_classes`` tokens: ``logits = W h + b``; p(y) = softmax(logits)_y.

    Shapes: ``h [..., H] -> logits [..., C]``; targets ``[...]`` int64 class indices.

    Feedback modes (what a rollout feeds back as the next input):
      - ``"sample"``: a sampled index ``[...]`` (int64, no gradient; Bengio et al. 2015).
      - ``"argmax"``: the most likely index ``[...]``.
      - ``"expected"``: the probabilities ``[..., C]``; fed to an embedding they give the
        expected embedding ``p @ E`` (differentiable).
      - ``"gumbel"``: Gumbel-softmax weights ``softmax((logits + g) / tau)``, g ~ Gumbel(0, 1)
        (Jang et al. 2017; differentiable).
      - ``"gumbel_hard"``: the one-hot of the Gumbel sample with the straight-through gradient.

    Example::

        head = CategoricalHead(128, 65)
        logits = head(h)                      # [B, T, 65]
        nll = head.loss(logits, targets)      # [B, T] nats
    """

    default_feedback = "sample"
    feedback_modes = ("sample", "argmax", "expected", "gumbel", "gumbel_hard")

    def __init__(self, hidden_size: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"CategoricalHead: num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.dropout = check_rate("dropout", dropout)  # on the head's input, in training
        self.proj = nn.Linear(hidden_size, num_classes)

    def forward(self, h: Tensor) -> Tensor:
        # rnnkit's mask (rand >= p) instead of nn.Dropout's bernoulli_: the same distribution,
        # faster on CPU (forward+backward at [32, 64, 384]: 6.7 ms instead of 8.5).
        mask = dropout_mask(h.shape, self.dropout, self.training, h)
        return self.proj(h if mask is None else h * mask)

    def loss(self, params: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy ``-log softmax(logits)_y`` per position: ``[..., C], [...] -> [...]``."""
        flat = F.cross_entropy(params.reshape(-1, self.num_classes), targets.reshape(-1).long(),
                               reduction="none")
        return flat.view(targets.shape)

    def mean(self, params: Tensor) -> Tensor:
        """The expectation of the one-hot: probabilities ``[..., C]``."""
        return params.softmax(-1)

    def mode(self, params: Tensor) -> Tensor:
        """The most likely class ``[...]``."""
        return params.argmax(-1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        """Class indices ``[...]`` drawn from ``softmax(logits / temperature)``; 0 = argmax."""
        _check_temperature("CategoricalHead.sample", temperature)
        if temperature == 0:
            return params.argmax(-1)
        # in float64, where a temperature such as 1e-45 is not a denormal that a GPU flushes to
        # zero (0 / 0 for the most likely class)
        logits = params.detach().double()
        if temperature != 1:  # (softmax shifts by the max itself)
            # shift by the max first: a tiny temperature then sends the rest to -inf, not
            # inf - inf
            logits = (logits - logits.amax(-1, keepdim=True)) / temperature
        probs = logits.softmax(-1).reshape(-1, self.num_classes)
        # On CPU, multinomial refuses inf and NaN itself, so the check costs nothing per draw
        # (streaming generation draws one character at a time).
        if probs.device.type != "cpu" and not bool(torch.isfinite(probs).all()):
            raise _not_finite()
        try:
            draw = torch.multinomial(probs, 1, generator=generator)
        except RuntimeError:
            if bool(torch.isfinite(probs).all()):
                raise
            raise _not_finite() from None
        return draw.view(params.shape[:-1])

    def feedback(self, params: Tensor, mode: str | None = None,
                 generator: torch.Generator | None = None, temperature: float = 1.0,
                 tau: float = 1.0) -> Tensor:
        """The next rollout input: indices ``[...]`` or weights ``[..., C]`` (see class doc)."""
        mode = mode or self.default_feedback
        if mode == "sample":
            return self.sample(params, generator, temperature)
        if mode == "argmax":
            return params.argmax(-1)
        if mode == "expected":
            return (params / max(temperature, 1e-8)).softmax(-1)
        if mode in ("gumbel", "gumbel_hard"):
            if tau <= 0:
                raise ValueError(f"CategoricalHead.feedback: tau must be > 0, got {tau}")
            u = torch.rand(params.shape, generator=generator, device=params.device,
                           dtype=params.dtype)
            gumbel = -torch.log((-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10))
            soft = ((params + gumbel) / tau).softmax(-1)
            if mode == "gumbel":
                return soft
            hard = F.one_hot(soft.argmax(-1), self.num_classes).to(soft.dtype)
            return hard + soft - soft.detach()
        raise ValueError(
            f"CategoricalHead.feedback: unknown mode {mode!r}; use one of {self.feedback_modes}"
        )


class GaussianHead(nn.Module):
    """A diagonal Gaussian over ``num_features`` values, or plain squared error.

    ``params = [mu, log_var]`` concatenated on the last axis (``[..., 2F]``); with ``mse=True``
    just ``mu`` (``[..., F]``). The log-variance is clamped to ``[min_log_var, max_log_var]``
    so a collapsing variance cannot blow the loss up.

    Loss per step (nats, summed over features):
        NLL = 0.5 * sum_f [ log(2 pi) + log_var_f + (y_f - mu_f)^2 / exp(log_var_f) ]
    With ``mse=True``: ``sum_f (y_f - mu_f)^2`` (the unit-variance NLL without its constant
    and factor 1/2).

    Feedback modes: ``"mean"`` (``mu``; differentiable) or ``"sample"`` (the reparameterized
    sample ``mu + temperature * sigma * eps``, eps ~ N(0, I); differentiable in mu and sigma).
    With ``mse=True`` there is no variance, so ``"sample"`` returns the mean.
    """

    default_feedback = "mean"
    feedback_modes = ("mean", "sample")

    def __init__(self, hidden_size: int, num_features: int, mse: bool = False,
                 min_log_var: float = -10.0, max_log_var: float = 10.0) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"GaussianHead: num_features must be >= 1, got {num_features}")
        if not min_log_var < max_log_var:
            raise ValueError(
                f"GaussianHead: min_log_var ({min_log_var}) must be < max_log_var ({max_log_var})"
            )
        self.num_features = num_features
        self.mse = mse
        self.min_log_var, self.max_log_var = min_log_var, max_log_var
        self.proj = nn.Linear(hidden_size, num_features if mse else 2 * num_features)

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(h)

    def split(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        """``params [..., 2F] -> (mu [..., F], log_var [..., F])``; log_var is None for MSE."""
        if self.mse:
            return params, None
        mu, log_var = params.chunk(2, dim=-1)
        return mu, log_var.clamp(self.min_log_var, self.max_log_var)

    def loss(self, params: Tensor, targets: Tensor) -> Tensor:
        """Per-step NLL ``[...]`` of targets ``[..., F]`` (see class doc)."""
        mu, log_var = self.split(params)
        sq = (targets - mu).pow(2)
        if log_var is None:
            return sq.sum(-1)
        return 0.5 * (LOG_2PI + log_var + sq * torch.exp(-log_var)).sum(-1)

    def mean(self, params: Tensor) -> Tensor:
        return self.split(params)[0]

    def sample(self, params: Tensor, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        """``mu + temperature * sigma * eps`` (reparameterized); the mean for MSE or temp 0."""
        _check_temperature("GaussianHead.sample", temperature)
        mu, log_var = self.split(params)
        if log_var is None or temperature == 0:
            return mu
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + temperature * torch.exp(0.5 * log_var) * eps

    def feedback(self, params: Tensor, mode: str | None = None,
                 generator: torch.Generator | None = None, temperature: float = 1.0,
                 tau: float = 1.0) -> Tensor:
        """The next input of a rollout ``[..., F]``: the mean or a reparameterized sample."""
        del tau  # only meaningful for categorical feedback
        mode = mode or self.default_feedback
        if mode == "mean":
            return self.mean(params)
        if mode == "sample":
            return self.sample(params, generator, temperature)
        raise ValueError(
            f"GaussianHead.feedback: unknown mode {mode!r}; use one of {self.feedback_modes}"
        )
