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
# # Exercises 03 · Schedules and parameterisations
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# `alpha_bar_t` is a 0-dim tensor (one noise level); data tensors can have any shape.
#
# Stuck? `hint("3.1")` gives the idea of an exercise, `hint("3.1", 2)` the formula.

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
import math

import torch

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb03 import check_cosine_betas, check_snr, check_x0_from_v

# %% [markdown]
# ## Exercise 3.1 · The signal-to-noise ratio of a schedule
#
# In x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε the signal has variance ᾱ_t and the noise 1 − ᾱ_t. Given
# `alpha_bars` (shape (T,)), return SNR_t for every t (shape (T,)).

# %%
def snr(alpha_bars: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 3.1: signal variance over noise variance")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_snr(snr)

# %% [markdown]
# ## Exercise 3.2 · The cosine schedule, from its curve
#
# The linear schedule fixes β_t and lets ᾱ_t follow; the cosine schedule (Nichol & Dhariwal 2021,
# Eq. 17) does the reverse: it chooses the curve of the signal left,
#
# $$\bar\alpha(s) = \frac{f(s)}{f(0)},\qquad f(s) = \cos^2\Big(\frac{s + o}{1 + o}\cdot\frac{\pi}{2}\Big),
#   \qquad s \in [0, 1],$$
#
# and derives each step from it. With T steps, step t (code index t = 0 … T−1) takes the signal
# from ᾱ(t/T) to ᾱ((t + 1)/T), so β_t = 1 − ᾱ((t + 1)/T) / ᾱ(t/T). Near s = 1 the curve reaches 0
# and the last β would be 1, a step that erases everything: clip every β at 0.999. Return the
# betas, shape (T,) (float64 is best: the last values are ratios of tiny numbers).

# %%
def cosine_betas(num_steps: int, offset: float = 0.008) -> torch.Tensor:
    raise NotImplementedError("Exercise 3.2: ᾱ on the grid s = t/T (T + 1 points), β from the ratio of neighbours, clipped")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_cosine_betas(cosine_betas)

# %% [markdown]
# ## Exercise 3.3 · From a v prediction back to x0
#
# A v-prediction model (Salimans & Ho 2022) learns v = √ᾱ_t ε − √(1 − ᾱ_t) x0; a sampler needs x̂0.
# Given x_t and a predicted v, return x̂0. Hint: write both x_t and v in terms of x0 and ε and
# combine them so that ε cancels (√ᾱ² + √(1 − ᾱ)² = 1).

# %%
def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 3.3: rotate back")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_x0_from_v(x0_from_v)

# %% [markdown]
# ## Check your understanding
#
# Use *your* functions: for each schedule (the cosine one built from *your* betas), find the first
# step where the SNR drops below 1, and confirm that x0_from_v undoes the v target
# v = √ᾱ_t ε − √(1 − ᾱ_t) x0 at the noisiest step, where an ε-model's x0 estimate would divide by √ᾱ_t.

# %%
from course_lib.diffusion.schedules import make_schedule, schedule_from_betas

g = torch.Generator().manual_seed(0)
x0, eps = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
schedules = {"linear": make_schedule("linear", 1000), "cosine (yours)": schedule_from_betas(cosine_betas(1000)),
             "sigmoid": make_schedule("sigmoid", 1000)}
for name, s in schedules.items():
    ratio = snr(s.alpha_bars)
    first_below_one = int((ratio < 1).nonzero()[0])
    ab = s.alpha_bars[-1]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    error = (x0_from_v(x_t, v, ab) - x0).abs().max()
    print(f"{name:14s} SNR < 1 from t = {first_below_one:3d};  1/√ᾱ at the last step = {ab.rsqrt():9.1f};"
          f"  x0 recovered from v to {error:.0e}")
