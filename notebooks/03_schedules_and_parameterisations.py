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
# # 03 · Noise schedules and parameterisations
#
# **Goals.** Compare the linear, cosine and sigmoid noise schedules on an image and through their
# signal-to-noise ratio; learn the three things a denoiser can predict (ε, x0 or v), how to convert
# between them and which loss weighting each one implies; then run one experiment: the same
# network trained with each objective, judged by its samples and by how well it recovers x0 at
# every noise level.
#
# **Prerequisites.** Lessons 01 and 02 (ᾱ_t, the ε loss, DDPM and DDIM sampling); logarithms.
#
# **Time.** Reading: about 45 minutes. Running with shipped weights: nothing is shipped for this
# lesson; it trains three small MLPs itself, most of its run (README's table gives the
# measured run time). Training from scratch: those three MLPs, inside the lesson.
# **Seed sections:** §2.1 (the α_t that controls the noise: here is how to choose them), §8
# (generation speed and quality: schedules and parameterisations are two of the cheapest levers).
#
# As everywhere in the course, formulas count steps like the paper (t = 1 … T) and code from 0:
# code `t` is the paper's step t + 1. Plot axes and printed `t = …` are code timesteps.

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
import matplotlib.pyplot as plt
import torch

from course_lib.config import get_device, get_preset, seed_everything
from course_lib.data.digits import render_digits
from course_lib.data.toy import two_moons
from course_lib.diffusion.forward import q_sample, to_x0_eps
from course_lib.views.forward import snr_plot
from course_lib.metrics.toy import mmd_rbf, nearest_neighbour_distances
from course_lib.models.mlp import MLPDenoiser
from course_lib.diffusion.objectives import DiffusionObjective, objective_weight
from course_lib.diffusion.samplers import ddim_sample, ddpm_sample
from course_lib.diffusion.schedules import SCHEDULES, make_schedule
from course_lib.training import TrainConfig, Trainer, random_rows

preset = get_preset()
g = seed_everything(0)
T = preset.num_diffusion_steps
schedules = {name: make_schedule(name, T) for name in SCHEDULES}  # linear, cosine, sigmoid
device = get_device()
print(f"preset {preset.name}: T = {T}; schedules: {', '.join(schedules)}")

# %% [markdown]
# ## 1 · Three schedules
#
# A schedule is the list β_1 … β_T (in code `betas[0]` … `betas[T−1]`; α_t = 1 − β_t,
# ᾱ_t = α_1 ⋯ α_t):
#
# * **linear** (Ho et al. 2020): β rises linearly from 10⁻⁴ to 0.02 (for T = 1000);
# * **cosine** (Nichol & Dhariwal 2021): ᾱ(s) = f(s)/f(0) with f(s) = cos²(((s + 0.008)/1.008)·π/2),
#   s = t/T, and β_t = 1 − ᾱ_t/ᾱ_{t−1} clipped at 0.999;
# * **sigmoid** (Jabri et al. 2022): ᾱ(s) follows a sigmoid between −3 and 3, flatter at both ends.
#
# The schedule that matters is ᾱ_t, the fraction of signal variance still there after t steps
# (`alpha_bars[t−1]` in code).

# %%
fig, (ax_beta, ax_abar) = plt.subplots(1, 2, figsize=(11, 3.2))
for name, s in schedules.items():
    ax_beta.semilogy(s.betas.numpy(), label=name)
    ax_abar.plot(s.alpha_bars.numpy(), label=name)
ax_beta.set_title("β per step (log scale)")
ax_abar.set_title("ᾱ: signal variance left")
for ax in (ax_beta, ax_abar):
    ax.set_xlabel("code timestep t")
    ax.legend()
plt.show()

# %% [markdown]
# ## 2 · What each schedule does to an image
#
# One rendered digit, the *same* noise draw for every panel, so the only difference between rows
# is the schedule. The linear schedule has wiped out the digit long before the end; cosine and
# sigmoid keep it recognisable for longer and spend fewer steps on pure noise.

