"""Per-feature standardization fitted on the training split only, saved with the model."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class FeatureNormalizer(nn.Module):
    """``z = (x - mean) / std`` per feature; ``inverse(z) = z * std + mean``.

    ``mean`` and ``std`` (``[F]``) are buffers, so they live in the ``state_dict`` and every
    checkpoint. Call :meth:`fit` with the *training split only*: statistics taken from
    held-out data would leak it into the model. Before ``fit`` the map is the identity.

    Example::

        norm = FeatureNormalizer(3)
        norm.fit(train_values)          # [N, 3] array or tensor
        z = norm(x)                     # [..., 3]
    """

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"FeatureNormalizer: num_features must be >= 1, got {num_features}")
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, train: Tensor | np.ndarray) -> FeatureNormalizer:
        """Set mean/std from ``train [..., F]`` (the training split only); returns self."""
        x = torch.as_tensor(np.asarray(train) if not torch.is_tensor(train) else train)
        x = x.to(torch.float64).reshape(-1, x.shape[-1])
        if x.shape[-1] != self.num_features:
            raise ValueError(
                f"FeatureNormalizer.fit: expected {self.num_features} features, "
                f"got data of shape {tuple(x.shape)}"
            )
        if x.shape[0] < 2:
            raise ValueError(f"FeatureNormalizer.fit: need >= 2 rows, got {x.shape[0]}")
        self.mean.copy_(x.mean(0))
        # A constant feature would divide by ~0; its std is taken as 1 instead.
        std = x.std(0)
        self.std.copy_(torch.where(std > self.eps, std, torch.ones_like(std)))
        self.fitted.fill_(True)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def inverse(self, z: Tensor) -> Tensor:
        return z * self.std + self.mean

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, fitted={bool(self.fitted)}"
