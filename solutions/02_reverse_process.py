# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises 02 · The reverse process
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Every function gets the numbers of *one* step as 0-dim tensors: α_t, and ᾱ_{t−1} (the signal
# left before this step). From them, β_t = 1 − α_t and ᾱ_t = α_t · ᾱ_{t−1}.
#
# Stuck? `hint("2.1")` gives the idea of an exercise, `hint("2.1", 2)` the formula.

# %%
# Set-up. Where the course is installed this only shows the device and preset. On Colab or a fresh
# machine it first installs the course from $COURSE_SOURCE: a clone (default /content/course, see
# the README, "Run on Colab") or a wheel file.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("course_lib") is None:
    COURSE_SOURCE = os.environ.get("COURSE_SOURCE", "/content/course")
    is_wheel, is_clone = COURSE_SOURCE.endswith(".whl"), os.path.isfile(os.path.join(COURSE_SOURCE, "pyproject.toml"))
    if not (is_wheel and os.path.isfile(COURSE_SOURCE)) and not is_clone:
        raise ModuleNotFoundError(
            f"course_lib is not installed, and COURSE_SOURCE={COURSE_SOURCE!r} is neither a clone of the course "
            f"nor a wheel: run `!git clone <the course repository> {COURSE_SOURCE}` (or set COURSE_SOURCE), then this cell")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *([] if is_wheel else ["-e"]), COURSE_SOURCE], check=True)
    if is_clone:
        sys.path.insert(0, COURSE_SOURCE)  # importable now, without restarting the kernel
        os.chdir(os.path.join(COURSE_SOURCE, "notebooks"))  # ../checkpoints as in JupyterLab
    importlib.invalidate_caches()
from course_lib.config import describe_environment

print(describe_environment())

# %%
import torch

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb02 import (
    check_ddpm_sample_loop, check_ddpm_step, check_predict_x0, check_q_posterior, check_train_denoiser,
)

# %% [markdown]
# ## Exercise 2.1 · The posterior q(x_{t−1} | x_t, x0)
#
# Return its mean and variance (Ho et al. 2020, Eq. 7):
#
# $$\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,
#   \qquad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
#
# `x0` and `x_t` have any shape (the same); the variance is a 0-dim tensor.

# %%
def q_posterior(x0: torch.Tensor, x_t: torch.Tensor, alpha_t: torch.Tensor, alpha_bar_prev: torch.Tensor):
    ### BEGIN SOLUTION the posterior mean and variance
    beta_t = 1 - alpha_t
    alpha_bar_t = alpha_t * alpha_bar_prev
    mean = (alpha_bar_prev.sqrt() * beta_t / (1 - alpha_bar_t)) * x0 \
        + (alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t)) * x_t
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean, variance
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_q_posterior(q_posterior)

# %% [markdown]
# ## Exercise 2.2 · From predicted noise to predicted data
#
# A network that predicts the noise ε̂ in x_t also predicts the clean data: invert
# x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε for x0.

