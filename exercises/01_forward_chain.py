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
# # Exercises 01 · The forward Markov chain
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
#
# Stuck? `hint("1.1")` gives the idea of an exercise, `hint("1.1", 2)` the formula.

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
from course_lib.workshop.checks.nb01 import check_alpha_bar, check_forward_step, check_noisy_batch

# %% [markdown]
# ## Exercise 1.1 · One step of the chain (seed §2.1)
#
# Implement $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon$ for tensors of any shape.
# `alpha_t` is a 0-dim tensor, `eps` has the shape of `x_prev`.

# %%
def forward_step(x_prev: torch.Tensor, alpha_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 1.1: one step: scale the signal, add scaled noise")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_forward_step(forward_step)

# %% [markdown]
# ## Exercise 1.2 · ᾱ_t for every step
#
# Given the per-step `alphas` (shape (T,)), return ᾱ (shape (T,)) with ᾱ_t = α_1 ⋯ α_t.

# %%
def alpha_bar(alphas: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 1.2: a running product")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_alpha_bar(alpha_bar)

# %% [markdown]
# ## Exercise 1.3 · A training batch: every example at its own step
#
# Training never walks the chain: it jumps each example straight to a random step with the closed
# form $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ (Ho et al. 2020, Eq. 4 and
# Algorithm 1). Given clean data `x0` (B, ...) of any shape, the schedule's `alpha_bars` (T,) and a
# `torch.Generator`, draw **first** one code timestep per example, t ~ U{0, …, T−1}, shape (B,),
# **then** the noise ε (the shape of `x0`), both from `generator`, and return `(x_t, t, eps)`.
# Each example needs *its own* ᾱ_t, shaped so that it broadcasts over that example's values.

# %%
def noisy_batch(x0: torch.Tensor, alpha_bars: torch.Tensor, generator: torch.Generator):
    raise NotImplementedError("Exercise 1.3: one t per example, then ε, then the closed form with ᾱ_t shaped to broadcast")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_noisy_batch(noisy_batch)

# %% [markdown]
# ## Check your understanding
#
# Simulate 20,000 particles through the first 300 steps with *your* `forward_step`, then jump there
# with *your* `noisy_batch` (its examples land at random steps; keep those at step 299): the two
# histograms must agree.

# %%
from course_lib.diffusion.schedules import make_schedule

schedule = make_schedule("linear", 1000)
g = torch.Generator().manual_seed(0)
x0 = torch.randn(20_000, 1, generator=g) * 0.3 + 1.0
x = x0
for t in range(300):
    x = forward_step(x, schedule.alphas[t], torch.randn(x.shape, generator=g))
alpha_bars = alpha_bar(schedule.alphas)[:300]  # a chain of 300 steps: t = 299 is its last
jumped, t, _ = noisy_batch(x0.repeat(20, 1), alpha_bars, g)
jump = jumped[t == 299]
print(f"chain mean {x.mean():.2f} var {x.var():.2f} | closed form mean {jump.mean():.2f} var {jump.var():.2f}")
