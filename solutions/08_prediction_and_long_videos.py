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
# # Exercises 08 · Prediction and long videos
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Timesteps are 0-indexed (code t = 0 is one step of noise); `schedule.alpha_bars[t]` is ᾱ_t.
#
# Stuck? `hint("8.1")` gives the idea of an exercise, `hint("8.1", 2)` the formula.

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
from course_lib.workshop.checks.nb08 import check_guided_x0, check_replace_known, check_rollout
from course_lib.diffusion.forward import q_sample

# %% [markdown]
# ## Exercise 8.1 · The replacement step
#
# After a sampler step from t to t_next, `x_next` is at noise level t_next. Overwrite its known part
# (where `mask` is 1) with the known frames noised to the *same* level, using the given `noise`:
#
# $$x_{t'} \leftarrow m \odot \big(\sqrt{\bar\alpha_{t'}}\,\text{known} + \sqrt{1-\bar\alpha_{t'}}\,\varepsilon\big) + (1-m) \odot x_{t'} .$$
#
# After the last step (`t_next == -1`) the sample is clean: paste the known frames as they are.

# %%
def replace_known(x_next, known, mask, t_next, schedule, noise):
    ### BEGIN SOLUTION noise the known frames to t_next (clean when t_next < 0), blend with the mask
    known_now = known if t_next < 0 else q_sample(known, t_next, schedule, noise=noise)
    return mask * known_now + (1 - mask) * x_next
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_replace_known(replace_known)

# %% [markdown]
# ## Exercise 8.2 · The guidance gradient
#
# Reconstruction guidance (Ho et al. 2022a, Eq. 7) corrects the model's clean estimate
# x̂0 = (x_t − √(1 − ᾱ_t) ε̂(x_t, t)) / √ᾱ_t so that its known frames match the truth:
#
# $$\tilde x_0 = \hat x_0 - \frac{w\sqrt{\bar\alpha_t}}{2}\,\nabla_{x_t}\big\lVert m \odot (\text{known} - \hat x_0(x_t))\big\rVert^2 .$$
#
# The gradient is with respect to **x_t**, through the model: that is how the correction reaches
# the unknown frames. `model_fn(x, t_tensor)` predicts ε with `t_tensor` of shape (B,); `t` is an int.
# Return x̃0 without a graph attached (`.detach()`).

# %%
def guided_x0(model_fn, x_t, t, known, mask, schedule, weight):
    ### BEGIN SOLUTION x_t.requires_grad_(), x0_hat from eps, autograd.grad of the masked error w.r.t. x_t
    ab = schedule.alpha_bars[t]
    x = x_t.detach().requires_grad_(True)
    eps = model_fn(x, torch.full((x.shape[0],), t, dtype=torch.long))
    x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
    (grad,) = torch.autograd.grad(((known - x0_hat) * mask).pow(2).sum(), x)
    return (x0_hat - weight * ab.sqrt() / 2 * grad).detach()
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_guided_x0(guided_x0)

# %% [markdown]
# ## Exercise 8.3 · Autoregressive rollout with conditioning augmentation
#
# `predict(past, T)` takes `past` (B, k, C, H, W) and returns a clip (B, T, C, H, W) whose first k
# frames are `past`. Make a video of `total_frames` frames from `first` (B, T, C, H, W): repeatedly
# give `predict` the **last** `keep` frames, append only the **new** frames of the chunk, and stop
# when the video is long enough (cut it to exactly `total_frames`).
#
# A model's own frames are never quite like the training data, and a predictor that trusts its
# context blindly compounds those errors chunk after chunk. **Conditioning augmentation** (Ho et
# al. 2022c, "Cascaded Diffusion Models") trains the model on a slightly noised past, and at
# rollout time shows it the past noised the same way: before each call, put the `keep` frames
# through the forward process to code step `context_noise` with `q_sample(past, context_noise,
# schedule, generator=generator)` — fresh noise for every chunk — and give *that* to `predict`.
# `context_noise = 0` means no augmentation (the frames as they are, no noise drawn). The video
# itself keeps every frame clean: the noise is only what the predictor sees.

# %%
def rollout(predict, first, total_frames, keep, schedule, context_noise, generator):
    ### BEGIN SOLUTION the last `keep` frames, noised to context_noise for the predictor only; append chunk[:, keep:]; cut
    frames, video = first.shape[1], first
    while video.shape[1] < total_frames:
        past = video[:, -keep:]
        if context_noise > 0:
            past = q_sample(past, context_noise, schedule, generator=generator)
        chunk = predict(past, frames)
        video = torch.cat([video, chunk[:, keep:]], dim=1)  # the new frames only: the video stays clean
    return video[:, :total_frames]
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_rollout(rollout)

# %% [markdown]
# ## Check your understanding
#
# With *your* `replace_known` and `guided_x0`, sample the second coordinate of a correlated 2D
# Gaussian given the first, with its exact denoiser (as in the lesson), and compare the mean with
# the truth ρ·a. Replacement alone should land well short of it; guidance close to it.

# %%
from course_lib.diffusion.forward import eps_from_x0
from course_lib.diffusion.samplers import ddim_step, ddim_timesteps
from course_lib.diffusion.schedules import make_schedule

schedule = make_schedule("linear", 1000)
rho, s, a = 0.9, 0.5, 0.8
cov = s**2 * torch.tensor([[1.0, rho], [rho, 1.0]])


def exact_eps(x_t, t):
    """The exact ε-prediction for x0 ~ N(0, cov) (see the lesson)."""
    ab = schedule.alpha_bars[t[0]]
    x0 = x_t @ (ab.sqrt() * cov @ torch.linalg.inv(ab * cov + (1 - ab) * torch.eye(2))).T
    return eps_from_x0(x_t, t, x0, schedule)


def sample_given_first(guide: bool, weight: float = 3.0, n: int = 4000, steps: int = 50):
    g = torch.Generator().manual_seed(0)
    known, mask = torch.tensor([[a, 0.0]]).expand(n, 2), torch.tensor([[1.0, 0.0]])
    x = torch.randn(n, 2, generator=g)
    ts = ddim_timesteps(schedule.num_steps, steps)
    for t, t_next in zip(ts, ts[1:] + [-1]):
        x0 = guided_x0(exact_eps, x, t, known, mask, schedule, weight) if guide else None
        step = ddim_step(exact_eps, x, t, t_next, schedule, eta=1.0, generator=g, clip_x0=False, x0=x0)
        x = replace_known(step.x, known, mask, t_next, schedule, torch.randn(x.shape, generator=g))
    return x


print(f"true conditional mean {rho * a:.2f}")
print(f"replacement           {sample_given_first(False)[:, 1].mean():.2f}")
print(f"guidance, w = 3       {sample_given_first(True)[:, 1].mean():.2f}")
