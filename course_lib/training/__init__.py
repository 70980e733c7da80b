"""Training: one loop for every model of the course (``Trainer``), its checkpoints and EMA.

    trainer = Trainer(model, DiffusionObjective(schedule, "eps"), random_rows(data, 256), TrainConfig(steps=2000))
    trainer.fit()                      # continues from trainer.step
    sample_from = trainer.ema_model    # the averaged weights sample best
"""
from course_lib.training.checkpoint import load_weights, model_signature, read_checkpoint
from course_lib.training.ema import ema_decay_at, update_ema
from course_lib.diffusion.objectives import DiffusionObjective, objective_weight
from course_lib.training.trainer import TrainConfig, Trainer, random_rows

__all__ = [
    "DiffusionObjective",
    "TrainConfig",
    "Trainer",
    "ema_decay_at",
    "load_weights",
    "objective_weight",
    "model_signature",
    "random_rows",
    "read_checkpoint",
    "update_ema",
]
