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
# # 02 · The reverse process
#
# **Goals.** Derive the posterior q(x_{t−1} | x_t, x0) and check it numerically; see that the
# learned reverse step p_θ(x_{t−1} | x_t) is a Gaussian with mean μθ and variance σθ², and why
# σθ² can be fixed; go from the ELBO to the simple ε-prediction loss; then train a small network
# on 1D and 2D toy data with the course's `Trainer` and watch noise flow back into data with
# DDPM and DDIM, measuring how close the samples are to the truth.
#
# **Prerequisites.** Lesson 01 (the forward chain, ᾱ_t, q(x_t | x_0)); Bayes' rule and Gaussian
# densities; a PyTorch training loop (model, loss, optimiser step). The KL divergence is defined
# where it is used.
#
# **Time.** Reading: about 60 minutes. Running with shipped weights: nothing is shipped for this
# lesson; it trains three small MLPs itself, most of its run (README's table gives the
# measured run time). Training from scratch: those three MLPs, inside the lesson.
# **Seed sections:** §2.2 (the reverse process), §3 (training and generation), §4.2
# (p(x_{t−1} | x_t) = N(μθ, σθ² I)).
#
# Formulas count steps like the paper (t = 1 … T; x_T is noise). Code is 0-indexed as everywhere in
# the course: code `t` is the paper's step t + 1, so `alpha_bars[t]` is ᾱ_{t+1} and
# `alpha_bars_prev[t]` is ᾱ_t (1 at `t = 0`: before the first step the data is clean). Every index
# of a formula shifts by the same one in code, so the formulas read the same there; printed values
# labelled `t = …` are code timesteps.

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
from course_lib.data.toy import gaussian_mixture_1d, gaussian_mixture_1d_density, swiss_roll, two_moons
from course_lib.diffusion.forward import extract, forward_step, q_posterior, q_sample, x0_from_eps
from course_lib.diffusion.objectives import DiffusionObjective
from course_lib.metrics.toy import histogram_kl, mmd_rbf, nearest_neighbour_distance
from course_lib.models.mlp import MLPDenoiser
from course_lib.diffusion.samplers import ddim_sample, ddpm_sample, ddpm_steps
from course_lib.diffusion.schedules import make_schedule
from course_lib.views.toy import particle_animation, trajectory_from_steps
from course_lib.training import TrainConfig, Trainer, random_rows
from course_lib.views.figures import plot_trajectory

preset = get_preset()
g = seed_everything(0)
T = preset.num_diffusion_steps
schedule = make_schedule("linear", T)
device = get_device()  # training and sampling run here; results come back to the CPU for plots
print(f"preset {preset.name}: T = {T}, {preset.toy_train_steps} training steps per toy model, device {device}")

