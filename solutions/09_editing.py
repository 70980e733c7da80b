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

from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.samplers import ddim_step, ddim_timesteps
from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb09 import check_interpolate_frames, check_repaint, check_sdedit

# %% [markdown]
# ## Exercise 9.1 · SDEdit, start to finish
#
# SDEdit (Meng et al. 2022) edits a clip `x` by forgetting part of it and dreaming it back: noise
# it part of the way up the forward chain, then run the sampler down from there. With strength
# s ∈ [0, 1] and T = `schedule.num_steps`:
#
# 1. start at code timestep t₀ = round(s · (T − 1)); strength 0 means no edit at all: return `x`;
# 2. x_{t₀} = `q_sample(x, t0, schedule, generator=generator)` (the only random draw);
# 3. a full edit would take `steps` DDIM steps, a weaker one proportionally fewer:
#    n = max(1, round(steps · (t₀ + 1) / T)) steps over the timesteps `ddim_timesteps(t0 + 1, n)`;
# 4. each step `ddim_step(model_fn, x_t, t, t_next, schedule, clip_x0=False).x` (η = 0, deterministic),
#    t_next = −1 after the last listed t (clean data).

# %%
def sdedit(model_fn, x, strength, schedule, steps, generator):
    ### BEGIN SOLUTION t0 from the strength; noise x to t0; DDIM down from t0 over proportionally fewer steps
    T = schedule.num_steps
    t0 = round(strength * (T - 1))
    if strength == 0:
        return x.clone()
    x_t = q_sample(x, t0, schedule, generator=generator)
    timesteps = ddim_timesteps(t0 + 1, max(1, round(steps * (t0 + 1) / T)))
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        x_t = ddim_step(model_fn, x_t, t, t_next, schedule, clip_x0=False).x
    return x_t
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_sdedit(sdedit)

# %% [markdown]
# ## Exercise 9.2 · RePaint's resampling loop
#
# Inpainting with the replacement method (notebook 08) steps down, then overwrites the known part
# (`mask` = 1) with the ground truth `known` noised to the same level. RePaint (Lugmayr et al.
# 2022) adds **resampling**: after a step t → t_next, jump back up to level t with the forward
# chain from t_next to t, which keeps ᾱ_t / ᾱ_{t_next} of the signal,
#
# $$x_t = \sqrt{\bar\alpha_t/\bar\alpha_{t_\text{next}}}\; x_{t_\text{next}} + \sqrt{1 - \bar\alpha_t/\bar\alpha_{t_\text{next}}}\;\varepsilon ,$$
#
# and take the step again: `resample` rounds in all, the last one kept. The last step, to clean
# data, is taken once. Write the whole loop over `ddim_timesteps(T, steps)`, drawing from
# `generator` in this order: the starting noise `torch.randn(known.shape, ...)`, then in every round
# the step `ddim_step(model_fn, x, t, t_next, schedule, eta=1.0, generator=generator, clip_x0=False)`,
# the known part `q_sample(known, t_next, schedule, generator=generator)` (clean at t_next = −1),
# and the jump's ε.

# %%
def repaint(model_fn, known, mask, schedule, steps, resample, generator):
    ### BEGIN SOLUTION per step: r rounds of (step down, replace the known part, jump back up unless last); the last step once
    alpha_bars = schedule.alpha_bars
    x = torch.randn(known.shape, generator=generator)
    timesteps = ddim_timesteps(schedule.num_steps, steps)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        rounds = resample if t_next >= 0 else 1
        for u in range(rounds):
            x_next = ddim_step(model_fn, x, t, t_next, schedule, eta=1.0, generator=generator, clip_x0=False).x
            known_now = known if t_next < 0 else q_sample(known, t_next, schedule, generator=generator)
            x_next = mask * known_now + (1 - mask) * x_next
            if u + 1 < rounds:  # jump back up to t and redo the step
                ratio = alpha_bars[t] / alpha_bars[t_next]
                x = ratio.sqrt() * x_next + (1 - ratio).sqrt() * torch.randn(x.shape, generator=generator)
            else:
                x = x_next
    return x
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_repaint(repaint)

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
    ### BEGIN SOLUTION for each damaged j: nearest intact a before and b after, blend; one side only: copy
    out = video.clone()
    intact = [j for j in range(video.shape[1]) if j not in damaged]
    for j in damaged:
        before = [a for a in intact if a < j]
        after = [b for b in intact if b > j]
        if before and after:
            a, b = before[-1], after[0]
            out[:, j] = ((b - j) * video[:, a] + (j - a) * video[:, b]) / (b - a)
        else:
            out[:, j] = video[:, before[-1]] if before else video[:, after[0]]
    return out
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_interpolate_frames(interpolate_frames)

# %% [markdown]
# ## Check your understanding
#
# 1. With *your* `sdedit`, edit moving shapes at a few strengths with a stand-in denoiser that knows
#    only that pixels are near −1 (the exact denoiser of a black background): the stronger the
#    edit, the more of the clip is forgotten and replaced by background.
# 2. With *your* `interpolate_frames`, repair two dropped frames of moving shapes and score them
#    against the truth. Where the object moves, interpolation shows two faint copies (a ghost).

# %%
import matplotlib.pyplot as plt

from course_lib.data.video import bouncing_shapes
from course_lib.diffusion.forward import eps_from_x0
from course_lib.metrics.prediction import frames_psnr
from course_lib.diffusion.schedules import make_schedule
from course_lib.views.figures import filmstrip

schedule = make_schedule("linear", 1000)
clip = bouncing_shapes(1, frames=8, size=32, seed=0, speed=(2.0, 2.0)).video


def background(x_t, t):
    """The exact ε-model for 'every pixel is N(−1, 0.5²)': it knows the background and nothing else."""
    ab = schedule.alpha_bars[t].view(-1, 1, 1, 1, 1)
    x0 = -1 + 0.25 * ab.sqrt() * (x_t + ab.sqrt()) / (0.25 * ab + 1 - ab)  # E[x0 | x_t]
    return eps_from_x0(x_t, t, x0, schedule)


edits = {s: sdedit(background, clip, s, schedule, 20, torch.Generator().manual_seed(0)) for s in (0.05, 0.1, 0.3, 0.9)}
for s, edited in edits.items():
    print(f"strength {s}: PSNR to the clip {frames_psnr(edited, clip, list(range(8))).mean():5.1f} dB")
filmstrip(torch.cat(list(edits.values())), out_of_range="clip", row_labels=[f"strength {s}" for s in edits],
          title="SDEdit towards a black background")
plt.show()

dropped = clip.clone()
dropped[:, [3, 4]] = -1
repaired = interpolate_frames(dropped, [3, 4])
print(f"PSNR of frames 3-4: dropped {frames_psnr(dropped, clip, [3, 4]).item():.1f} dB, "
      f"interpolated {frames_psnr(repaired, clip, [3, 4]).item():.1f} dB")
filmstrip(torch.cat([dropped, repaired, clip]), row_labels=["dropped", "interpolated", "truth"])
plt.show()
