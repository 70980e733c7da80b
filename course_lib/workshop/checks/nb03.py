"""Checks for notebook 03 (schedules and parameterisations). References: course_lib.diffusion.schedules, course_lib.diffusion.forward."""
from __future__ import annotations

import math

import torch

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import check_idea
from course_lib.diffusion.forward import to_x0_eps
from course_lib.diffusion.schedules import MAX_BETA, cosine_betas, make_schedule, schedule_from_betas


HINTS = {
    "3.1": ("SNR compares how much signal is left with how much noise was added, as variances.",
            "SNR_t = ᾱ_t / (1 − ᾱ_t): the signal variance ᾱ_t over the noise variance 1 − ᾱ_t (no square roots)."),
    "3.2": ("the cosine schedule is defined by its curve ᾱ(s) for s from 0 to 1; each β is how much of the signal "
            "one step removes, read off two neighbouring points of the curve.",
            "f(s) = cos²(((s + offset)/(1 + offset))·π/2), ᾱ(s) = f(s)/f(0) on s = t/T for t = 0 … T; "
            "β_t = 1 − ᾱ((t+1)/T) / ᾱ(t/T) (Nichol & Dhariwal 2021, Eq. 17).",
            "T + 1 grid points give T betas; clip them at 0.999 so the last step does not destroy the signal at once."),
    "3.3": ("write x_t and v in terms of x0 and ε; one combination of the two cancels ε.",
            "x0 = √ᾱ_t·x_t − √(1 − ᾱ_t)·v (check it: √ᾱ_t² + (1 − ᾱ_t) = 1)."),
}


def _constant_schedule(alpha_bar_t: torch.Tensor):
    """A schedule whose first step has ᾱ_0 = alpha_bar_t (so code t = 0 carries that noise level)."""
    return schedule_from_betas((1 - alpha_bar_t.double()).reshape(1).expand(2).clone())


def reference_snr(alpha_bars: torch.Tensor) -> torch.Tensor:
    """SNR_t = ᾱ_t / (1 − ᾱ_t) for every t, via course_lib.diffusion.schedules (β_t = 1 − ᾱ_t/ᾱ_{t−1})."""
    alpha_bars = alpha_bars.double()
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    return schedule_from_betas(1 - alpha_bars / previous).snr


def reference_cosine_betas(num_steps: int, offset: float) -> torch.Tensor:
    """β_t of the cosine schedule (Nichol & Dhariwal 2021, Eq. 17), via course_lib.diffusion.schedules.cosine_betas."""
    return cosine_betas(num_steps, offset)


def reference_x0_from_v(x_t: torch.Tensor, v: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """x0 = √ᾱ_t x_t − √(1 − ᾱ_t) v, via course_lib.diffusion.forward.to_x0_eps(..., "v")."""
    return to_x0_eps(v, x_t, 0, _constant_schedule(alpha_bar_t), "v")[0]


def _tensor_cases(seed: int, count: int = 4):
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 1), (4, 2), (2, 1, 4, 4), (1, 2, 3, 4, 4)]
    for i in range(count):
        shape = shapes[i % len(shapes)]
        alpha_bar = torch.rand((), generator=g) * 0.9 + 0.05
        yield torch.randn(shape, generator=g), torch.randn(shape, generator=g), alpha_bar


def check_snr(learner_fn) -> bool:
    # The cosine and sigmoid schedules end near ᾱ = 0; stop at T−2 so that every SNR is well scaled.
    cases = [((make_schedule(name, 50).alpha_bars[:-1].clone(),), {}) for name in ("linear", "cosine", "sigmoid")]
    cases.append(((torch.tensor([0.99, 0.5, 0.2, 0.01]),), {}))
    mistakes = {"the log of the SNR, not the SNR": lambda ab: torch.log(reference_snr(ab))}
    return compare("3.1", learner_fn, reference_snr, cases, "snr", variants=mistakes)


