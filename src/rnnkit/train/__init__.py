"""The truncated-BPTT trainer (O1-O5): config, batching, clipping, early stopping, checkpoints.

from rnnkit.train import Trainer, TrainConfig
summary = Trainer(model, TrainConfig(chunk_length=200), train_ids, eval_ids,
                  run_dir="runs/x").fit()
"""

from rnnkit.losses import masked_step_sum, normalized_sequence_loss
from rnnkit.objectives.base import NextStep, Objective, TeacherForcing, forward_model
from rnnkit.state import accepts_reset, detach_state
from rnnkit.train.batching import Batch, BatchSource, PaddedBatcher, StreamBatcher
from rnnkit.train.checkpoint import CheckpointError, load_checkpoint, model_weights, save_checkpoint
from rnnkit.train.clipping import GradClipper
from rnnkit.train.config import TrainConfig
from rnnkit.train.early_stopping import EarlyStopping
from rnnkit.train.schedule import LRSchedule
from rnnkit.train.tbptt import forward_window
from rnnkit.train.trainer import Trainer, build_optimizer

__all__ = [
    "Batch",
    "BatchSource",
    "CheckpointError",
    "EarlyStopping",
    "GradClipper",
    "LRSchedule",
    "NextStep",
    "Objective",
    "PaddedBatcher",
    "StreamBatcher",
    "TeacherForcing",
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
