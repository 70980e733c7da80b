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
# # Exercises 15 · Latent video diffusion
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Videos and latents are (B, F, C, H, W): B clips of F frames. Tokens are (B, F, N, D), N tokens per
# frame of D numbers each, or (B, L, D) for any sequence of L tokens.

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
import torch.nn.functional as F

from course_lib.workshop.checks.nb15 import (
    check_gated_residual, check_modulate, check_patchify, check_unpatchify, stand_in_sublayer,
)

# %% [markdown]
# ## Exercise 15.1 · Patchify and unpatchify
#
# Cut every frame of x (B, F, C, H, W) into p × p patches and flatten each patch into one token.
# Number the patches row by row (patch n sits at row n // (W/p), column n % (W/p)), and list a
# token's values channel first: index c·p·p + i·p + j is channel c, pixel (i, j) of the patch.
# Return tokens (B, F, N, C·p·p) with N = (H/p)·(W/p). One `reshape`, one `permute`, one `reshape`.

# %%
def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """x (B, F, C, H, W), H and W divisible by p -> tokens (B, F, (H/p)·(W/p), C·p·p)."""
    ### BEGIN SOLUTION split H and W into (which patch, where in it), bring the patch axes forward
    B, frames, C, H, W = x.shape
    x = x.reshape(B, frames, C, H // p, p, W // p, p)  # (B, F, C, rows, i, cols, j)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)  # (B, F, rows, cols, C, i, j)
    return x.reshape(B, frames, (H // p) * (W // p), C * p * p)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_patchify(patchify)

# %% [markdown]
# Now the way back, which the transformer's last layer needs: tokens (B, F, N, C·p·p) of square
# frames `size` × `size` -> frames (B, F, C, size, size). The same three steps, backwards.

# %%
def unpatchify(tokens: torch.Tensor, p: int, channels: int, size: int) -> torch.Tensor:
    """tokens (B, F, (size/p)², channels·p·p) -> x (B, F, channels, size, size); the inverse of patchify."""
    ### BEGIN SOLUTION unflatten, move the channel and pixel axes back between the patch axes, flatten
    B, frames = tokens.shape[:2]
    g = size // p  # patches per row and per column
    x = tokens.reshape(B, frames, g, g, channels, p, p)  # (B, F, rows, cols, C, i, j)
    x = x.permute(0, 1, 4, 2, 5, 3, 6)  # (B, F, C, rows, i, cols, j)
    return x.reshape(B, frames, channels, size, size)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_unpatchify(unpatchify)

# %% [markdown]
# ## Exercise 15.2 · adaLN modulation and the gated residual
#
# Adaptive layer norm (Peebles & Xie 2023) lets the conditioning (timestep, label) set the scale and
# shift of the normalised tokens: modulate(x, shift, scale) = x·(1 + scale) + shift, so that
# scale = shift = 0 leaves x as it is. Tokens are (B, L, D); shift and scale (B, 1, D) broadcast.

# %%
def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (B, L, D); shift, scale (B, 1, D) -> x·(1 + scale) + shift, (B, L, D)."""
    ### BEGIN SOLUTION scale first, then shift
    return x * (1 + scale) + shift
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_modulate(modulate)

# %% [markdown]
# A DiT block wraps each sub-layer f (attention, MLP) the same way: normalise the tokens (a
# LayerNorm without learned weights: `F.layer_norm(h, h.shape[-1:], eps=1e-6)`), modulate them,
# apply f, and add f's output gated by α:
#
# $$h \leftarrow h + \alpha \cdot f\big(\mathrm{LN}(h)\,(1 + \gamma) + \beta\big).$$
#
# With α = 0 (adaLN-Zero's start) the block is the identity. Use your `modulate`.

# %%
def gated_residual(h: torch.Tensor, f, shift: torch.Tensor, scale: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """h (B, L, D); f: tokens -> tokens; shift, scale, gate (B, 1, D) -> h + gate · f(modulate(LN(h), shift, scale))."""
    ### BEGIN SOLUTION normalise, modulate, apply f, gate, add
    a = F.layer_norm(h, h.shape[-1:], eps=1e-6)
    return h + gate * f(modulate(a, shift, scale))
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_gated_residual(gated_residual)

# %% [markdown]
# ## Check your understanding
#
# Your `patchify` and `unpatchify` should be exact inverses: patch a latent clip, put it back, and
# compare. And with a zero gate your block must leave the tokens as they were, whatever f does.
# Then count: how many tokens has a 16-frame clip of 64 × 64 RGB frames at 8× compression and
# patches of 2, and how many in pixel space with the same patches?

# %%
z = torch.randn(2, 8, 4, 8, 8)
print("exact inverse:", torch.equal(unpatchify(patchify(z, 2), 2, 4, 8), z))
h, zero = torch.randn(2, 5, 4), torch.zeros(2, 1, 4)
print("zero gate is the identity:", torch.equal(gated_residual(h, stand_in_sublayer, zero, zero, zero), h))
print("latent tokens:", 16 * (64 // 8 // 2) ** 2, "  pixel tokens:", 16 * (64 // 2) ** 2)
