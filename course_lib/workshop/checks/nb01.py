"""Checks for notebook 01 (the forward Markov chain). References come from course_lib.diffusion.forward
and the timestep sampler of course_lib.diffusion.objectives."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import check_idea, seeded
from course_lib.diffusion.forward import forward_step, q_sample, randn_like
from course_lib.diffusion.objectives import uniform_timesteps
from course_lib.diffusion.schedules import NoiseSchedule, make_schedule, schedule_from_betas


HINTS = {
    "1.1": ("the signal shrinks and noise is added so that the variance stays 1: both scales are square roots.",
            "x_t = √α_t · x_{t−1} + √(1 − α_t) · ε."),
    "1.2": ("ᾱ_t is a running product: the signal left after steps 1 … t, one value per step.",
            "ᾱ_t = α_1 · α_2 · … · α_t: torch.cumprod(alphas, dim=0)."),
    "1.3": ("a training batch gives every example its own noise level: draw one timestep per example, then the "
            "noise, and jump each x0 to its own step in one go, with q(x_t | x0).",
            "t = torch.randint(0, T, (B,), generator=generator) (code steps 0 … T − 1), then ε with the same generator; "
            "x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε with alpha_bars[t] (Ho et al. 2020, Eq. 4).",
            "draw t first, then ε; reshape alpha_bars[t] to (B, 1, …, 1) so that it broadcasts over x0 of any shape; "
            "return (x_t, t, ε)."),
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


def _schedule_from_alpha_bars(alpha_bars: torch.Tensor) -> NoiseSchedule:
    """The schedule whose ᾱ_t are ``alpha_bars`` (T,), decreasing: β_t = 1 − ᾱ_t / ᾱ_{t−1}."""
    alpha_bars = alpha_bars.double().reshape(-1)
    return schedule_from_betas(1 - alpha_bars / torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]]))


def reference_noisy_batch(x0: torch.Tensor, alpha_bars: torch.Tensor, generator: torch.Generator):
    """(x_t, t, ε): t ~ U{0, …, T−1} per example, then ε ~ N(0, I), then x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε
    (Ho et al. 2020, Eq. 4 and Algorithm 1), via course_lib's uniform_timesteps, randn_like and q_sample."""
    schedule = _schedule_from_alpha_bars(alpha_bars)
    t = uniform_timesteps(x0.shape[0], schedule, generator)
    eps = randn_like(x0, generator)
    return q_sample(x0, t, schedule, noise=eps), t, eps


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


def _call_noisy_batch(fn):
    """``fn`` called with a fresh generator per call, so the learner's function and the reference draw alike."""
    return lambda x0, alpha_bars, seed: fn(x0, alpha_bars, seeded(seed))


def _every_step_drawn(learner_fn) -> str | None:
    """t runs over the code timesteps 0 … T−1, all of them, on a batch large enough to meet each."""
    alpha_bars = make_schedule("linear", 5).alpha_bars
    _, t, _ = learner_fn(torch.zeros(400, 1), alpha_bars, seeded(0))
    seen = sorted(set(torch.as_tensor(t).flatten().tolist()))
    if len(seen) == 1:
        return f"all 400 examples got the same timestep t = {seen[0]}: draw one per example, shape (B,)"
    if seen != list(range(5)):
        return (f"with T = 5 steps your timesteps were {seen} over 400 examples; code timesteps are 0 … T−1 "
                "(torch.randint's upper bound is exclusive)")
    return None


def _matches_q(learner_fn) -> str | None:
    """Examples at step t spread around √ᾱ_t·x0 with variance 1 − ᾱ_t: q(x_t | x0) for each example's own t."""
    alpha_bars = torch.tensor([0.9, 0.5, 0.1])
    x_t, t, _ = learner_fn(torch.full((3000, 2), 2.0), alpha_bars, seeded(1))
    for step, ab in enumerate(alpha_bars):
        group = x_t[torch.as_tensor(t) == step]
        mean, var = group.mean().item(), group.var().item()
        if abs(mean - 2 * ab.sqrt().item()) > 0.1 or abs(var - (1 - ab.item())) > 0.1:
            return (f"examples with t = {step} have mean {mean:.2f} and variance {var:.2f}; q(x_t | x0 = 2) has "
                    f"mean {2 * ab.sqrt().item():.2f} and variance {1 - ab.item():.2f}")
    return None


def _noisy_batch_without_roots(x0, alpha_bars, seed):
    """The batch of reference_noisy_batch with ᾱ_t and 1 − ᾱ_t where their square roots belong."""
    _, t, eps = reference_noisy_batch(x0, alpha_bars, seeded(seed))
    ab = alpha_bars.to(x0.dtype)[t].reshape(-1, *[1] * (x0.dim() - 1))
    return ab * x0 + (1 - ab) * eps, t, eps


def _noisy_batch_noise_first(x0, alpha_bars, seed):
    """The batch of reference_noisy_batch with ε drawn from the generator before t."""
    schedule, generator = _schedule_from_alpha_bars(alpha_bars), seeded(seed)
    eps = randn_like(x0, generator)
    t = uniform_timesteps(x0.shape[0], schedule, generator)
    return q_sample(x0, t, schedule, noise=eps), t, eps


NOISY_BATCH_MISTAKES = {
    NO_ROOTS: _noisy_batch_without_roots,
    "ε drawn before t: the same generator gives other numbers in another order (draw t, then ε)":
        _noisy_batch_noise_first,
}


def check_noisy_batch(learner_fn) -> bool:
    g = torch.Generator().manual_seed(13)
    linear, short = make_schedule("linear", 1000).alpha_bars, torch.linspace(0.95, 0.05, 8)
    cases = [((torch.randn(shape, generator=g), alpha_bars, seed), {}) for seed, (shape, alpha_bars) in enumerate([
        ((6, 1), linear), ((5, 2), short), ((3, 1, 4, 4), linear), ((2, 4, 1, 3, 3), short)], start=130)]
    return check_idea("1.3", learner_fn, reference_noisy_batch, cases, "noisy_batch (x_t, t, ε)",
                      before=[_every_step_drawn, _matches_q], call=_call_noisy_batch,
                      done="gives each example the noise level of its own step", variants=NOISY_BATCH_MISTAKES)
