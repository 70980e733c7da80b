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
# # Exercises 16 · Text-conditioned video
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Video tokens are (B, N, D): N tokens of a clip. Caption tokens are (B, L, D_c), with a mask (B, L)
# bool that is True on the real words and False on the padding.

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
import json
import time

# %%
import math

import torch

from course_lib.workshop.checks.nb16 import StandInTextModel, check_cross_attention, check_guided_prediction

# %% [markdown]
# ## Exercise 16.1 · Cross-attention with a mask
#
# One attention head in which the video tokens ask and the caption answers: queries q = x W_Q
# (B, N, d), keys k = c W_K and values v = c W_V (B, L, d) from the caption's tokens c. The scores
# q kᵀ / √d (B, N, L) of padded words (mask False) must get weight exactly 0 after the softmax, so set
# them to −∞ first; the softmax runs over the words (the last axis), so each video token's weights
# sum to 1. Return the weighted values (B, N, d).

# %%
def cross_attention(x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor, w_q: torch.Tensor,
                    w_k: torch.Tensor, w_v: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), context (B, L, D_c), mask (B, L) bool, w_q (D, d), w_k and w_v (D_c, d) -> (B, N, d)."""
    ### BEGIN SOLUTION project, score, mask the padding, softmax over the words, weight the values
    q, k, v = x @ w_q, context @ w_k, context @ w_v  # (B, N, d), (B, L, d), (B, L, d)
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, N, L)
    scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    return scores.softmax(dim=-1) @ v
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_cross_attention(cross_attention)

# %% [markdown]
# ## Exercise 16.2 · Classifier-free guidance on the caption
#
# Ask the model twice, with the caption's context and with the null caption's, and mix the answers
# (Ho & Salimans 2022):
#
# $$\hat\epsilon_w = \hat\epsilon_\varnothing + w\,(\hat\epsilon_c - \hat\epsilon_\varnothing).$$
#
# The model is called as `model(x_t, t, context=..., context_mask=...)`; w = 0 must give the null
# caption's answer and w = 1 the caption's own.

# %%
def guided_prediction(model, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor,
                      null_context: torch.Tensor, null_mask: torch.Tensor, w: float) -> torch.Tensor:
    """x_t (B, ...), t (B,), context and null_context (B, L, D_c), mask and null_mask (B, L) -> guided output (B, ...)."""
    ### BEGIN SOLUTION the captioned answer, the null answer, and the mix
    eps_c = model(x_t, t, context=context, context_mask=mask)
    eps_null = model(x_t, t, context=null_context, context_mask=null_mask)
    return eps_null + w * (eps_c - eps_null)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_guided_prediction(guided_prediction)

# %% [markdown]
# ## Check your understanding
#
# Whatever sits at a padded position, your cross-attention must give the same answer; and your
# guided prediction must be the null answer at w = 0 and the captioned one at w = 1. Then think:
# what would w = −1 ask for?

# %%
gen = torch.Generator().manual_seed(0)
x, context, w_q, w_k, w_v = (torch.randn(shape, generator=gen) for shape in
                             ((1, 3, 4), (1, 5, 4), (4, 4), (4, 4), (4, 4)))
mask = torch.tensor([[True, True, True, False, False]])
changed = context.clone()
changed[0, 3:] = 7.0
print("padding changes nothing:", torch.allclose(cross_attention(x, context, mask, w_q, w_k, w_v),
                                                 cross_attention(x, changed, mask, w_q, w_k, w_v)))
model, x_t, t = StandInTextModel(), torch.randn(1, 2, 3), torch.tensor([500])
null_mask = torch.tensor([[True, False, False, False, False]])
answers = [guided_prediction(model, x_t, t, context, mask, changed, null_mask, w) for w in (0.0, 1.0)]
print("w = 0 is the null answer:", torch.allclose(answers[0], model(x_t, t, context=changed, context_mask=null_mask)))
print("w = 1 is the captioned answer:", torch.allclose(answers[1], model(x_t, t, context=context, context_mask=mask)))
