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
# # 05 · Video data and video tensors
#
# **Goals.** Hold a batch of videos as one tensor in the course's `(B, F, C, H, W)` layout and
# convert it for the layers that want another one; make the two synthetic data sets of the course
# (moving digits, bouncing shapes) and read their ground truth; preprocess your own clips (resize,
# crop, normalise, cut fixed-length clips); *measure* what makes video different from a pile of
# images — neighbouring frames are nearly the same picture — and watch the forward process wipe
# that out.
#
# **Prerequisites.** Lesson 01 (q(x_t | x_0)); lesson 04 helps. PyTorch tensor indexing, `permute`
# and `reshape`; the correlation coefficient.
#
# **Time.** Reading: about 35 minutes. Running with shipped weights: nothing to load or train (the
# README's table gives the measured run time). Training from scratch: nothing to train.
# **Seed sections:** §1.1 (from image to video generation), §2.3 (spatio-temporal context), §3.1
# (training: data preprocessing), §9.1 (video vs image diffusion).
#
# Notation: a clip has F frames, indexed f = 0 … F − 1; a diffusion step is t, as in every lesson.
# (The code below names the frame count `T`, as in `T = preset.video_frames`.)
#
# ## From images to video (seed §1.1, §9.1)
#
# An image diffusion model learns the distribution of single pictures. A video is F pictures that
# must *agree*: the same objects in every frame, moving plausibly from one to the next. The seed's
# §9.1 names two differences — the input data is a video, and the model must relate frames, so its
# structure is more complex. This notebook makes the first one concrete and measures why the second
# one is needed:
#
# 1. the tensor gets a frame axis, and every number in it grows F-fold;
# 2. frames are strongly correlated in time; that correlation is the "spatio-temporal context" of
#    §2.3, the thing a video model must learn and can exploit;
# 3. the forward process adds noise to every frame independently, so it destroys that context at
#    the same pace as the picture itself.
#
# Nothing is downloaded: every clip here is generated from a seed or written by this notebook.

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
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from course_lib.config import get_preset, seed_everything
from course_lib.data.digits import TEST_FONTS, TRAIN_FONTS, render_digits
from course_lib.data.files import VideoFolder, read_video
from course_lib.data.video import (
    SHAPE_KINDS,
    bouncing_shapes,
    correlation_by_lag,
    frame_correlation,
    frames_to_batch,
    moving_digits,
    shuffle_frames,
    to_channels_first_time,
)
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.schedules import make_schedule
from course_lib.views.figures import animate, filmstrip, frame_scrubber, image_grid, save_gif, save_mp4

preset = get_preset()
g = seed_everything(0)
B, T, S = preset.video_batch_size, preset.video_frames, preset.video_size
show_frames = max(T, 12)  # pictures use at least 12 frames: cheap at any preset, and motion needs time
print(f"preset {preset.name}: training clips are (B, F, C, H, W) = ({B}, {T}, {preset.video_channels}, {S}, {S})")

# %% [markdown]
# ## The course's layout: (B, F, C, H, W)
#
# A batch of videos is one tensor: *B* clips, *F* frames, *C* channels, *H × W* pixels, with
# values in [-1, 1] — frames second, right after the batch. Each kind of layer wants its own view of
# it:
#
# | layer | wants | conversion |
# |---|---|---|
# | 2D conv / U-Net per frame | `(B·F, C, H, W)` | `frames_to_batch`, `batch_to_frames` |
# | `nn.Conv3d` (space-time conv) | `(B, C, F, H, W)` | `to_channels_first_time`, `from_channels_first_time` |
# | attention over time | `(B·H·W, F, features)` | `einops.rearrange` in the model (notebook 07) |
#
# Moving an axis is a **permute**, never a reshape: `reshape` keeps the numbers in memory order and
# only re-cuts them, so it silently mixes frames and channels. The cell checks both.

# %%
video = bouncing_shapes(B, frames=T, size=S, seed=0).video  # (B, F, 3, H, W), F = T frames
print("course layout   (B, F, C, H, W):", tuple(video.shape))
print("for Conv3d      (B, C, F, H, W):", tuple(to_channels_first_time(video).shape))
print("per frame       (B·F, C, H, W): ", tuple(frames_to_batch(video).shape))

