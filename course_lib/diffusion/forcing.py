"""Diffusion Forcing: a noise level per frame, and the samplers it opens up (lesson 14).

Every other lesson noises a clip with *one* timestep t for all its frames. Diffusion Forcing
(Chen et al. 2024) draws an independent timestep for every frame, t of shape (B, F):

    x_t[b, j] = √ᾱ_{t[b, j]} · x0[b, j] + √(1 − ᾱ_{t[b, j]}) · ε[b, j]       (Ho et al. 2020, Eq. 4, per frame)

and trains the video denoiser (which embeds a timestep per frame, :class:`~course_lib.models.unet3d.UNet3D`)
with the same simple loss. A clip whose frames sit at different levels is just a batch of B·F
images with one timestep each, so the forward process and the targets are the course's own,
applied to ``x.flatten(0, 1)``.

One network trained this way serves three samplers, all driven by a **schedule matrix**
``levels`` (rows = sampler iterations, columns = frames, values = noise level, the last row 0):

* (a) the whole clip at once: every column the same (``delay=0``), ordinary sampling;
* (b) a rolling / pyramid schedule (Chen et al. 2024; Ruhe et al. 2024, "Rolling
  Diffusion"): frame j starts denoising ``delay`` iterations after frame j − 1, so noise rises
  along the frame axis; a window of W frames slides along a video of any length and the model
  keeps a long, partly noisy future instead of re-reading everything from a few clean frames;
* (c) chunked frame-conditional rollout as in lesson 08: known frames at level 0, the rest noisy,
  chained by :func:`~course_lib.diffusion.rollout.autoregressive_rollout`.

Levels are integers 0 … S for an S-level sampler: level S is pure noise (code timestep T − 1),
level 0 is clean, and level ℓ ≥ 1 is the DDIM timestep ``ddim_timesteps(T, S)[S − ℓ]``
(:func:`level_timesteps`). Videos are (B, F, C, H, W).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib._validation import (
    check_choice, check_finite, check_float_range, check_int_range, check_output, check_positive_int, check_rank, check_tensor,
    check_timesteps, fail,
)
from course_lib.diffusion.forward import OBJECTIVES, q_sample, randn_like, to_x0_eps, training_target
from course_lib.diffusion.guidance import guide
from course_lib.diffusion.objectives import (
    DiffusionObjective, TimestepSampler, batch_x0, label_kwargs, uniform_timesteps,
)
from course_lib.diffusion.rollout import autoregressive_rollout
from course_lib.diffusion.samplers import ModelFn, ddim_timesteps
from course_lib.diffusion.schedules import NoiseSchedule


# --- the forward process with a timestep per frame --------------------------------------------------

def check_frame_timesteps(t: object, video: torch.Tensor, schedule: NoiseSchedule, name: str = "t") -> torch.Tensor:
    """``t`` as a (B, F) int64 tensor on the video's device: one timestep in [0, T − 1] per frame."""
    check_tensor(name, t)
    if tuple(t.shape) != tuple(video.shape[:2]):
        fail(name, f"one timestep per frame, shape (B, F) = {tuple(video.shape[:2])}", f"shape {tuple(t.shape)}")
    check_timesteps(name, t, schedule.num_steps)
    return t.to(device=video.device, dtype=torch.long)


