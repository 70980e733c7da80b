"""Checks for notebook 02 (the reverse process). References come from course_lib.diffusion.forward,
course_lib.diffusion.samplers, course_lib.diffusion.objectives and course_lib.training.

The one-step functions (2.1–2.3) take the schedule numbers of one step as 0-dim tensors: α_t and
ᾱ_{t−1} (so ᾱ_t = α_t·ᾱ_{t−1} and β_t = 1 − α_t); their references build a two-step schedule with
exactly those numbers and call the course code at code timestep t = 1. The loops (2.4 sampling,
2.5 training) are compared with the course's sampler and loss on the same generator, and checked
by what they do: an exact denoiser's samples land on the data, a trained MLP's samples on two moons.
"""
from __future__ import annotations

import math

import torch

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import check_idea, one_thread, seeded, with_seed
from course_lib.data.toy import gaussian_mixture_1d, two_moons
from course_lib.diffusion.forward import q_posterior, x0_from_eps
from course_lib.diffusion.objectives import diffusion_loss
from course_lib.diffusion.samplers import ddpm_sample
from course_lib.diffusion.schedules import make_schedule, schedule_from_betas
from course_lib.metrics.toy import mmd_rbf
from course_lib.models.mlp import MLPDenoiser
from course_lib.training import random_rows


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
    "2.4": ("start from pure noise and walk the chain backwards one step at a time, every step once, asking the model "
            "for the noise at the step you are on; the last step adds no noise.",
            "x_T ~ N(0, I) from the generator; for t = T − 1 … 0: ε̂ = model_fn(x, t as a (B,) tensor), then your "
            "ddpm_step with ᾱ_t, ᾱ_{t−1} (1 at t = 0) and fresh z from the generator (Ho et al. 2020, Algorithm 2).",
            "z = 0 at t = 0, so the last step returns the mean; draw x_T first, then one z per step, all from the "
            "generator, so that the same seed gives the same samples."),
    "2.5": ("training repeats one move: take a batch, noise it to random steps, ask the model for the noise and "
            "nudge its weights to make the squared error smaller.",
            "Adam on model.parameters(); each step: rows of the data, then t, then ε (in that order, from the "
            "generator), loss = mean ‖ε − model(x_t, t)‖² (Ho et al. 2020, Algorithm 1).",
            "zero_grad, backward, step, and append loss.item() for every step; return the list of floats."),
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


# --- 2.4 the DDPM sampling loop ------------------------------------------------------------------

def gaussian_denoiser(schedule, mean: float, std: float):
    """The exact ε-prediction for data x0 ~ N(mean, std²) per coordinate: E[ε | x_t] in closed form.

    x_t = √ᾱ x0 + √(1 − ᾱ) ε is Gaussian with mean √ᾱ·mean and variance ᾱ·std² + 1 − ᾱ, and
    E[ε | x_t] = √(1 − ᾱ) (x_t − √ᾱ·mean) / (ᾱ·std² + 1 − ᾱ). With std = 0 the data is one point.
    """
    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = schedule.alpha_bars[t].reshape(-1, *[1] * (x_t.dim() - 1))
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * mean) / (ab * std**2 + 1 - ab)
    return model_fn