permuted = to_channels_first_time(video)
reshaped = video.reshape(permuted.shape)  # the classic bug: same shape, scrambled content
print("permute keeps frame 1 of clip 0 intact:", torch.equal(permuted[0, :, 1], video[0, 1]))
print("reshape keeps frame 1 of clip 0 intact:", torch.equal(reshaped[0, :, 1], video[0, 1]))

# %% [markdown]
# **How big is a video?** One 64 × 64 RGB image is 12,288 numbers. A 16-frame clip is 16 times
# that, and every activation inside a network grows by the same factor. This is the root of the
# seed's §8.2 "computational efficiency" challenge (lessons 11 and 12 measure it).

# %%
for name, shape in [("image  64x64 RGB", (3, 64, 64)), ("clip   16 frames", (16, 3, 64, 64)),
                    ("batch  16 clips", (16, 16, 3, 64, 64))]:
    numel = torch.Size(shape).numel()
    print(f"{name:18s} {str(shape):22s} {numel:>12,d} numbers = {numel * 4 / 2**20:7.2f} MiB in float32")

# %% [markdown]
# ## The digits behind the videos
#
# Moving digits are made of digits rendered from the fonts matplotlib ships (DejaVu, STIX,
# Computer Modern), with random rotation, shear, scale, shift and stroke width, MNIST-style: each
# glyph fills a 20/28 box and is centred by its centre of mass. Training and test digits come from
# *disjoint sets of fonts*, so no test image can appear in training.

# %%
train_digits, train_labels = render_digits(32, size=28, split="train", seed=0)
test_digits, _ = render_digits(16, size=28, split="test", seed=0)
print(f"{len(TRAIN_FONTS)} training fonts, {len(TEST_FONTS)} test fonts; labels of the first row: {train_labels[:8].tolist()}")
image_grid(train_digits, nrow=16, title="training fonts")
image_grid(test_digits, nrow=16, title="test fonts (never seen in training)")
plt.show()

# %% [markdown]
# ## Moving digits (the Moving-MNIST protocol)
#
# Each clip places digits at random, gives each a random direction and speed, and moves it at
# constant velocity; at a wall the velocity component across it flips (a bounce). Overlapping
# digits combine by their maximum. Because the data is *made*, the ground truth comes with it:
# `positions` (B, F, K, 2) are each digit's centre (y, x) in pixels, `velocities` its (dy, dx) in
# pixels per frame, `labels` (B, K) the digits. The red crosses mark the true centres.

# %%
digits = moving_digits(4, frames=show_frames, size=S, num_digits=2, seed=1)
print("video", tuple(digits.video.shape), "positions", tuple(digits.positions.shape), "labels", digits.labels.tolist())
filmstrip(digits.video, positions=digits.positions, title="moving digits with their true centres")
plt.show()

# %% [markdown]
# Per axis, a bouncing centre is a *triangle wave*: straight lines between the walls, mirrored at
# each wall. The velocity keeps its size and flips its sign at a bounce.

# %%
fig, (ax_pos, ax_vel) = plt.subplots(1, 2, figsize=(10, 3))
for k in range(2):
    for axis, name, style in [(0, "y", "-"), (1, "x", "--")]:
        ax_pos.plot(digits.positions[0, :, k, axis], style, marker=".", label=f"digit {digits.labels[0, k].item()}, {name}")
        ax_vel.plot(digits.velocities[0, :, k, axis], style, marker=".")
low, high = (digits.sizes[0, 0] - 1) / 2, S - 1 - (digits.sizes[0, 0] - 1) / 2
for wall in (low, high):
    ax_pos.axhline(wall, color="gray", lw=0.6)
ax_pos.set_title("centre (px) of clip 0's digits; walls in grey")
ax_vel.set_title("velocity (px / frame)")
ax_pos.set_xlabel("frame")
ax_vel.set_xlabel("frame")
ax_pos.legend(fontsize=7)
plt.show()

# %% [markdown]
# Filmstrips show every frame at once; an animation shows the motion. `animate` returns an inline
# GIF, so it needs no ffmpeg and plays in JupyterLab, VS Code and Colab alike.

# %%
animate(digits.video, fps=6)

# %% [markdown]
# ## Bouncing shapes
#
# The second data set: coloured circles and squares on black, RGB (C = 3), with the same bounce
# dynamics. Besides positions and velocities it records each shape's `labels` (0 = circle,
# 1 = square), `colors` and `sizes` — everything a metric in notebook 10 needs to check whether a
# *generated* clip moves the way the data does.

