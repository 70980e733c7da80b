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
from course_lib.workshop.checks.nb02 import check_ddpm_step, check_predict_x0, check_q_posterior

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
# ## Check your understanding
#
# Run *your* `ddpm_step` as a whole sampler, with an "oracle" that knows the data is the single
# point x0 = 1.5 and therefore returns the exact noise ε = (x_t − √ᾱ_t·1.5)/√(1 − ᾱ_t). Every
# particle must end at 1.5.

# %%
from course_lib.diffusion.schedules import make_schedule

schedule = make_schedule("linear", 1000)
g = torch.Generator().manual_seed(0)
x = torch.randn(2000, 1, generator=g)
for t in range(999, -1, -1):
    alpha_bar_t = schedule.alpha_bars[t]
    oracle_eps = (x - alpha_bar_t.sqrt() * 1.5) / (1 - alpha_bar_t).sqrt()
    z = torch.randn(x.shape, generator=g) if t > 0 else torch.zeros_like(x)
    x = ddpm_step(x, oracle_eps, schedule.alphas[t], schedule.alpha_bars_prev[t], z)
print(f"final particles: mean {x.mean():.3f}, std {x.std():.1e}")
