"""The predictors of lesson 08 with the course's settings, and the frame-conditional model trained or loaded.

* :func:`video_predictors` -- the three ways to predict a clip's future (frame-conditional, replacement,
  reconstruction guidance) as predictors ``predict(past, frames)`` (:mod:`course_lib.diffusion.rollout`);
* :func:`train_or_load_frame_conditional` -- the frame-conditional U-Net
  (:mod:`course_lib.models.frame_conditional`) for a video recipe, trained with
  :class:`~course_lib.diffusion.objectives.FrameConditionalObjective` (a random prefix of each clip
  known, the loss on the rest).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from course_lib._validation import check_float_range, check_positive_int, fail
from course_lib.diffusion.conditioning import check_context_noise
from course_lib.diffusion.objectives import FrameConditionalObjective
from course_lib.diffusion.rollout import Predictor, predictor
from course_lib.models.frame_conditional import FrameConditionalDenoiser, frame_conditional_unet3d

# bump when the meaning of a stored frame-conditional model changes (2: temporal convolutions, a frame
# embedding, half the clips with T/2 known frames)
CHECKPOINT_FORMAT = 2


# --- the predictors of lesson 08 --------------------------------------------------------------------

GUIDANCE_WEIGHT = 2.0  # w of reconstruction guidance for video prediction (lesson 08, bench prediction)
PREDICTOR_SEED = 1  # every batch a predictor completes starts from noise seeded with this
PREDICTOR_NAMES = ("(a) frame-conditional", "(b) replacement", "(c) guidance")


def video_predictors(recipe, unconditional=None, conditional=None, steps: int | None = None,
                     guidance_weight: float = GUIDANCE_WEIGHT, seed: int = PREDICTOR_SEED,
                     context_noise: int = 0, past_guidance: float = 1.0) -> dict[str, Predictor]:
    """The three ways of lesson 08 to predict a clip's future, as predictors ``predict(past, frames)``.

    unconditional: a video denoiser of ``recipe`` (e.g. ``train_or_load(recipe).ema_model``) for
    (b) replacement and (c) reconstruction guidance; conditional: the frame-conditional model
    (``train_or_load_frame_conditional(recipe).ema_model``) for (a). A model left None leaves its
    methods out. All sample with DDIM on ``recipe.schedule`` and ``recipe.objective``, ``steps``
    steps (default ``preset.sample_steps``), each call from noise seeded with ``seed``.
    context_noise: (a) sees the past at this forward-process step (for a model trained with
    conditioning augmentation, :class:`~course_lib.diffusion.objectives.FrameConditionalObjective`).
    past_guidance: (a)'s guidance weight on the past (:func:`~course_lib.diffusion.conditioning.conditioned_on`).
    past: (B, k, C, H, W) on any device -> (B, frames, C, H, W) on the same device.
    """
    steps = recipe.preset.sample_steps if steps is None else check_positive_int("steps", steps)
    check_float_range("guidance_weight", guidance_weight, 0.0, 1e6)
    check_float_range("past_guidance", past_guidance, 0.0, 100.0)
    sampling = dict(schedule=recipe.schedule, seed=seed, steps=steps, objective=recipe.objective)
    methods = {
        PREDICTOR_NAMES[0]: (conditional, dict(method="frame-conditional", context_noise=context_noise,
                                                past_guidance=past_guidance)),
        PREDICTOR_NAMES[1]: (unconditional, dict(method="replacement")),
        PREDICTOR_NAMES[2]: (unconditional, dict(method="guidance", guidance_weight=guidance_weight)),
    }
    return {name: predictor(model, **sampling, **how) for name, (model, how) in methods.items() if model is not None}


# --- train or load ------------------------------------------------------------------------------------

def known_frames(preset) -> int:
    """K = T // 2: the course's prediction task gives the first K frames of a T-frame clip and asks for
    the other T − K (4 from 4 at T = 8); the predictor's training focuses on it too."""
    return preset.video_frames // 2


def predictor_steps(recipe, steps: int | None = None) -> int:
    """How long the frame-conditional U-Net of ``recipe`` trains: ``steps``, or by default the preset's
    ``prediction_train_steps``, longer than the video U-Net's: a rollout compounds the predictor's errors."""
    return recipe.preset.prediction_train_steps if steps is None else check_positive_int("steps", steps)


def frame_conditional_parts(recipe, context_noise: int = 0):
    """The frame-conditional U-Net of a video ``recipe`` as :class:`course_lib.workshop.zoo.Parts`.

    Its initial weights are drawn from ``recipe.seed`` (the global RNG left as it was), so every path
    that builds it starts alike; its loss is :class:`FrameConditionalObjective` with the recipe's
    schedule and objective, focused on :func:`known_frames`, and conditioning augmentation
    ``context_noise``. It trains :func:`predictor_steps` by default. The file key hashes
    CHECKPOINT_FORMAT, the recipe's key, the network's signature and ``context_noise`` (left out when
    0, so older files keep their key).
    """
    from course_lib.workshop.zoo import Parts

    def build_model() -> FrameConditionalDenoiser:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            return frame_conditional_unet3d(recipe.preset, recipe.channels)

    described = {"format": CHECKPOINT_FORMAT}
    if check_context_noise(context_noise, recipe.schedule):
        described["context_noise"] = context_noise
    objective = FrameConditionalObjective(recipe.schedule, recipe.objective, context_noise=context_noise,
                                          focus_known=known_frames(recipe.preset))
    command = "train_or_load_frame_conditional({recipe}, steps={steps}" + (
        f", context_noise={context_noise})" if context_noise else ")")
    return Parts("unet3d-framecond", build_model, objective, steps=predictor_steps(recipe), described=described,
                 command=command)


def checkpoint_path(recipe, steps: int | None = None, folder: str | os.PathLike = "checkpoints",
                    context_noise: int = 0) -> Path:
    """``folder/<task>-unet3d-framecond-<preset>-<key>.pt``: where :func:`train_or_load_frame_conditional`
    keeps the model (see :func:`frame_conditional_parts` for the key)."""
    from course_lib.workshop import zoo

    return zoo.checkpoint_path(recipe, predictor_steps(recipe, steps), folder,
                               frame_conditional_parts(recipe, context_noise))


def train_or_load_frame_conditional(recipe, steps: int | None = None, folder: str | os.PathLike = "checkpoints",
                                    device: torch.device | str | None = None, context_noise: int = 0,
                                    retrain: bool = False, progress: bool | None = None):
    """A Trainer of the frame-conditional U-Net for a video ``recipe`` (its data, schedule, lr, seed).

    :func:`course_lib.workshop.zoo.train_or_load` with :func:`frame_conditional_parts`: loaded from
    :func:`checkpoint_path` if trained there for ``steps`` (default :func:`predictor_steps`), else
    from the course's shipped export of the same network (the ``cpu`` preset's); a file cut short is
    resumed; otherwise trained and saved. context_noise: conditioning augmentation
    (:class:`~course_lib.diffusion.objectives.FrameConditionalObjective`). Sample from
    ``trainer.ema_model`` with :func:`~course_lib.diffusion.rollout.predict_future` (method "frame-conditional").
    """
    from course_lib.workshop import zoo
    from course_lib.workshop.recipes import Recipe, is_video_task

    if not isinstance(recipe, Recipe) or not is_video_task(recipe.task):
        got = getattr(recipe, "task", type(recipe).__name__)
        fail("recipe", "a video Recipe, e.g. get_recipe('video-shapes')", got)
    return zoo.train_or_load(recipe, steps, folder, retrain=retrain, progress=progress, device=device,
                             parts=frame_conditional_parts(recipe, context_noise))
