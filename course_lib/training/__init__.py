"""Training: one loop for every model of the course (``Trainer``), its checkpoints and EMA.

    trainer = Trainer(model, loss_fn, random_rows(data, 256), TrainConfig(steps=2000))
    trainer.fit()                      # continues from trainer.step; loss_fn e.g. a DiffusionObjective
    sample_from = trainer.ema_model    # the averaged weights sample best

trainer (TrainConfig, Trainer, random_rows: the loop on one screen) · ema · checkpoint (atomic files,
exact resume) · parallel (micro-batches, shards, workers) · distributed (torchrun, DDP) · memory and
speed (what a step costs).
"""
from course_lib.training.checkpoint import load_weights, model_signature, read_checkpoint
from course_lib.training.ema import ema_decay_at, update_ema
from course_lib.training.trainer import TrainConfig, Trainer, random_rows

__all__ = [
    "TrainConfig",
    "Trainer",
    "ema_decay_at",
    "load_weights",
    "model_signature",
    "random_rows",
    "read_checkpoint",
    "update_ema",
]