# %% [markdown]
# ## 1 · Walking the chain backwards (seed §2.2)
#
# The forward chain q(x_t | x_{t−1}) is ours: we chose it. Generation needs the other direction,
# q(x_{t−1} | x_t): given a noisy sample, where did it come from one step earlier? By Bayes,
# q(x_{t−1} | x_t) ∝ q(x_t | x_{t−1}) q(x_{t−1}), and q(x_{t−1}) involves the whole unknown data
# distribution, so this is intractable. But *conditioned on the clean x0* it is a Gaussian we
# can write down, and that is the key to everything that follows.
#
# ## 2 · The posterior q(x_{t−1} | x_t, x0)
#
# The chain is Markov, so q(x_t | x_{t−1}, x0) = q(x_t | x_{t−1}), and Bayes' rule gives
#
# $$q(x_{t-1}\mid x_t, x_0) = \frac{q(x_t\mid x_{t-1})\,q(x_{t-1}\mid x_0)}{q(x_t\mid x_0)}
#   \propto \exp\Big(-\frac{(x_t-\sqrt{\alpha_t}\,x_{t-1})^2}{2\beta_t}
#   -\frac{(x_{t-1}-\sqrt{\bar\alpha_{t-1}}\,x_0)^2}{2(1-\bar\alpha_{t-1})}\Big).$$
#
# The exponent is quadratic in x_{t−1}, so the posterior is Gaussian. Collect the x_{t−1}² terms
# (the precision) and the x_{t−1} terms:
#
# $$\frac{1}{\tilde\beta_t} = \frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}}
#   = \frac{1-\bar\alpha_t}{\beta_t(1-\bar\alpha_{t-1})},\qquad
#   \frac{\tilde\mu_t}{\tilde\beta_t} = \frac{\sqrt{\alpha_t}}{\beta_t}x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0,$$
#
# (using α_t(1 − ᾱ_{t−1}) + β_t = 1 − ᾱ_t). Completing the square:
#
# $$q(x_{t-1}\mid x_t,x_0)=\mathcal N\big(x_{t-1};\ \tilde\mu_t(x_t,x_0),\ \tilde\beta_t I\big),\quad
#   \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\quad
#   \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
#
# (Ho et al. 2020, Eqs. 6–7.) The mean is a weighted average of "where x0 says we were" and "where
# x_t says we are". `course_lib.diffusion.forward.q_posterior` implements it; the schedule stores the two
# coefficients and β̃_t.
#
# **Check 1, exact.** (x_{t−1}, x_t) given x0 are jointly Gaussian, so the textbook conditioning
# formula μ₁ + Σ₁₂/Σ₂₂ (x_t − μ₂), Σ₁₁ − Σ₁₂²/Σ₂₂ must give the same numbers.

# %%
x0_value, xt_value = torch.tensor([[0.8]]), torch.tensor([[0.3]])
print("   t   q_posterior mean / var      Gaussian conditioning mean / var")
for t in [1, 10, 100, 500, T - 1]:
    mean, var, _ = q_posterior(x0_value, xt_value, t, schedule)
    a, ab, ab_prev = (s[t].double() for s in (schedule.alphas, schedule.alpha_bars, schedule.alpha_bars_prev))
    cov_prev, cov_cross, cov_t = 1 - ab_prev, a.sqrt() * (1 - ab_prev), 1 - ab  # Var x_{t−1}, Cov, Var x_t
    cond_mean = ab_prev.sqrt() * 0.8 + cov_cross / cov_t * (0.3 - ab.sqrt() * 0.8)
    cond_var = cov_prev - cov_cross**2 / cov_t
    print(f"{t:4d}   {mean.item():+.5f} / {var.item():.3e}     {cond_mean.item():+.5f} / {cond_var.item():.3e}")
    assert abs(mean.item() - cond_mean.item()) < 1e-4
    assert abs(var.item() / cond_var.item() - 1) < 1e-3

# %% [markdown]
# **Check 2, by simulation.** Run the forward chain from one x0 many times, keep only the runs
# whose x_t landed in a thin window around a value, and look at where they were one step earlier.

# %%
t = 200
n_runs = 400_000
x0_many = torch.full((n_runs, 1), 0.8)
x_prev = q_sample(x0_many, t - 1, schedule, generator=g)  # after t steps (code index t − 1)
x_t = forward_step(x_prev, t, schedule, generator=g)  # one more step: code index t
window = (x_t - 0.3).abs() < 0.01
kept = x_prev[window]
mean, var, _ = q_posterior(torch.tensor([[0.8]]), torch.tensor([[0.3]]), t, schedule)
print(f"{int(window.sum())} runs ended near x_t = 0.3; their x_(t-1): mean {kept.mean():+.4f}, var {kept.var():.2e}")
print(f"posterior formula:                          mean {mean.item():+.4f}, var {var.item():.2e}")
assert abs(kept.mean() - mean.item()) < 0.01 and abs(kept.var() / var.item() - 1) < 0.1

