"""The truncated-BPTT trainer (O1-O5): config, batching, clipping, early stopping, checkpoints.

from rnnkit.train import Trainer, TrainConfig
summary = Trainer(model, TrainConfig(chunk_length=200), train_ids, eval_ids,
                  run_dir="runs/x").fit()
"""

from ..losses import masked_step_sum, normalized_sequence_loss
from ..state import detach_state
from .batching import Batch, BatchSource, PaddedBatcher, StreamBatcher
from .checkpoint import CheckpointError, load_checkpoint, model_weights, save_checkpoint
from .clipping import GradClipper
from .config import TrainConfig
from .early_stopping import EarlyStopping
from .objectives import NextStep, Objective, accepts_reset, forward_model
from .tbptt import forward_window
from .trainer import Trainer, build_optimizer

__all__ = [
    "Batch",
    "BatchSource",
    "CheckpointError",
    "EarlyStopping",
    "GradClipper",
    "NextStep",
    "Objective",
    "PaddedBatcher",
    "StreamBatcher",
    "TrainConfig",
    "Trainer",
    "accepts_reset",
    "build_optimizer",
    "detach_state",
    "forward_model",
    "forward_window",
    "load_checkpoint",
    "masked_step_sum",
    "model_weights",
    "normalized_sequence_loss",
    "save_checkpoint",
]
