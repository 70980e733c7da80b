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
# # Exercises 06 · Find the bugs in the seed's video model
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Clips are (B, T, C, H, W) in [−1, 1]; timesteps are 0-indexed, one per clip, shape (B,). Each
# exercise repairs one part of the seed's §5.1 `VideoDiffusionModel` (the lesson, notebook 06,
# runs it and shows every failure). At the end your three functions become one working model.
#
# Stuck? `hint("6.1")` gives the idea of an exercise, `hint("6.1", 2)` the formula.

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
import torch.nn.functional as F
from torch import nn

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb06 import (
    check_bidirectional_conv_lstm, check_condition_on_time, check_conv_lstm_step, check_encode_frames,
)

# %% [markdown]
# ## Exercise 6.1 · Find the bug: the per-frame encoder
#
# The seed extracts features like this (`x` is the input clip, (B, T, C, H, W)):
#
# ```python
# features = []
# for i in range(num_frames):
#     for conv_layer in self.conv_layers:
#         x[:, i] = F.relu(conv_layer(x[:, i]))
#     features.append(x[:, i])
# features = torch.stack(features, dim=1)
# ```
#
# Before you write anything, answer for yourself: what happens on the line `x[:, i] = ...` when
# the first layer turns C channels into `hidden_dim` ≠ C? And when they are equal, what is left of
# the caller's `x` afterwards, and what does autograd need that the next write destroys?
#
# Then write `encode_frames(conv_layers, x)` -> (B, T, hidden, H, W): every layer applied to every
# frame as `relu(conv(...))`, without writing into `x` (or into anything autograd saved), so that
# `x` is unchanged afterwards and `backward()` works. Tip: the convolutions do not care which clip
# or frame an image comes from.

