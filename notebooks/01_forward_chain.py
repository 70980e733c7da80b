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
# # 01 · The forward Markov chain
#
# **Goals.** Simulate the diffusion (noising) process step by step, reproduce the seed's worked
# example x0 → x3 with numbers, derive ᾱ_t and the closed form q(x_t | x0), check it against
# simulation, and see how fast each noise schedule destroys the signal.
#
# **Prerequisites.** Lesson 00 (its conventions); Gaussians: mean, variance, and that a sum of
# independent Gaussians is Gaussian with the variances added.
#
# **Time.** Reading: about 40 minutes. Running with shipped weights: nothing to load or train (the
# README's table gives the measured run time). Training from scratch: nothing to train.
# **Seed sections:** §2.1 (the diffusion process), §4.1 (its Markov chain), §4.3 (the worked example).
#
# ## The chain (seed §2.1, §4.1)
#
# One step of the forward process keeps a fraction of the signal and adds Gaussian noise:
#
# $$x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_t,\qquad \epsilon_t \sim \mathcal N(0, I),$$
#
# i.e. $q(x_t \mid x_{t-1}) = \mathcal N(x_t;\ \sqrt{\alpha_t}\,x_{t-1},\ (1-\alpha_t) I)$.
#
# Two corrections to the seed's wording. §4.1 writes this step as p(x_t | x_{t−1}), but it is the
# fixed process *q*: we choose it, nothing in it is learned (the learned reverse step p_θ comes
# in lesson 02). And §2.1 calls x_t "the video frame at step t": t counts *diffusion steps*, not
# frames. x_t is the whole datum — a point, an image, or a whole clip of F frames — after t steps
# of noise.
#
# **Notation.** The seed writes α_t for the *signal variance kept* by step t; the noise variance it
# adds is β_t = 1 − α_t, and we write ᾱ_t = α_1 α_2 ⋯ α_t. (Many papers give the schedule as β_t;
# it is the same chain.) The square roots keep the variance at 1: if Var x_{t−1} = 1 then
# Var x_t = α_t + (1 − α_t) = 1.
#
# **Indexing in code.** Timesteps are 0-indexed: code `t` is the paper's step `t+1`, so the
# seed's α_1, α_2, α_3 are `schedule.alphas[0:3]`.

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

from course_lib.config import get_preset, seed_everything
from course_lib.data.toy import gaussian_mixture_1d
from course_lib.diffusion.forward import forward_step, q_sample
from course_lib.views.forward import noising_explorer, snr_plot
from course_lib.diffusion.schedules import make_schedule, schedule_from_betas

preset = get_preset()
g = seed_everything(0)
T = preset.num_diffusion_steps
schedule = make_schedule("linear", T)
x0 = gaussian_mixture_1d(preset.toy_points, seed=0)  # (N, 1): a 1D data distribution with two bumps
print(f"{len(x0)} data points, T = {T} steps")

# %% [markdown]
# ## Simulating the chain step by step
#
# Apply `forward_step` T times to every particle and watch the two bumps of the data melt into one
# standard normal.

# %%
path = [x0]
x = x0
for t in range(T):
    x = forward_step(x, t, schedule, generator=g)
    path.append(x)
path = torch.stack(path)  # (T+1, N, 1): path[k] is the sample after k steps

