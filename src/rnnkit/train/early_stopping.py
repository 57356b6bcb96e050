"""Early stopping (O5): patience on the evaluation loss and a training-loss plateau."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Decides, at each evaluation, whether the model improved and whether to stop.

    Args:
        patience: stop after this many evaluations without a new best evaluation loss
            (None = never stop on it). Without evaluation data the training loss stands in.
        plateau_patience: stop after this many evaluations in which the mean training loss
            since the previous evaluation did not improve on its best (None = off).
        min_delta: an improvement must lower the loss by more than this.

    `update` returns (improved, stop_reason); `improved` means "save the best checkpoint".
    """

    def __init__(
        self, patience: int | None = 5, plateau_patience: int | None = None, min_delta: float = 0.0
    ) -> None:
        for name, value in (("patience", patience), ("plateau_patience", plateau_patience)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience, self.plateau_patience, self.min_delta = patience, plateau_patience, min_delta
        self.best = math.inf  # best evaluation loss (or training loss without evaluation data)
        self.best_step: int | None = None
        self.best_train = math.inf
        self.bad_evals = 0  # evaluations since `best` improved
        self.flat_evals = 0  # evaluations since `best_train` improved

    def update(
        self, step: int, eval_loss: float | None, train_loss: float
    ) -> tuple[bool, str | None]:
        """Record one evaluation. eval_loss None = no evaluation data."""
        watched = train_loss if eval_loss is None else eval_loss
        improved = watched < self.best - self.min_delta
        if improved:
            self.best, self.best_step, self.bad_evals = watched, step, 0
        else:
            self.bad_evals += 1
        if train_loss < self.best_train - self.min_delta:
            self.best_train, self.flat_evals = train_loss, 0
        else:
            self.flat_evals += 1
        what = "training" if eval_loss is None else "evaluation"
        if self.patience is not None and self.bad_evals >= self.patience:
            return improved, (
                f"early stop: the {what} loss has not improved on {self.best:.4f} (step "
                f"{self.best_step}) for {self.bad_evals} evaluations (patience {self.patience})"
            )
        if self.plateau_patience is not None and self.flat_evals >= self.plateau_patience:
            return improved, (
                f"early stop: the training loss has plateaued at {self.best_train:.4f} for "
                f"{self.flat_evals} evaluations (plateau_patience {self.plateau_patience})"
            )
        return improved, None

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("best", "best_step", "best_train", "bad_evals", "flat_evals"):
            setattr(self, key, state[key])