# %% [markdown]
# ## 3 · The learned reverse step p_θ(x_{t−1} | x_t) = N(μθ, σθ² I) (seed §4.2)
#
# At generation time there is no x0. The model replaces it by a *prediction*: a network
# ε_θ(x_t, t) guesses the noise in x_t, which gives a guess of the clean data (invert
# x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε),
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t,t)}{\sqrt{\bar\alpha_t}},$$
#
# and the reverse step uses the posterior with x̂0 in place of x0. Substituting and simplifying:
#
# $$p_\theta(x_{t-1}\mid x_t) = \mathcal N\big(x_{t-1};\ \mu_\theta(x_t,t),\ \sigma_t^2 I\big),\qquad
#   \mu_\theta(x_t,t) = \tilde\mu_t(x_t,\hat x_0) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t,t)\Big).$$
#
# This is the seed's §4.2 formula with both parts made concrete. **The variance** σθ² is *not*
# learned in Ho et al. (2020): they fix it to σ_t² = β_t or σ_t² = β̃_t, which are the two extreme
# right answers (β_t is optimal if the data were N(0, I), β̃_t if the data were a single point) and
# gave similar samples. Nichol & Dhariwal (2021) learn an interpolation between the two, which helps
# the likelihood and sampling with few steps. The two choices differ only for the first few steps:

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy(schedule.betas.numpy(), label="β_t")
ax.semilogy(torch.arange(1, T).numpy(), schedule.posterior_variance[1:].numpy(), "--", label="β̃_t")
ax.set_xlabel("code timestep t")
ax.set_ylabel("reverse-step variance σ_t²")
ax.legend()
plt.show()
ratio = schedule.posterior_variance / schedule.betas
print("β̃_t / β_t: " + ", ".join(f"{ratio[t]:.3f} at t={t}" for t in (1, 10, 100, T - 1)))

# %% [markdown]
# The algebra above (μ̃ evaluated at x̂0 equals the closed form of μθ) is easy to get wrong, so
# check it on random numbers:

# %%
tt = torch.randint(1, T, (6,), generator=g)
x_t, eps_hat = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
via_posterior = q_posterior(x0_from_eps(x_t, tt, eps_hat, schedule), x_t, tt, schedule)[0]
a, b, ab = (extract(s, tt, x_t.shape) for s in (schedule.alphas, schedule.betas, schedule.alpha_bars))
closed_form = (x_t - b / (1 - ab).sqrt() * eps_hat) / a.sqrt()
print(f"max |μ̃(x̂0, x_t) − closed-form μθ| = {(via_posterior - closed_form).abs().max():.1e}")
assert torch.allclose(via_posterior, closed_form, atol=1e-4)

# %% [markdown]
# ## 4 · From the ELBO to the simple ε loss (seed §3.1)
#
# Training maximises a lower bound on log p_θ(x0) (the ELBO). For diffusion it splits into one
# term per step (Ho et al. 2020, Eq. 5):
#
# $$-\log p_\theta(x_0) \le \mathbb E_q\Big[\underbrace{D_{KL}(q(x_T\mid x_0)\,\|\,p(x_T))}_{L_T}
#   + \sum_{t>1}\underbrace{D_{KL}(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))}_{L_{t-1}}
#   \underbrace{-\log p_\theta(x_0\mid x_1)}_{L_0}\Big].$$
#
# L_T has no parameters. Each L_{t−1} compares two Gaussians with the same variance σ_t², so it is
# a squared distance between their means, and with μθ written through ε_θ:
#
# $$L_{t-1} = \frac{\|\tilde\mu_t - \mu_\theta\|^2}{2\sigma_t^2}
#   = \underbrace{\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}}_{\lambda_t}\,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2 .$$
#
# Ho et al. drop the weight λ_t and sample t uniformly: the **simple loss**
# $L_{simple} = \mathbb E_{t,x_0,\epsilon}\|\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon,\ t)\|^2$
# (their Eq. 14). This is `course_lib.diffusion.objectives.diffusion_loss`. First check the KL identity on
# numbers, then look at the weight the simple loss throws away.

