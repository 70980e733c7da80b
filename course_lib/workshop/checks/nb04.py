"""Checks for notebook 04 (image DDPM). References: course_lib.diffusion.forward, course_lib.diffusion.samplers, course_lib.models.unet2d."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.workshop.checks import compare
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.guidance import guided_denoiser
from course_lib.diffusion.samplers import ddim_step
from course_lib.diffusion.schedules import NoiseSchedule, schedule_from_betas

NUM_CLASSES = 10

HINTS = {
    "4.1": ("noise each image to its own timestep in one jump (q_sample), ask the model for the noise, and score "
            "its guess against the noise you used.",
            "x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε with ᾱ_t = alpha_bars[t] reshaped to (B, 1, 1, 1); the model gets "
            "(x_t, t, labels) and its output is compared with the noise ε (mean squared error)."),
    "4.2": ("two moves with the same predicted noise: estimate the clean image x̂0 from x_t, then put it back at the "
            "next, lower noise level (η = 0: no fresh noise, no clipping).",
            "x̂0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t (Song et al. 2021, Eq. 12).",
            "x_next = √ᾱ_next·x̂0 + √(1 − ᾱ_next)·ε̂, with x̂0 from level 2."),
    "4.3": ("start from the unconditional prediction and move w times along the direction the label adds: "
            "w = 0 gives ε(x_t, ∅), w = 1 gives ε(x_t, y).",
            "ε̂ = ε(x_t, ∅) + w·(ε(x_t, y) − ε(x_t, ∅))."),
}


def _schedule_from_alpha_bars(alpha_bars: torch.Tensor) -> NoiseSchedule:
    """The schedule whose ᾱ_t are ``alpha_bars`` (T,), decreasing: β_t = 1 − ᾱ_t / ᾱ_{t−1}."""
    alpha_bars = alpha_bars.double().reshape(-1)
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    return schedule_from_betas(1 - alpha_bars / previous)


class StandInDenoiser(nn.Module):
    """An analytic stand-in for the U-Net: ε̂(x_t, t, y) = 0.6·x_t + 0.002·t + 0.05·y, per pixel.

    It needs ``y`` (like the class-conditional U-Net), and t and y change its output, so a loss
    computed with the wrong x_t, t or labels differs from the reference.
    """

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        return 0.6 * x + 0.002 * t.view(shape).float() + 0.05 * y.view(shape).float()


# --- references ---------------------------------------------------------------------------------

def reference_training_loss(model, x0: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                            alpha_bars: torch.Tensor) -> torch.Tensor:
    """‖ε − ε_θ(x_t, t, y)‖² averaged (Ho et al. 2020, Eq. 14), x_t from course_lib.diffusion.forward.q_sample (Eq. 4)."""
    x_t = q_sample(x0, t, _schedule_from_alpha_bars(alpha_bars), noise=noise)
    return F.mse_loss(model(x_t, t, labels), noise)


def reference_ddim_update(x_t: torch.Tensor, eps_hat: torch.Tensor, alpha_bar_t: torch.Tensor,
                          alpha_bar_next: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step (Song et al. 2021a, Eq. 12, η = 0), via course_lib.diffusion.samplers.ddim_step.

    ``alpha_bar_next`` = 1 means the last jump, to clean data.
    """
    if float(alpha_bar_next) >= 1.0:
        schedule, t, t_next = _schedule_from_alpha_bars(alpha_bar_t.reshape(1)), 0, -1
    else:
        schedule, t, t_next = _schedule_from_alpha_bars(torch.stack([alpha_bar_next, alpha_bar_t])), 1, 0
    return ddim_step(lambda x, tt: eps_hat, x_t, t, t_next, schedule, eta=0.0, clip_x0=False).x


