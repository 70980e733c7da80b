"""Samplers that take any denoising function ``model_fn(x_t, t) -> prediction``.

Each sampler has two forms: ``*_steps`` yields a :class:`SamplerStep` after every reverse step (so
animations of the trajectory come for free) and ``*_sample`` returns the final sample. Both take a
``torch.Generator`` so that a seed fixes the result. The samplers never own the model; guidance or
conditioning is done by wrapping ``model_fn``.

Indexing (README, "Conventions"): the reverse chain visits code timesteps T-1, ..., 0; the step at
``t`` turns x_t (after t+1 forward steps) into x_{t-1} (after t steps; x_{-1} is the sample).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from course_lib._validation import (
    check_choice,
    check_finite,
    check_float_range,
    check_int_range,
    check_output,
    check_positive_int,
    fail,
)
from course_lib.diffusion.forward import eps_from_x0, extract, q_posterior, randn_like, to_x0_eps
from course_lib.diffusion.schedules import NoiseSchedule

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
VARIANCES = ("beta_tilde", "beta")
SPACINGS = ("trailing", "leading", "linspace")


@dataclass
class SamplerStep:
    """The state after one reverse step at code timestep ``t``.

    x: (B, ...) the new, less noisy sample; x0_pred: (B, ...) the model's guess of the clean data.
    """

    t: int
    x: torch.Tensor
    x0_pred: torch.Tensor


def _start(shape, schedule, generator, device, x_start, t_start) -> tuple[torch.Tensor, int]:
    """The starting x (given, or pure noise) and the first timestep to denoise."""
    t_start = schedule.num_steps - 1 if t_start is None else check_int_range("t_start", t_start, 0, schedule.num_steps - 1)
    if x_start is not None:
        if tuple(check_finite("x_start", x_start).shape) != tuple(shape):
            fail("x_start", f"shape {tuple(shape)}", f"shape {tuple(x_start.shape)}")
        return x_start.to(device or x_start.device), t_start
    if len(shape) < 2:
        fail("shape", "a batch shape (B, ...) with at least 2 dims", tuple(shape))
    device = torch.device(device) if device is not None else torch.device("cpu")
    return randn_like(torch.empty(tuple(shape), device=device), generator), t_start


def _predict(model_fn, x, t: int, schedule, objective, clip_x0) -> tuple[torch.Tensor, torch.Tensor]:
    """Call the model at timestep t and return (x0, ε), x0 clipped to [-1, 1] if asked."""
    tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    prediction = check_output(f"model_fn output at t={t}", model_fn(x, tt), x.shape)
    x0, eps = to_x0_eps(prediction.float(), x, tt, schedule, objective)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = eps_from_x0(x, tt, x0, schedule)
    return x0, eps


@torch.no_grad()
def ddpm_steps(
    model_fn: ModelFn,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    objective: str = "eps",
    variance: str = "beta_tilde",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    x_start: torch.Tensor | None = None,
    t_start: int | None = None,
    clip_x0: bool = True,
) -> Iterator[SamplerStep]:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2), one :class:`SamplerStep` per step.

    x_{t−1} = μ̃_t(x̂0, x_t) + σ_t z, with σ_t² = β̃_t ("beta_tilde", the true posterior variance
    when x0 is known) or β_t ("beta"); no noise is added at the last step (t = 0).
    ``x_start``/``t_start`` start from a given x_t instead of pure noise (SDEdit, editing).
    """
    check_choice("variance", variance, VARIANCES)
    x, t_start = _start(shape, schedule, generator, device, x_start, t_start)
    for t in range(t_start, -1, -1):
        step = ddpm_step(model_fn, x, t, schedule, objective, variance, generator, clip_x0)
        x = step.x
        yield step


def ddpm_step(model_fn: ModelFn, x: torch.Tensor, t: int, schedule: NoiseSchedule, objective: str = "eps",
              variance: str = "beta_tilde", generator: torch.Generator | None = None, clip_x0: bool = True,
              x0: torch.Tensor | None = None) -> SamplerStep:
    """One ancestral step x_t -> x_{t−1}; pass ``x0`` to use a given (e.g. guided) x0 estimate."""
    if x0 is None:
        x0, _ = _predict(model_fn, x, t, schedule, objective, clip_x0)
    tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    mean, posterior_var, _ = q_posterior(x0, x, tt, schedule)
    if t == 0:
        return SamplerStep(t, mean, x0)
    var = posterior_var if variance == "beta_tilde" else extract(schedule.betas, tt, x.shape)
    return SamplerStep(t, mean + var.sqrt() * randn_like(x, generator), x0)