# %%
t = 300
x0_s, eps = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
eps_hat = eps + 0.3 * torch.randn(4, 2, generator=g)
x_t = q_sample(x0_s, t, schedule, noise=eps)
mu_true, var_true, _ = q_posterior(x0_s, x_t, t, schedule)
mu_model = q_posterior(x0_from_eps(x_t, t, eps_hat, schedule), x_t, t, schedule)[0]
kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu_true, var_true.sqrt()),
                                       torch.distributions.Normal(mu_model, var_true.sqrt())).sum(1)
lam = schedule.betas[t] ** 2 / (2 * schedule.posterior_variance[t] * schedule.alphas[t] * (1 - schedule.alpha_bars[t]))
print("KL per sample:        ", [round(v, 4) for v in kl.tolist()])
print("λ_t · ‖ε − ε̂‖²:      ", [round(v, 4) for v in (lam * (eps - eps_hat).square().sum(1)).tolist()])
assert torch.allclose(kl, lam * (eps - eps_hat).square().sum(1), rtol=1e-3)

# %%
ts = torch.arange(1, T)
lam_tilde = schedule.betas[ts] / (2 * schedule.alphas[ts] * (1 - schedule.alpha_bars_prev[ts]))  # σ² = β̃_t
lam_beta = schedule.betas[ts] / (2 * schedule.alphas[ts] * (1 - schedule.alpha_bars[ts]))  # σ² = β_t
fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy(ts.numpy(), lam_tilde.numpy(), label="ELBO weight λ_t, σ² = β̃_t")
ax.semilogy(ts.numpy(), lam_beta.numpy(), "--", label="ELBO weight λ_t, σ² = β_t")
ax.axhline(lam_tilde.mean().item(), color="k", lw=0.8, label="simple loss (constant)")
ax.set_xlabel("code timestep t")
ax.legend(fontsize=8)
plt.show()
print(f"λ_t falls {lam_tilde[0] / lam_tilde[-1]:.0f}-fold from t=1 to t={T - 1}: the simple loss gives the "
      "noisy steps relatively more weight than the ELBO does")

# %% [markdown]
# Relative to the ELBO, the simple loss down-weights the nearly clean steps (small t, easy
# denoising) and spends the network's capacity on the noisy ones. Ho et al. found this gives
# better samples, at the price of a worse likelihood.
#
# ## 5 · Training (seed §3.1) with the course's `Trainer`
#
# Three objects with clean seams (as in every later notebook):
#
# * the **network** `MLPDenoiser(data_dim)` maps (x_t, t) to a prediction and knows nothing of noise;
# * the **objective** `DiffusionObjective(schedule, "eps")` draws t and ε and returns the simple loss;
# * the **trainer** owns the data stream (`random_rows(data, batch)`), AdamW with warm-up, gradient
#   clipping, an EMA copy of the weights (`trainer.ema_model`, the one we sample from), mixed
#   precision and checkpoints. All its randomness comes from two seeded generators, so the same
#   seed gives the same model.
#
# First the 1D two-bump mixture from notebook 01.

