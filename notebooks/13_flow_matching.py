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
# # 13 · Flow matching
#
# **Goals.** See sampling as solving an ODE. Meet the straight path x_s = (1 − s)·x0 + s·ε between
# data and noise, the velocity ε − x0 that a flow-matching network regresses, and uniform and
# logit-normal time sampling; train the same small network on two moons with flow matching and
# with the ε loss of lesson 02; sample with Euler, Heun and DDIM at 5 to 50 network calls and score
# them; check that DDIM is itself an Euler step of an ODE; try a shifted time grid; and compare the
# two objectives on lesson 04's digits.
#
# **Prerequisites.** Lessons 02 (the reverse process, DDIM, the `Trainer`), 03 (schedules, SNR,
# v-prediction) and 04 (EMA, few-step sampling).
#
# **Time.** Reading: about 70 minutes. Running with shipped weights (the two digits models of
# section 9 load in seconds): the lesson trains its two toy models from scratch (3000 steps each in
# the `cpu` preset), which takes most of its run (README's table gives the measured run time).
#
# **Notation.** Two clocks appear side by side. The diffusion step t of lessons 01–04 is an integer,
# 0-indexed, t = 0 … T − 1 (T = 1000 here). Flow time s is a real number in [0, 1]: s = 0 is data,
# s = 1 is noise (the convention of Esser et al. 2024). Both run from data to noise; samplers run them
# backwards.

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

import matplotlib.pyplot as plt
import torch

from course_lib.config import get_device, get_preset, seed_everything
from course_lib.data.toy import two_moons
from course_lib.diffusion.flow import (
    FlowMatchingObjective, ddim_step_as_euler, euler_sample, euler_step, euler_steps, flow_matching_loss, heun_sample,
    sample_time, straight_path, straight_time_from_vp, time_grid, velocity_fn, vp_to_straight,
)
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.samplers import ddim_sample, ddim_step, ddim_steps, ddim_timesteps
from course_lib.diffusion.schedules import make_schedule
from course_lib.metrics.toy import mmd_rbf
from course_lib.models.mlp import MLPDenoiser
from course_lib.diffusion.objectives import DiffusionObjective
from course_lib.training import TrainConfig, Trainer, random_rows

preset = get_preset()
g = seed_everything(0)
T = preset.num_diffusion_steps
schedule = make_schedule("linear", T)
device = get_device()  # training and sampling run here; results come back to the CPU for plots
data = two_moons(preset.toy_points, seed=0)  # (N, 2), standardised: mean 0, variance 1 per axis
print(f"preset {preset.name}: {len(data)} points, {preset.toy_train_steps} training steps per model, device {device}")

# %% [markdown]
# ## 1 · Why flow matching
#
# Lessons 02–04 trained a network to predict the noise ε in x_t and sampled by walking the diffusion
# chain back, or by jumping along it with DDIM. The systems you will meet next (Stable Diffusion 3,
# Open-Sora, HunyuanVideo, Wan, Movie Gen) train differently: with **flow matching** (Lipman et
# al. 2023), on the straight path between data and noise of **rectified flow** (Liu et al. 2023), at
# the scale of billions of parameters since Esser et al. 2024. The network predicts a **velocity**,
# the direction and speed in which a point moves as noise is added, and sampling is solving an
# ordinary differential equation (ODE) from noise back to data with a few large steps.
#
# Nothing else changes: the same networks, the same data, the same trainer. What changes is the
# path from data to noise and the target. The picture shows the two paths for a few 1D pairs (x0,
# ε): the straight path of this lesson against s, and the variance-preserving (VP) path of lessons
# 01–04, x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε, against t/(T − 1).

# %%
pairs_x0 = torch.tensor([[-1.5], [-1.0], [1.2], [1.6], [0.3], [-0.4]])  # (6, 1): data points
pairs_eps = torch.randn(6, 1, generator=g)  # (6, 1): one noise draw each
s_line = torch.linspace(0, 1, 101)
straight_1d = torch.stack([straight_path(pairs_x0, pairs_eps, float(s)) for s in s_line])  # (101, 6, 1)
t_line = torch.arange(0, T, 10)
vp_1d = torch.stack([q_sample(pairs_x0, int(t), schedule, noise=pairs_eps) for t in t_line])  # (100, 6, 1)

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
axes[0].plot(s_line, straight_1d[:, :, 0])
axes[0].set_xlabel("flow time s")
axes[0].set_title("straight path x_s = (1 − s)·x0 + s·ε", fontsize=10)
axes[1].plot(t_line / (T - 1), vp_1d[:, :, 0])
axes[1].set_xlabel("diffusion step t / (T − 1)")
axes[1].set_title("VP path x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε", fontsize=10)
axes[0].set_ylabel("x")
plt.tight_layout()
plt.show()