# %%
def predict_x0(x_t: torch.Tensor, eps_pred: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION invert the closed form
    return (x_t - (1 - alpha_bar_t).sqrt() * eps_pred) / alpha_bar_t.sqrt()
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_predict_x0(predict_x0)

# %% [markdown]
# ## Exercise 2.3 · One DDPM reverse step (seed §4.2)
#
# Sample x_{t−1} ~ p_θ(x_{t−1} | x_t) = N(μθ, σ_t² I) with the predicted noise `eps_pred`,
#
# $$\mu_\theta = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\hat\epsilon\Big),
#   \qquad \sigma_t^2 = \tilde\beta_t,$$
#
# using the given standard normal draw `z` (same shape as `x_t`): return μθ + σ_t z.
# (You may reuse your `q_posterior` and `predict_x0`: the two routes give the same μθ.)

# %%
def ddpm_step(x_t: torch.Tensor, eps_pred: torch.Tensor, alpha_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
              z: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION mean from the predicted noise, plus scaled noise
    beta_t = 1 - alpha_t
    alpha_bar_t = alpha_t * alpha_bar_prev
    mean = (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps_pred) / alpha_t.sqrt()
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return mean + variance.sqrt() * z
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_ddpm_step(ddpm_step)

# %% [markdown]
# ## Exercise 2.4 · The whole sampler (Ho et al. 2020, Algorithm 2)
#
# One step is not a sampler. Write the loop: start from pure noise x_{T−1} ~ N(0, I) of the given
# `shape`, then for every code timestep t = T−1, T−2, …, 0 ask `model_fn(x, t)` for ε̂ (with `t`
# a (B,) `long` tensor full of t) and take one reverse step with your `ddpm_step`, σ_t² = β̃_t.
# Draw all noise from `generator`, in order: the start, then a fresh z at every step but the last
# (t = 0 adds no noise). `schedule` holds the numbers of every step: `schedule.alphas[t]` is α_t,
# `schedule.alpha_bars_prev[t]` is ᾱ_{t−1}, `schedule.num_steps` is T. Return the sample.

# %%
def ddpm_sample_loop(model_fn, shape, schedule, generator: torch.Generator) -> torch.Tensor:
    ### BEGIN SOLUTION start from noise; for t = T−1 … 0: ask the model, one ddpm_step, fresh z except at t = 0
    x = torch.randn(shape, generator=generator)
    for t in range(schedule.num_steps - 1, -1, -1):
        eps_pred = model_fn(x, torch.full((shape[0],), t, dtype=torch.long))
        z = torch.randn(shape, generator=generator) if t > 0 else torch.zeros(shape)
        x = ddpm_step(x, eps_pred, schedule.alphas[t], schedule.alpha_bars_prev[t], z)
    return x
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_ddpm_sample_loop(ddpm_sample_loop)

# %% [markdown]
# ## Exercise 2.5 · The training loop (Ho et al. 2020, Algorithm 1)
#
# Train `model(x_t, t)` to predict the noise: create `torch.optim.Adam(model.parameters(), lr=lr)`,
# then for each of `steps` steps draw from `generator`, in this order,
#
# 1. a batch of `batch_size` rows of `data` (N, D), picked with `torch.randint(0, N, ...)`,
# 2. one code timestep per row, t ~ U{0, …, T−1},
# 3. the noise ε, shaped like the batch,
#
# make x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (ᾱ_t from `schedule.alpha_bars`), take the simple loss
# ‖ε − model(x_t, t)‖² (the mean over the batch and coordinates), and do one optimiser step.
# Return the list of the losses of every step, as Python floats. The check trains a small MLP on
# two moons for a few hundred steps with your loop and samples it.

# %%
def train_denoiser(model, data: torch.Tensor, schedule, steps: int, batch_size: int, lr: float,
                   generator: torch.Generator) -> list[float]:
    ### BEGIN SOLUTION Adam; each step: rows, t, ε from the generator, x_t, the ε loss, zero_grad, backward, step
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x0 = data[torch.randint(0, len(data), (batch_size,), generator=generator)]  # (B, D)
        t = torch.randint(0, schedule.num_steps, (batch_size,), generator=generator)  # (B,)
        eps = torch.randn(x0.shape, generator=generator)
        alpha_bar = schedule.alpha_bars[t][:, None]  # (B, 1)
        loss = (model(alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps, t) - eps).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_train_denoiser(train_denoiser)

# %% [markdown]
# ## Check your understanding
#
# 1. Run *your* sampler with an "oracle" that knows the data is the single point x0 = 1.5 and
#    therefore returns the exact noise ε = (x_t − √ᾱ_t·1.5)/√(1 − ᾱ_t): every particle must end at 1.5.
# 2. Train an MLP on two moons with *your* loop and sample it with *your* sampler, on a short chain
#    (T = 100) so that it takes seconds: the samples should lie much closer to the moons than noise.

# %%
from course_lib.config import get_preset
from course_lib.data.toy import two_moons
from course_lib.diffusion.schedules import make_schedule
from course_lib.metrics.toy import nearest_neighbour_distance
from course_lib.models.mlp import MLPDenoiser

schedule = make_schedule("linear", 1000)


def oracle(x, t):
    alpha_bar = schedule.alpha_bars[t][:, None]
    return (x - alpha_bar.sqrt() * 1.5) / (1 - alpha_bar).sqrt()


x = ddpm_sample_loop(oracle, (2000, 1), schedule, torch.Generator().manual_seed(0))
print(f"oracle: final particles mean {x.mean():.3f}, std {x.std():.1e}")

short = make_schedule("linear", 100)
moons = two_moons(2000, seed=0)
torch.manual_seed(0)
model = MLPDenoiser(2, hidden=64, depth=2)
steps = max(400, get_preset().toy_train_steps)  # a few hundred steps already put the samples near the moons
losses = train_denoiser(model, moons, short, steps, 256, 5e-3, torch.Generator().manual_seed(0))
with torch.no_grad():
    samples = ddpm_sample_loop(model, (1000, 2), short, torch.Generator().manual_seed(1))
noise = torch.randn(1000, 2, generator=torch.Generator().manual_seed(2))
print(f"two moons: loss {sum(losses[:10]) / 10:.2f} -> {sum(losses[-10:]) / 10:.2f}; mean distance to the data: "
      f"samples {nearest_neighbour_distance(samples, moons):.2f}, noise {nearest_neighbour_distance(noise, moons):.2f}")
