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
# # Exercises 11 · Speed, scale and limits
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Timesteps are 0-indexed (code `t` is the paper's step t+1, so the noisiest step is `T − 1`);
# images are (N, C, H, W). At the end your three functions meet the course's models: your
# timesteps drive a DDIM sampler, your memory formula sizes the `gpu` preset's convolutions, and
# your speed-up formula reads a profile.
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
from torch import nn

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb11 import check_conv_output_bytes, check_ddim_timesteps, check_speedup_from_profile

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
# ## Exercise 11.2 · The memory of a convolution's output
#
# A `Conv2d(C_in, C_out, kernel_size, stride, padding)` turns an input (N, C_in, H, W) into an
# output (N, C_out, H_out, W_out) with
#
# H_out = ⌊(H + 2·padding − kernel_size) / stride⌋ + 1   (the same for W),
#
# and during training that output is kept for the backward pass. Return how many bytes it takes,
# for `bytes_per_value` bytes per number (4 for fp32, 2 for bf16). In a video U-Net the frames are
# folded into the batch, so N = B·T.

# %%
def conv_output_bytes(input_shape: tuple[int, int, int, int], out_channels: int, kernel_size: int, stride: int,
                      padding: int, bytes_per_value: int) -> int:
    raise NotImplementedError("Exercise 11.2: the output keeps the batch, has out_channels channels and a smaller (or equal) H and W")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_conv_output_bytes(conv_output_bytes)

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
# **Your timesteps in a sampler.** The digit U-Net of notebook 04 (loaded from `../checkpoints/`,
# or trained now if you have not run that notebook), sampled with `course_lib`'s one-step DDIM
# update at *your* timesteps, and with the course's sampler from the same noise. With the right
# timesteps the two are the same digits.

# %%
from course_lib.training import speed
from course_lib.config import get_preset
from course_lib.metrics.judge import get_digit_judge, judge_config_for_preset
from course_lib.workshop.recipes import get_recipe
from course_lib.diffusion.samplers import ddim_step
from course_lib.views.figures import image_grid
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
# **Your memory formula on the `gpu` preset.** Build the `gpu` preset's video U-Net on the *meta*
# device (shapes without memory), record the input shape of every `Conv2d` during one forward
# pass at the preset's batch, and add up your `conv_output_bytes` in bf16. (The transposed
# convolutions that upsample are left out: their output size follows another formula.)

# %%
gpu = get_preset("gpu")
gpu_recipe = get_recipe("video-shapes", gpu)
with torch.device("meta"):
    unet = gpu_recipe.build_model()
inputs = []
hooks = [m.register_forward_pre_hook(lambda m, args: inputs.append((m, tuple(args[0].shape))))
         for m in unet.modules() if type(m) is nn.Conv2d]
shape = gpu_recipe.sample_shape(gpu_recipe.batch_size)  # (B, T, C, H, W)
with torch.no_grad():
    unet(torch.empty(shape, device="meta"), torch.zeros(shape[0], dtype=torch.long, device="meta"))
for hook in hooks:
    hook.remove()
total = sum(conv_output_bytes(s, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], 2) for m, s in inputs)
largest = max(inputs, key=lambda item: conv_output_bytes(item[1], item[0].out_channels, item[0].kernel_size[0],
                                                          item[0].stride[0], item[0].padding[0], 2))
print(f"gpu preset, batch {shape}: {len(inputs)} convolutions; their outputs alone take {total / 2**30:.2f} GiB in bf16; "
      f"the largest output comes from the one reading {largest[1]} (frames folded into the batch)")

# %% [markdown]
# **Your speed-up formula on a real profile.** One training step of this preset's video U-Net,
# profiled as in the lesson; what would halving the convolutions' time give, and what is the most
# that making the matrix products (the attention) free could give?

# %%
video = get_recipe("video-shapes", preset)
profile = speed.profile_step(video.build_model(), video.loss_fn, video.make_batch(torch.Generator().manual_seed(0)))
kinds = profile.by_kind()
for factors in ({"convolution": 2.0}, {"matrix products (attention, linear)": float("inf")},
                {kind: float("inf") for kind in kinds if kind != speed.OVERHEAD}):
    names = "everything but Python and autograd" if len(factors) > 2 else ", ".join(factors)
    how = "free" if list(factors.values())[0] == float("inf") else f"{list(factors.values())[0]:g}x faster"
    print(f"{names:40s} {how:>10s} -> the step is {speedup_from_profile(kinds, factors):.2f}x faster")
