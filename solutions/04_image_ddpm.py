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
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb04 import check_ddim_update, check_guided_eps, check_training_loss

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
# ## Exercise 4.2 · One DDIM step
#
# DDIM (Song et al. 2021a, Eq. 12 with η = 0) first turns the noise estimate into a guess of the
# clean image, then re-noises that guess to the *next* visited noise level ᾱ_next (which may be
# many steps away; ᾱ_next = 1 means "clean"), reusing the same ε̂ instead of fresh noise:
#
# x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t,    x_next = √ᾱ_next x̂0 + √(1 − ᾱ_next) ε̂.
#
# `alpha_bar_t` and `alpha_bar_next` are 0-dim tensors. Do not clip x̂0.

# %%
def ddim_update(x_t: torch.Tensor, eps_hat: torch.Tensor, alpha_bar_t: torch.Tensor,
                alpha_bar_next: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION estimate x0, then move it to the next noise level with the same noise
    x0_hat = (x_t - (1 - alpha_bar_t).sqrt() * eps_hat) / alpha_bar_t.sqrt()
    return alpha_bar_next.sqrt() * x0_hat + (1 - alpha_bar_next).sqrt() * eps_hat
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_ddim_update(ddim_update)

# %% [markdown]
# ## Exercise 4.3 · Classifier-free guidance
#
# Given the conditional prediction ε(x_t, t, y), the unconditional one ε(x_t, t, ∅) and the scale
# w, return the guided prediction. The course's convention: w = 0 gives the unconditional
# prediction, w = 1 the conditional one, w > 1 goes past it (further from "no class").

# %%
def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    ### BEGIN SOLUTION start at the unconditional prediction and move w times towards the conditional one
    return eps_uncond + w * (eps_cond - eps_uncond)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_guided_eps(guided_eps)

# %% [markdown]
# ## Use your functions: digits from your own sampler
#
# The lesson's model (trained there, or now if you have not run the lesson; it is the same file
# in `../checkpoints/`). First your loss: it should be small for the trained network and large
# for a fresh one. Then a complete guided DDIM sampler built from your two functions, compared
# with the course's `ddim_sample` on the same starting noise.

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
w, steps, null = recipe.guidance_scale, preset.sample_steps, model.null_label
digits = torch.arange(10)
x = torch.randn(10, 1, preset.image_size, preset.image_size, generator=torch.Generator().manual_seed(1))
start = x.clone()
timesteps = ddim_timesteps(preset.num_diffusion_steps, steps)
with torch.no_grad():
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        tt = torch.full((10,), t)
        eps = guided_eps(model(x, tt, digits), model(x, tt, torch.full((10,), null)), w)
        x = ddim_update(x, eps, alpha_bars[t], alpha_bars[t_next] if t_next >= 0 else torch.tensor(1.0))

reference = ddim_sample(guided_denoiser(model, digits, w), x.shape, recipe.schedule, steps=steps,
                        x_start=start, clip_x0=False)
judge = get_digit_judge(preset.image_size, config=judge_config_for_preset(preset))
read = judge.logits(x.clamp(-1, 1)).argmax(1)
print(f"your sampler vs course_lib's: max difference {(x - reference).abs().max():.1e}; "
      f"the judge reads {(read == digits).sum()}/10 as the requested digit")
image_grid(x.clamp(-1, 1), nrow=10, title=f"your DDIM sampler, {steps} steps, w = {w:g}")
plt.show()