fig, (ax_paths, ax_hist) = plt.subplots(1, 2, figsize=(11, 3.5))
ax_paths.plot(path[:, :40, 0].numpy(), lw=0.6)
ax_paths.set_xlabel("steps taken")
ax_paths.set_ylabel("x")
ax_paths.set_title("40 particles through the chain")
for k in [0, T // 10, T // 4, T // 2, T]:
    ax_hist.hist(path[k, :, 0].numpy(), bins=80, range=(-4, 4), density=True, histtype="step", label=f"after {k} steps")
ax_hist.legend(fontsize=8)
ax_hist.set_title("the marginal distribution melts into N(0, 1)")
plt.show()

# %% [markdown]
# ## The seed's worked example (§4.3), with numbers
#
# The seed diffuses a datum x_0 through three explicit steps to x_3. To see something happen in only
# three steps we use large noise levels, α = (0.9, 0.8, 0.7), and fixed noise draws.

# %%
alphas = torch.tensor([0.9, 0.8, 0.7])
big_steps = schedule_from_betas(1 - alphas.double())  # a 3-step schedule with β = 1 − α
x0_example = torch.tensor([[1.0]])
eps = [torch.tensor([[0.5]]), torch.tensor([[-1.0]]), torch.tensor([[0.3]])]
x = x0_example
for t in range(3):  # code t = 0, 1, 2 are the seed's steps 1, 2, 3
    x_next = forward_step(x, t, big_steps, noise=eps[t])
    a = alphas[t].item()
    print(f"x{t + 1} = √{a:.1f}·{x.item():+.4f} + √{1 - a:.1f}·{eps[t].item():+.1f} = {x_next.item():+.4f}")
    x = x_next
x3_steps = x.item()

# %% [markdown]
# ## Deriving ᾱ_t: three steps in one
#
# Substitute x_1 into x_2 and x_2 into x_3:
#
# $$x_3 = \sqrt{\alpha_3\alpha_2\alpha_1}\,x_0 + \sqrt{\alpha_3\alpha_2(1-\alpha_1)}\,\epsilon_1 + \sqrt{\alpha_3(1-\alpha_2)}\,\epsilon_2 + \sqrt{1-\alpha_3}\,\epsilon_3.$$
#
# The three noise terms are independent Gaussians, so their sum is one Gaussian whose variance is
# the sum of the variances: α₃α₂(1−α₁) + α₃(1−α₂) + (1−α₃) = 1 − α₁α₂α₃. Writing ᾱ_t = ∏_{s≤t} α_s,
#
# $$q(x_t \mid x_0) = \mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),\qquad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\bar\epsilon.$$
#
# With the *same* noise, combined into ε̄, the closed form gives exactly the same x3:

# %%
a1, a2, a3 = alphas.double()
combined = (a3 * a2 * (1 - a1)).sqrt() * eps[0] + (a3 * (1 - a2)).sqrt() * eps[1] + (1 - a3).sqrt() * eps[2]
alpha_bar_3 = a1 * a2 * a3
eps_bar = combined / (1 - alpha_bar_3).sqrt()  # a standard normal draw
x3_closed = q_sample(x0_example, 2, big_steps, noise=eps_bar.float()).item()
print(f"ᾱ_3 = {alpha_bar_3:.3f}   three steps: {x3_steps:+.4f}   closed form: {x3_closed:+.4f}")
assert abs(x3_steps - x3_closed) < 1e-5

# %% [markdown]
# ## The closed form matches the chain, statistically
#
# Both routes must give the same *distribution* at every t. Compare mean and variance of the
# simulated chain (above) with q(x_t | x0) sampled in one jump, for several code timesteps t
# (code t is t + 1 steps of the chain).

# %%
print(" t    chain mean  closed mean   chain var  closed var")
for t in [0, T // 20, T // 4, T // 2, T - 1]:
    chain = path[t + 1]  # after t+1 steps
    closed = q_sample(x0, t, schedule, generator=g)
    print(f"{t:4d}   {chain.mean():+.3f}      {closed.mean():+.3f}      {chain.var():.3f}      {closed.var():.3f}")
    assert abs(chain.mean() - closed.mean()) < 0.1 and abs(chain.var() - closed.var()) < 0.1

# %% [markdown]
# ## How fast does each schedule destroy the signal?
#
# The *signal-to-noise ratio* SNR(t) = ᾱ_t / (1 − ᾱ_t) compares the variance of the signal term
# with that of the noise term. Dotted lines mark where SNR = 1 (as much noise as signal). The
# linear schedule of Ho et al. (2020) destroys the signal early; the cosine schedule (Nichol &
# Dhariwal 2021) and the sigmoid schedule keep it longer, so fewer steps are wasted on pure noise.

# %%
snr_plot(T)
plt.show()
for name in ["linear", "cosine", "sigmoid"]:
    s = make_schedule(name, T)
    print(f"{name:8s} SNR falls below 1 at code t = {int((s.snr < 1).nonzero()[0])}, ᾱ at the end = {s.alpha_bars[-1]:.1e}")

# %% [markdown]
# ## Explore: a slider over t and the schedule
#
# Move the slider to noise the 1D data and an image together. (Without widgets you see a static
# grid of the same pictures.)

# %%
yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
image = torch.where((xx.abs() < 0.5) & (yy.abs() < 0.5), 1.0, -1.0)[None]  # (C=1, H, W): a square
noising_explorer(x0, image, T)

# %% [markdown]
# ## Summary
#
# * One step: x_t = √α_t x_{t−1} + √(1−α_t) ε; many steps: x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε̄, with
#   ᾱ_t = α_1 ⋯ α_t. The forward chain is the fixed q; nothing in it is learned.
# * The closed form lets training jump to any t in one line: this is what makes diffusion training cheap.
# * Schedules differ in how fast ᾱ_t falls; the SNR curve shows it at a glance.
# * In code, t = 0 … T − 1 and code t is the paper's step t + 1.
#
# Next: `02_reverse_process` learns to walk the chain backwards. Exercises: `exercises/01_forward_chain.ipynb`.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    NumericQuestion("Three steps with α = 0.9, 0.8 and 0.7: how much signal variance ᾱ_3 is left?", 0.504,
                    "ᾱ_3 = α_1 α_2 α_3 = 0.9 · 0.8 · 0.7 = 0.504: the signal's variance is multiplied by α "
                    "at every step.", tolerance=0.001),
    NumericQuestion("If Var x_{t−1} = 1, what is Var x_t after one step x_t = √α_t x_{t−1} + √(1−α_t) ε?", 1,
                    "α_t · 1 + (1 − α_t) · 1 = 1: the square roots are chosen so that the variance stays 1."),
    Question("Why does the closed form q(x_t | x_0) make training cheap?",
             ["it removes the noise from training",
              "training can jump to any t in one step instead of simulating t steps",
              "it makes the network smaller"],
             "training can jump to any t in one step instead of simulating t steps",
             "x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε is one line for any t, so every training example can use a "
             "random t at the cost of one step."),
    NumericQuestion("At which value of ᾱ_t is the signal-to-noise ratio SNR_t = 1?", 0.5,
                    "SNR_t = ᾱ_t / (1 − ᾱ_t) = 1 when ᾱ_t = 1 − ᾱ_t, i.e. ᾱ_t = 0.5: as much signal "
                    "variance as noise variance.", tolerance=0.001),
    Question("The seed writes the forward step as p(x_t | x_{t−1}). What is it really?",
             ["q, a fixed process we choose", "p_θ, a process the network learns"],
             "q, a fixed process we choose",
             "The forward chain only adds Gaussian noise on a schedule we pick; the network learns the "
             "reverse step p_θ(x_{t−1} | x_t) (lesson 02)."),
])