class _FixedPredictions(nn.Module):
    """A 'model' for guided_denoiser that returns ``eps_cond`` for real labels and ``eps_uncond`` for the null label."""

    num_classes = NUM_CLASSES

    def __init__(self, eps_cond: torch.Tensor, eps_uncond: torch.Tensor):
        super().__init__()
        self.eps_cond, self.eps_uncond = eps_cond, eps_uncond

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (2B, ...) = [x_t, x_t], y: (2B,) = [labels, null labels], as guided_denoiser calls it."""
        is_null = (y == self.num_classes).view(-1, *[1] * (x.dim() - 1))
        return torch.where(is_null, torch.cat([self.eps_uncond] * 2), torch.cat([self.eps_cond] * 2))


def reference_guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """ε̂ = ε(x_t, ∅) + w·(ε(x_t, y) − ε(x_t, ∅)), via course_lib.diffusion.guidance.guided_denoiser."""
    b = eps_cond.shape[0]
    model_fn = guided_denoiser(_FixedPredictions(eps_cond, eps_uncond), torch.zeros(b, dtype=torch.long), w)
    return model_fn(torch.zeros_like(eps_cond), torch.zeros(b, dtype=torch.long))


# --- common mistakes, each named by its diagnosis ------------------------------------------------

def _loss_with(model, x0, labels, t, noise, alpha_bars, target="eps", roots=True, shift=0, use_labels=True,
               reduction="mean"):
    """The ε loss with one mistake: another target, no square roots, ᾱ_{t−shift}, labels dropped, a sum."""
    ab = alpha_bars[(t - shift).clamp(min=0)].view(-1, *[1] * (x0.dim() - 1))
    x_t = (ab.sqrt() * x0 + (1 - ab).sqrt() * noise) if roots else (ab * x0 + (1 - ab) * noise)
    prediction = model(x_t, t, labels if use_labels else torch.zeros_like(labels))
    return F.mse_loss(prediction, noise if target == "eps" else x0, reduction=reduction)


_LOSS_MISTAKES = {
    "the prediction compared with x0, not with the noise ε": lambda *a: _loss_with(*a, target="x0"),
    "square roots missing in x_t: ᾱ_t where √ᾱ_t belongs": lambda *a: _loss_with(*a, roots=False),
    "off by one timestep (paper vs code index): ᾱ_{t−1} where ᾱ_t = alpha_bars[t] belongs":
        lambda *a: _loss_with(*a, shift=1),
    "the labels never reach the model": lambda *a: _loss_with(*a, use_labels=False),
    "a sum where the mean belongs": lambda *a: _loss_with(*a, reduction="sum"),
}


def _ddim_with(x_t, eps, a, a_next, clip=False, root=True):
    x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    x0 = x0.clamp(-1, 1) if clip else x0
    return a_next.sqrt() * x0 + ((1 - a_next).sqrt() if root else 1 - a_next) * eps


_DDIM_MISTAKES = {
    "`alpha_bar_t` and `alpha_bar_next` swapped": lambda x_t, eps, a, a_next: _ddim_with(x_t, eps, a_next, a),
    "x̂0 clipped to [−1, 1]: this step does not clip": lambda *a: _ddim_with(*a, clip=True),
    "a square root missing on the noise direction: 1 − ᾱ_next where √(1 − ᾱ_next) belongs":
        lambda *a: _ddim_with(*a, root=False),
}


# --- checks ---------------------------------------------------------------------------------------

def _linear_alpha_bars(T: int = 1000) -> torch.Tensor:
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


def check_training_loss(learner_fn) -> bool:
    g = torch.Generator().manual_seed(41)
    alpha_bars = _linear_alpha_bars()
    model = StandInDenoiser()
    cases = []
    for shape in [(4, 1, 6, 6), (3, 1, 5, 7), (6, 1, 4, 4)]:
        b = shape[0]
        x0 = torch.rand(shape, generator=g) * 2 - 1
        labels = torch.randint(0, NUM_CLASSES, (b,), generator=g)
        t = torch.randint(0, len(alpha_bars), (b,), generator=g)
        cases.append(((model, x0, labels, t, torch.randn(shape, generator=g), alpha_bars), {}))
    t_ends = torch.tensor([0, 999])  # the first and the last step
    cases.append(((model, torch.ones(2, 1, 3, 3), torch.tensor([3, 7]), t_ends, torch.randn(2, 1, 3, 3, generator=g),
                   alpha_bars), {}))
    short = torch.linspace(0.95, 0.05, 8)  # a coarse 8-step schedule: indexing ᾱ one step off shows clearly
    cases.append(((model, torch.rand(5, 1, 4, 4, generator=g) * 2 - 1, torch.arange(5), torch.tensor([0, 2, 4, 6, 7]),
                   torch.randn(5, 1, 4, 4, generator=g), short), {}))
    return compare("4.1", learner_fn, reference_training_loss, cases, "training_loss", variants=_LOSS_MISTAKES)


def check_ddim_update(learner_fn) -> bool:
    g = torch.Generator().manual_seed(42)
    alpha_bars = _linear_alpha_bars()
    cases = []
    for t, t_next in [(999, 979), (500, 480), (120, 100), (40, 0), (19, -1)]:
        x_t, eps = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
        a_next = alpha_bars[t_next] if t_next >= 0 else torch.tensor(1.0)
        cases.append(((x_t, eps, alpha_bars[t], a_next), {}))
    return compare("4.2", learner_fn, reference_ddim_update, cases, "ddim_update", variants=_DDIM_MISTAKES)


def check_guided_eps(learner_fn) -> bool:
    g = torch.Generator().manual_seed(43)
    cases = []
    for w in [0.0, 1.0, 3.0, 7.5]:
        shape = (2, 1, 4, 4)
        cases.append(((torch.randn(shape, generator=g), torch.randn(shape, generator=g), w), {}))
    mistakes = {
        "the other convention: yours is ours with w + 1 (Ho & Salimans write ε(y) + w·(ε(y) − ε(∅)))":
            lambda c, u, w: c + w * (c - u),
        "the direction reversed: move from ε(x_t, ∅) towards ε(x_t, y)": lambda c, u, w: u + w * (u - c),
        "the conditional prediction scaled, the unconditional one unused": lambda c, u, w: w * c,
        "w ignored": lambda c, u, w: (c + u) / 2,
    }
    return compare("4.3", learner_fn, reference_guided_eps, cases, "guided_eps", variants=mistakes)
