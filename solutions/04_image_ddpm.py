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
# # Exercises 04 · Image DDPM
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Images are (B, C, H, W); timesteps are 0-indexed (code `t` is the paper's step t+1);
# `alpha_bars[t]` is ᾱ_t. At the end you train nothing new: you generate digits from the lesson's
# trained U-Net with *your* DDIM update and *your* guidance formula.
#
# Stuck? `hint("4.1")` gives the idea of an exercise, `hint("4.1", 2)` the formula.

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
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models.blocks import group_norm
from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb04 import check_guided_ddim_sample, check_time_res_block, check_training_loss

# %% [markdown]
# ## Exercise 4.1 · The training loss of a class-conditional denoiser
#
# Given clean images `x0` (B, 1, H, W), their `labels` (B,), timesteps `t` (B,), the noise
# `noise` (B, 1, H, W) and the schedule's `alpha_bars` (T,): make
# x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (each image with its own ᾱ_t), ask `model(x_t, t, labels)` for its
# noise estimate ε̂ and return the mean squared error between ε̂ and ε (a scalar).

# %%
def training_loss(model, x0: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                  alpha_bars: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION noise the images to step t, then compare the model's noise estimate with the noise
    alpha_bar = alpha_bars[t].view(-1, 1, 1, 1)  # (B, 1, 1, 1): one ᾱ_t per image
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    return F.mse_loss(model(x_t, t, labels), noise)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_training_loss(training_loss)

# %% [markdown]
# ## Exercise 4.2 · A guided DDIM sampler
#
# Write the sampler that draws digits of chosen classes: deterministic DDIM (Song et al. 2021a,
# Eq. 12 with η = 0) with classifier-free guidance (Ho & Salimans 2022) inside its loop.
#
# * `model(x_t, t, y)` predicts the noise; `t` is a (B,) tensor, `y` (B,) labels, and the label
#   `model.null_label` means "no class".
# * `x` is the starting noise (B, 1, H, W); `timesteps` the descending code timesteps to visit
#   (e.g. `ddim_timesteps(T, 50)`: 999, 979, …, 19); after the last one the sampler jumps to clean
#   data (ᾱ_next = 1).
# * At each visited t: ask the model with the labels and with the null label, guide
#   ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, y) − ε̂(x_t, ∅)) (w = 0: unconditional, w = 1: conditional), turn ε̂
#   into x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, and move it to the next visited level reusing ε̂:
#   x_next = √ᾱ_next x̂0 + √(1 − ᾱ_next) ε̂. Do not clip x̂0.

# %%
def guided_ddim_sample(model, x: torch.Tensor, labels: torch.Tensor, w: float, timesteps: list[int],
                       alpha_bars: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION at each visited t: both predictions, guide, x̂0, then re-noise to the next level with the same ε̂
    null = torch.full_like(labels, model.null_label)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        eps_uncond = model(x, tt, null)
        eps = eps_uncond + w * (model(x, tt, labels) - eps_uncond)
        alpha_bar, alpha_bar_next = alpha_bars[t], alpha_bars[t_next] if t_next >= 0 else torch.tensor(1.0)
        x0_hat = (x - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
        x = alpha_bar_next.sqrt() * x0_hat + (1 - alpha_bar_next).sqrt() * eps
    return x
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_guided_ddim_sample(guided_ddim_sample)

# %% [markdown]
# ## Exercise 4.3 · A residual block that reads the timestep
#
# The U-Net is built from one block, repeated: a residual block told the noise level (Ho et al.
# 2020, appendix B). Write its `forward(x, t)`, x (B, C_in, H, W) and t (B,) integer timesteps:
#
# 1. the timestep embedding: sinusoidal features of t, [cos(t·ω_k), sin(t·ω_k)] for
#    ω_k = 10000^(−k/(d/2)), k = 0 … d/2 − 1, d = `time_dim` (Vaswani et al. 2017), then `time_mlp`;
# 2. h = conv1(SiLU(norm1(x)));
# 3. add the time shift emb_proj(SiLU(emb)): one number per channel, the same for every pixel;
# 4. h = conv2(SiLU(norm2(h)));
# 5. return skip(x) + h (skip is a 1×1 convolution when the channel count changes).
#
# The layers have the names of `course_lib.models.blocks.ResBlock`, so the check can give both the
# same weights.

# %%
class TimeResBlock(nn.Module):
    """x (B, C_in, H, W), t (B,) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int = 32, emb_dim: int = 64):
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_channels)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION embed t (sin/cos features, MLP); conv, add the shift per channel, conv; add the skip
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half) / half)  # (d/2,) ω_k
        angles = t.float()[:, None] * freqs[None, :]  # (B, d/2)
        emb = self.time_mlp(torch.cat([angles.cos(), angles.sin()], dim=-1))  # (B, emb_dim)
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]  # the same shift at every pixel
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h
        ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_time_res_block(TimeResBlock)

# %% [markdown]
# ## Use your functions: digits from your own sampler
#
# The lesson's model (trained there, or now if you have not run the lesson; it is the same file
# in `../checkpoints/`). First your loss: it should be small for the trained network and large
# for a fresh one. Then your guided sampler, compared with the course's `ddim_sample` on the same
# starting noise, and judged by the course's digit classifier.

# %%
from course_lib.config import get_preset
from course_lib.metrics.judge import get_digit_judge, judge_config_for_preset
from course_lib.diffusion.guidance import guided_denoiser
from course_lib.workshop.recipes import get_recipe
from course_lib.diffusion.samplers import ddim_sample, ddim_timesteps
from course_lib.views.figures import image_grid
from course_lib.workshop.zoo import train_or_load

preset = get_preset()
recipe = get_recipe("digits", preset)
model = train_or_load(recipe, folder=Path("..") / "checkpoints").ema_model
alpha_bars = recipe.schedule.alpha_bars
g = torch.Generator().manual_seed(0)
x0, labels = recipe.make_batch(g)
t = torch.randint(0, preset.num_diffusion_steps, (len(x0),), generator=g)
noise = torch.randn(x0.shape, generator=g)
with torch.no_grad():
    trained = training_loss(model, x0, labels, t, noise, alpha_bars)
    fresh = training_loss(recipe.build_model(), x0, labels, t, noise, alpha_bars)
print(f"your loss on one batch: trained model {trained:.3f}, untrained model {fresh:.3f}")

# %%
w, steps = recipe.guidance_scale, preset.sample_steps
digits = torch.arange(10)
start = torch.randn(10, 1, preset.image_size, preset.image_size, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    x = guided_ddim_sample(model, start, digits, w, ddim_timesteps(preset.num_diffusion_steps, steps), alpha_bars)
reference = ddim_sample(guided_denoiser(model, digits, w), x.shape, recipe.schedule, steps=steps,
                        x_start=start, clip_x0=False)
judge = get_digit_judge(preset.image_size, config=judge_config_for_preset(preset))
read = judge.logits(x.clamp(-1, 1)).argmax(1)
print(f"your sampler vs course_lib's: max difference {(x - reference).abs().max():.1e}; "
      f"the judge reads {(read == digits).sum()}/10 as the requested digit")
image_grid(x.clamp(-1, 1), nrow=10, title=f"your DDIM sampler, {steps} steps, w = {w:g}")
plt.show()
