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
# # Exercises 14 · Long videos with diffusion forcing
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Videos are (B, F, C, H, W): B clips of F frames. Timesteps are code timesteps 0 … T − 1 (README,
# "Conventions"); in a sampler step, −1 means "clean". `schedule.alpha_bars` is ᾱ (T,).

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

from course_lib.workshop.checks.nb14 import check_noise_frames, check_pyramid, check_rolling_step

# %% [markdown]
# ## Exercise 14.1 · A noise level per frame
#
# Diffusion forcing noises every frame of a clip to its own level: with t of shape (B, F),
#
# $$x_t[b, j] = \sqrt{\bar\alpha_{t[b,j]}}\; x_0[b, j] + \sqrt{1 - \bar\alpha_{t[b,j]}}\; \epsilon[b, j].$$
#
# Return x_t (B, F, C, H, W) for the given noise `eps`. Index ᾱ with the whole (B, F) tensor, then
# reshape it so that it broadcasts over (C, H, W).

# %%
def noise_frames(x0: torch.Tensor, t: torch.Tensor, schedule, eps: torch.Tensor) -> torch.Tensor:
    """x0, eps (B, F, C, H, W), t (B, F) int64 -> x_t (B, F, C, H, W), each frame at its own level."""
    ### BEGIN SOLUTION gather ᾱ per frame and mix
    a = schedule.alpha_bars[t].view(*t.shape, 1, 1, 1)  # (B, F, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_noise_frames(noise_frames)

# %% [markdown]
# ## Exercise 14.2 · The pyramid schedule matrix
#
# A sampler with S noise levels (S = pure noise, 0 = clean) follows a matrix: row i holds the
# level of every frame after i iterations. The first `known` frames are given: 0 in every row.
# Every other frame starts at S (row 0), and frame j starts to fall `delay` iterations after
# frame j − 1, one level per iteration:
#
# $$\text{levels}[i, j] = \operatorname{clamp}\big(S - i + \text{delay}\cdot(j - \text{known}),\ 0,\ S\big),
# \qquad i = 0, \dots, S + \text{delay}\cdot(\text{frames} - \text{known} - 1).$$
#
# Return the integer matrix (rows, frames). Its last row is all zeros: every frame is clean.

# %%
def pyramid(frames: int, levels: int, known: int, delay: int) -> torch.Tensor:
    """-> (levels + delay·(frames − known − 1) + 1, frames) int64 noise levels in 0 … levels."""
    ### BEGIN SOLUTION one row per iteration, one column per frame
    rows = levels + delay * (frames - known - 1) + 1
    i = torch.arange(rows)[:, None]  # (rows, 1)
    j = torch.arange(frames)[None, :]  # (1, frames)
    matrix = (levels - i + delay * (j - known)).clamp(0, levels)
    matrix[:, :known] = 0  # the known frames are clean throughout
    return matrix
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_pyramid(pyramid)

# %% [markdown]
# ## Exercise 14.3 · One step of the rolling sampler
#
# One iteration of the sampler moves every frame from its level now to its level in the next row.
# Here the levels are already code timesteps: `t` (F,) now and `t_next` (F,) after, with −1 for a
# clean frame. With an ε-model:
#
# 1. ask the model once for the whole clip, telling each frame its level, clean frames as 0:
#    `eps = model_fn(x, t.clamp(min=0).expand(B, F))`;
# 2. x̂0 = (x − √(1 − ᾱ_t) ε̂) / √ᾱ_t per frame;
# 3. x' = √ᾱ_{t'} x̂0 + √(1 − ᾱ_{t'}) ε̂ (DDIM with η = 0), where ᾱ_{t'} = 1 for t' = −1;
# 4. keep x' only for the frames whose level falls (t_next < t); the others stay as they are.

# %%
def rolling_step(model_fn, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, schedule) -> torch.Tensor:
    """model_fn(x (B, F, C, H, W), t (B, F)) -> ε̂; x (B, F, C, H, W); t, t_next (F,) -> x after the step."""
    ### BEGIN SOLUTION a DDIM step per frame, only where the level falls
    B, F = x.shape[:2]
    eps = model_fn(x, t.clamp(min=0).expand(B, F))
    a_t = schedule.alpha_bars[t.clamp(min=0)].view(1, F, 1, 1, 1)
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    clean = torch.ones(F)
    a_next = torch.where(t_next >= 0, schedule.alpha_bars[t_next.clamp(min=0)], clean).view(1, F, 1, 1, 1)
    x_next = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return torch.where((t_next < t).view(1, F, 1, 1, 1), x_next, x)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_rolling_step(rolling_step)

# %% [markdown]
# ## Check your understanding
#
# Put your two pieces together: walk your pyramid matrix with your rolling step, with a model that
# knows the clean video (it returns the exact noise of every frame). Whatever the delay, DDIM with
# the exact noise must land on the video, and the known frames must never change. Does it? Try
# delay 0 (all frames together) and a delay as long as S (one frame at a time).

# %%
from course_lib.diffusion.forcing import level_timesteps
from course_lib.diffusion.schedules import make_schedule

schedule = make_schedule("linear", 100)
video = torch.rand(2, 6, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
known, S = 2, 5


def exact_eps(x, t):
    a = schedule.alpha_bars[t].view(*t.shape, 1, 1, 1)
    return (x - a.sqrt() * video) / (1 - a).sqrt()


timestep = level_timesteps(S, schedule.num_steps)  # level 0 … S -> code timestep (level 0: −1, clean)
for delay in (0, 1, S):
    matrix = pyramid(6, S, known, delay)
    x = torch.cat([video[:, :known], torch.randn(2, 6 - known, 1, 4, 4)], dim=1)
    for now, after in zip(matrix[:-1], matrix[1:]):
        x = rolling_step(exact_eps, x, timestep[now], timestep[after], schedule)
    print(f"delay {delay}: {len(matrix) - 1:2d} iterations, largest error {(x - video).abs().max():.1e}")
