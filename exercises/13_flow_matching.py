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
# # Exercises 13 · Flow matching
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Flow time s runs from s = 0 (data) to s = 1 (noise). Data tensors have a batch axis first and any
# shape after it, (B, ...). A velocity function is called as `velocity(x, s)` with x (B, ...) and s a
# (B,) tensor of times: make that tensor with `torch.full((x.shape[0],), s)` when s is a number.
#
# Stuck? `hint("13.1")` gives the idea of an exercise, `hint("13.1", 2)` the formula.

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
from course_lib.workshop.checks.nb13 import (
    check_euler_sample, check_flow_matching_loss, check_heun_step, check_path_and_target,
)

# %% [markdown]
# ## Exercise 13.1 · The straight path and its velocity
#
# The straight path from a data point x0 to a noise draw ε is x_s = (1 − s)·x0 + s·ε. Return x_s
# and the velocity of the path, dx_s/ds, which is the target a flow-matching network learns. `s` is
# a (B,) tensor, one time per example: reshape it to (B, 1, ..., 1) so that it broadcasts over
# every other axis of x0.

# %%
def path_and_target(x0: torch.Tensor, eps: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x0, eps (B, ...), s (B,) -> (x_s (B, ...), target velocity (B, ...))."""
    raise NotImplementedError("Exercise 13.1: the point on the path and how fast it moves")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_path_and_target(path_and_target)

# %% [markdown]
# ## Exercise 13.2 · The flow-matching loss
#
# For one batch with its times `s` (B,) and noise `eps` already drawn, return the loss
# (Lipman et al. 2023, Eq. 23)
#
# $$\mathcal L = \operatorname{mean}\big\|v_\theta(x_s, s) - (\epsilon - x_0)\big\|^2,$$
#
# the mean over every element of the batch. The network is the function `velocity(x, s)`.
# (You may call your `path_and_target`.)

# %%
def flow_matching_loss(velocity, x0: torch.Tensor, eps: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """velocity(x (B, ...), s (B,)) -> (B, ...); x0, eps (B, ...), s (B,) -> a 0-dim loss."""
    raise NotImplementedError("Exercise 13.2: regress the path's velocity at the noisy point")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_flow_matching_loss(flow_matching_loss)

# %% [markdown]
# ## Exercise 13.3 · An Euler sampler
#
# Sampling solves dx/ds = v(x, s) backwards in time, from noise `x1` at s = 1 to data at s = 0.
# Use the uniform grid s_0 = 1 > s_1 > … > s_steps = 0, s_i = 1 − i/steps, and Euler's step
#
# $$x_{s_{i+1}} = x_{s_i} + (s_{i+1} - s_i)\,v(x_{s_i}, s_i),$$
#
# one velocity call per step. Return the final x.

# %%
def euler_sample(velocity, x1: torch.Tensor, steps: int) -> torch.Tensor:
    """velocity(x, s (B,)) -> (B, ...); x1 (B, ...) noise at s = 1 -> x at s = 0 after ``steps`` steps."""
    raise NotImplementedError("Exercise 13.3: walk the grid from 1 down to 0")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_euler_sample(euler_sample)

# %% [markdown]
# ## Exercise 13.4 · A Heun step (Karras et al. 2022, Algorithm 1)
#
# Heun's method corrects Euler's step with a second slope. From x at time s to s_next < s:
#
# 1. the Euler prediction x̃ = x + (s_next − s)·v(x, s);
# 2. the slope where that prediction lands, v(x̃, s_next);
# 3. the step from the *old* x with the mean of the two slopes,
#    x_next = x + (s_next − s)·(v(x, s) + v(x̃, s_next))/2.
#
# When s_next = 0, return the Euler prediction x̃: the network is then never asked for a velocity
# at clean data, where it is least reliable. So a Heun sampler with n steps makes 2n − 1 calls.

# %%
def heun_step(velocity, x: torch.Tensor, s: float, s_next: float) -> torch.Tensor:
    """velocity(x, s (B,)) -> (B, ...); x (B, ...) at time s -> x at time s_next (floats, s_next < s)."""
    raise NotImplementedError("Exercise 13.4: predict with Euler, correct with the mean slope")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_heun_step(heun_step)

# %% [markdown]
# ## Check your understanding
#
# Data from one Gaussian, N(m, c²), has an exact velocity field (the checks use it), and its ODE
# carries noise ε to m + c·ε. Run *your* samplers with it at the same number of velocity calls and
# compare their errors: which solver should win, and does it win at every budget?

# %%
from course_lib.workshop.checks.nb13 import exact_endpoint, gaussian_velocity

x1 = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
print("calls   Euler error   Heun error")
for heun_steps in (3, 5, 10, 25):
    calls = 2 * heun_steps - 1
    grid = torch.linspace(1.0, 0.0, heun_steps + 1).tolist()
    x = x1
    for s, s_next in zip(grid[:-1], grid[1:]):
        x = heun_step(gaussian_velocity, x, s, s_next)
    euler_error = (euler_sample(gaussian_velocity, x1, calls) - exact_endpoint(x1)).abs().mean()
    print(f"{calls:5d}   {euler_error:11.4f}   {(x - exact_endpoint(x1)).abs().mean():10.4f}")

# %% [markdown]
# Heun's error falls like 1/steps², Euler's like 1/steps, so Heun wins once the budget buys it a
# few steps. With very few calls it has only half as many steps as Euler (and its last step is an
# Euler step), so the two are close: the same trade-off the lesson's table shows on two moons.
