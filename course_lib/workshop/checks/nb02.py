"""Checks for notebook 02 (the reverse process). References come from course_lib.diffusion.forward.

The learner's functions take the schedule numbers of one step as 0-dim tensors: α_t and ᾱ_{t−1}
(so ᾱ_t = α_t·ᾱ_{t−1} and β_t = 1 − α_t). The references build a two-step schedule with exactly
those numbers and call the course code at code timestep t = 1.
"""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.diffusion.forward import q_posterior, x0_from_eps
from course_lib.diffusion.schedules import schedule_from_betas

HINTS = {
    "2.1": ("compute β_t = 1 − α_t and ᾱ_t = α_t · ᾱ_{t−1} first; the mean mixes x0 and x_t, the variance is β_t "
            "shrunk by the noise already present before the step.",
            "the variance is β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), not β_t; the x0 coefficient has √ᾱ_{t−1}, "
            "the x_t coefficient √α_t (Ho et al. 2020, Eq. 7)."),
    "2.2": ("solve x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε for x0, with the predicted noise in place of ε.",
            "undo x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε: subtract the noise term, then divide by √ᾱ_t."),
    "2.3": ("one reverse step: the mean μθ of q(x_{t−1} | x_t, x̂0) with x̂0 predicted from ε̂, then fresh noise z "
            "scaled by the posterior's standard deviation.",
            "μθ = (x_t − β_t / √(1 − ᾱ_t) · ε̂) / √α_t with ᾱ_t = α_t ᾱ_{t−1} (Ho et al. 2020, Eq. 11).",
            "x_{t−1} = μθ + √β̃_t · z with β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (Algorithm 2)."),
}
NO_ROOTS = "square roots missing: α where √α belongs"
ONE_STEP_EARLY = "off by one timestep (paper vs code index): ᾱ_{t−1} where ᾱ_t belongs"


def _two_step_schedule(alpha_t: torch.Tensor, alpha_bar_prev: torch.Tensor):
    """A schedule whose step t = 1 has α_1 = alpha_t and ᾱ_0 = alpha_bar_prev."""
    betas = torch.stack([1 - alpha_bar_prev.double(), 1 - alpha_t.double()])
    return schedule_from_betas(betas)


def reference_q_posterior(x0, x_t, alpha_t, alpha_bar_prev):
    """(μ̃_t, β̃_t) of q(x_{t−1} | x_t, x0) (Ho et al. 2020, Eq. 7), via course_lib.diffusion.forward.q_posterior."""
    mean, variance, _ = q_posterior(x0, x_t, 1, _two_step_schedule(alpha_t, alpha_bar_prev))
    return mean, variance.flatten()[0]


def reference_predict_x0(x_t, eps_pred, alpha_bar_t):
    """x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, via course_lib.diffusion.forward.x0_from_eps."""
    schedule = schedule_from_betas((1 - alpha_bar_t.double()).reshape(1).expand(2).clone())
    return x0_from_eps(x_t, 0, eps_pred, schedule)


def reference_ddpm_step(x_t, eps_pred, alpha_t, alpha_bar_prev, z):
    """x_{t−1} = μθ + σ_t z with μθ = μ̃_t(x̂0, x_t) and σ_t² = β̃_t (Ho et al. 2020, Algorithm 2)."""
    schedule = _two_step_schedule(alpha_t, alpha_bar_prev)
    x0 = x0_from_eps(x_t, 1, eps_pred, schedule)
    mean, variance, _ = q_posterior(x0, x_t, 1, schedule)
    return mean + variance.sqrt() * z


def _cases(seed: int, count: int):
    """Fresh (x0-or-x_t, x_t-or-ε̂, α_t, ᾱ_{t−1}, z) inputs of several shapes and noise levels."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 1), (4, 2), (2, 1, 4, 4), (1, 2, 3, 4, 4)]
    for i in range(count):
        shape = shapes[i % len(shapes)]
        alpha_t = 1 - torch.rand((), generator=g) * 0.3 - 0.01  # β_t in [0.01, 0.31]
        alpha_bar_prev = torch.rand((), generator=g) * 0.9 + 0.05
        a, b, z = (torch.randn(shape, generator=g) for _ in range(3))
        yield a, b, alpha_t, alpha_bar_prev, z


def check_q_posterior(learner_fn) -> bool:
    cases = [((x0, x_t, a, ab), {}) for x0, x_t, a, ab, _ in _cases(200, 4)]
    def no_roots(x0, x_t, a, abp):
        return (1 - a) * abp / (1 - a * abp) * x0 + (1 - abp) * a / (1 - a * abp) * x_t, \
            reference_q_posterior(x0, x_t, a, abp)[1]

    mistakes = {"the variance β_t where β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) belongs":
                lambda x0, x_t, a, abp: (reference_q_posterior(x0, x_t, a, abp)[0], 1 - a),
                NO_ROOTS: no_roots}
    return compare("2.1", learner_fn, reference_q_posterior, cases, "q_posterior (mean and variance)",
                   variants=mistakes)


def check_predict_x0(learner_fn) -> bool:
    cases = [((x_t, eps, a * ab), {}) for x_t, eps, a, ab, _ in _cases(300, 4)]
    mistakes = {NO_ROOTS: lambda x_t, eps, ab: (x_t - (1 - ab) * eps) / ab,
                "not divided by √ᾱ_t": lambda x_t, eps, ab: x_t - (1 - ab).sqrt() * eps,
                "multiplied by √ᾱ_t where dividing belongs": lambda x_t, eps, ab: ab.sqrt() * x_t - (1 - ab).sqrt() * eps}
    return compare("2.2", learner_fn, reference_predict_x0, cases, "predict_x0", variants=mistakes)


def check_ddpm_step(learner_fn) -> bool:
    cases = [((x_t, eps, a, ab, z), {}) for x_t, eps, a, ab, z in _cases(400, 4)]
    def mean(x_t, eps, a, ab):
        return (x_t - (1 - a) / (1 - ab).sqrt() * eps) / a.sqrt()

    def sigma(a, abp):
        return ((1 - a) * (1 - abp) / (1 - a * abp)).sqrt()

    mistakes = {
        "σ_t² = β_t: a valid sampler, but this step asks for β̃_t":
            lambda x_t, eps, a, abp, z: mean(x_t, eps, a, a * abp) + (1 - a).sqrt() * z,
        "a square root missing: divided by α_t where √α_t belongs":
            lambda x_t, eps, a, abp, z: mean(x_t, eps, a, a * abp) * a.sqrt() / a + sigma(a, abp) * z,
        ONE_STEP_EARLY: lambda x_t, eps, a, abp, z: mean(x_t, eps, a, abp) + sigma(a, abp) * z,
    }
    return compare("2.3", learner_fn, reference_ddpm_step, cases, "ddpm_step", variants=mistakes)
