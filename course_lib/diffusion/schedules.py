"""Noise schedules: β_t, α_t = 1 − β_t, ᾱ_t = ∏ α_s and every coefficient derived from them.

Indexing (README, "Conventions"): code index ``t`` in ``0..T-1`` is the paper's step ``t+1``.
``alpha_bars[t]`` is the signal variance left after ``t+1`` steps, ``alpha_bars_prev[t]`` the one
after ``t`` steps (so ``alpha_bars_prev[0] = 1``: before the first step we have clean data).

Everything is computed in float64 and stored as float32.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from course_lib._validation import (
    check_choice,
    check_float_range,
    check_positive_float,
    check_positive_int,
    check_rank,
    fail,
)

MAX_BETA = 0.999  # Nichol & Dhariwal 2021 clip β ≤ 0.999 so that no step destroys everything at once


def linear_betas(num_steps: int) -> torch.Tensor:
    """Ho et al. 2020: β from 1e-4 to 0.02 over 1000 steps (scaled by 1000/T for other T, clipped at
    MAX_BETA: a chain of 20 steps or fewer would otherwise end with β ≥ 1)."""
    check_positive_int("num_steps", num_steps)
    scale = 1000 / num_steps
    return torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64).clamp(max=MAX_BETA)


def _betas_from_alpha_bar(alpha_bar: Callable[[torch.Tensor], torch.Tensor], num_steps: int) -> torch.Tensor:
    """β_t = 1 − ᾱ(t+1)/ᾱ(t) for a continuous ᾱ(s), s in [0, 1], clipped at MAX_BETA."""
    s = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    a = alpha_bar(s)
    return (1 - a[1:] / a[:-1]).clamp(max=MAX_BETA)


def cosine_betas(num_steps: int, offset: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal 2021, Eq. 17: ᾱ(s) = f(s)/f(0), f(s) = cos²(((s + o)/(1 + o))·π/2).

    The offset o ≥ 0 keeps β_0 from vanishing; a negative one bends ᾱ above 1 (o = −1 divides by 0).
    """
    check_positive_int("num_steps", num_steps)
    check_float_range("offset", offset, 0.0, 1.0)

    def f(s):
        return torch.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2
    return _betas_from_alpha_bar(lambda s: f(s) / f(torch.zeros(1, dtype=torch.float64)), num_steps)


def sigmoid_betas(num_steps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """Jabri et al. 2022 (RIN), sigmoid schedule: ᾱ(s) = (σ(e/τ) − σ((s(e−b)+b)/τ)) / (σ(e/τ) − σ(b/τ)).

    It keeps more signal than cosine in the middle steps; often better for larger images.
    Needs start < end and a temperature τ > 0.
    """
    check_positive_int("num_steps", num_steps)
    for name, value in (("start", start), ("end", end)):
        check_float_range(name, value, -1e3, 1e3)
    if not start < end:
        fail("end", f"a number above start={start}", end)
    check_positive_float("tau", tau)
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    if not v_end > v_start:  # both ends saturated: ᾱ would be 0/0
        fail("tau", f"a temperature at which σ(start/τ) and σ(end/τ) differ (start={start}, end={end})", tau)

    def alpha_bar(s):
        return ((v_end - torch.sigmoid((s * (end - start) + start) / tau)) / (v_end - v_start)).clamp(min=1e-12)

    return _betas_from_alpha_bar(alpha_bar, num_steps)


SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
}


@dataclass
class NoiseSchedule:
    """All per-step coefficients, each a float32 tensor of shape (T,), indexed by code timestep t."""

    name: str
    betas: torch.Tensor  # β_t: noise variance added by step t
    alphas: torch.Tensor  # α_t = 1 − β_t: signal variance kept by step t (seed §2.1)
    alpha_bars: torch.Tensor  # ᾱ_t = ∏_{s≤t} α_s
    alpha_bars_prev: torch.Tensor  # ᾱ_{t−1}, with ᾱ_{−1} = 1 (clean data)
    sqrt_alpha_bars: torch.Tensor  # √ᾱ_t: scale of x0 in q(x_t | x0)
    sqrt_one_minus_alpha_bars: torch.Tensor  # √(1 − ᾱ_t): scale of ε in q(x_t | x0)
    posterior_variance: torch.Tensor  # β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)   (Ho et al. Eq. 7)
    posterior_log_variance: torch.Tensor  # log β̃_t, with β̃_0 = 0 replaced by β̃_1 (finite log)
    posterior_mean_coef_x0: torch.Tensor  # β_t √ᾱ_{t−1} / (1 − ᾱ_t)           (Ho et al. Eq. 7)
    posterior_mean_coef_xt: torch.Tensor  # (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t)     (Ho et al. Eq. 7)
    snr: torch.Tensor  # signal-to-noise ratio ᾱ_t / (1 − ᾱ_t)

    @property
    def num_steps(self) -> int:
        """T, the number of forward steps."""
        return self.betas.shape[0]

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        """A copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[key] = value.to(device)
        return NoiseSchedule(**moved)


def schedule_from_betas(betas: torch.Tensor, name: str = "custom") -> NoiseSchedule:
    """Build every coefficient from β (T,), in float64, stored as float32."""
    check_rank("betas", betas, 1, "(T,)")
    b = betas.detach().to(torch.float64).cpu()
    if not torch.isfinite(b).all():
        fail("betas", "finite values", f"{int((~torch.isfinite(b)).sum())} NaN/inf entries")
    if b.numel() == 0 or b.min() <= 0 or b.max() >= 1:
        lo, hi = (float(b.min()), float(b.max())) if b.numel() else (None, None)
        fail("betas", "values in (0, 1)", f"range [{lo}, {hi}]")
    alphas = 1 - b
    alpha_bars = torch.cumprod(alphas, dim=0)
    alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    posterior_variance = b * (1 - alpha_bars_prev) / (1 - alpha_bars)
    clipped = posterior_variance.clone()
    if clipped.numel() > 1:
        clipped[0] = posterior_variance[1]
    else:
        clipped[0] = b[0]
    values = dict(
        betas=b,
        alphas=alphas,
        alpha_bars=alpha_bars,
        alpha_bars_prev=alpha_bars_prev,
        sqrt_alpha_bars=alpha_bars.sqrt(),
        sqrt_one_minus_alpha_bars=(1 - alpha_bars).sqrt(),
        posterior_variance=posterior_variance,
        posterior_log_variance=clipped.log(),
        posterior_mean_coef_x0=b * alpha_bars_prev.sqrt() / (1 - alpha_bars),
        posterior_mean_coef_xt=(1 - alpha_bars_prev) * alphas.sqrt() / (1 - alpha_bars),
        snr=alpha_bars / (1 - alpha_bars),
    )
    return NoiseSchedule(name=name, **{k: v.float() for k, v in values.items()})


def make_schedule(name: str = "linear", num_steps: int = 1000) -> NoiseSchedule:
    """The named schedule ("linear", "cosine" or "sigmoid") with ``num_steps`` steps."""
    check_choice("name", name, SCHEDULES)
    check_positive_int("num_steps", num_steps)
    if num_steps < 2:
        fail("num_steps", "at least 2 steps", num_steps)
    return schedule_from_betas(SCHEDULES[name](num_steps), name=name)