def _betas_in_range(learner_fn) -> str | None:
    """One β per step, every one in (0, 0.999]: the last step of the cosine curve would otherwise be β = 1."""
    for steps, offset in [(20, 0.008), (1000, 0.008)]:
        betas = torch.as_tensor(learner_fn(steps, offset)).double()
        if betas.shape != (steps,):
            return f"{steps} steps gave betas of shape {tuple(betas.shape)}: one β per step, ({steps},)"
        if not betas.min() > 0:
            return f"with T = {steps} your smallest β is {betas.min().item():.2g}: every step must add some noise"
        if betas.max() > MAX_BETA + 1e-6:
            return (f"with T = {steps} your largest β is {betas.max().item():.6f}: clip β at {MAX_BETA} so that no "
                    "step destroys the signal at once")
    return None


def _follows_the_cosine(learner_fn) -> str | None:
    """ᾱ_t = ∏(1 − β) lands on f(t/T)/f(0): the curve the schedule is defined by, ending near 0."""
    betas = torch.as_tensor(learner_fn(1000, 0.008)).double()
    alpha_bars = torch.cumprod(1 - betas, 0)
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 249, 499, 749):
        want = f((t + 1) / 1000) / f(0)
        if abs(alpha_bars[t].item() - want) > 1e-4:
            return (f"your ᾱ at code step t = {t} (after {t + 1} steps) is {alpha_bars[t].item():.4f}; the cosine "
                    f"curve f((t+1)/T)/f(0) gives {want:.4f}")
    if alpha_bars[-1] > 1e-3:
        return f"after all 1000 steps your ᾱ is {alpha_bars[-1].item():.2g}: the cosine schedule ends in pure noise"
    return None


def _cosine_betas_with(num_steps: int, offset: float, clip: bool = True, points: int = 1, power: int = 2,
                       stretch: bool = True, one_minus_alpha_bar: bool = False) -> torch.Tensor:
    """The cosine betas with one mistake: no clip, a grid of T points, cos not squared, the offset not divided by
    1 + o, or β_t = 1 − ᾱ_t."""
    s = torch.arange(num_steps + points, dtype=torch.float64) / num_steps
    f = torch.cos((s + offset) / ((1 + offset) if stretch else 1) * math.pi / 2) ** power
    alpha_bars = f / f[0]
    betas = 1 - alpha_bars[1:] if one_minus_alpha_bar else 1 - alpha_bars[1:] / alpha_bars[:-1]
    return betas.clamp(max=MAX_BETA) if clip else betas


COSINE_MISTAKES = {
    f"β not clipped at {MAX_BETA}: the last step destroys all the signal at once":
        lambda T, o: _cosine_betas_with(T, o, clip=False),
    "a grid of T points where T + 1 belong (s = t/T for t = 0 … T): one β short":
        lambda T, o: _cosine_betas_with(T, o, points=0),
    "cos not squared: f(s) = cos²(((s + o)/(1 + o))·π/2)": lambda T, o: _cosine_betas_with(T, o, power=1),
    "the offset not divided by 1 + o: the curve reaches 0 before s = 1":
        lambda T, o: _cosine_betas_with(T, o, stretch=False),
    "β_t = 1 − ᾱ_t: β is the ratio of neighbours, 1 − ᾱ_t / ᾱ_{t−1}":
        lambda T, o: _cosine_betas_with(T, o, one_minus_alpha_bar=True),
}


def check_cosine_betas(learner_fn) -> bool:
    cases = [((steps, offset), {}) for steps, offset in [(10, 0.008), (50, 0.008), (1000, 0.008), (30, 0.0), (40, 0.2)]]
    return check_idea("3.2", learner_fn, reference_cosine_betas, cases, "cosine_betas",
                      before=[_betas_in_range, _follows_the_cosine],
                      done="its ᾱ follows the cosine curve with every β in (0, 0.999]", variants=COSINE_MISTAKES)


def check_x0_from_v(learner_fn) -> bool:
    cases = [((x_t, v, ab), {}) for x_t, v, ab in _tensor_cases(600)]
    mistakes = {"that is ε, not x0": lambda x_t, v, ab: (1 - ab).sqrt() * x_t + ab.sqrt() * v,
                "v treated as ε: that formula recovers x0 from the noise": lambda x_t, v, ab: (x_t - (1 - ab).sqrt() * v) / ab.sqrt()}
    return compare("3.3", learner_fn, reference_x0_from_v, cases, "x0_from_v", variants=mistakes)
