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
# # Exercises 07 · 3D U-Net video diffusion
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Videos are (B, T, C, H, W); inside the U-Net, frames are folded into the batch: (B·T, C, H, W),
# clip b's frame t at row b·T + t. At the end you rebuild one temporal attention layer of the
# lesson's trained 3D U-Net from your functions and compare it with the real one.
#
# Stuck? `hint("7.1")` gives the idea of an exercise, `hint("7.1", 2)` the formula.

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

import torch
from einops import rearrange
from torch import nn

from course_lib.models.blocks import group_norm
from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb07 import (
    check_conv_costs, check_space_time_layer, check_temporal_attention_weights, check_to_time_sequences,
)

# %% [markdown]
# ## Exercise 7.1 · Pixels as sequences in time
#
# Temporal attention treats every pixel of a clip as a sequence of T feature vectors. Given
# features `h` (B·T, C, H, W) with the frames folded into the batch, return them as
# (B·H·W, T, C): sequence n = (b·H + y)·W + x holds pixel (y, x) of clip b, and its row t is the
# C features of that pixel in frame t. Careful: a `reshape` alone returns the right *shape* with
# the wrong contents.

# %%
def to_time_sequences(h: torch.Tensor, frames: int) -> torch.Tensor:
    raise NotImplementedError("Exercise 7.1: unfold the clips, bring the pixels next to the batch and time next to the channels, then reshape")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_to_time_sequences(to_time_sequences)

# %% [markdown]
# ## Exercise 7.2 · Attention weights with a relative position bias, and the image-mode mask
#
# Queries and keys `q`, `k` are (N, T, d): one sequence per pixel (one head). The bias table has
# one learned number per frame offset, `bias_table` (2M − 1,), entry m + M − 1 for offset
# m = j − i (key frame minus query frame), M = (len(bias_table) + 1) // 2 ≥ T. Return the weights
# (N, T, T):
#
# $$w_{ij} = \operatorname{softmax}_j\Big(\frac{q_i\cdot k_j}{\sqrt d} + b_{\,j-i}\Big),$$
#
# and with `image_mode=True` the logits off the diagonal are −∞ (each frame attends to itself only).

# %%
def temporal_attention_weights(q: torch.Tensor, k: torch.Tensor, bias_table: torch.Tensor,
                               image_mode: bool = False) -> torch.Tensor:
    raise NotImplementedError("Exercise 7.2: content scores q·k/√d, plus the bias looked up by offset j − i, masked, softmax over keys")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_temporal_attention_weights(temporal_attention_weights)

# %% [markdown]
# ## Exercise 7.3 · Full 3D convolution vs "(2+1)D"
#
# Count, for a 3D convolution `Conv3d(c_in, c_out, (k_t, k, k))` and for its factorised
# replacement — `Conv3d(c_in, c_out, (1, k, k))` (space, per frame) followed by
# `Conv3d(c_out, c_out, (k_t, 1, 1))` (time, per pixel) — the parameters (weights and biases) and
# the multiply-adds of one forward pass on one clip of `frames` × `height` × `width` positions
# ("same" padding: the output has as many positions as the input). Return
# `(params_full, params_factorised, macs_full, macs_factorised)` as ints.

# %%
def conv_costs(c_in: int, c_out: int, k: int, k_t: int, frames: int, height: int,
               width: int) -> tuple[int, int, int, int]:
    raise NotImplementedError("Exercise 7.3: weights per output channel = inputs × kernel volume; one bias each; MACs = weights × positions")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_conv_costs(conv_costs)