# %%
def toy_config(steps: int) -> TrainConfig:
    """The settings every toy model of this notebook uses; sizes come from the preset."""
    return TrainConfig.from_preset(preset, steps=steps, lr=2e-3, warmup_steps=min(100, steps // 10),
                                   ema_decay=0.995, compile=False)


data_1d = gaussian_mixture_1d(preset.toy_points, seed=0)  # (N, 1)
torch.manual_seed(0)
trainer_1d = Trainer(MLPDenoiser(1, hidden=64), DiffusionObjective(schedule, "eps"),
                     random_rows(data_1d, preset.toy_batch_size), toy_config(preset.toy_train_steps), device=device)
trainer_1d.fit()
print(f"1D: {trainer_1d.step} steps in {trainer_1d.seconds:.1f} s ({trainer_1d.steps_per_second:.0f} steps/s), "
      f"final loss {trainer_1d.recent_loss():.3f}")

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(trainer_1d.history["step"], trainer_1d.history["loss"], lw=0.5, alpha=0.5)
ax.set_xlabel("step")
ax.set_ylabel("simple loss ‖ε − ε̂‖²")
ax.set_ylim(0, 1.2)
plt.show()

# %% [markdown]
# The loss does not go to zero: at large t the noise in x_t cannot be told apart from the data,
# so even a perfect ε_θ has a positive error. Whether the model is good shows in its samples.
#
# ## 6 · Generation (seed §3.2): DDPM and DDIM in 1D
#
# **DDPM** (Ho et al. 2020, Algorithm 2) runs all T reverse steps, sampling
# x_{t−1} ~ N(μθ, σ_t² I). **DDIM** (Song et al. 2021a) uses the same trained network but a
# deterministic update that may skip steps, here 50 instead of 1000. Toy data is not confined to
# [−1, 1] like images, so we switch off the x̂0 clipping (`clip_x0=False`).
# Each sampler takes its own seeded `torch.Generator`, so the samples are reproducible.
#
# To judge the samples we compare their histogram with the true density by a KL divergence, next to
# two references: fresh data (the floor set by the finite sample size) and N(0, 1), the single
# Gaussian with the data's mean and variance (a model that learned nothing else).

# %%
n_1d = min(2000, 8 * preset.eval_samples)
sample_gen = torch.Generator().manual_seed(1)
toy_sampling = dict(generator=sample_gen, clip_x0=False, device=device)
model_1d = trainer_1d.ema_model
samples_1d = {
    "DDPM, σ² = β̃_t": ddpm_sample(model_1d, (n_1d, 1), schedule, **toy_sampling).cpu(),
    "DDPM, σ² = β_t": ddpm_sample(model_1d, (n_1d, 1), schedule, variance="beta", **toy_sampling).cpu(),
    f"DDIM, {preset.sample_steps} steps": ddim_sample(model_1d, (n_1d, 1), schedule, steps=preset.sample_steps,
                                                      **toy_sampling).cpu(),
}
references_1d = {"fresh data": gaussian_mixture_1d(n_1d, seed=1), "N(0, 1)": torch.randn(n_1d, 1, generator=sample_gen)}
kl_1d = {name: histogram_kl(x, gaussian_mixture_1d_density, bins=30)
         for name, x in {**samples_1d, **references_1d}.items()}
for name, value in kl_1d.items():
    print(f"KL(true ‖ samples) {name:22s} {value:.3f}")

grid = torch.linspace(-3.5, 3.5, 300)
fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)
for ax, (name, x) in zip(axes, samples_1d.items()):
    ax.hist(x[:, 0].numpy(), bins=50, range=(-3.5, 3.5), density=True, alpha=0.6)
    ax.plot(grid, gaussian_mixture_1d_density(grid), "k", lw=1.2, label="true density")
    ax.set_title(f"{name}: KL {kl_1d[name]:.3f}", fontsize=10)
axes[0].legend(fontsize=8)
plt.show()
assert kl_1d["DDPM, σ² = β̃_t"] < 0.5 * kl_1d["N(0, 1)"], "the 1D model should beat the single Gaussian clearly"

# %% [markdown]
# The reverse process, particle by particle: each line is one sample travelling from noise
# (left, code t = T−1) to the data (right). Notice that the particles choose their bump late, when the
# noise level has fallen.

# %%
trajectory_1d, steps_1d = trajectory_from_steps(
    ddpm_steps(model_1d, (200, 1), schedule, generator=torch.Generator().manual_seed(2), clip_x0=False, device=device),
    keep=100)