def _bent_denoiser(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear stand-in for a network, so that a wrong t or a wrong x shows in the samples."""
    scale = (1 + t.float() / 25).reshape(-1, *[1] * (x_t.dim() - 1))
    return torch.tanh(0.8 * x_t + 0.1 * scale) * 0.9


def reference_ddpm_sample_loop(model_fn, shape, schedule, generator):
    """Ancestral sampling, Ho et al. 2020, Algorithm 2 (σ_t² = β̃_t, no clipping), via course_lib's ddpm_sample."""
    return ddpm_sample(model_fn, shape, schedule, generator=generator, clip_x0=False)


def _call_sampler(fn):
    return lambda model_fn, shape, schedule, seed: fn(model_fn, shape, schedule, seeded(seed))


def _visits_every_step_once(learner_fn) -> str | None:
    """The model is asked at t = T−1, T−2, …, 0, once each, with one timestep per sample."""
    schedule, asked = make_schedule("linear", 6), []

    def spy(x_t, t):
        asked.append(torch.as_tensor(t).flatten().tolist())
        return torch.zeros_like(x_t)

    learner_fn(spy, (3, 2), schedule, seeded(0))
    if any(len(t) != 3 or len(set(t)) != 1 for t in asked):
        return f"the model got t = {asked[0]}: pass one timestep per sample, a (B,) tensor full of t"
    visited = [t[0] for t in asked]
    if visited != list(range(5, -1, -1)):
        return f"with T = 6 your loop asked the model at t = {visited}; it must visit 5, 4, …, 0, once each"
    return None


def _lands_on_the_point(learner_fn) -> str | None:
    """With the exact denoiser of a one-point data set (x0 = 1.5) every particle ends on the point."""
    schedule = make_schedule("linear", 50)
    x = learner_fn(gaussian_denoiser(schedule, 1.5, 0.0), (500, 1), schedule, seeded(1))
    if (x - 1.5).abs().max() > 1e-3:
        return (f"with the exact denoiser of the one-point data x0 = 1.5 your particles end at mean {x.mean():.3f}, "
                f"spread {x.std():.1e}: every particle must land on 1.5 (no noise after the last step)")
    return None


def _matches_gaussian_data(learner_fn) -> str | None:
    """With the exact denoiser of N(0.5, 0.3²) the samples have that mean and spread."""
    schedule = make_schedule("linear", 1000)  # many steps: few would shrink the spread a little
    x = learner_fn(gaussian_denoiser(schedule, 0.5, 0.3), (2000, 1), schedule, seeded(2))
    if abs(x.mean() - 0.5) > 0.03 or abs(x.std() - 0.3) > 0.03:
        return f"for data N(0.5, 0.3²) and its exact denoiser your samples have mean {x.mean():.2f}, std {x.std():.2f}"
    return None


def _draws_from_the_generator(learner_fn) -> str | None:
    """Two runs with generators of one seed give the same samples: every random number comes from ``generator``."""
    schedule = make_schedule("linear", 6)
    a, b = (learner_fn(_bent_denoiser, (3, 2), schedule, seeded(3)) for _ in range(2))
    if not torch.equal(a, b):
        return ("two runs with generators of the same seed gave different samples: noise not from the generator "
                "(draw x_T and every z with generator=generator)")
    return None


def _ddpm_loop_with(model_fn, shape, schedule, seed, same_z=False, beta_at_end=False):
    """Algorithm 2 written out, with one mistake: one z for every step, or σ_t = √β_t with noise at t = 0 too."""
    generator = seeded(seed)
    x = torch.randn(shape, generator=generator)
    z_once = torch.randn(shape, generator=generator) if same_z else None
    for t in range(schedule.num_steps - 1, -1, -1):
        eps = model_fn(x, torch.full((shape[0],), t, dtype=torch.long))
        a, ab, ab_prev = schedule.alphas[t], schedule.alpha_bars[t], schedule.alpha_bars_prev[t]
        mean = (x - (1 - a) / (1 - ab).sqrt() * eps) / a.sqrt()
        if beta_at_end:
            x = mean + (1 - a).sqrt() * torch.randn(shape, generator=generator)
        elif t > 0:
            sigma = ((1 - a) * (1 - ab_prev) / (1 - ab)).sqrt()
            x = mean + sigma * (z_once if same_z else torch.randn(shape, generator=generator))
        else:
            x = mean
    return x


SAMPLE_LOOP_MISTAKES = {
    "one z for every step: draw a fresh z inside the loop": lambda *a: _ddpm_loop_with(*a, same_z=True),
    "noise added at the last step: t = 0 takes no z (and σ_t² = β̃_t, not β_t)":
        lambda *a: _ddpm_loop_with(*a, beta_at_end=True),
}


def check_ddpm_sample_loop(learner_fn) -> bool:
    linear, cosine = make_schedule("linear", 30), make_schedule("cosine", 20)
    cases = [((gaussian_denoiser(linear, -0.4, 0.6), (6, 2), linear, 240), {}),
             ((_bent_denoiser, (3, 1, 4, 4), cosine, 241), {}),
             ((_bent_denoiser, (2, 3, 1, 3, 3), linear, 242), {})]
    return check_idea("2.4", learner_fn, reference_ddpm_sample_loop, cases, "ddpm_sample_loop",
                      before=[_visits_every_step_once, _draws_from_the_generator],
                      after=[_lands_on_the_point, _matches_gaussian_data], call=_call_sampler,
                      done="samples a one-point and a Gaussian data set from their exact denoisers",
                      variants=SAMPLE_LOOP_MISTAKES)


# --- 2.5 the training loop ------------------------------------------------------------------------

def reference_train_denoiser(model, data, schedule, steps, batch_size, lr, generator) -> list[float]:
    """Adam on the simple loss (Ho et al. 2020, Algorithm 1): each step draws the rows, then t, then ε
    (course_lib's random_rows and diffusion_loss), and returns the loss of every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    make_batch, losses = random_rows(data, batch_size), []
    for _ in range(steps):
        loss = diffusion_loss(model, make_batch(generator), schedule, "eps", generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _small_mlp(data_dim: int, seed: int, hidden: int = 32, depth: int = 1, time_dim: int = 16) -> MLPDenoiser:
    return with_seed(seed, lambda: MLPDenoiser(data_dim, hidden=hidden, depth=depth, time_dim=time_dim))


def _call_trainer(fn):
    """A fresh model per call, built from a seed, so the learner's loop and the reference start alike."""
    def run(model_seed, data, schedule, steps, batch_size, lr, seed):
        return fn(_small_mlp(data.shape[1], model_seed), data, schedule, steps, batch_size, lr, seeded(seed))
    return run


TRAIN_STEPS, TRAIN_BATCH, TRAIN_LR = 400, 256, 5e-3


def _learns_two_moons(learner_fn) -> str | None:
    """A few hundred steps on two moons: the loss falls and DDPM samples of the model match the moons (MMD)."""
    data, schedule = two_moons(2000, seed=0), make_schedule("linear", 100)
    model = _small_mlp(2, 0, hidden=64, depth=2, time_dim=64)
    losses = [float(v) for v in learner_fn(model, data, schedule, TRAIN_STEPS, TRAIN_BATCH, TRAIN_LR, seeded(0))]
    if len(losses) != TRAIN_STEPS or not all(math.isfinite(v) for v in losses):
        return f"{TRAIN_STEPS} steps gave {len(losses)} losses, or some not finite: return one float per step"
    first, last = sum(losses[:10]) / 10, sum(losses[-50:]) / 50
    if not last < 0.6 * first:
        return f"on two moons the loss went from {first:.3f} (first 10 steps) to {last:.3f} (last 50): it should fall"
    with torch.no_grad():
        samples = ddpm_sample(model, (1000, 2), schedule, generator=seeded(1), clip_x0=False)
    noise = torch.randn(1000, 2, generator=seeded(2))
    mmd, mmd_noise = mmd_rbf(samples, data[:1000]), mmd_rbf(noise, data[:1000])
    if not mmd < 0.5 * mmd_noise:
        return (f"after {TRAIN_STEPS} steps the model's samples are {mmd:.3f} from two moons (MMD), noise {mmd_noise:.3f}: "
                "they should be much closer than noise")
    return None


def _train_with(model_seed, data, schedule, steps, batch_size, lr, seed, target="eps", roots=True, zero_grad=True,
                step=True, last_t=False):
    """Algorithm 1 written out, with one mistake: the x0 target, no square roots in x_t, gradients never zeroed,
    no optimizer step, every example at t = T − 1."""
    model, generator = _small_mlp(data.shape[1], model_seed), seeded(seed)
    optimizer, losses = torch.optim.Adam(model.parameters(), lr=lr), []
    for _ in range(steps):
        x0 = data[torch.randint(0, len(data), (batch_size,), generator=generator)]
        t = (torch.full((batch_size,), schedule.num_steps - 1) if last_t
             else torch.randint(0, schedule.num_steps, (batch_size,), generator=generator))
        eps = torch.randn(x0.shape, generator=generator)
        ab = schedule.alpha_bars[t].reshape(-1, *[1] * (x0.dim() - 1)).float()
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps if roots else ab * x0 + (1 - ab) * eps
        loss = (model(x_t, t) - (eps if target == "eps" else x0)).square().mean()
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
        losses.append(loss.item())
    return losses


TRAIN_MISTAKES = {
    "the model's output compared with x0, not with the noise ε": lambda *a: _train_with(*a, target="x0"),
    "square roots missing in x_t: ᾱ_t where √ᾱ_t belongs": lambda *a: _train_with(*a, roots=False),
    "gradients never zeroed: they pile up over the steps (optimizer.zero_grad() before backward)":
        lambda *a: _train_with(*a, zero_grad=False),
    "the weights never change: optimizer.step() missing": lambda *a: _train_with(*a, step=False),
    "every example at the last step t = T − 1: draw t ~ U{0, …, T − 1} per example":
        lambda *a: _train_with(*a, last_t=True),
}


def check_train_denoiser(learner_fn) -> bool:
    moons, bumps = two_moons(300, seed=25), gaussian_mixture_1d(300, seed=26)
    cases = [((0, moons, make_schedule("linear", 100), 4, 64, 1e-2, 250), {}),
             ((1, bumps, make_schedule("cosine", 50), 3, 32, 3e-3, 251), {})]
    with one_thread():
        return check_idea("2.5", learner_fn, reference_train_denoiser, cases, "train_denoiser (the loss of every step)",
                          after=[_learns_two_moons], call=_call_trainer, variants=TRAIN_MISTAKES,
                          done=f"learns two moons in {TRAIN_STEPS} steps (loss falls, samples near the moons by MMD)")
