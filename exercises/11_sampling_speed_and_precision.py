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
# # Exercises 11 · Sampling speed and precision
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Timesteps are 0-indexed (code `t` is the paper's step t+1, so the noisiest step is `T − 1`). At the
# end your three functions meet the course's models: your timesteps drive a DDIM sampler, your
# mixed-precision step trains the video U-Net of lesson 07, and your speed-up formula reads a profile.
#
# Stuck? `hint("11.1")` gives the idea of an exercise, `hint("11.1", 2)` the formula.

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
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb11 import check_ddim_timesteps, check_mixed_precision_step, check_speedup_from_profile

# %% [markdown]
# ## Exercise 11.1 · The DDIM timestep subsequence
#
# A DDIM sampler with S steps visits S of the T timesteps, from the noisiest down. The "trailing"
# spacing (Lin et al. 2024), used by `course_lib.diffusion.samplers`, always starts at the noisiest step
# T − 1 and spaces the steps evenly by T/S:
#
# t_i = round(T − i·T/S) − 1, for i = 0, 1, ..., S − 1.
#
# For T = 1000 and S = 50 that is 999, 979, ..., 19. Return the S timesteps as a list of ints,
# largest first.

# %%
def ddim_timesteps(num_steps: int, steps: int) -> list[int]:
    raise NotImplementedError("Exercise 11.1: start at T − 1 and step down by T/S, rounding each step to a whole timestep")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_ddim_timesteps(ddim_timesteps)

# %% [markdown]
# ## Exercise 11.2 · A mixed-precision training step
#
# The lesson's "bf16 autocast" row trains in mixed precision: matrix products and convolutions in
# bf16, everything else in fp32. Write one such training step for a denoiser `model(x_t, t)` that
# learns to predict `target` (ε, x0 or v: the step does not care) with the mean squared error:
#
# 1. clear the last step's gradients;
# 2. under `torch.autocast(device_type=x_t.device.type, dtype=torch.bfloat16)`: the forward pass, and
#    the loss computed in fp32 from the bf16 prediction (`prediction.float()`);
# 3. after the `with` block: the backward pass and the optimizer step;
# 4. return the loss as a Python number.
#
# The weights stay fp32 throughout: autocast casts bf16 copies of them for each product, and the
# gradients flow back through those casts into the fp32 weights. The check runs your step on a tiny
# model and watches what happens inside it: the dtype of its products, whether autocast is on in the
# backward pass, the dtype of the weights, and the loss over a few steps.

# %%
def mixed_precision_step(model: nn.Module, optimizer: torch.optim.Optimizer, x_t: torch.Tensor, t: torch.Tensor,
                         target: torch.Tensor) -> float:
    raise NotImplementedError("Exercise 11.2: forward pass and loss under bf16 autocast; backward and the optimizer step after the with block")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_mixed_precision_step(mixed_precision_step)

# %% [markdown]
# ## Exercise 11.3 · What a profile allows: Amdahl's law
#
# A profile splits a step's time into parts, `seconds = {"convolution": 0.09, ...}`. Suppose some
# parts become faster, `factors = {"convolution": 2.0}` (twice as fast; `math.inf` means "free";
# parts not listed keep their speed). Each part then takes t / f seconds. Return the speed-up of
# the whole step: old total time / new total time. (With one part of share p sped up by s this is
# Amdahl's law, 1 / ((1 − p) + p / s).)

# %%
def speedup_from_profile(seconds: dict[str, float], factors: dict[str, float]) -> float:
    raise NotImplementedError("Exercise 11.3: add up the new times part by part (t / f, f = 1 when not listed), then divide")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_speedup_from_profile(speedup_from_profile)

# %% [markdown]
# ## Use your functions
#
# **Your timesteps in a sampler.** The digit U-Net of lesson 04 (loaded from `../checkpoints/`,
# or trained now if you have not run that lesson), sampled with `course_lib`'s one-step DDIM
# update at *your* timesteps, and with the course's sampler from the same noise. With the right
# timesteps the two are the same digits.

# %%
from course_lib.config import get_preset
from course_lib.diffusion.forward import q_sample, training_target
from course_lib.diffusion.samplers import ddim_step
from course_lib.metrics.judge import get_digit_judge, judge_config_for_preset
from course_lib.training import speed
from course_lib.views.figures import image_grid
from course_lib.workshop.recipes import get_recipe
from course_lib.workshop.zoo import train_or_load

preset = get_preset()
digits = get_recipe("digits", preset)
model = train_or_load(digits, folder=Path("..") / "checkpoints").ema_model
labels = torch.arange(10)
steps = preset.sample_steps
x = torch.randn(digits.sample_shape(10), generator=torch.Generator().manual_seed(1))
mine = ddim_timesteps(preset.num_diffusion_steps, steps)
with torch.no_grad():
    for t, t_next in zip(mine, mine[1:] + [-1]):
        x = ddim_step(lambda x_t, tt: model(x_t, tt, labels), x, t, t_next, digits.schedule,
                      objective=digits.objective).x
course = digits.sample(model, 10, steps=steps, labels=labels, generator=torch.Generator().manual_seed(1))
judge = get_digit_judge(preset.image_size, config=judge_config_for_preset(preset))
read = judge.logits(x.clamp(-1, 1)).argmax(1)
print(f"your {steps} timesteps: {mine[:4]} ... {mine[-2:]}; max difference from course_lib's sampler "
      f"{(x - course).abs().max():.1e}; the judge reads {(read == labels).sum()}/10 as the requested digit")
image_grid(x.clamp(-1, 1), nrow=10, title=f"DDIM with your {steps} timesteps")
plt.show()

# %% [markdown]
# **Your mixed-precision step on the video U-Net.** A fresh copy of lesson 07's model, trained with
# your function for a few steps on one batch (the same t and ε each time): the loss falls, and every
# weight is still fp32.

# %%
video = get_recipe("video-shapes", preset)
unet = video.build_model()
optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3)
clips = video.make_batch(torch.Generator().manual_seed(0))  # (B, F, C, H, W)
g = torch.Generator().manual_seed(1)
t = torch.randint(0, preset.num_diffusion_steps, (clips.shape[0],), generator=g)
eps = torch.randn(clips.shape, generator=g)
target = training_target(clips, eps, t, video.schedule, video.objective)  # what the recipe's model predicts
losses = [mixed_precision_step(unet, optimizer, q_sample(clips, t, video.schedule, noise=eps), t, target)
          for _ in range(5)]
print(f"losses {', '.join(f'{loss:.4f}' for loss in losses)}; weights {sorted({str(p.dtype) for p in unet.parameters()})}")

# %% [markdown]
# **Your speed-up formula on a real profile.** One training step of this preset's video U-Net,
# profiled as in the lesson; what would halving the convolutions' time give, and what is the most
# that making the matrix products (the attention) free could give?

# %%
profile = speed.profile_step(video.build_model(), video.loss_fn, video.make_batch(torch.Generator().manual_seed(0)))
kinds = profile.by_kind()
for factors in ({"convolution": 2.0}, {"matrix products (attention, linear)": float("inf")},
                {kind: float("inf") for kind in kinds if kind != speed.OVERHEAD}):
    names = "everything but Python and autograd" if len(factors) > 2 else ", ".join(factors)
    how = "free" if list(factors.values())[0] == float("inf") else f"{list(factors.values())[0]:g}x faster"
    print(f"{names:40s} {how:>10s} -> the step is {speedup_from_profile(kinds, factors):.2f}x faster")
