"""Sampling with known parts: the engine behind predicting, inpainting and repairing frames (seed §6).

All methods use an *unconditional* denoiser ``model_fn(x_t, t)`` and a ``mask`` (1 = known,
0 = to generate) over ``known`` (the ground truth where the mask is 1):

* ``"replacement"`` -- after every step overwrite the known part with the ground truth noised to
  the same level (Song et al. 2021b, "replacement method"). Cheap, but the model never *sees* that the
  generated part must agree with the known part beyond what leaks through x_t, so it drifts.
* ``"guidance"`` -- reconstruction guidance (Ho et al. 2022a, "Video Diffusion Models", Eq. 7):
  x̃0 = x̂0 − (w·√ᾱ_t / 2)·∇_{x_t} ‖mask·(known − x̂0(x_t))‖², then the replacement step. The gradient
  carries the constraint into the unknown part.

``resample > 1`` adds RePaint's resampling (Lugmayr et al. 2022, Algorithm 1): after each step
t → t_next, jump back up to level t by the forward process and redo the step, ``resample`` rounds
in all, letting known and generated parts harmonise. The last step (to clean data) is taken once:
it is deterministic, so a second round would only repeat it.
Videos are (B, T, C, H, W); the functions work for any shape where ``mask`` broadcasts.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from course_lib._validation import (check_choice, check_finite, check_float_range, check_int_range, check_positive_int,
                                    check_rank, check_values_in, fail)
from course_lib.diffusion.forward import q_sample, randn_like, to_x0_eps
from course_lib.diffusion.guidance import guide
from course_lib.diffusion.samplers import ModelFn, SamplerStep, ddim_step, ddim_timesteps
from course_lib.diffusion.schedules import NoiseSchedule

METHODS = ("replacement", "guidance")


def _check_mask(mask: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        fail("mask", "a tensor broadcastable to known", type(mask).__name__)
    try:
        full = torch.broadcast_to(mask, known.shape)
    except RuntimeError:
        fail("mask", f"a shape broadcastable to known {tuple(known.shape)}", f"shape {tuple(mask.shape)}")
    return full.to(known.dtype)


def _guided_x0(model_fn, x, t, known, mask, schedule, objective, weight, clip_x0):
    """Reconstruction guidance (Ho et al. 2022a, Eq. 7): x̃0 = x̂0 − (w √ᾱ_t / 2) ∇_{x_t}‖m(known − x̂0)‖²."""
    tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        x0, _ = to_x0_eps(model_fn(x_in, tt).float(), x_in, tt, schedule, objective)
        error = ((known - x0) * mask).pow(2).sum()
        (grad,) = torch.autograd.grad(error, x_in)
    x0 = x0.detach() - weight * schedule.sqrt_alpha_bars[t].item() / 2 * grad
    return x0.clamp(-1, 1) if clip_x0 else x0


def conditional_steps(
    model_fn: ModelFn,
    known: torch.Tensor,
    mask: torch.Tensor,
    schedule: NoiseSchedule,
    method: str = "replacement",
    steps: int = 50,
    eta: float = 1.0,
    guidance_weight: float = 1.0,
    resample: int = 1,
    objective: str = "eps",
    generator: torch.Generator | None = None,
    clip_x0: bool = True,
) -> Iterator[SamplerStep]:
    """DDIM-based sampling of the unknown part given ``known`` where ``mask`` is 1; yields each step.

    known: (B, ...) ground truth (any finite values where mask = 0); mask: in [0, 1], broadcastable to known.
    ``eta = 1`` (default) is ancestral-like sampling, which the replacement method needs to mix.
    """
    check_finite("known", known)  # NaN even where mask = 0 would spread: 0 · NaN = NaN
    check_values_in("mask", mask, 0.0, 1.0)
    check_choice("method", method, METHODS)
    check_positive_int("resample", resample)
    check_float_range("guidance_weight", guidance_weight, 0.0, 1e6)
    mask = _check_mask(mask, known)
    x = randn_like(known, generator)
    timesteps = ddim_timesteps(schedule.num_steps, steps, "trailing")
    alpha_bars = schedule.alpha_bars.to(torch.float64)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        rounds = resample if t_next >= 0 else 1  # the last step lands on clean data: nothing to redo
        for u in range(rounds):
            x0 = None
            if method == "guidance":
                x0 = _guided_x0(model_fn, x, t, known, mask, schedule, objective, guidance_weight, clip_x0)
            with torch.no_grad():
                step = ddim_step(model_fn, x, t, t_next, schedule, eta, objective, generator, clip_x0, x0=x0)
                known_now = known if t_next < 0 else q_sample(known, t_next, schedule, generator=generator)
                x_next = mask * known_now + (1 - mask) * step.x
                if u + 1 < rounds:  # RePaint: diffuse back from t_next to t and redo
                    ratio = alpha_bars[t] / alpha_bars[t_next]
                    x = ratio.sqrt().float() * x_next + (1 - ratio).sqrt().float() * randn_like(x_next, generator)
                else:
                    x = x_next
        yield SamplerStep(t, x, step.x0_pred)


def conditional_sample(model_fn: ModelFn, known: torch.Tensor, mask: torch.Tensor, schedule: NoiseSchedule, **kwargs) -> torch.Tensor:
    """Run :func:`conditional_steps` to the end and return the completed sample."""
    step = None
    for step in conditional_steps(model_fn, known, mask, schedule, **kwargs):
        pass
    return step.x


def frame_mask(video: torch.Tensor, known_frames) -> torch.Tensor:
    """A (B, T, 1, 1, 1) mask that is 1 on the known frames of a (B, T, C, H, W) video.

    known_frames: an int k (the first k frames are known), a list of frame indices, or a (B, T)
    bool tensor (per clip).
    """
    check_rank("video", video, 5, "(B, T, C, H, W)")
    b, frames = video.shape[:2]
    mask = torch.zeros(b, frames, 1, 1, 1, device=video.device)
    if isinstance(known_frames, int) and not isinstance(known_frames, bool):
        check_int_range("known_frames", known_frames, 1, frames - 1)
        mask[:, :known_frames] = 1
    elif isinstance(known_frames, torch.Tensor) and known_frames.dtype == torch.bool:
        if tuple(known_frames.shape) != (b, frames):
            fail("known_frames", f"a bool tensor of shape ({b}, {frames})", f"shape {tuple(known_frames.shape)}")
        mask[known_frames] = 1
    else:
        indices = list(known_frames)
        for i in indices:
            check_int_range("known_frames", i, 0, frames - 1)
        if len(set(indices)) >= frames:
            fail("known_frames", f"fewer known frames than the clip has ({frames})", indices)
        mask[:, indices] = 1
    return mask


def check_context_noise(context_noise: int, schedule: NoiseSchedule) -> int:
    """``context_noise``: a forward-process step s in [0, T − 1] (0: the past enters clean)."""
    if isinstance(context_noise, bool) or not isinstance(context_noise, int) \
            or not 0 <= context_noise < schedule.num_steps:
        fail("context_noise", f"a step in [0, {schedule.num_steps - 1}] (0: no conditioning augmentation)",
             context_noise)
    return context_noise


def conditioned_on(model: nn.Module, known: torch.Tensor, mask: torch.Tensor, past_guidance: float = 1.0) -> ModelFn:
    """``model_fn(x_t, t)`` for the samplers: a frame-conditional ``model(x_t, t, known, mask)`` with its condition fixed.

    past_guidance w: classifier-free guidance on the past (:func:`~course_lib.diffusion.guidance.guide`):
    out = out_∅ + w·(out_c − out_∅), out_∅ the same network told that no frame is known (it trained
    with k = 0 too). w = 1 is the plain conditional model, one network call; w > 1 follows the past
    more strongly, at two calls per step.
    """
    check_float_range("past_guidance", past_guidance, 0.0, 100.0)
    nothing_known = torch.zeros_like(mask)

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        conditional = model(x_t, t, known, mask)
        if past_guidance == 1.0:
            return conditional
        return guide(conditional, model(x_t, t, known, nothing_known), past_guidance)

    return model_fn
