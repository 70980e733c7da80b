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
# # Exercises 01 · The forward Markov chain
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.

# %%
import torch

from course_lib.checks.nb01 import check_alpha_bar, check_forward_step, check_q_sample

# %% [markdown]
# ## Exercise 1.1 · One step of the chain (seed §2.1)
#
# Implement $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon$ for tensors of any shape.
# `alpha_t` is a 0-dim tensor, `eps` has the shape of `x_prev`.

# %%
def forward_step(x_prev: torch.Tensor, alpha_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 1.1: one step: scale the signal, add scaled noise")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_forward_step(forward_step)

# %% [markdown]
# ## Exercise 1.2 · ᾱ_t for every step
#
# Given the per-step `alphas` (shape (T,)), return ᾱ (shape (T,)) with ᾱ_t = α_1 ⋯ α_t.

# %%
def alpha_bar(alphas: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 1.2: a running product")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_alpha_bar(alpha_bar)

# %% [markdown]
# ## Exercise 1.3 · Jump to step t in one go
#
# Implement the closed form $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$.

# %%
def q_sample(x0: torch.Tensor, alpha_bar_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 1.3: the closed form q(x_t | x0)")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_q_sample(q_sample)

# %% [markdown]
# ## Check your understanding
#
# Simulate 20,000 particles through the first 300 steps with *your* `forward_step`, then jump there
# with *your* `q_sample`: the two histograms must agree.

# %%
from course_lib.schedules import make_schedule

schedule = make_schedule("linear", 1000)
g = torch.Generator().manual_seed(0)
x0 = torch.randn(20_000, 1, generator=g) * 0.3 + 1.0
x = x0
for t in range(300):
    x = forward_step(x, schedule.alphas[t], torch.randn(x.shape, generator=g))
jump = q_sample(x0, alpha_bar(schedule.alphas)[299], torch.randn(x0.shape, generator=g))
print(f"chain mean {x.mean():.2f} var {x.var():.2f} | closed form mean {jump.mean():.2f} var {jump.var():.2f}")