# %%
shapes = bouncing_shapes(4, frames=show_frames, size=S, num_shapes=2, seed=2)
print("kinds of clip 0:", [SHAPE_KINDS[k] for k in shapes.labels[0].tolist()],
      "| sizes (px):", [round(s, 1) for s in shapes.sizes[0].tolist()])
filmstrip(shapes.video, positions=shapes.positions, title="bouncing shapes with their true centres")
plt.show()

# %%
animate(shapes.video, fps=6)

# %% [markdown]
# Training loops want a fresh batch every step. Pass a `torch.Generator` instead of a seed and each
# call continues the same random stream (`infinite_batches(moving_digits, B, seed=0, ...)` wraps
# exactly that). Making a batch is fast enough not to need a data loader:

# %%
stream = torch.Generator().manual_seed(0)
moving_digits(B, frames=T, size=S, generator=stream)  # warm-up: renders the font glyphs once
start = time.perf_counter()
for _ in range(5):
    batch = moving_digits(B, frames=T, size=S, generator=stream)
print(f"one batch {tuple(batch.video.shape)} takes {(time.perf_counter() - start) / 5 * 1000:.0f} ms")

# %% [markdown]
# ## Your own clips: preprocessing (seed §3.1)
#
# The seed's training recipe starts with "preprocess the videos: resize, normalise". Real footage
# comes in any size and length, so the course's `VideoFolder` does four things to every .gif / .mp4
# in a folder:
#
# 1. **resize** so the shorter side is `size` (anti-aliased; the aspect ratio is kept),
# 2. **centre-crop** a `size × size` square (the sides are lost),
# 3. **normalise** [0, 255] to [-1, 1], the range the noise N(0, 1) is matched to,
# 4. **cut fixed-length clips**: `frames` frames, `stride` apart, from a random start.
#
# We have no footage and download nothing, so first we *make* a wide "real" clip: a scene 96 × 160
# pixels, 2 seconds at 25 fps, with a sun rising over hills while the camera pans. Then we write it
# as MP4 (and a second clip as GIF) into a folder, exactly as you would drop your own files there.

# %%
def panning_scene(frames: int = 50, height: int = 96, width: int = 160) -> torch.Tensor:
    """A synthetic "camera" clip (F, 3, H, W) in [-1, 1]: sky gradient, rising sun, scrolling hills."""
    t = torch.arange(frames).view(-1, 1, 1).float()
    y = torch.arange(height).view(1, -1, 1).float()
    x = torch.arange(width).view(1, 1, -1).float()
    sky = torch.stack([0.2 + 0.3 * y / height, 0.4 + 0.3 * y / height, 0.9 - 0.2 * y / height]).expand(3, frames, height, width)
    sun = (((y - (70 - t)) ** 2 + (x - 100) ** 2).sqrt() < 12).float()
    hills = y > 70 + 8 * torch.sin((x + 3 * t) / 15)
    scene = torch.where(sun.bool(), torch.tensor([1.0, 0.85, 0.2]).view(3, 1, 1, 1), sky)
    scene = torch.where(hills, torch.tensor([0.2, 0.55, 0.25]).view(3, 1, 1, 1), scene)
    return scene.permute(1, 0, 2, 3) * 2 - 1


clip_dir = Path(tempfile.mkdtemp()) / "my_clips"
clip_dir.mkdir()
save_mp4(panning_scene(), clip_dir / "sunrise.mp4", fps=25)
save_gif(bouncing_shapes(1, frames=30, size=48, seed=3).video, clip_dir / "shapes.gif", fps=10)
raw = read_video(clip_dir / "sunrise.mp4")
print("files:", sorted(p.name for p in clip_dir.iterdir()))
print(f"raw sunrise.mp4: {tuple(raw.shape)} (F, C, H, W), values in [{raw.min():.2f}, {raw.max():.2f}]")

# %%
start = time.perf_counter()
folder = VideoFolder(clip_dir, frames=T, size=S, channels=3, stride=2, seed=0)
print(f"decoded {len(folder)} files in {time.perf_counter() - start:.2f} s: {[p.name for p in folder.paths]}")
clip = folder[[p.name for p in folder.paths].index("sunrise.mp4")]
print(f"one clip: {tuple(clip.shape)} (F, C, H, W), mean {clip.mean():+.2f}, range [{clip.min():.2f}, {clip.max():.2f}]")
filmstrip(raw[: 2 * T : 2], title=f"sunrise.mp4 as recorded: {raw.shape[-2]}x{raw.shape[-1]}",
          frame_labels=list(range(len(raw)))[: 2 * T : 2])