# %%
def encode_frames(conv_layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION build new tensors layer by layer; never write into x
    B, T, C, H, W = x.shape
    h = x.reshape(B * T, C, H, W)  # all frames of all clips side by side in the batch
    for conv_layer in conv_layers:
        h = F.relu(conv_layer(h))  # a new tensor each time: nothing is overwritten
    return h.reshape(B, T, *h.shape[1:])
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_encode_frames(encode_frames)

# %% [markdown]
# ## Exercise 6.2 · One ConvLSTM step
#
# The seed's `nn.LSTM` takes one *vector* per frame and was handed *maps*. A ConvLSTM (Shi et al.
# 2015) keeps the maps: its states h, c are (N, hidden, H, W) and its gates come from one
# convolution over the input and the previous hidden state, concatenated along the channels:
#
# $$[i, f, g, o] = \mathrm{gates}([x, h]),\qquad c' = \sigma(f)\odot c + \sigma(i)\odot\tanh(g),\qquad h' = \sigma(o)\odot\tanh(c').$$
#
# `gates` is an `nn.Conv2d(in + hidden, 4·hidden, 3, padding=1)`; split its output into four
# blocks of `hidden` channels **in the order i, f, g, o** (as `course_lib`'s `ConvLSTMCell`).
# x: (N, in, H, W); h, c: (N, hidden, H, W). Return `(h', c')`.

# %%
def conv_lstm_step(gates: nn.Conv2d, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    ### BEGIN SOLUTION gates from one convolution over [x, h]; then c' and h' as in the formula
    i, f, g, o = gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # keep some memory, write some new
    h_next = torch.sigmoid(o) * torch.tanh(c_next)  # show some of the memory
    return h_next, c_next
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_conv_lstm_step(conv_lstm_step)

# %% [markdown]
# ## Exercise 6.3 · Find the bug: the timestep that nobody reads
#
# The seed's `forward(self, x, t)` never uses `t`, so its output is the same at every noise level.
# The course's networks embed t into a vector `emb` (B, D), one per clip, and every block adds a
# learned shift of it to its features, the same for every pixel:
# h + Linear(SiLU(emb)), as in `ResBlock`.
#
# In a video network the per-frame layers see `h` with time folded into the batch, (B·T, C, H, W),
# in the order `x.reshape(B * T, C, H, W)` gives: clip 0's T frames, then clip 1's, and so on.
# Write `condition_on_time(h, emb, frames, proj)` that adds to every frame the shift of *its own
# clip*: `proj` is an `nn.Linear(D, C)`, `frames` is T.

# %%
def condition_on_time(h: torch.Tensor, emb: torch.Tensor, frames: int, proj: nn.Linear) -> torch.Tensor:
    ### BEGIN SOLUTION one shift per clip, repeated for each of its frames, broadcast over the pixels
    shift = proj(F.silu(emb))  # (B, C)
    shift = shift.repeat_interleave(frames, dim=0)  # (B·T, C): clip 0's shift T times, then clip 1's
    return h + shift[:, :, None, None]
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_condition_on_time(condition_on_time)

# %% [markdown]
# ## Exercise 6.4 · Both ways along time
#
# A ConvLSTM running forward gives frame k a summary of frames 0 … k; the lesson's denoiser also
# runs a second cell backward, so that frame k hears about frames k … T−1 too (its `merge` layer
# combines the two). Given two cells (`cell(x, state) -> (h, c)`; `state=None` starts from zeros)
# and features `frames` (B, T, C, H, W), run `forward_cell` over frames 0, 1, …, T−1 and
# `backward_cell` over frames T−1, …, 0, each from a zero state, and return for every frame its two
# hidden states side by side, `[h_forward, h_backward]` along the channels: (B, T, 2·hidden, H, W).
# Careful: the backward run meets frame T−1 first, but its output for frame k belongs at position k.

# %%
def bidirectional_conv_lstm(forward_cell: nn.Module, backward_cell: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION one state per direction from zero; the backward outputs put back in frame order; concatenate
    T = frames.shape[1]
    forward, backward = [], [None] * T
    state = None
    for k in range(T):  # the past flows into frame k
        state = forward_cell(frames[:, k], state)
        forward.append(state[0])
    state = None
    for k in reversed(range(T)):  # the future flows into frame k
        state = backward_cell(frames[:, k], state)
        backward[k] = state[0]
    return torch.cat([torch.stack(forward, dim=1), torch.stack(backward, dim=1)], dim=2)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_bidirectional_conv_lstm(bidirectional_conv_lstm)

# %% [markdown]
# ## Use your functions: the seed's model, repaired
#
# Here is the seed's model rebuilt from your three functions: its two convolutions (now through
# your `encode_frames`), the timestep added to the features (your `condition_on_time`), a
# ConvLSTM running forward in time (your `conv_lstm_step`) instead of `nn.LSTM`, and the seed's
# output convolution. It runs where the seed crashed, reads t, backpropagates, and — running
# forward in time only — is causal.

# %%
from course_lib.config import get_preset
from course_lib.data.video import bouncing_shapes
from course_lib.models.conv_lstm import frame_influence
from course_lib.models.embeddings import TimestepEmbedding
from course_lib.models.inspect import count_parameters
from course_lib.workshop.recipes import get_recipe
from course_lib.workshop.zoo import train_or_load


class RepairedSeedModel(nn.Module):
    """forward(x (B, T, C, H, W), t (B,)) -> (B, T, C, H, W), from the three functions above."""

    def __init__(self, channels: int = 3, hidden_dim: int = 16, num_layers: int = 2, time_dim: int = 64):
        super().__init__()
        self.conv_layers = nn.ModuleList([nn.Conv2d(channels if i == 0 else hidden_dim, hidden_dim, 3, padding=1)
                                          for i in range(num_layers)])  # the seed's
        self.time_embedding = TimestepEmbedding(hidden_dim, time_dim)
        self.time_proj = nn.Linear(time_dim, hidden_dim)
        self.gates = nn.Conv2d(2 * hidden_dim, 4 * hidden_dim, 3, padding=1)  # ConvLSTM: in = hidden = hidden_dim
        self.output_layer = nn.Conv2d(hidden_dim, channels, 3, padding=1)  # the seed's

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]
        features = encode_frames(self.conv_layers, x)  # (B, T, hid, H, W)        -- exercise 6.1
        features = condition_on_time(features.flatten(0, 1), self.time_embedding(t), T, self.time_proj)  # 6.3
        frames = features.reshape(B, T, *features.shape[1:])
        h = c = torch.zeros_like(frames[:, 0])
        hidden = []
        for k in range(T):  # forward in time only
            h, c = conv_lstm_step(self.gates, frames[:, k], h, c)  # -- exercise 6.2
            hidden.append(h)
        out = self.output_layer(torch.stack(hidden, dim=1).flatten(0, 1))
        return out.reshape(x.shape)


preset = get_preset()
T, S = preset.video_frames, preset.video_size
clip = bouncing_shapes(2, frames=T, size=S, seed=6).video
t = torch.tensor([10, 900])
torch.manual_seed(0)
repaired = RepairedSeedModel()
out = repaired(clip, t)
out.square().mean().backward()
with torch.no_grad():
    moved = (repaired(clip, torch.zeros(2, dtype=torch.long)) - repaired(clip, torch.full((2,), 999))).abs().max()
influence = frame_influence(repaired, clip, t, changed_from=T // 2, generator=torch.Generator().manual_seed(1))
print(f"repaired seed model ({count_parameters(repaired):,} parameters): {tuple(clip.shape)} -> {tuple(out.shape)}, "
      f"backward OK")
print(f"output(t = 0) vs output(t = 999): max difference {moved:.3f}")
print(f"frames {T // 2}.. replaced by noise; output change per frame: "
      + "  ".join(f"{v:.3f}" for v in influence.tolist()))

# %% [markdown]
# It runs, but it is untrained. The lesson's ConvLSTM denoiser (same file in `../checkpoints/`;
# trained now if you have not run the lesson) has learned from bouncing shapes. Compare the two on
# the same training batch, with the same noise and timesteps: the recipe's loss (x0-prediction).

# %%
recipe = get_recipe("video-shapes", preset, model="conv_lstm")
trained = train_or_load(recipe, folder=Path("..") / "checkpoints").ema_model.eval()
batch = recipe.make_batch(torch.Generator().manual_seed(3))
with torch.no_grad():
    losses = {name: recipe.loss_fn(net, batch, torch.Generator().manual_seed(4)).item()
              for name, net in [("your repaired seed model (untrained)", repaired.eval()),
                                ("the lesson's ConvLSTM denoiser (trained)", trained)]}
for name, loss in losses.items():
    print(f"{name:42s} loss {loss:.3f}")
