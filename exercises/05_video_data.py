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
# # Exercises 05 · Video data and video tensors
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
#
# Stuck? `hint("5.1")` gives the idea of an exercise, `hint("5.1", 2)` the formula.

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

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb05 import check_clip_transform, check_frame_correlation, check_to_course_layout

# %% [markdown]
# ## Exercise 5.1 · Into the course layout
#
# Many video libraries and `nn.Conv3d` hold clips as `(B, C, T, H, W)`: channels before time.
# Return the same clips in the course's `(B, T, C, H, W)` layout. Move axes — don't re-cut memory.

# %%
def to_course_layout(x: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 5.1: swap the channel and time axes")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_to_course_layout(to_course_layout)

# %% [markdown]
# ## Exercise 5.2 · How alike are frames k apart?
#
# For a video `(B, T, C, H, W)` and a lag k, return the mean Pearson correlation between frame t
# and frame t + k (a 0-dim tensor):
#
# $$\rho_k = \operatorname{mean}_{b,\ t = 0 \dots T-1-k}\ \frac{\sum (u - \bar u)(v - \bar v)}{\sqrt{\sum (u - \bar u)^2 \, \sum (v - \bar v)^2}},
# \qquad u = x_{b,t},\ v = x_{b,t+k},$$
#
# with the sums and means taken over the C·H·W pixels of one frame.

# %%
def frame_correlation(video: torch.Tensor, lag: int) -> torch.Tensor:
    raise NotImplementedError("Exercise 5.2: pair frames lag apart, centre each frame, normalise, average")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_frame_correlation(frame_correlation)

# %% [markdown]
# ## Exercise 5.3 · From a decoded file to a training clip
#
# A decoded video file is `(T, C, H, W)` bytes (`uint8`, 0 … 255) of any length and frame size; a
# model wants `(frames, C, size, size)` float32 in [−1, 1]. Write the transform the course's
# `VideoFolder` applies to each file:
#
# 1. **a random temporal crop**: `frames` frames, `stride` apart, so they cover
#    span = (frames − 1)·stride + 1 source frames; draw the start uniformly over every start that
#    fits, `torch.randint(0, n_starts, (1,), generator=generator)`;
# 2. **resize**, so that the shorter side becomes `size` (the other one `round(side · size / shorter)`),
#    with `F.interpolate(..., mode="bilinear", antialias=True, align_corners=False)` on floats;
# 3. **centre crop** to `size` × `size` (start at `(new_side − size) // 2`);
# 4. **normalise** 0 … 255 to −1 … 1.

# %%
def clip_transform(video: torch.Tensor, frames: int, size: int, stride: int,
                   generator: torch.Generator) -> torch.Tensor:
    raise NotImplementedError("Exercise 5.3: a start that fits, every stride-th frame; shorter side to size, the middle square; to [−1, 1]")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_clip_transform(clip_transform)

# %% [markdown]
# ## Check your understanding
#
# With *your* functions: turn clips stored as (B, C, T, H, W) into the course layout, then
# compare how frame correlation falls with distance for real motion and for shuffled frames.
# Then cut training clips from a "file" of 40 frames at 64 × 48 with *your* transform: a longer
# stride makes neighbouring training frames less alike.

# %%
from course_lib.data.video import moving_digits, shuffle_frames, to_channels_first_time

clips_cthw = to_channels_first_time(moving_digits(8, frames=10, size=32, seed=0).video)  # as another library stores them
video = to_course_layout(clips_cthw)
shuffled = shuffle_frames(video, torch.Generator().manual_seed(0))
for k in (1, 3, 6):
    print(f"k = {k}: in order {frame_correlation(video, k):.2f}   shuffled {frame_correlation(shuffled, k):.2f}")

file = moving_digits(1, frames=40, size=64, seed=1).video[0, :, :, 8:56]  # (40, 1, 64, 48), a "decoded file"
as_bytes = ((file + 1) * 127.5).round().to(torch.uint8)
g = torch.Generator().manual_seed(0)
for stride in (1, 3):
    clips = torch.stack([clip_transform(as_bytes, 8, 32, stride, g) for _ in range(16)])  # (16, 8, 1, 32, 32)
    print(f"stride {stride}: clips {tuple(clips.shape[1:])}, values {clips.min():.0f} … {clips.max():.0f}, "
          f"neighbouring frames correlate {frame_correlation(clips, 1):.2f}")
