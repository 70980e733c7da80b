"""Checks for notebook 01 (the forward Markov chain). References come from course_lib.diffusion.forward."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.diffusion.forward import forward_step, q_sample
from course_lib.diffusion.schedules import make_schedule, schedule_from_betas


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
    return compare("1.1", learner_fn, reference_forward_step, cases, "forward_step",
                   hint="both the signal and the noise are scaled by square roots: √α_t and √(1 − α_t).")


def check_alpha_bar(learner_fn) -> bool:
    cases = [((make_schedule(name, 50).alphas,), {}) for name in ("linear", "cosine")]
    cases.append(((torch.tensor([0.9, 0.8, 0.5]),), {}))
    return compare("1.2", learner_fn, reference_alpha_bar, cases, "alpha_bar",
                   hint="ᾱ_t multiplies α_1 … α_t (torch.cumprod); it has one value per step.")


def check_q_sample(learner_fn) -> bool:
    cases = []
    for seed, shape in enumerate([(6, 1), (2, 1, 4, 4), (1, 2, 3, 4, 4)]):
        x, a = _fresh(10 + seed, shape)
        cases.append(((x, torch.tensor(a), torch.randn(shape, generator=torch.Generator().manual_seed(70 + seed))), {}))
    return compare("1.3", learner_fn, reference_q_sample, cases, "q_sample",
                   hint="x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε: one jump with the product ᾱ_t.")
