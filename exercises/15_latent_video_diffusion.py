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
# Videos and latents are (B, F, C, H, W): B clips of F frames. Tokens are (B, F, N, D): N tokens
# per frame of D numbers each.

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

from course_lib.workshop.checks.nb15 import check_modulate, check_patchify

# %% [markdown]
# ## Exercise 15.1 · Patchify
#
# Cut every frame of x (B, F, C, H, W) into p × p patches and flatten each patch into one token.
# Number the patches row by row (patch n sits at row n // (W/p), column n % (W/p)), and list a
# token's values channel first: index c·p·p + i·p + j is channel c, pixel (i, j) of the patch.
# Return tokens (B, F, N, C·p·p) with N = (H/p)·(W/p). One `reshape`, one `permute`, one `reshape`.

# %%
def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """x (B, F, C, H, W), H and W divisible by p -> tokens (B, F, (H/p)·(W/p), C·p·p)."""
    raise NotImplementedError("Exercise 15.1: split H and W into (rows, p) and (cols, p), then bring rows and cols forward")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_patchify(patchify)

# %% [markdown]
# ## Exercise 15.2 · adaLN modulation
#
# Adaptive layer norm (Peebles & Xie 2023) lets the conditioning set the scale and shift of a
# normalised activation: x·(1 + scale) + shift, with scale = shift = 0 leaving x as it is (that is
# what the zero initialisation of adaLN-Zero relies on). Tokens are x (B, F, N, D); shift and scale
# come per clip and frame as (B, F, D): insert the token axis so that they broadcast over N.

# %%
def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (B, F, N, D); shift, scale (B, F, D) -> x·(1 + scale) + shift, (B, F, N, D)."""
    raise NotImplementedError("Exercise 15.2: one new axis for the tokens, then scale and shift")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_modulate(modulate)

# %% [markdown]
# ## Check your understanding
#
# Your `patchify` and the course's `unpatchify` should be exact inverses: patch a latent clip,
# put it back, and compare. Then count: how many tokens has a 16-frame clip of 64 × 64 RGB frames
# at 8× compression and patches of 2 — and how many in pixel space with the same patches?

# %%
from course_lib.models.transformer import unpatchify

z = torch.randn(2, 8, 4, 8, 8)
print("exact inverse:", torch.equal(unpatchify(patchify(z, 2), 2, 4, 8), z))
print("latent tokens:", 16 * (64 // 8 // 2) ** 2, "  pixel tokens:", 16 * (64 // 2) ** 2)