plot_trajectory(trajectory_1d, steps_1d, max_paths=60, title="1D DDPM trajectories (x-axis: snapshot, labelled by t)")
plt.show()

# %% [markdown]
# ## 7 · Two dimensions: two moons and a swiss roll
#
# The same three objects, now with `MLPDenoiser(2)`. Each model gets the preset's number of
# training steps; the timing printed is for your machine.

# %%
datasets_2d = {"two moons": two_moons(preset.toy_points, seed=0), "swiss roll": swiss_roll(preset.toy_points, seed=0)}
trainers_2d = {}
for name, data in datasets_2d.items():
    torch.manual_seed(0)
    trainer = Trainer(MLPDenoiser(2, hidden=128), DiffusionObjective(schedule, "eps"),
                      random_rows(data, preset.toy_batch_size), toy_config(preset.toy_train_steps), device=device)
    trainer.fit()
    trainers_2d[name] = trainer
    print(f"{name}: {trainer.step} steps in {trainer.seconds:.1f} s ({trainer.steps_per_second:.0f} steps/s), "
          f"final loss {trainer.recent_loss():.3f}")

# %% [markdown]
# How close are the samples to the data? Two numbers: the mean distance from each sample to its
# nearest data point (small when samples lie *on* the data; in the data's units, which have
# standard deviation 1), and the MMD to 2000 data points (zero on average when the two
# distributions agree, so it can come out slightly negative; it also notices a missing part, which
# the first number cannot). Fresh data and N(0, I) noise are the references.

# %%
n_2d = preset.eval_samples
results_2d = {}
fig, axes = plt.subplots(2, 3, figsize=(11, 7))
for row, (name, trainer) in zip(axes, trainers_2d.items()):
    data = datasets_2d[name]
    fresh = (two_moons if name == "two moons" else swiss_roll)(n_2d, seed=1)
    sample_gen = torch.Generator().manual_seed(3)
    toy_sampling = dict(generator=sample_gen, clip_x0=False, device=device)
    shown = {
        "DDPM": ddpm_sample(trainer.ema_model, (n_2d, 2), schedule, **toy_sampling).cpu(),
        f"DDIM {preset.sample_steps} steps": ddim_sample(trainer.ema_model, (n_2d, 2), schedule,
                                                         steps=preset.sample_steps, **toy_sampling).cpu(),
    }
    references = {"fresh data": fresh, "noise N(0, I)": torch.randn(n_2d, 2, generator=sample_gen)}
    for label, x in {**shown, **references}.items():
        results_2d[name, label] = (nearest_neighbour_distance(x, data), mmd_rbf(x, data[:2000]))
    row[0].scatter(data[:2000, 0], data[:2000, 1], s=1, c="gray")
    row[0].set_title(f"{name}: data", fontsize=10)
    for ax, (label, x) in zip(row[1:], shown.items()):
        ax.scatter(x[:, 0], x[:, 1], s=3)
        ax.set_title(f"{label}: NN dist {results_2d[name, label][0]:.3f}", fontsize=10)
    for ax in row:
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
plt.tight_layout()
plt.show()
print(f"{'':28s} NN distance    MMD")
for (name, label), (nn_dist, mmd) in results_2d.items():
    print(f"{name:11s} {label:16s} {nn_dist:10.3f} {mmd:10.4f}")

# %% [markdown]
# A bound the two-moons DDPM samples must meet: after the full training (`cpu` and `gpu` presets)
# they lie on the moons, closer than 0.05 on average (the moons are 2 units wide); in the `smoke`
# preset, with a few hundred steps, they must at least be much closer than noise.

# %%
moons_nn = results_2d["two moons", "DDPM"][0]
noise_nn = results_2d["two moons", "noise N(0, I)"][0]
bound = 0.05 if preset.name != "smoke" else 0.6 * noise_nn
print(f"two moons: mean distance to the data {moons_nn:.3f} (bound {bound:.3f}; noise {noise_nn:.3f})")
assert moons_nn < bound