def ddpm_sample(model_fn: ModelFn, shape: Sequence[int], schedule: NoiseSchedule, **kwargs) -> torch.Tensor:
    """Run :func:`ddpm_steps` to the end and return the sample (B, ...)."""
    step = None
    for step in ddpm_steps(model_fn, shape, schedule, **kwargs):
        pass
    return step.x


def ddim_timesteps(num_steps: int, steps: int, spacing: str = "trailing") -> list[int]:
    """The descending code timesteps a ``steps``-step sampler visits out of ``num_steps``.

    * "trailing" (default; Lin et al. 2024, Table 2): ``round(T − i·T/steps) − 1`` for i = 0..steps−1,
      so sampling always starts at T−1 (pure noise) -- e.g. T=1000, steps=50: 999, 979, ..., 19;
    * "leading" (Song et al. 2021a, as in the DDIM code): ``i·(T // steps)`` reversed: 980, ..., 0,
      which never starts from the noisiest step;
    * "linspace": ``linspace(0, T−1, steps)`` rounded, reversed: 999, ..., 0.

    After the last listed step the sampler jumps to clean data (ᾱ = 1).
    """
    check_positive_int("num_steps", num_steps)
    check_int_range("steps", steps, 1, num_steps)
    check_choice("spacing", spacing, SPACINGS)
    if spacing == "trailing":
        ts = [round(num_steps - i * num_steps / steps) - 1 for i in range(steps)]
    elif spacing == "leading":
        ts = [i * (num_steps // steps) for i in range(steps)][::-1]
    else:
        ts = torch.linspace(0, num_steps - 1, steps).round().long().tolist()[::-1]
    return ts


@torch.no_grad()
def ddim_steps(
    model_fn: ModelFn,
    shape: Sequence[int],
    schedule: NoiseSchedule,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = "trailing",
    objective: str = "eps",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    x_start: torch.Tensor | None = None,
    t_start: int | None = None,
    clip_x0: bool = True,
) -> Iterator[SamplerStep]:
    """DDIM (Song et al. 2021a, Eq. 12), one :class:`SamplerStep` per visited timestep.

    x_{t'} = √ᾱ_{t'} x̂0 + √(1 − ᾱ_{t'} − σ²) ε̂ + σ z, with
    σ = η √((1 − ᾱ_{t'})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t'})  (Eq. 16), where t' is the next visited step.
    η = 0 is deterministic; η = 1 with every step visited is DDPM with σ² = β̃_t.
    With ``t_start`` the ``steps`` timesteps are spaced over 0..t_start, so ``steps`` ≤ t_start + 1
    (≤ T without it): the sampler never visits a timestep twice.
    """
    check_float_range("eta", eta, 0.0, 1.0)
    x, t_start = _start(shape, schedule, generator, device, x_start, t_start)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= t_start + 1:
        fail("steps", f"an int in [1, {t_start + 1}] (one visit per timestep of 0..{t_start}, none twice)", steps)
    timesteps = ddim_timesteps(t_start + 1, steps, spacing)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        step = ddim_step(model_fn, x, t, t_next, schedule, eta, objective, generator, clip_x0)
        x = step.x
        yield step


def ddim_step(model_fn: ModelFn, x: torch.Tensor, t: int, t_next: int, schedule: NoiseSchedule, eta: float = 0.0,
              objective: str = "eps", generator: torch.Generator | None = None, clip_x0: bool = True,
              x0: torch.Tensor | None = None) -> SamplerStep:
    """One DDIM step from code timestep ``t`` to ``t_next`` < t (−1 means clean data, ᾱ = 1).

    Pass ``x0`` to use a given (e.g. guided) x0 estimate; ε is then derived from it.
    """
    if x0 is None:
        x0, eps = _predict(model_fn, x, t, schedule, objective, clip_x0)
    else:
        eps = eps_from_x0(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device), x0, schedule)
    alpha_bars = schedule.alpha_bars.to(torch.float64)
    a_t = alpha_bars[t]
    a_next = alpha_bars[t_next] if t_next >= 0 else torch.tensor(1.0, dtype=torch.float64)
    sigma = eta * ((1 - a_next) / (1 - a_t)).sqrt() * (1 - a_t / a_next).sqrt()  # Eq. 16
    direction = (1 - a_next - sigma**2).clamp(min=0).sqrt()
    x_next = a_next.sqrt().float() * x0 + direction.float() * eps  # Eq. 12
    if sigma > 0:
        x_next = x_next + sigma.float() * randn_like(x, generator)
    return SamplerStep(t, x_next, x0)


def ddim_sample(model_fn: ModelFn, shape: Sequence[int], schedule: NoiseSchedule, **kwargs) -> torch.Tensor:
    """Run :func:`ddim_steps` to the end and return the sample (B, ...)."""
    step = None
    for step in ddim_steps(model_fn, shape, schedule, **kwargs):
        pass
    return step.x