# %% [markdown]
# Each pair moves along a line at constant speed on the left; on the right it bends, and for the
# linear schedule most of the change happens in the first half. A solver that follows a line needs
# few steps: one Euler step is exact on a line. Each pair's path is straight; the flow a sampler
# follows averages many pairs and bends (section 6 draws it).
#
# ## 2 · Two paths on two moons
#
# In 2D the difference is visible point by point. Take a few data points, give each a noise draw,
# and follow it along both paths: a straight segment from x0 to ε, or the VP arc.

# %%
pick = torch.randperm(len(data), generator=g)[:10]
x0_few, eps_few = data[pick], torch.randn(10, 2, generator=g)  # (10, 2) each
straight_2d = torch.stack([straight_path(x0_few, eps_few, float(s)) for s in s_line])  # (101, 10, 2)
vp_2d = torch.stack([q_sample(x0_few, int(t), schedule, noise=eps_few) for t in t_line])  # (100, 10, 2)

fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
for ax, path, name in zip(axes, (straight_2d, vp_2d), ("straight path", "variance-preserving path")):
    ax.scatter(data[:2000, 0], data[:2000, 1], s=1, c="lightgray")
    for i in range(10):
        ax.plot(path[:, i, 0], path[:, i, 1], lw=1.2, color=f"C{i}")
    ax.scatter(x0_few[:, 0], x0_few[:, 1], c="k", s=18, zorder=3, label="x0 (data)")
    ax.scatter(eps_few[:, 0], eps_few[:, 1], c="r", marker="x", s=30, zorder=3, label="ε (noise)")
    ax.set_title(name, fontsize=10)
    ax.set_aspect("equal")
axes[0].legend(fontsize=8, loc="lower left")
plt.tight_layout()
plt.show()

# %% [markdown]
# The VP point is √ᾱ x0 + √(1 − ᾱ) ε with (√ᾱ)² + (√(1 − ᾱ))² = 1: it travels a quarter-ellipse in the
# plane of x0 and ε and swings out further than either end. The two paths still carry the *same*
# information at each noise level. Divide the VP point by √ᾱ_t + √(1 − ᾱ_t) and it becomes
# (1 − s)·x0 + s·ε with s_t = √(1 − ᾱ_t)/(√ᾱ_t + √(1 − ᾱ_t)), the straight-path time with the same
# signal-to-noise ratio ((1 − s)/s)² = ᾱ_t/(1 − ᾱ_t) (`vp_to_straight`). Below, the whole cloud at
# five noise levels: top, the straight path at s; bottom, the VP path at the step t with that SNR.

# %%
s_t = straight_time_from_vp(torch.arange(T), schedule)  # (T,) float64: the straight time of every step
shown_s = [0.0, 0.25, 0.5, 0.75, 1.0]
shown_t = [int((s_t - s).abs().argmin()) for s in shown_s]  # the step t whose SNR matches s best
cloud_x0, cloud_eps = data[:1500], torch.randn(1500, 2, generator=g)

fig, axes = plt.subplots(2, 5, figsize=(13, 5.4), sharex=True, sharey=True)
for column, (s, t) in enumerate(zip(shown_s, shown_t)):
    straight_cloud = straight_path(cloud_x0, cloud_eps, s)
    vp_cloud = q_sample(cloud_x0, t, schedule, noise=cloud_eps)
    axes[0, column].scatter(straight_cloud[:, 0], straight_cloud[:, 1], s=1)
    axes[0, column].set_title(f"straight, s = {s}", fontsize=9)
    axes[1, column].scatter(vp_cloud[:, 0], vp_cloud[:, 1], s=1, c="C1")
    axes[1, column].set_title(f"VP, t = {t} (s_t = {s_t[t]:.2f})", fontsize=9)
for ax in axes.flat:
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-3.5, 3.5)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()

t_check = torch.tensor(shown_t)
x_s_from_vp, s_from_vp = vp_to_straight(q_sample(cloud_x0[:5], t_check, schedule, noise=cloud_eps[:5]), t_check, schedule)
gap = (x_s_from_vp - straight_path(cloud_x0[:5], cloud_eps[:5], s_from_vp.float())).abs().max()
print(f"VP point rescaled by 1/(√ᾱ_t + √(1 − ᾱ_t)) vs the straight path at s_t: max difference {gap:.1e}")
assert gap < 1e-5

