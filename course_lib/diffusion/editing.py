"""Editing a given clip (seed §6): SDEdit re-noising, inpainting a region, repairing damaged frames."""
from __future__ import annotations

import torch

from course_lib._validation import check_finite, check_float_range, check_int_range, check_rank, check_values_in, fail
from course_lib.diffusion.conditioning import conditional_sample, frame_mask
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.samplers import ModelFn, ddim_sample
from course_lib.diffusion.schedules import NoiseSchedule


def sdedit_start(strength: float, num_steps: int) -> int:
    """The code timestep SDEdit starts from: strength 0 -> no change, 1 -> pure noise (t = T−1)."""
    check_float_range("strength", strength, 0.0, 1.0)
    return round(strength * (num_steps - 1))


def sdedit(model_fn: ModelFn, x: torch.Tensor, strength: float, schedule: NoiseSchedule, steps: int = 50,
           generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
    """SDEdit (Meng et al. 2022): noise ``x`` to t = strength·(T−1) with q(x_t | x), then denoise back.

    Low strength keeps the layout and fixes details; high strength keeps little but the colours.
    x: (B, ...) in [-1, 1] -> (B, ...). Strength 0 returns ``x`` unchanged. ``steps`` in [1, T] is the
    number of DDIM steps a full edit (strength 1) would take; a weaker edit takes proportionally fewer.
    """
    check_finite("x", x)
    check_int_range("steps", steps, 1, schedule.num_steps)
    t_start = sdedit_start(strength, schedule.num_steps)
    if strength == 0:
        return x.clone()
    x_t = q_sample(x, t_start, schedule, generator=generator)
    n = max(1, round(steps * (t_start + 1) / schedule.num_steps))
    return ddim_sample(model_fn, x.shape, schedule, steps=n, x_start=x_t, t_start=t_start, generator=generator, **kwargs)


def inpaint(model_fn: ModelFn, video: torch.Tensor, region: torch.Tensor, schedule: NoiseSchedule,
            resample: int = 3, **kwargs) -> torch.Tensor:
    """Regenerate ``region`` (1 = to regenerate) of every frame, RePaint-style (resampling).

    video: (B, T, C, H, W); region: broadcastable to video, e.g. (1, 1, 1, H, W) for one area in all frames.
    """
    check_rank("video", video, 5, "(B, T, C, H, W)")
    check_finite("video", video)
    check_values_in("region", region, 0.0, 1.0)
    try:
        keep = 1 - torch.broadcast_to(region.to(video.dtype), video.shape)
    except RuntimeError:
        raise ValueError(f"region: expected a shape broadcastable to video {tuple(video.shape)}, got shape {tuple(region.shape)}")
    return conditional_sample(model_fn, video, keep, schedule, resample=resample, **kwargs)


def repair_frames(model_fn: ModelFn, video: torch.Tensor, damaged, schedule: NoiseSchedule, **kwargs) -> torch.Tensor:
    """Fill in dropped or corrupted frames from the intact ones.

    damaged: list of frame indices, or a (B, T) bool tensor, True where a frame is damaged. Every
    clip needs at least one intact frame: with none there is nothing to repair from.
    """
    check_rank("video", video, 5, "(B, T, C, H, W)")
    check_finite("video", video)
    b, frames = video.shape[:2]
    if isinstance(damaged, torch.Tensor):
        if damaged.dtype != torch.bool or tuple(damaged.shape) != (b, frames):
            fail("damaged", f"a list of frame indices or a bool tensor of shape ({b}, {frames})",
                 f"{damaged.dtype} tensor of shape {tuple(damaged.shape)}")
        intact = ~damaged
    else:
        if isinstance(damaged, (int, str)) or not hasattr(damaged, "__iter__"):
            fail("damaged", f"a list of frame indices in [0, {frames - 1}] (e.g. [{frames // 2}])", damaged)
        damaged = list(damaged)
        intact = torch.ones(b, frames, dtype=torch.bool)
        for i in damaged:
            if not (isinstance(i, int) and 0 <= i < frames):
                raise ValueError(f"damaged: expected frame indices in [0, {frames - 1}], got {damaged!r}")
        intact[:, damaged] = False
    if not intact.any(dim=1).all():
        fail("damaged", f"at least one intact frame per clip (of {frames}) to repair from", "every frame damaged")
    return conditional_sample(model_fn, video, frame_mask(video, intact), schedule, **kwargs)