filmstrip(clip, title=f"a clip from VideoFolder: resized, centre-cropped to {S}x{S}, every 2nd frame from a random start")
plt.show()

# %% [markdown]
# A `DataLoader` stacks items into the course layout. (`num_workers=0` keeps it portable: worker
# processes and notebook-defined datasets do not mix on macOS and Windows.)

# %%
loader = torch.utils.data.DataLoader(folder, batch_size=2, shuffle=False, num_workers=0)
print("a batch from the folder:", tuple(next(iter(loader)).shape), "= (B, F, C, H, W)")

# %% [markdown]
# ## Spatio-temporal context (seed §2.3)
#
# §2.3 says a video model must "consider the temporal relations between frames". How strong are
# they? Take the Pearson correlation between frame f and frame f + k over all pixels, averaged over
# f and clips:
#
# $$\rho_k = \operatorname{mean}_{b,f}\ \operatorname{corr}\big(x_{b,f},\ x_{b,f+k}\big).$$
#
# ρ_0 = 1; if frames were unrelated pictures of the same kind, ρ_k would drop at once to the
# level any two such pictures share. **Shuffling** the frames of each clip keeps every picture but
# destroys the order: it is the control.

# %%
long_digits = moving_digits(16, frames=show_frames, size=S, seed=4).video
long_shapes = bouncing_shapes(16, frames=show_frames, size=S, seed=5).video
sunrise = read_video(clip_dir / "sunrise.mp4", frames=show_frames, size=S)[None]
curves = {
    "moving digits": correlation_by_lag(long_digits),
    "bouncing shapes": correlation_by_lag(long_shapes),
    "sunrise.mp4": correlation_by_lag(sunrise),
    "moving digits, frames shuffled": correlation_by_lag(shuffle_frames(long_digits, torch.Generator().manual_seed(0))),
}
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, curve in curves.items():
    ax.plot(curve, marker=".", ls="--" if "shuffled" in name else "-", label=name)
ax.set_xlabel("distance between frames k")
ax.set_ylabel("correlation ρ_k")
ax.legend(fontsize=8)
plt.show()
for name, curve in curves.items():
    print(f"{name:32s} ρ_1 = {curve[1]:.2f}   ρ_{show_frames - 1} = {curve[-1]:.2f}")

# %% [markdown]
# Neighbouring frames share much of their content (ρ_1 far above the shuffled control; the
# slowly panning camera clip is almost 1), and the correlation decays as the objects move away.
# After shuffling, neighbours are no more alike than frames far apart: the curve is flat. So a
# denoiser that sees frame f ± 1 gets much of frame f for free — but only a model that relates
# frames can use it. That is what the conv + LSTM of notebook 06, the 3D U-Net of
# notebook 07 and the frame conditioning of notebook 08 are built for.
#
# How much actually changes between neighbours? In moving digits only the few pixels a digit
# enters or leaves:

# %%
changed = ((long_digits[:, 1:] - long_digits[:, :-1]).abs() > 0.1).float().mean()
print(f"pixels that change between neighbouring frames: {changed:.1%}")

# %% [markdown]
# ## Noising a whole clip (seed §2.1 and §3.1, step 2)
#
# The forward process treats a clip like any tensor: x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε with ε of
# shape (B, F, C, H, W). One diffusion step t per *clip* (all its frames share the noise level),
# fresh noise for every frame and pixel. Code t is 0-indexed: t = 0 is one step of noise.