# %% [markdown]
# The rows differ only in scale (largest, √2, in the middle). So the choice of path is not about
# *which* noisy points the network sees; it is about the target, how training time is spread over
# noise levels, and how straight the paths a sampler must follow are.
#
# ## 3 · The velocity target and the loss
#
# Along the straight path each pair moves at the constant velocity
#
# $$\frac{d x_s}{ds} = \epsilon - x_0 .$$
#
# Flow matching trains a network v_θ(x, s) to predict it (Lipman et al. 2023, Eq. 23; Liu et al.
# 2023, Eq. 1):
#
# $$\mathcal L_{FM} = \mathbb E_{s,\,x_0,\,\epsilon}\,\big\|v_\theta(x_s, s) - (\epsilon - x_0)\big\|^2,\qquad x_s = (1-s)\,x_0 + s\,\epsilon .$$
#
# Compare lesson 03's v-prediction, v = √ᾱ_t ε − √(1 − ᾱ_t) x0: the same idea on the VP path,
# where the coefficients change with t; here they are constant. From a predicted velocity v̂ at x_s
# both ends follow, x̂0 = x_s − s·v̂ and ε̂ = x_s + (1 − s)·v̂, which is how a sampler reports its
# current guess of the data.
#
# Many pairs pass through the same point x_s, each with its own target, so the best any network
# can do is their average, v(x, s) = E[ε − x0 | x_s = x] (the *marginal* velocity), and the loss
# stays above zero even then. The arrows below are the targets of 300 pairs at s = 0.5: at one
# place they point every which way.

# %%
arrow_x0, arrow_eps = data[:300], torch.randn(300, 2, generator=g)  # (300, 2) each
arrow_x_s = straight_path(arrow_x0, arrow_eps, 0.5)
target = arrow_eps - arrow_x0  # (300, 2): the velocity of each pair

fig, ax = plt.subplots(figsize=(5.5, 5))
ax.scatter(data[:2000, 0], data[:2000, 1], s=1, c="lightgray")
ax.quiver(arrow_x_s[:, 0], arrow_x_s[:, 1], target[:, 0], target[:, 1], angles="xy", scale_units="xy",
          scale=4, width=0.003, color="C0")
ax.set_title("targets ε − x0 at x_s, s = 0.5 (arrows ¼ length)", fontsize=10)
ax.set_xlim(-3, 3)
ax.set_ylim(-3, 3)
ax.set_aspect("equal")
plt.show()

# %% [markdown]
# When the data is a single point c, every x_s has one pair and the exact velocity is
# v(x, s) = (x − c)/s; then the loss *is* zero. `flow_matching_loss(model, x0)` draws s and ε and
# computes the loss for any network `model(x, time)`; the course's networks embed a timestep
# 0 … 999, so it hands them time = s·999.

# %%
c = torch.tensor([[0.5, -1.0]])
point_data = c.expand(256, 2)


def point_velocity(x, time):
    """The exact velocity for data at the single point c, called as a network: time = s·999."""
    return (x - c) / (time / 999)[:, None]


print(f"loss of the exact velocity, data at one point: {flow_matching_loss(point_velocity, point_data, generator=g):.1e}")
print(f"loss of the zero velocity, data at one point:  {flow_matching_loss(lambda x, time: 0 * x, point_data, generator=g):.2f}")

# %% [markdown]
# ## 4 · Which times to train on: uniform or logit-normal
#
# The loss averages over s, and the distribution of s decides which noise levels the network
# practises. Lipman et al. 2023 and Liu et al. 2023 draw s uniformly. Esser et al. 2024 compared
# several choices for images and chose **logit-normal** sampling, s = sigmoid(m + σ·n) with
# n ~ N(0, 1): with m = 0, σ = 1 it concentrates on the middle of the path. The ends are easy: at
# s = 1 the best velocity is x − E[x0] and at s = 0 it is −x, both linear in x; in the middle it
# depends on the shape of the data. `sample_time` draws either.

# %%
many = 100_000
grid_s = torch.linspace(0.001, 0.999, 400)
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.hist(sample_time(many, "uniform", generator=g).numpy(), bins=50, density=True, alpha=0.5, label="uniform")
for m, sigma in ((0.0, 1.0), (0.5, 1.0)):
    drawn = sample_time(many, "logit-normal", generator=g, logit_mean=m, logit_std=sigma)
    ax.hist(drawn.numpy(), bins=50, density=True, alpha=0.5, label=f"logit-normal m = {m}, σ = {sigma}")
    logit = torch.log(grid_s / (1 - grid_s))
    density = torch.exp(-((logit - m) / sigma) ** 2 / 2) / (sigma * math.sqrt(2 * math.pi) * grid_s * (1 - grid_s))
    ax.plot(grid_s, density, "k", lw=0.8)
