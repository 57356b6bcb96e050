"""A probabilistic forecast of one series: its sample paths and their summaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Forecast"]


@dataclass
class Forecast:
    """Sample paths of one series and their summaries: ``dates [H]``, ``samples [S, H]``,
    ``mean [H]``, ``quantiles [Q, H]`` at ``levels [Q]`` (e.g. 0.1, 0.5, 0.9)."""

    dates: np.ndarray
    samples: np.ndarray
    mean: np.ndarray
    quantiles: np.ndarray
    levels: tuple[float, ...]

    def quantile(self, q: float) -> np.ndarray:
        """``[H]``: the q-quantile over paths."""
        return np.quantile(self.samples, q, axis=0)

    def interval(self, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """The central interval ``(lower [H], upper [H])`` holding ``coverage`` of the paths."""
        tail = (1 - coverage) / 2
        return self.quantile(tail), self.quantile(1 - tail)