# %% [markdown]
# ## Exercise 7.4 · A factorised space-time layer
#
# Put the two halves together into one layer of a video network (Ho et al. 2022a): **space** by a
# 3×3 convolution applied to every frame on its own (a (1, 3, 3) kernel in 3D terms), then **time**
# by attention along the frames at every pixel, added back as a residual:
#
# 1. fold time into the batch, (B, T, C_in, H, W) -> (B·T, C_in, H, W), and apply `spatial`: h;
# 2. q, k, v = `qkv(norm(h))` split into three along the channels, each as one sequence of T
#    vectors per pixel, (B·H·W, T, C) — your `to_time_sequences`;
# 3. attention weights softmax_j(q_i · k_j / √C) (one head, no position bias), then the weighted
#    average of the values;
# 4. back to (B·T, C, H, W), h + `proj`(that), and unfold to (B, T, C_out, H, W).
#
# The check copies your layer's weights into `course_lib`'s `TemporalAttention`, and tests that a
# change in one frame reaches the other frames only through the temporal half.

# %%
class FactorisedSpaceTime(nn.Module):
    """x (B, T, C_in, H, W) -> (B, T, C_out, H, W): space per frame, then time per pixel."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.spatial = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm = group_norm(out_channels)
        self.qkv = nn.Conv2d(out_channels, 3 * out_channels, 1)
        self.proj = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Exercise 7.4: conv on the frames folded into the batch; attention along time per pixel; residual; unfold")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_space_time_layer(FactorisedSpaceTime)

# %% [markdown]
# ## Use your functions: one temporal attention layer of the trained U-Net
#
# The lesson's 3D U-Net (trained there, or now if you have not run the lesson; the same file in
# `../checkpoints/`). Its middle temporal attention layer computes, at every pixel and for each of
# its heads, your weights from its own queries, keys and bias table, averages the values with them
# and projects the result back, added to its input. Rebuild that from your two functions and
# compare with the layer itself, in video mode and in image mode.

# %%
from course_lib.config import get_preset
from course_lib.workshop.recipes import get_recipe
from course_lib.workshop.zoo import train_or_load

preset = get_preset()
recipe = get_recipe("video-shapes", preset)
unet = train_or_load(recipe, folder=Path("..") / "checkpoints").ema_model.eval()
layer = unet.middle_in.temporal  # TemporalAttention at the lowest resolution
T, C, heads = preset.video_frames, layer.channels, layer.num_heads
d, side = C // heads, preset.video_size // 8
h = torch.randn(2 * T, C, side, side, generator=torch.Generator().manual_seed(0))  # (B·T, C, H, W), B = 2


def my_temporal_attention(h: torch.Tensor, image_mode: bool) -> torch.Tensor:
    """The layer, rebuilt: h + proj(Σ_j w_ij v_j) with your sequences and your weights, head by head."""
    with torch.no_grad():
        q, k, v = (to_time_sequences(part, T) for part in layer.qkv(layer.norm(h)).chunk(3, dim=1))  # (N, T, C)
        heads_out = []
        for i in range(heads):
            part = slice(i * d, (i + 1) * d)
            w = temporal_attention_weights(q[..., part], k[..., part], layer.position_bias.table[i], image_mode)
            heads_out.append(w @ v[..., part])  # (N, T, d)
        out = torch.cat(heads_out, dim=-1)  # (N, T, C)
        out = rearrange(out, "(b h w) t c -> (b t) c h w", h=side, w=side)  # back to frames in the batch
        return h + layer.proj(out)


with torch.no_grad():
    for image_mode in (False, True):
        difference = (my_temporal_attention(h, image_mode) - layer(h, T, image_mode)).abs().max()
        print(f"image_mode={image_mode}: your layer vs the U-Net's, max difference {difference:.1e}")

# %% [markdown]
# And your costs for the widths of this U-Net's levels, at the preset's clip size: how much a
# "(2+1)D" factorisation saves over 3×3×3 kernels.

# %%
for level, mult in enumerate(unet.channel_mults):
    width, size = preset.video_base_channels * mult, preset.video_size >> level
    full, factorised, full_macs, factorised_macs = conv_costs(width, width, 3, 3, T, size, size)
    print(f"level {level} ({size}×{size}, {width} channels): params {full:,} vs {factorised:,}, "
          f"multiply-adds {full_macs / 1e6:.1f}M vs {factorised_macs / 1e6:.1f}M ({full_macs / factorised_macs:.2f}x)")