# %% [markdown]
# ## 8 · Watch the particles flow
#
# Every DDPM step is a small move: predict x̂0, step towards the posterior mean, add a little
# noise. The animation shows 40 snapshots of the reverse chain for the two-moons model (grey: the
# data). Below it, a slider over the same snapshots and a static strip.

# %%
trajectory_2d, steps_2d = trajectory_from_steps(
    ddpm_steps(trainers_2d["two moons"].ema_model, (n_2d, 2), schedule, generator=torch.Generator().manual_seed(4),
               clip_x0=False, device=device), keep=30 if preset.name == "smoke" else 60)
particle_animation(trajectory_2d, steps_2d, data=datasets_2d["two moons"][:2000], title="DDPM")

# %%
plot_trajectory(trajectory_2d, steps_2d, num_panels=6, title="two moons: noise → data")
plt.show()

# %% [markdown]
# ## Summary
#
# * Given x0, the reverse step is the Gaussian q(x_{t−1} | x_t, x0) = N(μ̃_t, β̃_t I): exact,
#   checked against Gaussian conditioning and against simulation.
# * The model's step p_θ(x_{t−1} | x_t) = N(μθ, σ_t² I) plugs a predicted x̂0 (from ε_θ) into μ̃_t;
#   σ_t² is fixed to β_t or β̃_t (they differ only for the first steps).
# * Each ELBO term is λ_t‖ε − ε_θ‖²; dropping λ_t gives the simple loss that the `Trainer` minimises.
# * DDPM walks all T steps; DDIM reuses the same network with far fewer deterministic steps.
#
# Next: `03_schedules_and_parameterisations` changes the schedule and what the network predicts.
# Exercises: `exercises/02_reverse_process.ipynb` (the reverse step, then the whole sampling loop and the
# training loop, written by you).

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("Why can we write down q(x_{t−1} | x_t, x_0) but not q(x_{t−1} | x_t)?",
             ["the second is not Gaussian because the forward chain is not Markov",
              "the second needs the unknown data distribution; given x_0 the posterior is a Gaussian",
              "they are the same distribution"],
             "the second needs the unknown data distribution; given x_0 the posterior is a Gaussian",
             "By Bayes, q(x_{t−1} | x_t) involves q(x_{t−1}), an integral over all data. Conditioned on x_0 "
             "every factor is a known Gaussian, and so is the posterior N(μ̃_t, β̃_t I)."),
    Question("In the simple loss, what does the network ε_θ(x_t, t) predict?",
             ["the variance σ_t²", "the less noisy sample x_{t−1}", "the noise ε that was added to x_0"],
             "the noise ε that was added to x_0",
             "L_simple = E‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖²; the mean μθ and x̂_0 follow from ε̂."),
    Question("What do Ho et al. (2020) do with the reverse-step variance σ_t²?",
             ["fix it to β_t or β̃_t", "learn it per pixel with a second network", "set it to 0"],
             "fix it to β_t or β̃_t",
             "Both are right in an extreme case (data N(0, I), or a single point) and gave similar samples; "
             "they differ only in the first few steps. Nichol & Dhariwal (2021) learn an interpolation."),
    NumericQuestion("With T = 1000, how many network calls does DDPM make to draw one sample?", 1000,
                    "DDPM walks every reverse step, one network call each; DDIM can skip steps (50 calls "
                    "for DDIM with 50 steps)."),
    Question("Why does the simple loss not fall to zero even for a very good model?",
             ["the learning rate is too small",
              "at high noise the noise in x_t cannot be told apart from the data",
              "the EMA weights lag behind"],
             "at high noise the noise in x_t cannot be told apart from the data",
             "Near t = T almost nothing of x_0 is left, so even the best ε̂ has a positive expected error."),
])