# %%
schedule = make_schedule("linear", preset.num_diffusion_steps)
steps = [0, schedule.num_steps // 10, schedule.num_steps // 4, schedule.num_steps // 2, schedule.num_steps - 1]
x0 = long_digits[:1]  # one clip (1, F, 1, H, W)
noisy = torch.cat([q_sample(x0, t, schedule, generator=g) for t in steps])  # (len(steps), F, 1, H, W)
filmstrip(noisy, max_frames=8, out_of_range="clip", row_labels=[f"t={t}" for t in steps],
          title="one clip at several noise levels (rows)")
plt.show()

# %% [markdown]
# Because the noise is independent across frames, it erases the temporal correlation as fast as the
# signal. If a clean clip has per-frame pixel variance v and covariance c between neighbours, then
# at step t the neighbours' correlation is
#
# $$\rho_1(t) = \frac{\bar\alpha_t\, c}{\bar\alpha_t\, v + (1 - \bar\alpha_t)}.$$
#
# The measured curve follows this prediction (the small gap at code t = 0 is the difference between
# an average of per-frame ratios and the ratio of averages): at high noise the denoiser has almost no
# temporal context left in its input — it must have *learned* how frames go together.

# %%
centred = long_digits.flatten(2) - long_digits.flatten(2).mean(-1, keepdim=True)  # (B, F, pixels)
v = centred.pow(2).mean(-1).mean()  # per-frame variance
c = (centred[:, 1:] * centred[:, :-1]).mean(-1).mean()  # covariance of neighbours
ts = torch.linspace(0, schedule.num_steps - 1, 12).long()
measured = [frame_correlation(q_sample(long_digits, int(t), schedule, generator=g), 1) for t in ts]
alpha_bar = schedule.alpha_bars[ts]
predicted = alpha_bar * c / (alpha_bar * v + 1 - alpha_bar)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ts, measured, "o", label="measured ρ_1 of x_t")
ax.plot(ts, predicted, "-", label="predicted ᾱc / (ᾱv + 1 − ᾱ)")
ax.set_xlabel("code timestep t")
ax.set_ylabel("correlation of neighbouring frames")
ax.legend()
plt.show()
print(f"largest gap between measured and predicted: {max(abs(m - p) for m, p in zip(measured, predicted)):.3f}")

# %% [markdown]
# ## Scrub through the frames
#
# Drag the slider to step through a batch frame by frame (without a notebook kernel, a static
# figure of four frames is shown instead).

# %%
frame_scrubber(shapes.video)

# %% [markdown]
# ## Summary
#
# * Videos are `(B, F, C, H, W)` in [-1, 1]; convert with permutes (`to_channels_first_time`,
#   `frames_to_batch`), never with reshape.
# * `moving_digits` and `bouncing_shapes` make clips with known positions, velocities and labels;
#   `VideoFolder` turns your own .gif/.mp4 files into clips: resize, crop, normalise, cut.
# * Neighbouring frames are highly correlated (ρ_1 near 1); shuffled frames are not. That temporal
#   context is what a video diffusion model must model, and the forward process erases it at the
#   pace of ᾱ_t.
#
# **Exercises** (`exercises/05_video_data.ipynb`): the course layout, frame correlation, and the
# clip transform (random temporal crop, resize and centre crop, normalise) that `VideoFolder` applies.
# **Next:** notebook 06 runs the seed's conv + LSTM model on these clips, finds its bugs, and
# trains a fixed version.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("How do you turn a clip batch (B, F, C, H, W) into the (B, C, F, H, W) that nn.Conv3d wants?",
             ["reshape to the new shape", "permute the axes", "either: they give the same tensor"],
             "permute the axes",
             "reshape keeps the numbers in memory order and only re-cuts them: same shape, frames and "
             "channels mixed. permute moves the axis and keeps every frame intact."),
    NumericQuestion("How many numbers are in one 16-frame RGB clip of 64 × 64 pixels?", 196608,
                    "16 frames × 3 channels × 64 × 64 pixels = 196,608: sixteen images' worth, and every "
                    "activation inside the network grows by the same factor."),
    Question("Shuffling the frames of each clip changes what?",
             ["nothing a metric can measure",
              "every frame's pixels",
              "the correlation between neighbouring frames, not the pictures themselves"],
             "the correlation between neighbouring frames, not the pictures themselves",
             "Every frame is kept; only the order is lost, so ρ_1 drops to the level of any two frames. "
             "That is why it is the control for temporal context."),
    Question("How does the forward process noise a clip?",
             ["one diffusion step t per clip, fresh noise for every frame and pixel",
              "a different diffusion step for every frame", "the same noise image added to every frame"],
             "one diffusion step t per clip, fresh noise for every frame and pixel",
             "All frames share the noise level; the noise itself is independent, which is why it erases "
             "the frames' correlation as fast as the signal."),
    NumericQuestion("With per-frame variance v = 1, neighbour covariance c = 0.9 and ᾱ_t = 0.5, what is "
                    "ρ_1(t) = ᾱ_t c / (ᾱ_t v + 1 − ᾱ_t)?", 0.45,
                    "0.5 · 0.9 / (0.5 · 1 + 0.5) = 0.45: half the signal is left, and half the correlation.",
                    tolerance=0.001),
])