def q_sample_frames(x0: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule, noise: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise every frame to its own level: x_t[b, j] = √ᾱ_{t[b,j]} x0[b, j] + √(1 − ᾱ_{t[b,j]}) ε[b, j].

    x0: (B, F, C, H, W) clean clips, t: (B, F) timesteps -> (B, F, C, H, W). The clip is treated
    as B·F images with one timestep each (:func:`~course_lib.diffusion.forward.q_sample`); with
    every t[b, j] = t[b] it is exactly ``q_sample(x0, t[:, 0])``.
    """
    check_rank("x0", x0, 5, "(B, F, C, H, W)")
    t = check_frame_timesteps(t, x0, schedule)
    if noise is None:
        noise = randn_like(x0, generator)
    elif check_finite("noise", noise).shape != x0.shape:
        fail("noise", f"the shape of x0 {tuple(x0.shape)}", f"shape {tuple(noise.shape)}")
    return q_sample(x0.flatten(0, 1), t.flatten(), schedule, noise=noise.flatten(0, 1)).view_as(x0)


def frame_timesteps(batch: int, frames: int, schedule: NoiseSchedule, generator: torch.Generator | None = None,
                    timesteps: TimestepSampler = uniform_timesteps) -> torch.Tensor:
    """(batch, frames) int64: an independent timestep for every frame, each drawn by ``timesteps``."""
    check_positive_int("batch", batch)
    check_positive_int("frames", frames)
    return timesteps(batch * frames, schedule, generator).view(batch, frames)


def forcing_loss(model: Callable[..., torch.Tensor], x0: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule,
                 objective: str = "eps", noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 model_kwargs: dict | None = None) -> torch.Tensor:
    """The simple loss (Ho et al. 2020, Eq. 14) with a noise level per frame (Chen et al. 2024, training).

    E ‖target − model(x_t, t)‖², x_t from :func:`q_sample_frames`, t (B, F) given; the target
    is ε, x0 or v of each frame at its own level. x0: (B, F, C, H, W) -> scalar. With t equal
    across frames this is the ordinary loss of that clip.
    """
    check_choice("objective", objective, OBJECTIVES)
    check_rank("x0", x0, 5, "(B, F, C, H, W)")
    t = check_frame_timesteps(t, x0, schedule)
    eps = randn_like(x0, generator) if noise is None else noise
    x_t = q_sample_frames(x0, t, schedule, noise=eps)
    prediction = check_output("model output", model(x_t, t, **(model_kwargs or {})), x0.shape)
    target = training_target(x0.flatten(0, 1), eps.flatten(0, 1), t.flatten(), schedule, objective).view_as(x0)
    return F.mse_loss(prediction.float(), target.float())


@dataclass
class DiffusionForcingObjective(DiffusionObjective):
    """``loss_fn(model, batch, generator)`` for the Trainer: :func:`forcing_loss` with independent levels.

    The fields of :class:`~course_lib.diffusion.objectives.DiffusionObjective` (schedule, objective,
    timesteps, null_label, label_dropout: one label per clip), but each frame of each clip gets its own
    t from ``timesteps``. Draws, in order: the label coins, t (B·F of them), ε.
    """

    def __call__(self, model, batch, generator: torch.Generator) -> torch.Tensor:
        x0 = batch_x0(batch)
        check_rank("x0", x0, 5, "(B, F, C, H, W)")
        model_kwargs = label_kwargs(batch, x0, self.null_label, self.label_dropout, generator)
        t = frame_timesteps(x0.shape[0], x0.shape[1], self.schedule, generator, self.timesteps).to(x0.device)
        return forcing_loss(model, x0, t, self.schedule, self.objective, generator=generator,
                            model_kwargs=model_kwargs)


# --- the schedule matrix --------------------------------------------------------------------------

def pyramid_schedule(frames: int, levels: int, known: int = 0, delay: int = 1) -> torch.Tensor:
    """The schedule matrix (R, frames) of integer noise levels; row 0 is the start, the last row all 0.

    levels[i, j] = clamp(S − i + delay·(j − known), 0, S) for the frames j ≥ known, and 0 for the
    ``known`` frames (given, clean). Frame j starts to denoise ``delay`` iterations after frame j − 1:

    * ``delay=0``: every frame at the same level: ordinary sampling of the whole clip;
    * ``delay=1``: the pyramid of Diffusion Forcing (Chen et al. 2024): noise rises by one
      level per frame;
    * ``delay ≥ S``: one frame at a time, each finished before the next begins (autoregressive).

    R = S + delay·(frames − known − 1) + 1 rows: S iterations for the last frame after it starts.
    """
    check_positive_int("frames", frames)
    check_positive_int("levels", levels)
    check_int_range("known", known, 0, frames - 1)
    check_int_range("delay", delay, 0, 10_000)
    i = torch.arange(levels + delay * (frames - known - 1) + 1)[:, None]  # (R, 1) iterations
    j = torch.arange(frames)[None, :]  # (1, frames)
    matrix = (levels - i + delay * (j - known)).clamp(0, levels)
    matrix[:, :known] = 0
    return matrix


def check_schedule_matrix(levels: torch.Tensor, steps: int, name: str = "levels") -> torch.Tensor:
    """A clear error unless ``levels`` is an integer (R ≥ 2, F) matrix in [0, steps] that never rises
    down a column, starts every frame at 0 (known) or ``steps`` (noise) and ends with a row of 0."""
    check_rank(name, levels, 2, "(iterations + 1, frames)")
    if levels.dtype.is_floating_point or levels.dtype == torch.bool:
        fail(name, "an integer tensor of noise levels", f"dtype {levels.dtype}")
    if levels.shape[0] < 2:
        fail(name, "at least 2 rows (the start and the end)", f"shape {tuple(levels.shape)}")
    if levels.min() < 0 or levels.max() > steps:
        fail(name, f"levels in [0, {steps}]", f"values in [{int(levels.min())}, {int(levels.max())}]")
    if (levels[-1] != 0).any():
        fail(name, "a schedule that ends at 0 (the last row all zeros: every frame clean)",
             f"last row {levels[-1].tolist()}")
    if (levels[1:] > levels[:-1]).any():
        fail(name, "levels that never rise from one row to the next (noise is only removed)",
             f"a rise in column(s) {sorted(set((levels[1:] > levels[:-1]).nonzero()[:, 1].tolist()))}")
    start = levels[0]
    if ((start != 0) & (start != steps)).any():
        fail(name, f"a first row of 0 (known frames) or {steps} (pure noise)", f"first row {start.tolist()}")
    return levels.long()


def level_timesteps(steps: int, num_steps: int) -> torch.Tensor:
    """(steps + 1,) int64: the code timestep of each level 0 … S; level 0 (clean) is −1.

    Level ℓ ≥ 1 is ``ddim_timesteps(num_steps, steps)[steps − ℓ]`` (trailing spacing): level S is
    T − 1 (pure noise), level 1 the smallest visited timestep.
    """
    visited = ddim_timesteps(num_steps, check_int_range("steps", steps, 1, num_steps))  # descending, S of them
    return torch.tensor([-1, *visited[::-1]], dtype=torch.long)


# --- one sampler step, a frame at a time -----------------------------------------------------------

def forcing_step(model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, schedule: NoiseSchedule,
                 objective: str = "eps", clip_x0: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic DDIM step (Song et al. 2021a, Eq. 12, η = 0) with a level per frame.

    x: (B, F, C, H, W) frames at code timesteps t (F,) (−1: clean); t_next (F,) with t_next ≤ t.
    The model sees every frame at max(t, 0); each frame whose level falls moves to
    x_{t'} = √ᾱ_{t'} x̂0 + √(1 − ᾱ_{t'}) ε̂ (ᾱ_{−1} = 1: clean), the others are left as they are.
    Returns (x_next (B, F, C, H, W), x̂0 (B, F, C, H, W)).
    """
    B, frames = x.shape[:2]
    if t.shape != (frames,) or t_next.shape != (frames,):
        fail("t", f"one timestep per frame, shape ({frames},), for t and t_next",
             f"shapes {tuple(t.shape)} and {tuple(t_next.shape)}")
    if (t_next > t).any():
        fail("t_next", "timesteps <= t (a step only removes noise)", f"{t_next.tolist()} after {t.tolist()}")
    seen = t.clamp(min=0).to(x.device).expand(B, frames)  # (B, F): the levels the model is told
    prediction = check_output("model_fn output", model_fn(x, seen), x.shape).float()
    x0, eps = to_x0_eps(prediction.flatten(0, 1), x.flatten(0, 1), seen.flatten(), schedule, objective)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        a = schedule.sqrt_alpha_bars.to(x.device)[seen.flatten()].view(-1, 1, 1, 1)
        s = schedule.sqrt_one_minus_alpha_bars.to(x.device)[seen.flatten()].view(-1, 1, 1, 1)
        eps = (x.flatten(0, 1) - a * x0) / s
    x0, eps = x0.view_as(x), eps.view_as(x)
    a_next = torch.cat([torch.ones(1), schedule.alpha_bars.float()])[t_next + 1].to(x.device)  # ᾱ_{t'}, 1 at −1
    a_next = a_next.view(1, frames, 1, 1, 1)
    x_next = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps  # Eq. 12 with σ = 0
    moves = (t_next < t).to(x.device).view(1, frames, 1, 1, 1)
    return torch.where(moves, x_next, x), x0


# --- sampling along a schedule matrix --------------------------------------------------------------

@dataclass
class ScheduleStep:
    """The video after iteration ``i`` of a schedule: x (B, N, C, H, W), the levels now (N,), and the
    window of frames the model saw (start, end)."""

    i: int
    x: torch.Tensor
    levels: torch.Tensor
    window: tuple[int, int]


def check_window(window: int, model_fn, frames: int) -> int:
    """``window``: between 1 and the frames the model can take (``model_fn.max_frames`` when it has
    one) and at most the video's ``frames``."""
    limit = getattr(model_fn, "max_frames", None)
    if isinstance(limit, int) and isinstance(window, int) and not isinstance(window, bool) and window > limit:
        fail("window", f"at most the model's max_frames = {limit} frames", window)
    return check_int_range("window", window, 1, frames)


@torch.no_grad()
def schedule_steps(model_fn: ModelFn, levels: torch.Tensor, schedule: NoiseSchedule, steps: int,
                   shape: tuple[int, ...] | None = None, known: torch.Tensor | None = None, window: int | None = None,
                   objective: str = "eps", generator: torch.Generator | None = None, device=None,
                   clip_x0: bool = True) -> Iterator[ScheduleStep]:
    """Sample a video along the schedule matrix ``levels`` (R, N), one :class:`ScheduleStep` per row after the first.

    steps: S, the number of noise levels (values of ``levels`` lie in 0 … S). known: (B, k, C, H, W)
    the first k frames, given (their columns must be 0 in every row); shape: (B, N, C, H, W) when
    nothing is known. window: W, the frames the model sees at once (default N): at iteration i the
    model gets the W frames that end with the last frame whose level falls (the first W frames while
    that is frame W − 1 or earlier), so the frames being denoised, and the clean ones just before
    them, are in view. Every frame whose level falls at one iteration must fit in that window. model_fn(x (B, W, C, H, W), t (B, W)) -> prediction.
    """
    levels = check_schedule_matrix(levels, steps)
    N = levels.shape[1]
    window = N if window is None else check_window(window, model_fn, N)
    if known is not None:
        check_rank("known", known, 5, "(B, k, C, H, W)")
    k = 0 if known is None else known.shape[1]
    if known is None and shape is None:
        fail("shape", "the video's shape (B, N, C, H, W) when no frames are known", None)
    if known is not None and k >= N:
        fail("known", f"fewer known frames than the schedule has columns ({N})", f"{k} frames")
    if (levels[:, :k] != 0).any() or (levels[0, k:] != steps).any():
        fail("levels", f"the first {k} columns (the known frames) 0 and every other frame starting at {steps}",
             f"first row {levels[0].tolist()}")
    if known is not None:
        shape = (known.shape[0], N, *known.shape[2:])
        device = known.device if device is None else device
    elif tuple(shape)[1] != N:
        fail("shape", f"{N} frames, one per column of levels", tuple(shape))
    timestep = level_timesteps(steps, schedule.num_steps)  # level -> code timestep (0 -> −1)
    x = randn_like(torch.empty(tuple(shape), device=device or "cpu"), generator)
    if known is not None:
        x[:, :k] = check_finite("known", known).to(x.device)
    spans = [(levels[i + 1] < levels[i]).nonzero().flatten() for i in range(levels.shape[0] - 1)]
    need = max((int(s[-1]) - int(s[0]) + 1 for s in spans if len(s)), default=1)  # frames denoised at once
    if need > window:
        fail("window", f"at least {need} frames: the schedule denoises up to {need} neighbouring frames at once",
             window)
    for i, falling in enumerate(spans):
        if len(falling) == 0:
            continue
        end = int(falling[-1]) + 1  # the window ends with the last frame whose level falls,
        start = max(0, end - window)
        end = min(N, start + window)  # or, near the start, holds the first W frames
        x[:, start:end], _ = forcing_step(model_fn, x[:, start:end], timestep[levels[i, start:end]],
                                          timestep[levels[i + 1, start:end]], schedule, objective, clip_x0)
        yield ScheduleStep(i, x, levels[i + 1], (start, end))


def schedule_sample(model_fn: ModelFn, levels: torch.Tensor, schedule: NoiseSchedule, steps: int,
                    **kwargs) -> torch.Tensor:
    """Run :func:`schedule_steps` to the end and return the video (B, N, C, H, W)."""
    step = None
    for step in schedule_steps(model_fn, levels, schedule, steps, **kwargs):
        pass
    return step.x


# --- history guidance -----------------------------------------------------------------------------

def history_guided(model_fn: ModelFn, weight: float, num_steps: int,
                   generator: torch.Generator | None = None) -> ModelFn:
    """``model_fn(x, t)`` guided by its past (history guidance, Song et al. 2025).

    The past is every frame shown at level t = 0 (the clean frames a sampler conditions on). The
    same network is asked twice: with the past, out_c, and with the past masked -- replaced by pure
    noise at t = T − 1, which a forcing model has learned to treat as "unknown" -- out_∅; the answer
    is out_∅ + w·(out_c − out_∅) (classifier-free guidance, Ho & Salimans 2022, on the past).
    w = 1 is the plain model (one call); w > 1 follows the past more strongly (two calls).
    x: (B, W, C, H, W), t: (B, W) -> (B, W, C, H, W).
    """
    weight = check_float_range("weight", weight, 0.0, 100.0)
    check_positive_int("num_steps", num_steps)

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        conditional = model_fn(x, t)
        past = t == 0  # (B, W)
        if weight == 1.0 or not past.any():
            return conditional
        hidden = past.view(*past.shape, *[1] * (x.dim() - 2))
        masked = torch.where(hidden, randn_like(x, generator), x)
        unconditional = model_fn(masked, torch.where(past, torch.full_like(t, num_steps - 1), t))
        return guide(conditional, unconditional, weight)

    guided.max_frames = getattr(model_fn, "max_frames", None)  # the window check still sees the model's limit
    return guided


# --- three uses of one model ----------------------------------------------------------------------

def rolling_delay(steps: int, window: int, context: int) -> int:
    """The smallest delay for which the frames being denoised at once, about S / delay of them, fit in
    a window of W frames beside ``context`` clean ones: ceil(S / (W − context))."""
    check_positive_int("steps", steps)
    check_int_range("context", context, 0, window - 1)
    return math.ceil(steps / (window - context))


def rolling_rollout(model_fn: ModelFn, first: torch.Tensor, total_frames: int, window: int, schedule: NoiseSchedule,
                    steps: int, context: int | None = None, **kwargs) -> torch.Tensor:
    """(b) A video of ``total_frames`` frames from the first k, by a pyramid schedule in a sliding window.

    first: (B, k, C, H, W) -> (B, total_frames, C, H, W), ``first`` kept exactly. Frame j starts to
    denoise :func:`rolling_delay` iterations after frame j − 1, so at every iteration the window
    holds ``context`` (default min(k, W // 2)) clean frames and the partly noisy ones after them.
    kwargs: :func:`schedule_steps`' objective, generator, clip_x0.
    """
    check_rank("first", first, 5, "(B, k, C, H, W)")
    k = first.shape[1]
    if isinstance(total_frames, bool) or not isinstance(total_frames, int) or total_frames <= k:
        fail("total_frames", f"an int > the {k} known frames (at least one frame to generate)", total_frames)
    window = check_window(window, model_fn, total_frames)
    context = min(k, window // 2) if context is None else check_int_range("context", context, 0, window - 1)
    delay = rolling_delay(steps, window, context)
    levels = pyramid_schedule(total_frames, steps, known=k, delay=delay)
    return schedule_sample(model_fn, levels, schedule, steps, known=first, window=window, **kwargs)


def forcing_predictor(model_fn: ModelFn, schedule: NoiseSchedule, steps: int, delay: int = 0,
                      seed: int | None = None, **kwargs):
    """``predict(past (B, k, C, H, W), frames) -> (B, frames, C, H, W)`` for the rollouts of lesson 08.

    (c) the k ≥ 1 known frames sit at level 0 and the others are sampled by the schedule
    ``pyramid_schedule(frames, steps, k, delay)`` (``delay=0``: all together, as the frame-conditional
    model of lesson 08 does; (a), a whole clip, is :func:`schedule_sample` with ``known=None``). Each call starts
    from noise seeded with ``seed`` (None: the global RNG). Chain it with
    :func:`~course_lib.diffusion.rollout.autoregressive_rollout`.
    """
    def predict(past: torch.Tensor, frames: int) -> torch.Tensor:
        check_rank("past", past, 5, "(B, k, C, H, W)")
        if not 1 <= past.shape[1] < frames:
            fail("frames", f"more than the {past.shape[1]} known frames", frames)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        levels = pyramid_schedule(frames, steps, known=past.shape[1], delay=delay)
        return schedule_sample(model_fn, levels, schedule, steps, known=past, generator=generator, **kwargs)

    return predict


def chunked_rollout(model_fn: ModelFn, first: torch.Tensor, total_frames: int, frames: int, keep: int,
                    schedule: NoiseSchedule, steps: int, seed: int | None = None, **kwargs) -> torch.Tensor:
    """(c) Lesson 08's chunked rollout with the forcing model: keep ``keep`` frames, predict a clip of
    ``frames``, repeat. first: (B, k, C, H, W) -> (B, total_frames, C, H, W)."""
    check_rank("first", first, 5, "(B, k, C, H, W)")
    if isinstance(total_frames, bool) or not isinstance(total_frames, int) or total_frames <= first.shape[1]:
        fail("total_frames", f"an int > the {first.shape[1]} known frames (at least one frame to generate)",
             total_frames)
    predict = forcing_predictor(model_fn, schedule, steps, seed=seed, **kwargs)
    return autoregressive_rollout(predict, first, total_frames, keep, frames)
