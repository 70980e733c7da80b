"""Checks for notebook 01 (the forward Markov chain). References come from course_lib.diffusion.forward."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.diffusion.forward import forward_step, q_sample
from course_lib.diffusion.schedules import make_schedule, schedule_from_betas

HINTS = {
    "1.1": ("the signal shrinks and noise is added so that the variance stays 1: both scales are square roots.",
            "x_t = √α_t · x_{t−1} + √(1 − α_t) · ε."),
    "1.2": ("ᾱ_t is a running product: the signal left after steps 1 … t, one value per step.",
            "ᾱ_t = α_1 · α_2 · … · α_t: torch.cumprod(alphas, dim=0)."),
    "1.3": ("one jump from x0 to x_t: the same form as one step, with the product ᾱ_t in place of α_t.",
            "x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε."),
}
NO_ROOTS = "square roots missing: a variance where its square root belongs"
NOISE_ROOT = "a square root missing on the noise scale"


def _one_step_schedule(alpha_t: torch.Tensor):
    return schedule_from_betas((1 - alpha_t).reshape(1).double().expand(2).clone())


def reference_forward_step(x_prev: torch.Tensor, alpha_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Seed §2.1: x_t = √α_t x_{t-1} + √(1 − α_t) ε, via course_lib.diffusion.forward.forward_step."""
    return forward_step(x_prev, 0, _one_step_schedule(alpha_t), noise=eps)


def reference_alpha_bar(alphas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s ≤ t} α_s for every t, via course_lib.diffusion.schedules."""
    return schedule_from_betas(1 - alphas.double()).alpha_bars


def reference_q_sample(x0: torch.Tensor, alpha_bar_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """q(x_t | x0): x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε."""
    return forward_step(x0, 0, _one_step_schedule(alpha_bar_t), noise=eps)


def _fresh(seed: int, shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.rand(1, generator=g).item() * 0.9 + 0.05


def check_forward_step(learner_fn) -> bool:
    cases = []
    for seed, shape in enumerate([(4, 1), (3, 2), (2, 1, 5, 5), (1, 3, 2, 4, 4)]):
        x, a = _fresh(seed, shape)
        cases.append(((x, torch.tensor(a), torch.randn(shape, generator=torch.Generator().manual_seed(50 + seed))), {}))
    mistakes = {NO_ROOTS: lambda x, a, eps: a * x + (1 - a) * eps,
                NOISE_ROOT: lambda x, a, eps: a.sqrt() * x + (1 - a) * eps}
    return compare("1.1", learner_fn, reference_forward_step, cases, "forward_step", variants=mistakes)


def check_alpha_bar(learner_fn) -> bool:
    cases = [((make_schedule(name, 50).alphas,), {}) for name in ("linear", "cosine")]
    cases.append(((torch.tensor([0.9, 0.8, 0.5]),), {}))
    mistakes = {
        "a running sum where a running product belongs": lambda alphas: torch.cumsum(alphas, 0),
        "one product of all steps, not one per step": lambda alphas: torch.prod(alphas).expand_as(alphas),
        "off by one timestep (paper vs code index): the product stops one step early":
            lambda alphas: torch.cat([torch.ones(1, dtype=alphas.dtype), torch.cumprod(alphas, 0)[:-1]]),
    }
    return compare("1.2", learner_fn, reference_alpha_bar, cases, "alpha_bar", variants=mistakes)


def check_q_sample(learner_fn) -> bool:
    cases = []
    for seed, shape in enumerate([(6, 1), (2, 1, 4, 4), (1, 2, 3, 4, 4)]):
        x, a = _fresh(10 + seed, shape)
        cases.append(((x, torch.tensor(a), torch.randn(shape, generator=torch.Generator().manual_seed(70 + seed))), {}))
    mistakes = {NO_ROOTS: lambda x0, ab, eps: ab * x0 + (1 - ab) * eps,
                NOISE_ROOT: lambda x0, ab, eps: ab.sqrt() * x0 + (1 - ab) * eps}
    return compare("1.3", learner_fn, reference_q_sample, cases, "q_sample", variants=mistakes)
