"""Checks for notebook 14 (long videos with diffusion forcing). References: course_lib.diffusion.forcing.

Videos are (B, F, C, H, W); timesteps are code timesteps 0 … T − 1, with −1 meaning "clean" in a
sampler step. The stand-in denoiser reads every frame's own timestep, so an answer that gives the
model the wrong levels shows.
"""
from __future__ import annotations

import torch

from course_lib.diffusion.forcing import forcing_step, pyramid_schedule, q_sample_frames
from course_lib.diffusion.schedules import make_schedule
from course_lib.workshop.checks import compare

HINTS = {
    "14.1": ("a clip whose frames sit at different noise levels is a batch of B·F images with one timestep each: "
             "noise every frame with the forward process at its own t.",
             "x_t[b, j] = √ᾱ_{t[b, j]} · x0[b, j] + √(1 − ᾱ_{t[b, j]}) · ε[b, j] (Ho et al. 2020, Eq. 4), "
             "ᾱ = schedule.alpha_bars.",
             "gather ᾱ = schedule.alpha_bars[t] (B, F), reshape it to (B, F, 1, 1, 1), then combine x0 and eps."),
    "14.2": ("row i of the matrix is the noise level of every frame after i sampler iterations: the known frames "
             "are 0 throughout, the others start at S, and frame j starts to fall `delay` iterations after frame j − 1.",
             "levels[i, j] = clamp(S − i + delay · (j − known), 0, S) for j ≥ known, 0 for j < known, "
             "i = 0 … S + delay · (frames − known − 1).",
             "i = torch.arange(rows)[:, None], j = torch.arange(frames)[None, :]; compute, clamp, then set the "
             "first `known` columns to 0; the last row must be all zeros."),
    "14.3": ("one DDIM step, frame by frame: every frame is shown to the model at its own level, and each frame "
             "whose level falls moves to its next level; the others stay as they are.",
             "x̂0 = (x − √(1 − ᾱ_t) ε̂)/√ᾱ_t, x' = √ᾱ_{t'} x̂0 + √(1 − ᾱ_{t'}) ε̂ (Song et al. 2021a, Eq. 12, η = 0), "
             "with ᾱ_{t'} = 1 where t' = −1 (clean) and the model told max(t, 0).",
             "t_model = t.clamp(min=0).expand(B, F); eps = model_fn(x, t_model); build ᾱ_t and ᾱ_{t'} as "
             "(1, F, 1, 1, 1) tensors (beware alpha_bars[-1] is the noisiest level, not 1); "
             "torch.where(t_next < t, x_next, x)."),
}


