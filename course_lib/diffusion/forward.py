"""The forward process, its posterior and the three parameterisations (ε, x0, v).

Indexing (README, "Conventions"): code timestep ``t`` in ``0..T-1`` is the paper's step ``t+1``.
Every function works for tensors of any rank: points (B, D), images (B, C, H, W), videos
(B, T, C, H, W). Per-sample timesteps ``t`` are (B,) int64; a Python int means "the same t for all".
"""
from __future__ import annotations

import torch

from course_lib._validation import check_choice, check_finite, check_rank, check_tensor, check_timesteps, fail
from course_lib.diffusion.schedules import NoiseSchedule

OBJECTIVES = ("eps", "x0", "v")


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` when given.

    Noise is drawn on the generator's device and moved, so a CPU generator gives the same numbers
    whatever device ``x`` lives on.
    """
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def as_timesteps(t: int | torch.Tensor, batch: int, schedule: NoiseSchedule, device) -> torch.Tensor:
    """``t`` as a (B,) int64 tensor on ``device``, checked to lie in [0, T-1]."""
    if isinstance(t, bool):
        fail("t", "an int or a (B,) integer tensor of timesteps", t)
    if isinstance(t, int):
        t = torch.full((batch,), t, dtype=torch.long)
    check_tensor("t", t)
    if t.dim() == 0:
        t = t.expand(batch)
    check_rank("t", t, 1, "(B,)")
    if t.shape[0] != batch:
        fail("t", f"one timestep per sample, shape ({batch},)", f"shape {tuple(t.shape)}")
    check_timesteps("t", t, schedule.num_steps)
    return t.to(device=device, dtype=torch.long)


def extract(a: torch.Tensor, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Gather ``a[t]`` and reshape to (B, 1, 1, ...) so it broadcasts against a tensor of ``shape``.

    a: (T,), t: (B,) -> (B, 1, ..., 1) with ``len(shape)`` dims in all. Rank-agnostic: the same
    code serves 1D points, images and videos.
    """
    out = a.to(t.device)[t]
    return out.reshape(t.shape[0], *([1] * (len(shape) - 1)))


def _prepare(x: torch.Tensor, t, schedule: NoiseSchedule, name: str = "x") -> torch.Tensor:
    check_tensor(name, x)
    if x.dim() < 2:
        fail(name, "a batch with at least 2 dims (B, ...)", f"shape {tuple(x.shape)}")
    return as_timesteps(t, x.shape[0], schedule, x.device)


def forward_step(
    x_prev: torch.Tensor,
    t: int | torch.Tensor,
    schedule: NoiseSchedule,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One step of the Markov chain (seed §2.1, §4.1): x_t = √α_t · x_{t−1} + √(1 − α_t) · ε.

    x_prev: (B, ...) the sample before step ``t`` (clean data when t = 0) -> (B, ...).
    """
    t = _prepare(x_prev, t, schedule, "x_prev")
    noise = randn_like(x_prev, generator) if noise is None else noise
    alpha = extract(schedule.alphas, t, x_prev.shape)
    return alpha.sqrt() * x_prev + (1 - alpha).sqrt() * noise


def q_sample(
    x0: torch.Tensor,
    t: int | torch.Tensor,
    schedule: NoiseSchedule,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Jump straight to step t (Ho et al. 2020, Eq. 4): x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε.

    x0: (B, ...) clean data -> (B, ...) a sample of q(x_t | x0) after t+1 steps.
    """
    t = _prepare(x0, t, schedule, "x0")
    check_finite("x0", x0)
    if noise is None:
        noise = randn_like(x0, generator)
    elif check_finite("noise", noise).shape != x0.shape:
        fail("noise", f"the shape of x0 {tuple(x0.shape)}", f"shape {tuple(noise.shape)}")
    return extract(schedule.sqrt_alpha_bars, t, x0.shape) * x0 + extract(
        schedule.sqrt_one_minus_alpha_bars, t, x0.shape
    ) * noise


def q_posterior(
    x0: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor, schedule: NoiseSchedule
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward posterior q(x_{t−1} | x_t, x0) = N(μ̃_t, β̃_t I) (Ho et al. 2020, Eqs. 6–7).

    μ̃_t = β_t √ᾱ_{t−1}/(1 − ᾱ_t) · x0 + (1 − ᾱ_{t−1}) √α_t/(1 − ᾱ_t) · x_t.
    Returns (mean (B, ...), variance (B, 1, ...), log_variance (B, 1, ...)).
    """
    t = _prepare(x_t, t, schedule, "x_t")
    if x0.shape != x_t.shape:
        fail("x0", f"the shape of x_t {tuple(x_t.shape)}", f"shape {tuple(x0.shape)}")
    mean = extract(schedule.posterior_mean_coef_x0, t, x_t.shape) * x0 + extract(
        schedule.posterior_mean_coef_xt, t, x_t.shape
    ) * x_t
    variance = extract(schedule.posterior_variance, t, x_t.shape)
    log_variance = extract(schedule.posterior_log_variance, t, x_t.shape)
    return mean, variance, log_variance


# --- the three parameterisations: ε, x0 and v (Salimans & Ho 2022) --------------------------------

def x0_from_eps(x_t: torch.Tensor, t, eps: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Invert Eq. 4: x0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t."""
    t = _prepare(x_t, t, schedule, "x_t")
    return (x_t - extract(schedule.sqrt_one_minus_alpha_bars, t, x_t.shape) * eps) / extract(
        schedule.sqrt_alpha_bars, t, x_t.shape
    )


def eps_from_x0(x_t: torch.Tensor, t, x0: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Invert Eq. 4 for the noise: ε = (x_t − √ᾱ_t x0) / √(1 − ᾱ_t)."""
    t = _prepare(x_t, t, schedule, "x_t")
    return (x_t - extract(schedule.sqrt_alpha_bars, t, x_t.shape) * x0) / extract(
        schedule.sqrt_one_minus_alpha_bars, t, x_t.shape
    )


def v_from_eps(x0: torch.Tensor, t, eps: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """The velocity target (Salimans & Ho 2022, Sec. 4): v = √ᾱ_t ε − √(1 − ᾱ_t) x0."""
    t = _prepare(x0, t, schedule, "x0")
    return extract(schedule.sqrt_alpha_bars, t, x0.shape) * eps - extract(
        schedule.sqrt_one_minus_alpha_bars, t, x0.shape
    ) * x0


def to_x0_eps(
    prediction: torch.Tensor, x_t: torch.Tensor, t, schedule: NoiseSchedule, objective: str = "eps"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a network's prediction of ``objective`` ("eps", "x0" or "v") into (x0, ε)."""
    check_choice("objective", objective, OBJECTIVES)
    if prediction.shape != x_t.shape:
        fail("prediction", f"the shape of x_t {tuple(x_t.shape)}", f"shape {tuple(prediction.shape)}")
    t = _prepare(x_t, t, schedule, "x_t")
    if objective == "eps":
        return x0_from_eps(x_t, t, prediction, schedule), prediction
    if objective == "x0":
        return prediction, eps_from_x0(x_t, t, prediction, schedule)
    a = extract(schedule.sqrt_alpha_bars, t, x_t.shape)  # √ᾱ_t
    s = extract(schedule.sqrt_one_minus_alpha_bars, t, x_t.shape)  # √(1 − ᾱ_t)
    return a * x_t - s * prediction, s * x_t + a * prediction  # x0 = √ᾱ x_t − √(1−ᾱ) v, ε = √(1−ᾱ) x_t + √ᾱ v


def training_target(x0: torch.Tensor, eps: torch.Tensor, t, schedule: NoiseSchedule, objective: str) -> torch.Tensor:
    """What the network learns to output for ``objective``: ε, x0 or v."""
    check_choice("objective", objective, OBJECTIVES)
    if objective == "eps":
        return eps
    if objective == "x0":
        return x0
    return v_from_eps(x0, t, eps, schedule)
