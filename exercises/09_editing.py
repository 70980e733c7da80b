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
# # Exercises 09 · Editing videos with a diffusion model
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Timesteps are 0-indexed: code t = 0 is one step of noise, t = T − 1 (almost) pure noise, and
# `schedule.alpha_bars[t]` is ᾱ_t.
#
# Stuck? `hint("9.1")` gives the idea of an exercise, `hint("9.1", 2)` the formula.

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
from course_lib.workshop.checks.nb09 import check_interpolate_frames, check_renoise, check_sdedit_start_point

# %% [markdown]
# ## Exercise 9.1 · Where SDEdit starts
#
# SDEdit with strength s ∈ [0, 1] starts at code timestep t₀ = round(s · (T − 1)) — s = 0 is one
# step of noise, s = 1 is the last step — and draws x_{t₀} = √ᾱ_{t₀} x + √(1 − ᾱ_{t₀}) ε with the
# given `noise` as ε. Return `(t0, x_t0)` with `t0` an int. (T is `schedule.num_steps`.)

# %%
def sdedit_start_point(x, strength, schedule, noise):
    raise NotImplementedError("Exercise 9.1: t0 = round(strength * (T - 1)); x_t0 from the closed form q(x_t | x0)")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_sdedit_start_point(sdedit_start_point)

# %% [markdown]
# ## Exercise 9.2 · RePaint's jump back up
#
# RePaint redoes a step t → t_next (t_next < t) by noising x_{t_next} back to level t with the
# forward chain from t_next to t. The chain keeps ᾱ_t / ᾱ_{t_next} of the signal variance over those
# steps, so
#
# $$x_t = \sqrt{\bar\alpha_t/\bar\alpha_{t_\text{next}}}\; x_{t_\text{next}} + \sqrt{1 - \bar\alpha_t/\bar\alpha_{t_\text{next}}}\;\varepsilon .$$
#
# Use the given `noise` as ε.

# %%
def renoise(x_next, t_next, t, schedule, noise):
    raise NotImplementedError("Exercise 9.2: ratio = abar[t] / abar[t_next]; scale by its square root, add sqrt(1 - ratio) * noise")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_renoise(renoise)

# %% [markdown]
# ## Exercise 9.3 · The repair baseline: linear interpolation
#
# A model-free way to repair frames: replace each damaged frame j of `video` (B, T, C, H, W) by a
# blend of the nearest *intact* frames a < j < b,
#
# $$x_j = \frac{(b - j)\,x_a + (j - a)\,x_b}{b - a},$$
#
# and where intact frames exist on one side only, copy the nearest one. `damaged` is a list of
# frame indices; return a new tensor (leave `video` unchanged).

# %%
def interpolate_frames(video, damaged):
    raise NotImplementedError("Exercise 9.3: for each damaged j: nearest intact a before and b after, blend; one side only: copy")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_interpolate_frames(interpolate_frames)

# %% [markdown]
# ## Check your understanding
#
# 1. With *your* `sdedit_start_point`, see what SDEdit starts from at a few strengths: the higher
#    the strength, the less of the clip survives the noise.
# 2. With *your* `interpolate_frames`, repair two dropped frames of moving shapes and score them
#    against the truth. Where the object moves, interpolation shows two faint copies (a ghost).

# %%
import matplotlib.pyplot as plt

from course_lib.data.video import bouncing_shapes
from course_lib.metrics.prediction import frames_psnr
from course_lib.diffusion.schedules import make_schedule
from course_lib.views.figures import filmstrip

schedule = make_schedule("linear", 1000)
clip = bouncing_shapes(1, frames=8, size=32, seed=0, speed=(2.0, 2.0)).video
g = torch.Generator().manual_seed(0)
starts = [sdedit_start_point(clip, s, schedule, torch.randn(clip.shape, generator=g)) for s in (0.1, 0.3, 0.5, 0.7)]
filmstrip(torch.cat([x for _, x in starts]), out_of_range="clip", row_labels=[f"t0 = {t0}" for t0, _ in starts],
          title="SDEdit starting points")
plt.show()

dropped = clip.clone()
dropped[:, [3, 4]] = -1
repaired = interpolate_frames(dropped, [3, 4])
print(f"PSNR of frames 3-4: dropped {frames_psnr(dropped, clip, [3, 4]).item():.1f} dB, "
      f"interpolated {frames_psnr(repaired, clip, [3, 4]).item():.1f} dB")
filmstrip(torch.cat([dropped, repaired, clip]), row_labels=["dropped", "interpolated", "truth"])
plt.show()
