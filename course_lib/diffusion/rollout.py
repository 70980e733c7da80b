"""Predicting the future of a clip and rolling out videos longer than training (seed §1.2, §6, §8.1).

A *predictor* is a function ``predict(past (B, k, C, H, W), frames) -> (B, frames, C, H, W)`` that
keeps the k given frames and fills in the rest. :func:`predict_future` is the one way to predict
with a denoiser, by any of the three methods of lesson 08:

* ``"replacement"`` and ``"guidance"``: an unconditional ``model_fn(x_t, t)`` steered while sampling
  (:mod:`course_lib.diffusion.conditioning`);
* ``"frame-conditional"``: a network that takes the known frames as input,
  ``model(x_t, t, known, mask)`` (:mod:`course_lib.models.frame_conditional`).

:func:`predictor` fixes a model and its settings into a predictor, and
:func:`autoregressive_rollout` chains any predictor into a video of any length.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_lib._validation import check_choice, check_int_range, check_positive_int, check_rank, fail
from course_lib.diffusion.conditioning import (
    METHODS as STEERING_METHODS, check_context_noise, conditional_sample, conditioned_on, frame_mask,
)
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.schedules import NoiseSchedule

Predictor = Callable[[torch.Tensor, int], torch.Tensor]
METHODS = (*STEERING_METHODS, "frame-conditional")


def _check_past(past: torch.Tensor, frames: int) -> int:
    check_rank("past", past, 5, "(B, k, C, H, W)")
    k, frames = past.shape[1], check_positive_int("frames", frames)
    if not 1 <= k < frames:
        fail("past", f"between 1 and frames - 1 = {frames - 1} known frames", f"{k} frames")
    return k


def predict_future(model, past: torch.Tensor, frames: int, schedule: NoiseSchedule, method: str = "replacement",
                   context_noise: int = 0, past_guidance: float = 1.0, **sampling) -> torch.Tensor:
    """Complete clips of ``frames`` frames whose first k = ``past.shape[1]`` frames are given.

    past: (B, k, C, H, W), 1 ≤ k < frames -> (B, frames, C, H, W), the past kept exactly.
    model: ``model_fn(x_t, t)`` for "replacement" / "guidance"; ``model(x_t, t, known, mask)`` for
    "frame-conditional", which also takes
    context_noise: the network sees the past put through the forward process to this step (0: as it
    is), for a model trained with conditioning augmentation; and
    past_guidance: guidance weight w on the past (:func:`~course_lib.diffusion.conditioning.conditioned_on`; 1: none).
    sampling: :func:`~course_lib.diffusion.conditioning.conditional_sample`'s settings (steps, eta,
    generator, objective; guidance_weight for "guidance").
    """
    check_choice("method", method, METHODS)
    k = _check_past(past, frames)
    if method != "frame-conditional":
        if context_noise or past_guidance != 1.0:
            fail("method", "'frame-conditional' for context_noise or past_guidance", method)
        known = torch.cat([past, past.new_zeros(past.shape[0], frames - k, *past.shape[2:])], dim=1)
        return conditional_sample(model, known, frame_mask(known, k), schedule, method=method, **sampling)
    return _predict_frame_conditional(model, past, frames, schedule, context_noise, past_guidance, **sampling)


@torch.no_grad()
def _predict_frame_conditional(model: nn.Module, past, frames, schedule, context_noise, past_guidance, **sampling):
    k = past.shape[1]
    seen = q_sample(past, check_context_noise(context_noise, schedule), schedule,
                    generator=sampling.get("generator")) if context_noise else past
    known = torch.cat([seen, past.new_zeros(past.shape[0], frames - k, *past.shape[2:])], dim=1)
    mask = frame_mask(known, k)
    was_training = model.training
    model.eval()
    try:
        clip = conditional_sample(conditioned_on(model, known, mask, past_guidance), known, mask, schedule,
                                  method="replacement", **sampling)
    finally:
        model.train(was_training)
    return torch.cat([past, clip[:, k:]], dim=1)


def predictor(model, schedule: NoiseSchedule, method: str = "replacement", seed: int | None = None,
              **settings) -> Predictor:
    """``predict(past, frames)`` by :func:`predict_future` with ``model`` and ``settings`` fixed.

    seed: every call starts from noise of a generator seeded with it (the same past gives the same
    future); None: the global RNG. The past may live on any device; the model's device is used
    and the result comes back to the past's.
    """
    check_choice("method", method, METHODS)
    device = next(model.parameters()).device if isinstance(model, nn.Module) else None

    def predict(past: torch.Tensor, frames: int) -> torch.Tensor:
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        clip = predict_future(model, past.to(device or past.device), frames, schedule, method=method,
                              generator=generator, **settings)
        return clip.to(past.device)

    return predict


def autoregressive_rollout(predict: Predictor, first: torch.Tensor, total_frames: int, keep: int,
                           frames: int | None = None, commit: int | None = None) -> torch.Tensor:
    """A long video from a short-clip predictor: keep the last ``keep`` frames, predict the next chunk, repeat.

    first: (B, k0, C, H, W) the start; frames: the predictor's clip length F (default ``first.shape[1]``).
    Each chunk adds F − keep new frames (the first one F − k0 if ``first`` is shorter than ``keep``),
    or only the first ``commit`` of them: the end of a generated clip is its least reliable part, so a
    rollout may throw it away and predict again from there, at (F − keep) / commit times the cost.
    -> (B, total_frames, C, H, W), ``first`` kept exactly.
    """
    check_rank("first", first, 5, "(B, F, C, H, W)")
    frames = first.shape[1] if frames is None else check_positive_int("frames", frames)
    check_int_range("keep", keep, 1, frames - 1)
    if first.shape[1] > frames:
        fail("first", f"at most frames = {frames} frames", f"{first.shape[1]} frames")
    check_int_range("total_frames", total_frames, first.shape[1], 10_000)
    commit = frames - keep if commit is None else check_int_range("commit", commit, 1, frames - keep)
    video = first
    while video.shape[1] < total_frames:
        context = video[:, -keep:]  # (B, min(keep, length so far), C, H, W)
        chunk = predict(context, frames)  # (B, frames, C, H, W), starting with the context
        new = chunk[:, context.shape[1]:]
        video = torch.cat([video, new[:, :commit] if context.shape[1] == keep else new], dim=1)
    return video[:, :total_frames]