ax.set_xlabel("flow time s (0 data, 1 noise)")
ax.set_ylabel("density")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The black curves are the density φ((logit s − m)/σ)/(σ·s(1 − s)); m > 0 moves training towards
# noise. On two moons either choice works; below we train with the default, uniform, and you can
# pass `FlowMatchingObjective(time_sampler="logit-normal")` to compare.
#
# ## 5 · Training on two moons, twice
#
# The same `MLPDenoiser(2)`, the same data stream, the same number of steps and the same `Trainer`
# as in lesson 02; only the objective differs:
#
# * `FlowMatchingObjective()`: the loss of section 3 (the network sees time s·999);
# * `DiffusionObjective(schedule, "eps")`: lesson 02's ε loss on the VP path, for DDIM.

# %%
def toy_config(steps: int) -> TrainConfig:
    """The settings of lesson 02's toy models; sizes come from the preset."""
    return TrainConfig.from_preset(preset, steps=steps, lr=2e-3, warmup_steps=min(100, steps // 10),
                                   ema_decay=0.995, compile=False)


objectives = {"flow matching": FlowMatchingObjective(), "ε (diffusion)": DiffusionObjective(schedule, "eps")}
trainers = {}
for name, objective in objectives.items():
    torch.manual_seed(0)
    trainer = Trainer(MLPDenoiser(2, hidden=128), objective, random_rows(data, preset.toy_batch_size),
                      toy_config(preset.toy_train_steps), device=device)
    trainer.fit()
    trainers[name] = trainer
    print(f"{name}: {trainer.step} steps in {trainer.seconds:.1f} s, final loss {trainer.recent_loss():.3f}")
flow_model, eps_model = trainers["flow matching"].ema_model, trainers["ε (diffusion)"].ema_model

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, (name, trainer) in zip(axes, trainers.items()):
    ax.plot(trainer.history["step"], trainer.history["loss"], lw=0.5)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("step")
axes[0].set_ylabel("loss")
plt.tight_layout()
plt.show()

# %% [markdown]
# The two losses are on different scales and neither goes to zero: the flow loss measures the error
# of ε − x0, two unit-variance quantities, and keeps the spread of section 3's arrows.
#
# The learned field is easier to read than the loss. Here is −v_θ(x, s), the direction in which a
# point moves as s *decreases*, at four times: at s = 1 everything flows towards the middle of the
# data, late in the flow towards the nearest moon.

# %%
axis = torch.linspace(-3, 3, 17)
grid_points = torch.cartesian_prod(axis, axis)  # (289, 2)
velocity = velocity_fn(flow_model)  # model_fn(x, s) for the samplers: calls the network at s·999
fig, axes = plt.subplots(1, 4, figsize=(14, 3.8), sharex=True, sharey=True)
for ax, s in zip(axes, (1.0, 0.6, 0.3, 0.05)):
    with torch.no_grad():
        v = velocity(grid_points.to(device), torch.full((len(grid_points),), s, device=device)).cpu()
    ax.scatter(data[:2000, 0], data[:2000, 1], s=1, c="lightgray")
    ax.quiver(grid_points[:, 0], grid_points[:, 1], -v[:, 0], -v[:, 1], angles="xy", scale_units="xy",
              scale=6, width=0.004)
    ax.set_title(f"−v_θ(x, s), s = {s}", fontsize=10)
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6 · Sampling is solving an ODE: Euler, Heun and DDIM
#
# The learned velocity defines an ODE, dx/ds = v_θ(x, s), whose flow carries N(0, I) at s = 1 onto
# the data at s = 0. A sampler draws x at s = 1 and solves it backwards on a grid
# 1 = s_0 > s_1 > … > s_n = 0:
#
# * **Euler**: x_{s'} = x_s + (s' − s)·v_θ(x_s, s), one network call per step (`euler_sample`);
# * **Heun** (Karras et al. 2022, Algorithm 1): take the Euler step to x̃, read the velocity there,
#   and step with the mean slope, x_{s'} = x_s + (s' − s)·(v_θ(x_s, s) + v_θ(x̃, s'))/2; two calls
#   per step, except the last one (to s = 0), which is Euler: n steps cost 2n − 1 calls
#   (`heun_sample`). Its error shrinks like 1/n² where Euler's shrinks like 1/n.
#
# Network calls are what sampling costs, so we compare at equal calls: 5, 10, 20 and 50, against
# DDIM from the ε model (one call per step, lesson 02). Each sampler starts from the same noise.
# The score is the MMD to 2000 data points (lesson 02: zero when the distributions agree), next to
# fresh data (the floor) and noise.

# %%
n_eval = min(2000, 8 * preset.eval_samples)
reference = data[:2000]
budgets = (5, 10, 20, 50)


def noise_generator():
    return torch.Generator().manual_seed(3)  # the same starting noise for every sampler


samplers = {
    "Euler (flow)": lambda calls: euler_sample(velocity, (n_eval, 2), steps=calls, generator=noise_generator(),
                                               device=device),
    "Heun (flow)": lambda calls: heun_sample(velocity, (n_eval, 2), steps=(calls + 1) // 2,
                                             generator=noise_generator(), device=device),
    "DDIM (ε)": lambda calls: ddim_sample(eps_model, (n_eval, 2), schedule, steps=calls, clip_x0=False,
                                          generator=noise_generator(), device=device),
}
samples, mmd = {}, {}
for name, sample in samplers.items():
    for calls in budgets:
        samples[name, calls] = sample(calls).cpu()
        mmd[name, calls] = mmd_rbf(samples[name, calls], reference)
floor = mmd_rbf(two_moons(n_eval, seed=1), reference)
noise_mmd = mmd_rbf(torch.randn(n_eval, 2, generator=noise_generator()), reference)

print("MMD to the data (lower is better); Heun's calls: 2·steps − 1")
print("calls  " + "".join(f"{name:>15s}" for name in samplers))
for calls in budgets:
    heun_calls = 2 * ((calls + 1) // 2) - 1
    print(f"{calls:5d}  " + "".join(f"{mmd[name, calls]:15.4f}" for name in samplers) + f"   (Heun: {heun_calls} calls)")
print(f"fresh data {floor:.4f}, noise N(0, I) {noise_mmd:.4f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in samplers:
    heun = name.startswith("Heun")
    calls_used = [2 * ((c + 1) // 2) - 1 if heun else c for c in budgets]
    ax.plot(calls_used, [mmd[name, c] for c in budgets], "o-", label=name)
ax.axhline(floor, color="gray", ls="--", lw=0.8, label="fresh data")
ax.set_xscale("log")
ax.minorticks_off()
ax.set_xticks(budgets)
ax.set_xticklabels(budgets)
ax.set_xlabel("network calls")
ax.set_ylabel("MMD to the data")
ax.legend(fontsize=8)
plt.show()

fig, axes = plt.subplots(2, 3, figsize=(10, 6.6), sharex=True, sharey=True)
for row, calls in zip(axes, (5, 20)):
    for ax, name in zip(row, samplers):
        x = samples[name, calls]
        ax.scatter(reference[:, 0], reference[:, 1], s=1, c="lightgray")
        ax.scatter(x[:, 0], x[:, 1], s=2)
        ax.set_title(f"{name}, {calls} calls: MMD {mmd[name, calls]:.3f}", fontsize=9)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
plt.tight_layout()
plt.show()
assert mmd["Euler (flow)", 20] < 0.5 * noise_mmd, "20 Euler steps of the flow model should be far closer to the data than noise"

# %% [markdown]
# (MMD values can come out slightly negative: the estimate is unbiased, and its mean is zero when
# the samples match.) Read your table: with a handful of calls Heun has only half as many steps as
# Euler, so its second order may or may not pay; with more calls it usually does, until both reach
# the error of the model itself. If DDIM from the ε model trails the flow samplers at few calls,
# do not conclude it is a worse solver: the next section shows it is an Euler step too.
#
# The paths the Euler sampler takes: straight segments along a flow that bends. Each pair's path
# was straight, but the velocity is an average over the pairs that cross (section 3), and the
# sampling paths curve where particles choose a moon. Liu et al. 2023 straighten them further by
# *reflow*: training again on the model's own (noise, sample) pairs, which no longer cross.

# %%
trajectory = [step.x.cpu() for step in euler_steps(velocity, (300, 2), steps=20, generator=noise_generator(),
                                                    device=device)]
start = torch.randn(300, 2, generator=noise_generator())  # the same noise the sampler started from
paths = torch.stack([start] + trajectory)  # (21, 300, 2): s = 1, 0.95, ..., 0
fig, ax = plt.subplots(figsize=(5.5, 5))
ax.scatter(reference[:, 0], reference[:, 1], s=1, c="lightgray")
ax.plot(paths[:, :80, 0], paths[:, :80, 1], lw=0.6, alpha=0.8)
ax.scatter(paths[-1, :80, 0], paths[-1, :80, 1], s=6, c="k", zorder=3)
ax.set_title("80 Euler paths, 20 steps, noise → data (dots: samples)", fontsize=10)
ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## 7 · DDIM is an Euler step of the probability-flow ODE
#
# Divide the VP point by √ᾱ: x̄ = x_t/√ᾱ_t = x0 + σ̄_t ε with σ̄_t = √((1 − ᾱ_t)/ᾱ_t). In these
# variables each pair moves along a straight line in σ̄ at velocity ε, and the deterministic sampler
# of the VP diffusion, the **probability-flow ODE** (Song et al. 2021b), reads
# dx̄/dσ̄ = ε̂(x_t, t). One Euler step of it,
#
# $$\bar x_{t'} = \bar x_t + (\bar\sigma_{t'} - \bar\sigma_t)\,\hat\epsilon ,$$
#
# multiplied back by √ᾱ_{t'}, is x_{t'} = √ᾱ_{t'}·x̂0 + √(1 − ᾱ_{t'})·ε̂: exactly deterministic DDIM
# (Song et al. 2021a, Eq. 12 with σ = 0). Both keep x̂0 and ε̂ fixed during the step and only change
# the noise level, and so does an Euler step on the straight path, x_{s'} = (1 − s')·x̂0 + s'·ε̂. The
# three are one step in three coordinate systems. `ddim_step_as_euler` computes the Euler form;
# compare it with the course's `ddim_step` using the trained ε model:

# %%
x_test = torch.randn(256, 2, generator=g).to(device)
print("  t → t'    max |DDIM − Euler in (σ̄, x̄)|")
with torch.no_grad():
    for t, t_next in [(999, 899), (700, 400), (120, 20), (19, -1)]:
        ddim = ddim_step(eps_model, x_test, t, t_next, schedule, eta=0.0, clip_x0=False)
        euler = ddim_step_as_euler(eps_model, x_test, t, t_next, schedule)
        difference = (ddim.x - euler.x).abs().max().item()
        print(f"{t:4d} → {t_next:3d}   {difference:.1e}")
        assert difference < 1e-4

# %% [markdown]
# The same fact in a picture: DDIM's trajectory drawn in straight-path coordinates (the VP point
# rescaled, plotted against s_t) is a polygon of straight segments. Thick: 5 DDIM steps; thin: 250
# steps, close to the exact solution of the ODE. One coordinate of 6 particles is shown.

# %%
def ddim_in_flow_time(steps: int, x_start: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """DDIM from x_start at t = T − 1, every visited point as (straight-path point, s): ((steps + 1, B, 2), times)."""
    visited = ddim_timesteps(T, steps)
    points, times = [vp_to_straight(x_start, visited[0], schedule)[0]], [s_t[visited[0]].item()]
    for step, t_next in zip(ddim_steps(eps_model, x_start.shape, schedule, steps=steps, clip_x0=False,
                                       x_start=x_start.to(device)), visited[1:] + [-1]):
        x = step.x.cpu()
        points.append(vp_to_straight(x, t_next, schedule)[0] if t_next >= 0 else x)  # t' = −1: clean, s = 0
        times.append(s_t[t_next].item() if t_next >= 0 else 0.0)
    return torch.stack(points), times


x_start = torch.randn(6, 2, generator=torch.Generator().manual_seed(6))
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for steps, style in ((250, dict(lw=0.8, alpha=0.6)), (5, dict(lw=2, marker="o", ms=4))):
    points, times = ddim_in_flow_time(steps, x_start)
    for i in range(6):
        ax.plot(times, points[:, i, 0], color=f"C{i}", **style)
ax.set_xlabel("straight-path time s_t")
ax.set_ylabel("first coordinate of x_s")
ax.invert_xaxis()
ax.set_title("DDIM in flow time: 5 steps (thick) and 250 steps (thin)", fontsize=10)
plt.show()
print("DDIM's 5 steps visit s = " + ", ".join(f"{s:.2f}" for s in times))

# %% [markdown]
# DDIM's steps are evenly spaced in t, not in s: in flow time they crowd near noise and leave one
# long last step. The grid is part of the sampler. Run the flow model's Euler sampler on DDIM's
# times instead of the uniform grid, with the same calls and the same starting noise:

# %%
def euler_on_times(times: list[float]) -> torch.Tensor:
    """Euler steps of the flow model through the given descending times, from the shared starting noise."""
    x = torch.randn(n_eval, 2, generator=noise_generator()).to(device)
    with torch.no_grad():
        for s, s_next in zip(times[:-1], times[1:]):
            x = euler_step(velocity, x, s, s_next).x
    return x.cpu()


print("calls   Euler, uniform grid   Euler, DDIM's times   DDIM (ε)")
for calls in (5, 10):
    ddim_times = [s_t[t].item() for t in ddim_timesteps(T, calls)] + [0.0]
    on_ddim_times = mmd_rbf(euler_on_times(ddim_times), reference)
    print(f"{calls:5d}   {mmd['Euler (flow)', calls]:19.4f}   {on_ddim_times:19.4f}   {mmd['DDIM (ε)', calls]:8.4f}")

# %% [markdown]
# Compare the two middle columns, then the last two: how much of section 6's gap between the flow
# model and DDIM was the grid of times, and how much the model? On a grid that crowds near noise,
# the long last step to the data is where a few-step sampler loses most.

# %% [markdown]
# ## 8 · The shifted time grid
#
# Which times a sampler visits matters as much as the solver. Esser et al. 2024 map a uniform grid
# through the **time shift**
#
# $$s' = \frac{\alpha s}{1 + (\alpha - 1)\,s},$$
#
# which keeps 0 and 1 fixed and, for α > 1, moves every step towards noise. Their reason is
# resolution: a large image keeps its structure up to higher noise levels, so it needs more steps
# there. `time_grid(steps, shift)` gives the grid; every sampler takes `shift=`.

# %%
shifts = (0.5, 1.0, 2.0, 3.0)
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for shift in shifts:
    ax.plot(time_grid(10, shift).numpy(), "o-", ms=3, label=f"shift {shift}")
ax.set_xlabel("step")
ax.set_ylabel("flow time s")
ax.legend(fontsize=8)
plt.show()

print("MMD of Euler samples on a shifted grid (flow model)")
print("shift " + "".join(f"{calls:>9d} calls" for calls in (5, 10)))
for shift in shifts:
    row = [mmd_rbf(euler_sample(velocity, (n_eval, 2), steps=calls, shift=shift, generator=noise_generator(),
                                device=device).cpu(), reference) for calls in (5, 10)]
    print(f"{shift:5.1f} " + "".join(f"{value:15.4f}" for value in row))

# %% [markdown]
# Two moons are two numbers per example, far from a megapixel image, and their structure is
# settled late in the flow, so shifting the grid towards noise does not help here: the best shift is
# a property of the data, measured, not assumed.
#
# ## 9 · Digits: the same change at image scale
#
# Two moons fit in a 2D plot; do the conclusions hold for images? Below, lesson 04's
# class-conditional digits U-Net, trained twice on the same digits for the same number of steps:
# once with the ε loss (lesson 04's model) and once with flow matching — the same network, data,
# optimiser and classifier-free guidance; only `objective="flow"` differs in the recipe.
# `train_or_load` loads both: the course ships them for the `cpu` preset (training one takes about
# 18 minutes on 2 CPU cores: `python -m course_lib train --task digits --objective flow`); in the
# `smoke` preset it trains two tiny ones in seconds, which draw blobs.
#
# Then the same labels and the same starting noise go through DDIM (ε model) and through Euler and
# Heun (flow model) at 5, 10 and 20 network calls, and lesson 04's digit judge scores them:
# accuracy (does it show the requested digit?) and FID (distance from real digits; lower is
# better). The benchmark (`python -m course_lib bench sampling`, in BENCHMARKS.md) does the same
# with more samples and reports the machine it ran on.

# %%
from pathlib import Path

from course_lib.metrics.judge import get_digit_judge, image_scores, judge_config_for_preset, reference_digits
from course_lib.views.figures import image_grid
from course_lib.workshop import zoo
from course_lib.workshop.recipes import get_recipe

CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and their exercises
digit_models = {}  # objective -> (recipe, EMA network)
for objective in ("eps", "flow"):
    digit_recipe = get_recipe("digits", preset, objective=objective)
    digit_models[objective] = (digit_recipe, zoo.train_or_load(digit_recipe, folder=CHECKPOINTS).ema_model)
judge = get_digit_judge(preset.image_size, config=judge_config_for_preset(preset))

# %%
n_digits = 20 if preset.name == "smoke" else 100
digit_labels = torch.arange(n_digits) % 10
real_digits = reference_digits(n_digits, preset.image_size)
solvers = [("DDIM", "eps", "ddim", lambda calls: calls), ("Euler", "flow", "euler", lambda calls: calls),
           ("Heun", "flow", "heun", lambda calls: (calls + 1) // 2)]  # Heun: 2·steps − 1 calls
digit_scores, digit_pictures = {}, {}
for calls in (5, 10, 20):
    for name, objective, solver, steps_for in solvers:
        digit_recipe, network = digit_models[objective]
        steps = steps_for(calls)
        samples = digit_recipe.sample(network, n_digits, steps=steps, sampler=solver, labels=digit_labels,
                                      guidance_scale=digit_recipe.guidance_scale,
                                      generator=torch.Generator().manual_seed(2)).cpu()
        used = 2 * steps - 1 if solver == "heun" else steps
        digit_scores[name, calls] = (used, image_scores(samples, real_digits, digit_labels, judge))
        digit_pictures[name, calls] = samples[:10]
print(f"{n_digits} guided samples per solver, the same labels and starting noise")
print(f"{'budget':>6s} {'solver':6s} {'calls':>5s} {'accuracy':>8s} {'FID':>7s}")
for (name, calls), (used, scores) in digit_scores.items():
    print(f"{calls:6d} {name:6s} {used:5d} {scores['accuracy']:8.0%} {scores['FID']:7.1f}")

# %%
fig, axes = plt.subplots(3, 1, figsize=(7, 3), squeeze=False)
for ax, (name, _, _, _) in zip(axes[:, 0], solvers):
    image_grid(digit_pictures[name, 10], nrow=10, ax=ax, out_of_range="clip")
    ax.set_title(f"{name} within 10 network calls", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the table by budget, as in section 6: each row of a budget spent the same number of network
# calls (Heun one fewer). Where the flow model's solvers read the requested digit as often as DDIM
# with fewer calls, the straighter paths pay off at image scale too; where DDIM still wins, the
# ε model's training (lesson 04 tuned it) matters more than the objective. Either way the
# comparison is fair only because everything but the objective was held fixed.
#
# ## Summary
#
# * Flow matching trains a network to predict the velocity ε − x0 of the straight path
#   x_s = (1 − s)·x0 + s·ε; its minimiser is the average velocity E[ε − x0 | x_s], and the loss stays
#   above zero.
# * The straight path and the VP path hold the same noisy points up to scale; they differ in the
#   target, in how training is spread over noise levels (uniform or logit-normal s) and in how
#   straight the sampling paths are.
# * Sampling solves dx/ds = v_θ(x, s) from s = 1 to 0: Euler with one call per step, Heun with two
#   (second order); compare samplers at equal network calls.
# * Deterministic DDIM is an Euler step of the probability-flow ODE: the solvers are one family, and
#   what was trained and which times are visited (the shifted grid) make the difference.
# * On digits the same swap — one word in the recipe, `objective="flow"` — is measured with the same
#   network, data, seeds and judge: a fair comparison holds everything else fixed.
#
# Exercises: `exercises/13_flow_matching.ipynb` (the path and its target, the loss, an Euler sampler,
# a Heun step).
#
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import Question, check_yourself

check_yourself([
    Question("Why does the flow-matching loss not go to zero, even for the best possible network?",
             ["the learning rate is too small",
              "many pairs (x0, ε) pass through the same x_s with different targets ε − x0; the best "
              "prediction is their mean",
              "the Euler sampler adds an error"],
             "many pairs (x0, ε) pass through the same x_s with different targets ε − x0; the best "
             "prediction is their mean",
             "The loss keeps the spread of the targets around their mean; it is zero only for data at one point."),
    Question("A network predicts v̂ at x_s. What is its guess of the clean data?",
             ["x̂0 = x_s − s·v̂", "x̂0 = x_s + s·v̂", "x̂0 = (1 − s)·v̂"],
             "x̂0 = x_s − s·v̂",
             "From x_s = (1 − s)·x0 + s·ε and v = ε − x0: x̂0 = x_s − s·v̂ and ε̂ = x_s + (1 − s)·v̂."),
    Question("What does an Euler sampler with a single step return, for a network that learned the exact velocity?",
             ["a perfect sample", "the mean of the data, for every start", "pure noise"],
             "the mean of the data, for every start",
             "At s = 1, x = ε says nothing about x0, so v(x, 1) = x − E[x0]; one step to s = 0 gives x − v = E[x0]."),
    Question("The flow model's Euler beats DDIM from the ε model at 10 calls. Is Euler a better solver than DDIM?",
             ["yes: Euler is more accurate than DDIM",
              "no: deterministic DDIM is itself an Euler step; the models' training and the times visited differ",
              "no: DDIM is second order"],
             "no: deterministic DDIM is itself an Euler step; the models' training and the times visited differ",
             "Section 7 shows DDIM as an Euler step of the probability-flow ODE and runs Euler on DDIM's times."),
    Question("Why might logit-normal time sampling train a better model than uniform sampling?",
             ["it trains more often at the middle times, where the velocity is hardest to predict",
              "it avoids s = 0.5", "it makes the loss smaller"],
             "it trains more often at the middle times, where the velocity is hardest to predict",
             "Near s = 0 and s = 1 the velocity is nearly a linear function of x (Esser et al. 2024)."),
])