# %%
images, labels = render_digits(1, size=preset.image_size, seed=3)
digit = images[:1]  # (1, 1, H, W) in [-1, 1]
noise = torch.randn(digit.shape, generator=g)
shown_t = [0, 100, 200, 300, 400, 500, 650, 800, T - 1] if T == 1000 else torch.linspace(0, T - 1, 9).long().tolist()
fig, axes = plt.subplots(len(schedules), len(shown_t), figsize=(1.3 * len(shown_t), 1.5 * len(schedules)))
for row, (name, s) in zip(axes, schedules.items()):
    for ax, t in zip(row, shown_t):
        noisy = q_sample(digit, t, s, noise=noise)
        ax.imshow(noisy[0, 0].clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if name == "linear":
            ax.set_title(f"t = {t}", fontsize=9)
    row[0].set_ylabel(name)
plt.show()

# %% [markdown]
# ## 3 · Signal-to-noise ratio
#
# x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε has signal variance ᾱ_t and noise variance 1 − ᾱ_t, so
# SNR_t = ᾱ_t / (1 − ᾱ_t). Every schedule is a curve log SNR(t) from high (clean) to low (noise);
# dotted lines mark SNR = 1. The question a schedule answers is how many of the T steps to spend
# at each noise level.

# %%
snr_plot(T)
plt.show()

# %% [markdown]
# **Experiment: how each schedule spends its steps.** Count the steps in each band of log SNR.
# Read off the plot: how many of the 1000 steps does each schedule spend where the data is almost
# gone (log SNR < −5, less than 1% signal power)? Those steps teach the network little and cost as
# much as any other at sampling time.

# %%
bands = torch.arange(-12, 12.1, 2.0)
fig, ax = plt.subplots(figsize=(7, 3.2))
width = 0.6
for i, (name, s) in enumerate(schedules.items()):
    log_snr = s.snr.log().clamp(-11.99, 11.99)
    counts = torch.histc(log_snr, bins=len(bands) - 1, min=bands[0].item(), max=bands[-1].item())
    ax.bar(bands[:-1] + 1 + (i - 1) * width, counts.numpy(), width=width, label=name)
ax.set_xlabel("log SNR band (2 units wide)")
ax.set_ylabel("steps in the band")
ax.axvline(-5, color="k", ls=":", lw=1)
ax.legend()
plt.show()
print(f"{'':8s} steps with log SNR < -5   ᾱ at the last step   SNR at the last step")
for name, s in schedules.items():
    wasted = int((s.snr.log() < -5).sum())
    print(f"{name:8s} {wasted:10d}           {s.alpha_bars[-1]:.1e}              {s.snr[-1]:.1e}")

# %% [markdown]
# Two things to notice. The linear schedule spends about 30% of its steps below log SNR = −5;
# cosine and sigmoid spend far fewer. And no schedule reaches SNR = 0 exactly: training never sees
# pure noise, yet sampling starts from it. The linear schedule leaves ᾱ ≈ 4·10⁻⁵ of signal (a
# known flaw, Lin et al. 2024 "Common diffusion noise schedules and sample steps are flawed");
# cosine gets within 10⁻⁹.
#
# ## 4 · What should the network predict? ε, x0 or v
#
# At a given x_t, knowing any one of x0, ε or v fixes the other two (x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε):
#
# | objective | target | x̂0 from the prediction |
# |---|---|---|
# | ε (Ho et al. 2020) | ε | (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t |
# | x0 | x0 | x̂0 |
# | v (Salimans & Ho 2022) | v = √ᾱ_t ε − √(1 − ᾱ_t) x0 | √ᾱ_t x_t − √(1 − ᾱ_t) v̂ |
#
# `course_lib.diffusion.forward.to_x0_eps` does the conversions. The objectives differ in how the same
# mistake is *weighted*. Measured in x0 units, a prediction error costs
#
# $$\|\epsilon-\hat\epsilon\|^2 = \mathrm{SNR}_t\,\|x_0-\hat x_0\|^2,\qquad
#   \|v-\hat v\|^2 = (1+\mathrm{SNR}_t)\,\|x_0-\hat x_0\|^2 .$$
#
# So the ε loss cares a lot about nearly clean steps and almost nothing about x0 errors at high
# noise; the x0 loss weights all steps alike; v never weights a step less than either.
# (`course_lib.diffusion.objectives.objective_weight` returns these weights; the algebra is
# tested.) The flip side: an ε-model's x̂0 divides by √ᾱ_t, so at the noisiest steps any error in ε̂
# is amplified enormously; this is where the next experiment will look.

# %%
cosine = schedules["cosine"]
fig, ax = plt.subplots(figsize=(6, 3.2))
for objective, label in [("eps", "ε: SNR_t"), ("x0", "x0: 1"), ("v", "v: 1 + SNR_t")]:
    ax.semilogy(objective_weight(cosine, objective).numpy(), label=label)
ax.set_xlabel("code timestep t (cosine schedule)")
ax.set_ylabel("weight on ‖x0 − x̂0‖²")
ax.legend()
plt.show()

# %% [markdown]
# ## 5 · Experiment: one network, three objectives
#
# Train the same `MLPDenoiser` on two moons with the cosine schedule, once per objective, with the
# same seed and the same number of steps. Then
#
# 1. measure the error of x̂0 at each noise level on held-out data: read off the plot where each
#    objective is good and where it fails;
# 2. sample with DDPM and DDIM and compare the samples with the data: the median distance to the
#    nearest data point (are typical samples on the moons?), the share of samples further than 0.5
#    from any data point (outliers), and the MMD (right proportions?), as in notebook 02.

# %%
data = two_moons(preset.toy_points, seed=0)
steps = preset.toy_train_steps
trainers = {}
for objective in ("eps", "x0", "v"):
    torch.manual_seed(0)
    config = TrainConfig.from_preset(preset, steps=steps, lr=2e-3, warmup_steps=min(100, steps // 10),
                                     ema_decay=0.995, compile=False)
    trainers[objective] = Trainer(MLPDenoiser(2, hidden=128), DiffusionObjective(cosine, objective),
                                  random_rows(data, preset.toy_batch_size), config, device=device).fit()
    print(f"{objective:3s}: {steps} steps in {trainers[objective].seconds:.1f} s, final loss "
          f"{trainers[objective].recent_loss():.3f} (losses of different objectives are not comparable)")

# %%
held_out = two_moons(500, seed=7)
probe_t = torch.linspace(0, T - 1, 25).round().long()
x0_error = {}
probe_gen = torch.Generator().manual_seed(8)
with torch.no_grad():
    for objective, trainer in trainers.items():
        errors = []
        for t in probe_t.tolist():
            x_t = q_sample(held_out, t, cosine, generator=probe_gen)
            prediction = trainer.ema_model(x_t.to(device), torch.full((len(held_out),), t, device=device)).cpu()
            x0_hat = to_x0_eps(prediction, x_t, t, cosine, objective)[0]
            errors.append((x0_hat - held_out).square().sum(1).mean().item())
        x0_error[objective] = torch.tensor(errors)

fig, ax = plt.subplots(figsize=(7, 3.5))
for objective, errors in x0_error.items():
    ax.semilogy(probe_t.numpy(), errors.numpy(), "o-", ms=3, label=objective)
ax.axhline(2.0, color="k", ls=":", lw=1, label="predicting the data mean (≈ 2)")
ax.set_xlabel("code timestep t (cosine schedule)")
ax.set_ylabel("E‖x̂0 − x0‖² on held-out data")
ax.legend()
plt.show()
print(f"x0 error at t = {T - 1}:  " + "   ".join(f"{k}: {v[-1]:.3g}" for k, v in x0_error.items()))
print("x0 error at t = 0:    " + "   ".join(f"{k}: {v[0]:.3g}" for k, v in x0_error.items()))

# %% [markdown]
# Read the plot from both ends. At the noisiest steps the x0 and v models fall back to something
# near the data mean (error ≈ 2, the data's total variance), which is the best anyone can do
# there; the ε-model's x̂0 explodes, because its error in ε̂ is divided by √ᾱ_t ≈ 5·10⁻⁵. At the
# cleanest step (code t = 0) the x0-model is the least precise of the three: its loss gives those
# steps weight 1 where ε and v give SNR_t ≫ 1. Now the samples:

# %%
n = preset.eval_samples
sample_gen = torch.Generator().manual_seed(9)
results = {}
fig, axes = plt.subplots(2, 3, figsize=(10, 6.5))
for col, (objective, trainer) in enumerate(trainers.items()):
    for row, sampler in enumerate(("DDPM", f"DDIM {preset.sample_steps}")):
        toy_sampling = dict(objective=objective, generator=sample_gen, clip_x0=False, device=device)
        if sampler == "DDPM":
            x = ddpm_sample(trainer.ema_model, (n, 2), cosine, **toy_sampling).cpu()
        else:
            x = ddim_sample(trainer.ema_model, (n, 2), cosine, steps=preset.sample_steps, **toy_sampling).cpu()
        distances = nearest_neighbour_distances(x, data)
        results[objective, sampler] = (distances.median().item(), (distances > 0.5).float().mean().item(),
                                       mmd_rbf(x, data[:2000]))
        ax = axes[row, col]
        ax.scatter(data[:1000, 0], data[:1000, 1], s=1, c="lightgray")
        ax.scatter(x[:, 0], x[:, 1], s=3)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
        ax.set_title(f"{objective}, {sampler}: {results[objective, sampler][1]:.0%} off the data", fontsize=9)
plt.tight_layout()
plt.show()
noise_nn = nearest_neighbour_distances(torch.randn(n, 2, generator=sample_gen), data).median().item()
print(f"{'':18s} median NN dist   off the data    MMD     (noise N(0, I): median NN distance {noise_nn:.3f})")
for (objective, sampler), (median_nn, outliers, mmd) in results.items():
    print(f"{objective:3s} {sampler:14s} {median_nn:11.3g} {outliers:12.0%} {mmd:10.3g}")

# %% [markdown]
# Read the table together with the x0-error plot. With the cosine schedule and no clipping, the
# ε-model's first steps start from a garbage x̂0: the deterministic DDIM sampler carries that error
# to the end (samples far off the plot); DDPM's fresh noise at every step washes much of it out but
# can leave a share of samples far away. The x0-model puts its samples on the moons, but often
# with the wrong proportions (small distances, yet a larger MMD); its loss gives the nearly clean
# steps far less weight than the ε and v losses do. The v-model does well on both counts.
# Image models usually hide the ε problem by clipping x̂0 to [−1, 1] (`clip_x0=True` in the
# samplers), which toy data and latents do not allow; predicting v removes it at its root, and is
# what Salimans & Ho (2022) and later video models (e.g. Imagen Video) use.
#
# The lesson, checked here with a loose bound so that it holds in every preset:

# %%
v_nn = results["v", "DDPM"][0]
print(f"v-model DDPM: median NN distance {v_nn:.3f} < {0.6 * noise_nn:.3f} (0.6 × noise);  "
      f"ε/v x0-error ratio at t = {T - 1}: {x0_error['eps'][-1] / x0_error['v'][-1]:.0f}")
assert v_nn < 0.6 * noise_nn
assert x0_error["eps"][-1] > 10 * x0_error["v"][-1]

# %% [markdown]
# ## Summary
#
# * Schedules differ in how they spend their steps across noise levels; log SNR(t) shows it at a
#   glance. Linear wastes about 30% of its steps on near-pure noise and never quite reaches it.
# * ε, x0 and v are interchangeable at a given x_t, but their losses weight the steps by SNR_t, 1
#   and 1 + SNR_t (in x0 units), and their x̂0 behaves very differently at high noise.
# * Try it: change `"cosine"` to `"linear"` in the experiment and rerun; or sample the ε-model with
#   `clip_x0=True`.
#
# Next: `04_image_ddpm` trains a U-Net on digits. Exercises: `exercises/03_schedules_and_parameterisations.ipynb`.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("Which schedule spends the most of its T steps where almost no signal is left (log SNR < −5)?",
             ["cosine", "linear", "sigmoid"], "linear",
             "The linear schedule destroys the signal early and spends about 30% of its steps below "
             "log SNR = −5; cosine and sigmoid spend far fewer there."),
    Question("Measured in x_0 units, how does the ε loss weight an error at step t?",
             ["by 1 + SNR_t", "by 1 at every step", "by SNR_t"], "by SNR_t",
             "‖ε − ε̂‖² = SNR_t ‖x_0 − x̂_0‖²: the ε loss cares most about nearly clean steps. The x_0 loss "
             "weights all steps by 1, the v loss by 1 + SNR_t."),
    Question("Why does an ε-model's estimate x̂_0 explode at the noisiest steps?",
             ["x̂_0 divides the error in ε̂ by √ᾱ_t, which is tiny there", "the schedule clips it",
              "the network sees no timestep there"],
             "x̂_0 divides the error in ε̂ by √ᾱ_t, which is tiny there",
             "x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t; at the last steps √ᾱ_t is tiny (about 5·10⁻⁵ for the cosine "
             "schedule here), so small errors grow enormously. Image models hide it by clipping x̂_0; "
             "v-prediction removes it."),
    NumericQuestion("With ᾱ_t = 0.64, ε = 1 and x_0 = 0.5, what is v = √ᾱ_t ε − √(1−ᾱ_t) x_0?", 0.5,
                    "√0.64 · 1 − √0.36 · 0.5 = 0.8 − 0.3 = 0.5.", tolerance=0.001),
    Question("Does any of the three schedules reach SNR = 0 (pure noise) at its last step?",
             ["yes, all three", "no: training never sees pure noise, yet sampling starts from it",
              "only the linear one"],
             "no: training never sees pure noise, yet sampling starts from it",
             "ᾱ at the last step is small but positive (about 4·10⁻⁵ for linear), a known flaw "
             "(Lin et al. 2024)."),
])