def stand_in_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear ε-model for clips (B, F, C, H, W) that reads each frame's own level t (B, F) or (F,);
    each frame's output also depends on the frame before it and on that frame's level."""
    t = t.expand(x.shape[:2]).float().view(*x.shape[:2], 1, 1, 1)
    h = x * (1 + t / 10)
    return torch.tanh(0.3 * h + 0.2 * torch.roll(h, 1, dims=1))


# --- references ---------------------------------------------------------------------------------

def reference_noise_frames(x0, t, schedule, eps):
    """x_t with a level per frame: course_lib.diffusion.forcing.q_sample_frames."""
    return q_sample_frames(x0, t, schedule, noise=eps)


def reference_pyramid(frames, levels, known, delay):
    """The schedule matrix: course_lib.diffusion.forcing.pyramid_schedule."""
    return pyramid_schedule(frames, levels, known, delay)


def reference_rolling_step(model_fn, x, t, t_next, schedule):
    """One per-frame DDIM step with an ε-model, no clipping: course_lib.diffusion.forcing.forcing_step."""
    return forcing_step(model_fn, x, t, t_next, schedule, objective="eps", clip_x0=False)[0]


# --- 14.1 per-frame noising ------------------------------------------------------------------------

def _noise_with(x0, t, schedule, eps, one_level=False, no_sqrt=False, per_step=False):
    """x_t written out with one mistake: the first frame's level for the whole clip, ᾱ without square roots,
    or the one-step α_t where ᾱ_t belongs."""
    if one_level:
        t = t[:, :1].expand_as(t)
    a = (schedule.alphas if per_step else schedule.alpha_bars)[t].view(*t.shape, *[1] * (x0.dim() - 2))
    return (a * x0 + (1 - a) * eps) if no_sqrt else (a.sqrt() * x0 + (1 - a).sqrt() * eps)


NOISE_MISTAKES = {
    "one level for the whole clip (the first frame's): every frame has its own t[b, j]":
        lambda *a: _noise_with(*a, one_level=True),
    "the square roots missing: the weights are √ᾱ and √(1 − ᾱ)": lambda *a: _noise_with(*a, no_sqrt=True),
    "the one-step α_t (schedule.alphas) where the product ᾱ_t (schedule.alpha_bars) belongs":
        lambda *a: _noise_with(*a, per_step=True),
}


def check_noise_frames(learner_fn) -> bool:
    g = torch.Generator().manual_seed(141)
    linear, cosine = make_schedule("linear", 100), make_schedule("cosine", 50)
    cases = []
    for schedule, shape in ((linear, (2, 4, 1, 3, 3)), (cosine, (3, 5, 3, 2, 2)), (linear, (1, 6, 1, 4, 4))):
        t = torch.randint(0, schedule.num_steps, shape[:2], generator=g)
        t[0, 0], t[0, -1] = 0, schedule.num_steps - 1
        cases.append(((torch.rand(shape, generator=g) * 2 - 1, t, schedule, torch.randn(shape, generator=g)), {}))
    return compare("14.1", learner_fn, reference_noise_frames, cases, "noise_frames", variants=NOISE_MISTAKES)


# --- 14.2 the pyramid schedule matrix ----------------------------------------------------------------

def _pyramid_with(frames, levels, known, delay, no_start=False, from_zero=False, noisy_known=False,
                  no_clamp=False):
    """The matrix with one mistake: no start row, delays counted from frame 0, the known frames left
    noisy, or no clamp to [0, S]."""
    rows = levels + delay * (frames - known - 1) + 1
    i = torch.arange(1 if no_start else 0, rows)[:, None]
    j = torch.arange(frames)[None, :]
    matrix = levels - i + delay * (j - (0 if from_zero else known))
    if not no_clamp:
        matrix = matrix.clamp(0, levels)
    if not noisy_known:
        matrix[:, :known] = 0
    return matrix


PYRAMID_MISTAKES = {
    "the start row missing: row 0 is every unknown frame at pure noise, before any iteration":
        lambda *a: _pyramid_with(*a, no_start=True),
    "the delay counted from frame 0: the first frame to generate (frame `known`) starts at once":
        lambda *a: _pyramid_with(*a, from_zero=True),
    "the known frames left noisy: their columns are 0 in every row": lambda *a: _pyramid_with(*a, noisy_known=True),
    "no clamp: levels stay in [0, S] (0 once clean, S until a frame starts)": lambda *a: _pyramid_with(*a, no_clamp=True),
}


def check_pyramid(learner_fn) -> bool:
    cases = [((6, 4, 2, 1), {}), ((8, 5, 0, 1), {}), ((5, 3, 1, 2), {}), ((4, 6, 0, 0), {}), ((7, 4, 3, 4), {})]
    return compare("14.2", learner_fn, reference_pyramid, cases, "pyramid", variants=PYRAMID_MISTAKES)


# --- 14.3 one rolling-sampler step -------------------------------------------------------------------

def _step_with(model_fn, x, t, t_next, schedule, wrap_clean=False, raw_t=False, all_frames=False):
    """The step written out with one mistake: ᾱ_{−1} read as alpha_bars[-1], the model told t = −1 for clean
    frames, or every frame moved (clean ones re-denoised too)."""
    B, F = x.shape[:2]
    seen = (t if raw_t else t.clamp(min=0)).expand(B, F)
    eps = model_fn(x, seen)
    view = (1, F, 1, 1, 1)
    a_t = schedule.alpha_bars[t.clamp(min=0)].view(view)
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    a_next = schedule.alpha_bars[t_next] if wrap_clean else torch.where(
        t_next >= 0, schedule.alpha_bars[t_next.clamp(min=0)], torch.ones(F))
    a_next = a_next.view(view)
    x_next = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x_next if all_frames else torch.where((t_next < t).view(view), x_next, x)


STEP_MISTAKES = {
    "alpha_bars[-1] for a clean frame: index −1 is the noisiest level; clean means ᾱ = 1":
        lambda *a: _step_with(*a, wrap_clean=True),
    "the model told t = −1 for the clean frames: show them at level 0": lambda *a: _step_with(*a, raw_t=True),
    "every frame moved: a frame whose level does not fall (a clean one) must stay as it is":
        lambda *a: _step_with(*a, all_frames=True),
}


def check_rolling_step(learner_fn) -> bool:
    g = torch.Generator().manual_seed(143)
    linear, cosine = make_schedule("linear", 100), make_schedule("cosine", 60)
    cases = [((stand_in_eps, torch.randn(2, 4, 1, 3, 3, generator=g), torch.tensor([-1, 19, 59, 99]),
               torch.tensor([-1, -1, 39, 79]), linear), {}),
             ((stand_in_eps, torch.randn(1, 5, 3, 2, 2, generator=g), torch.tensor([-1, -1, 11, 35, 59]),
               torch.tensor([-1, -1, -1, 23, 47]), cosine), {}),
             ((stand_in_eps, torch.randn(3, 3, 1, 2, 2, generator=g), torch.tensor([99, 99, 99]),
               torch.tensor([89, 89, 99]), linear), {})]
    return compare("14.3", learner_fn, reference_rolling_step, cases, "rolling_step", variants=STEP_MISTAKES)
