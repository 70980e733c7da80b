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
# # 07 · A 3D U-Net for video: space and time, factorised
#
# **Goals.** Build the video denoiser that most video diffusion models since 2022 start from: a
# U-Net whose layers work on *space* frame by frame and on *time* with attention along the frame
# axis. Count why full 3D convolutions are too expensive; look at the temporal attention and its
# relative position bias as pictures; switch the attention off between frames (`image_mode`) so the
# same network trains on images and videos together; train it on bouncing shapes, sample it, and
# measure it against the conv + LSTM denoiser of notebook 06 on the same data.
#
# **Prerequisites.** Lessons 04–06 (the U-Net, the video layout, the ConvLSTM denoiser); attention,
# softmax(q·k/√d) weights over values.
#
# **Time.** Reading: about 45 minutes. Running with shipped weights: the 3D U-Net and lesson 06's
# ConvLSTM (for the comparison at the end) are shipped and load in seconds; README's time table
# gives the measured run time of the whole lesson. Training from scratch (`cpu` preset, 2000
# steps): about 10 minutes on 2 CPU threads, the training record of the shipped file (BENCHMARKS.md, "Shipped checkpoints");
# `train_or_load(recipe, retrain=True)` does it. The `smoke` preset trains for seconds (its samples
# are noise). **Seed sections:** §1.2 (the spatio-temporal direction), §2.3 (spatio-temporal context).
#
# A clip has F frames (f = 0 … F − 1); t is the diffusion step. The code names the frame count `T`.
#
# ## What the seed proposes
#
# §1.2 names three directions of video diffusion research; the first reads (translated):
# *"Spatio-temporal convolutional networks: combine the diffusion model with a spatio-temporal
# convolutional network that extracts the spatio-temporal features of the video and uses them to
# guide the diffusion process."* §2.3 says why: *"A video diffusion model must consider the temporal
# relations between video frames, i.e. the spatio-temporal context. Spatio-temporal context helps
# the model generate more coherent, consistent videos."*
#
# Both are right and neither says how. The literal reading — replace every 2D convolution of an
# image U-Net by a 3D one — works, but costs about twice the parameters and computation of what
# follows, and each layer still sees only the neighbouring frames. Ho et al. (2022a, "Video Diffusion Models") factorise
# instead: *space* by the image U-Net's own 3×3 convolutions applied to every frame, *time* by
# attention along the frame axis at every pixel. That is the network of this notebook,
# `course_lib.models.unet3d.UNet3D`.

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
import copy
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from torch.utils.flop_counter import FlopCounterMode

from course_lib.config import get_preset, seed_everything
from course_lib.data.video import bouncing_shapes
from course_lib.diffusion.objectives import JointImageVideoObjective, image_groups, joint_losses
from course_lib.metrics.video import real_clip_scores, score_samples, video_judge_for
from course_lib.models.inspect import capture_temporal_attention, count_parameters
from course_lib.models.blocks import SelfAttention
from course_lib.models.unet3d import RelativePositionBias, TemporalAttention
from course_lib.workshop.recipes import get_recipe
from course_lib.training import Trainer
from course_lib.training.speed import time_training_steps
from course_lib.views.figures import animate, filmstrip
from course_lib.workshop.zoo import train_or_load

preset = get_preset()
g = seed_everything(0)
T, S = preset.video_frames, preset.video_size
CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises
recipe = get_recipe("video-shapes", preset)  # bouncing shapes, the 3D U-Net (the default video model)
clip = bouncing_shapes(2, frames=T, size=S, seed=7).video  # (2, F, 3, S, S) in [-1, 1]; F = T frames
print(f"preset {preset.name}: clips (B, F, C, H, W) = {tuple(clip.shape)}; "
      f"model width {preset.video_base_channels}; {recipe.steps} training steps")

# %% [markdown]
# ## Why not full 3D convolutions?
#
# A 3×3×3 convolution from C to C channels has 27·C² weights and does 27·C² multiply-adds at every
# position (frame, row, column) of the clip. The factorised layer does a 3×3 convolution per frame
# (9·C²) and a temporal attention: 1×1 projections to queries, keys, values and back (4·C²) plus
# F×F dot products per pixel, which are cheap when the number of frames F is small. `FlopCounterMode` counts what torch
# actually runs; on the `meta` device nothing is computed, so even the full-size layers cost nothing
# to count. One row per level of the preset's U-Net (its widths and sizes):

# %%
def costs(layers: list[torch.nn.Module], x: torch.Tensor, calls) -> tuple[int, int]:
    """(parameters, multiply-adds) of running each layer on ``x`` through ``calls(layer, x)``."""
    with FlopCounterMode(display=False) as counter:
        for layer in layers:
            calls(layer.to("meta"), x)
    return sum(count_parameters(layer) for layer in layers), counter.get_total_flops() // 2


model = recipe.build_model()
levels = [(S >> i, preset.video_base_channels * m) for i, m in enumerate(model.channel_mults)]
print(f"{'level':>5} {'H×W':>7} {'C':>4} | {'3×3×3 conv: params':>19} {'MACs':>9} | "
      f"{'3×3 conv + temporal attention: params':>38} {'MACs':>9} | {'ratio':>5}")
for level, (size, width) in enumerate(levels):
    clip_features = torch.empty(1, width, T, size, size, device="meta")  # (B, C, F, H, W) for Conv3d
    frame_features = torch.empty(T, width, size, size, device="meta")  # (B·F, C, H, W): frames in the batch
    full = costs([torch.nn.Conv3d(width, width, 3, padding=1)], clip_features, lambda f, x: f(x))
    factorised = costs([torch.nn.Conv2d(width, width, 3, padding=1), TemporalAttention(width, 4, T)],
                       frame_features, lambda f, x: f(x, T) if isinstance(f, TemporalAttention) else f(x))
    print(f"{level:5d} {f'{size}×{size}':>7} {width:4d} | {full[0]:19,d} {full[1] / 1e6:8.1f}M | "
          f"{factorised[0]:38,d} {factorised[1] / 1e6:8.1f}M | {full[1] / factorised[1]:5.2f}")

# %% [markdown]
# About twice the computation and parameters for the 3D convolution, at every level — and for
# less: a 3×3×3 kernel reaches one frame back and one forward, so a stack of L layers sees 2L + 1
# frames, while *one* temporal attention layer relates every frame to every other. (The exercise
# notebook counts the other common factorisation, "(2+1)D": a 3×3 spatial convolution followed by a
# 3-tap temporal one.) A second benefit decides the design in practice: the spatial layers are
# exactly an image U-Net's, so a video model can learn from images too (below), or start from a
# trained image model.
#
# ## The network
#
# ```text
#  x_t (B, F, C, H, W)          t (B,) ── sinusoidal + MLP ── emb (one per clip, copied to its F frames)
#     │ fold time into the batch: (B·F, C, H, W)
#  conv_in ─────────────────────────────────────────────── skip (H)
#  down ─ [ResBlock ─ temporal attention] ──────────────── skip (H/2)
#  down ─ [ResBlock ─ temporal attention] ──────────────── skip (H/4)
#  down ─ [ResBlock ─ spatial attention ─ temporal att.] ── skip (H/8)
#  middle: ResBlock ─ spatial attention ─ temporal attention ─ ResBlock
#  up: the same levels in reverse, each first block eating its skip ─ conv_out
#     │ unfold: (B, F, C, H, W)
# ```
#
# Everything but the temporal attention sees one frame: ResBlocks and spatial attention run on
# (B·F, C, H, W) with the clip's timestep embedding. The temporal attention regroups the features
# as one sequence of F vectors per pixel, (B·H·W, F, C) — exercise 7.1 — and attends along it.

# %%
share = {"temporal attention": 0, "spatial attention": 0}
for name, module in model.named_modules():
    if isinstance(module, TemporalAttention):
        share["temporal attention"] += count_parameters(module)
    elif isinstance(module, SelfAttention):
        share["spatial attention"] += count_parameters(module)
share["everything else"] = count_parameters(model) - sum(share.values())
for part, count in share.items():
    print(f"{part:19s} {count:10,d} parameters ({count / count_parameters(model):.0%})")
with torch.no_grad():
    out = model(clip, torch.tensor([10, 900]))
print(f"UNet3D: {tuple(clip.shape)} -> {tuple(out.shape)}, {count_parameters(model):,} parameters")

# %% [markdown]
# ## Temporal attention with a relative position bias
#
# At every pixel the F feature vectors of the clip form a sequence; each frame i (the query) takes
# a weighted average of the value vectors of all frames j (the keys), with weights
#
# $$w_{ij} = \operatorname{softmax}_j\Big(\frac{q_i\cdot k_j}{\sqrt d} + b_{\,j-i}\Big).$$
#
# The dot product compares *contents*. The bias b (T5, Raffel et al. 2020; Imagen Video) is one
# learned number per head and *offset* j − i: it lets the model prefer "the previous frame" or
# "two frames ahead" wherever in the clip that is, and it works for any clip length up to
# `max_frames`. It starts at 0 (no preference). A matrix b[j − i] is constant along each diagonal:

# %%
demo_bias = RelativePositionBias(num_heads=1, max_frames=T)
with torch.no_grad():
    offsets = torch.arange(-(T - 1), T).float()
    demo_bias.table[0] = -0.8 * offsets.abs() + 1.5 * (offsets == 1).float()  # near frames, and "the next one"
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
axes[0].bar(offsets, demo_bias.table[0].detach())
axes[0].set(xlabel="offset j − i", ylabel="bias", title="a bias table (one number per offset)")
image = axes[1].imshow(demo_bias(T)[0].detach(), cmap="RdBu_r")
axes[1].set(xlabel="key frame j", ylabel="query frame i", title="the bias matrix b[j − i]")
fig.colorbar(image, ax=axes[1])
plt.show()

# %% [markdown]
# `capture_temporal_attention` runs the model once and returns the weights of every temporal
# attention layer, (B, heads, H·W, F, F) each, recomputed from the layer's own input and
# parameters (a test checks that they rebuild the layer's output exactly). For the untrained network
# the weights are nearly uniform: nothing tells a frame which others matter yet.

# %%
def show_attention(maps: dict[str, torch.Tensor], title: str) -> None:
    """One T×T picture per layer: weights averaged over clips, heads and pixels."""
    fig, axes = plt.subplots(1, len(maps), figsize=(2.1 * len(maps), 2.4))
    for ax, (name, weights) in zip(axes, maps.items()):
        ax.imshow(weights.mean(dim=(0, 1, 2)), vmin=0, vmax=1, cmap="viridis")
        ax.set(title=name.replace(".temporal", "").replace("layers.", ""), xticks=[], yticks=[])
        ax.title.set_fontsize(7)
    axes[0].set(ylabel="query i", xlabel="key j")
    fig.suptitle(title)
    plt.show()


t_mid = torch.full((2,), preset.num_diffusion_steps // 2)
show_attention(capture_temporal_attention(model, clip, t_mid), "untrained: attention along time, per layer")

# %% [markdown]
# ## `image_mode`: the same network as an image model
#
# With `image_mode=True` every temporal attention adds −∞ to the logits off the diagonal: after
# the softmax each frame gives weight 1 to itself and 0 to every other frame. Frames no longer
# influence each other, and the network is an image U-Net applied to each frame — the F "frames"
# of a clip can be F unrelated images. Two checks: the attention matrices are the identity, and the
# output equals the model run on each frame alone.

# %%
show_attention(capture_temporal_attention(model, clip, t_mid, image_mode=True), "image_mode=True: the identity")
with torch.no_grad():
    together = model(clip, t_mid, image_mode=True)
    alone = torch.cat([model(clip[:, j:j + 1], t_mid) for j in range(T)], dim=1)  # one-frame clips
print(f"image_mode vs each frame alone: max difference {(together - alone).abs().max():.1e}")

# %% [markdown]
# ## Train on bouncing shapes
#
# `train_or_load` trains the recipe once (x0-prediction, linear schedule, AdamW with EMA weights,
# the trainer of notebook 04) and loads it from `../checkpoints/` from then on, under a name that
# hashes the recipe.

# %%
start = time.perf_counter()
trainer = train_or_load(recipe, folder=CHECKPOINTS)
unet = trainer.ema_model.eval()
print(f"{recipe.steps} steps of {recipe.batch_size} clips: ready in {time.perf_counter() - start:.0f} s "
      f"(trained in {trainer.seconds:.0f} s)")
fig, ax = plt.subplots(figsize=(6, 2.4))
ax.plot(trainer.history["step"], trainer.history["loss"], lw=0.8)
ax.set(xlabel="step", ylabel="loss", yscale="log", title="training loss, 3D U-Net on bouncing shapes")
plt.show()

# %% [markdown]
# ## Sample videos
#
# DDIM with `preset.sample_steps` steps from the EMA weights, a batch at a time. `score_samples`
# also times the sampling and scores the clips (used for the comparison below), among others with
# the video consistency of notebook 10: the share of clips a viewer would accept — one object in
# every frame, moving like the data's objects, keeping its colour and shape — and each part on its
# own. In the `smoke` preset the model has trained for seconds and its samples are noise.

# %%
n = max(16, preset.eval_samples // 8)
judge = video_judge_for(recipe)  # the FVD network of notebook 10, for these clips; trained once, then cached
unet_clips, unet_scores = score_samples(recipe, unet, n, judge)
parts = ", ".join(f"{name} {rate:.0%}" for name, rate in unet_scores.consistency.items() if name != "combined")
print(f"{n} clips, {unet_scores.seconds_per_batch:.2f} s per batch of {recipe.batch_size}; "
      f"video consistency {unet_scores.consistent:.0%} ({parts})")
filmstrip(unet_clips[:4], title="3D U-Net samples, bouncing shapes")
plt.show()

# %%
animate(unet_clips[:8], fps=4, nrow=4)

# %% [markdown]
# What did the temporal attention learn? The same pictures for the trained model on real clips at
# a middle noise level, and each layer's learned bias table (head 0). After the `smoke` preset's few
# steps the biases have hardly left 0 and the maps are still nearly uniform; after the `cpu`
# preset's training, compare them with the untrained maps above: which offsets did each layer learn
# to prefer, and do the low-resolution layers (which see whole objects) differ from the others?

# %%
real = recipe.real_examples(8)
show_attention(capture_temporal_attention(unet, real, torch.full((8,), preset.num_diffusion_steps // 2)),
               "trained: attention along time, per layer")
tables = {name: m.position_bias.table[0, m.position_bias.max_frames - T:m.position_bias.max_frames + T - 1].detach()
          for name, m in unet.named_modules() if isinstance(m, TemporalAttention)}
fig, ax = plt.subplots(figsize=(6, 2.6))
for name, table in tables.items():
    ax.plot(range(-(T - 1), T), table, marker="o", ms=3, lw=1, label=name.replace(".temporal", ""))
ax.set(xlabel="offset j − i", ylabel="bias (head 0)", title="learned relative position biases")
ax.legend(fontsize=6, ncol=2)
plt.show()

# %% [markdown]
# ## Joint image + video training
#
# Ho et al. (2022a) train one network on videos and on images at once: images teach the spatial layers
# what a frame looks like (there are far more images than videos), videos teach the temporal ones
# how frames follow each other. With `image_mode` this needs no second network.
# `course_lib.diffusion.objectives` (`joint_losses`) turns a batch of B clips into
#
# * B − n clips, denoised as clips (`image_mode=False`), and
# * n = round(image_fraction · B) **image groups**: F frames drawn at random from all the frames of
#   the batch (so from different clips and times), denoised with `image_mode=True`;
#
# and averages the two diffusion losses by their sizes:
# L = (n_video · L_video + n_image · L_image) / B. Here the "images" are frames of the same data;
# with a real image set you would draw them from it.

# %%
batch = recipe.make_batch(torch.Generator().manual_seed(3))  # (B, F, 3, S, S)
groups = image_groups(batch, 2, torch.Generator().manual_seed(4))
filmstrip(torch.cat([batch[:2], groups]), row_labels=["clip 0", "clip 1", "image group 0", "image group 1"],
          title="a video batch, and image groups drawn from its frames")
plt.show()
with torch.no_grad():
    losses = joint_losses(unet, batch, recipe.schedule, recipe.objective, image_fraction=0.5,
                          generator=torch.Generator().manual_seed(5))
print("trained model on one batch: " + ", ".join(f"L_{name} = {value:.4f}" for name, value in losses.items()))

# %% [markdown]
# A few joint training steps from the trained weights, with the course's `Trainer` and the joint
# loss in place of the recipe's (a full joint run is the same call with more steps):

# %%
joint = Trainer(copy.deepcopy(trainer.model), JointImageVideoObjective(recipe.schedule, recipe.objective, 0.25),
                recipe.make_batch, recipe.train_config(steps=4, progress=False, warmup_steps=0))
joint.fit()
print("joint training, loss per step: " + ", ".join(f"{loss:.4f}" for loss in joint.history["loss"]))

# %% [markdown]
# ## Side by side: 3D U-Net vs conv + LSTM
#
# Notebook 06's conv + LSTM denoiser, trained by the same recipe on the same data (`train_or_load`
# loads it if notebook 06 trained it). For both: parameters, the median time of a training step
# *on this machine now* (a fresh copy, one batch of the recipe's clips), the time to sample a
# batch, the FVD-style distance of n samples to n real clips (video judge features, notebook 10; it
# is biased upwards at small n, so compare it only with the "real clips" row at the same n), and
# the video consistency of notebook 10, part by part: the object present in every frame, moving at
# constant velocity between bounces, keeping its look (colour and shape), and all three at once.

# %%
lstm_recipe = get_recipe("video-shapes", preset, model="conv_lstm")
lstm = train_or_load(lstm_recipe, folder=CHECKPOINTS).ema_model.eval()
lstm_clips, lstm_scores = score_samples(lstm_recipe, lstm, n, judge)
floor = real_clip_scores(recipe, n, judge)
batch = recipe.make_batch(torch.Generator().manual_seed(0))  # (B, F, 3, S, S)


def consistency_cells(scores):  # present | motion | look kept | consistent
    rates = (scores.consistency["present"], scores.consistency["motion"], scores.look_kept, scores.consistent)
    return " | ".join(f"{rate:.0%}" for rate in rates)


rows = ["| model | params | train step s | sampling s/batch | FVD ↓ | present | motion | look kept | consistent |",
        "|---|---|---|---|---|---|---|---|---|"]
for name, r, scores in (("unet3d", recipe, unet_scores), ("conv_lstm", lstm_recipe, lstm_scores)):
    fresh = r.build_model()
    step = time_training_steps(fresh, r.loss_fn, batch, steps=3, warmup=1)  # trains a copy: `fresh` stays as it is
    rows.append(f"| {name} | {count_parameters(fresh):,} | {step.median_s:.3f} | {scores.seconds_per_batch:.2f} | "
                f"{scores.fvd:.3g} | {consistency_cells(scores)} |")
rows.append(f"| real clips | – | – | – | {floor.fvd:.3g} | {consistency_cells(floor)} |")
display(Markdown(f"**3D U-Net vs conv+LSTM, preset {preset.name}, {n} clips each** (training step on a batch "
                 f"{tuple(batch.shape)}, median of 3 after 1 warm-up, {step.threads} thread(s))\n\n" + "\n".join(rows)))

# %%
filmstrip(torch.cat([unet_clips[:2], lstm_clips[:2]]), row_labels=["3D U-Net", "3D U-Net", "ConvLSTM", "ConvLSTM"],
          title="samples of the two models (same starting noise per row pair)")
plt.show()

# %% [markdown]
# How to read it. In the `smoke` preset both models have trained for seconds: the quality columns
# are noise against noise and only the costs mean something. The costs hold in every preset: the
# 3D U-Net has more than twice the parameters of the ConvLSTM model yet takes about half the time
# per training step on a CPU (BENCHMARKS.md, "Video": `python -m course_lib bench video`).
# Its parameters sit at low resolution, where pixels are few; the ConvLSTM runs its cells frame
# after frame, F sequential steps that cannot be batched.
#
# ## Summary
#
# * Factorise space and time: 3×3 convolutions per frame (frames folded into the batch) and
#   attention along the frame axis at every pixel — half the cost of 3×3×3 convolutions, and every
#   frame sees every other in one layer.
# * A **relative position bias** b[j − i] tells temporal attention about order and distance, for
#   any clip length up to `max_frames`.
# * **`image_mode`** masks the attention to the identity: the video network becomes an image
#   network with the same weights, which is what joint image + video training uses.
# * Compare models on the same data with numbers: step time, sampling time, an FVD-style distance
#   next to its real-vs-real floor, and a motion test.
#
# Exercises: `exercises/07_unet3d_video_diffusion.ipynb` (temporal attention, then a whole factorised
# space-time layer of your own).
# Next: notebook 08 conditions this network on past frames to predict the future and roll out long
# videos.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    NumericQuestion("From C to C channels, how many times more weights does a 3×3×3 convolution have "
                    "than a 3×3 one?", 3,
                    "27·C² against 9·C²: three times the weights and the multiply-adds, and each layer still "
                    "sees only the neighbouring frames."),
    Question("With image_mode=True, what does every temporal attention layer do?",
             ["every frame attends to every other frame equally",
              "each frame attends only to itself, so frames are denoised independently",
              "the layer is skipped in training"],
             "each frame attends only to itself, so frames are denoised independently",
             "−∞ off the diagonal makes the attention matrix the identity: the video network is an image "
             "network with the same weights, which joint image + video training uses."),
    Question("The relative position bias b[j − i] depends on what?",
             ["the pixel's position",
              "the absolute frame numbers i and j",
              "only the offset between two frames, wherever they are in the clip"],
             "only the offset between two frames, wherever they are in the clip",
             "One learned number per head and offset lets a layer prefer \"the previous frame\" anywhere "
             "in a clip of any length up to max_frames."),
    Question("How does temporal attention regroup the features (B·F, C, H, W) before attending?",
             ["(B·H·W, F, C): one sequence of F vectors per pixel", "(B·F, H·W, C): one sequence per frame",
              "(B, F·H·W, C): one long sequence per clip"],
             "(B·H·W, F, C): one sequence of F vectors per pixel",
             "Each pixel's F feature vectors attend to each other; space is handled by the per-frame "
             "convolutions (exercise 7.1)."),
    Question("Why train one network on images and videos together?",
             ["images make the temporal attention faster",
              "images (plentiful) teach the spatial layers appearance, videos teach the temporal ones motion",
              "videos cannot be trained alone"],
             "images (plentiful) teach the spatial layers appearance, videos teach the temporal ones motion",
             "With image_mode the same weights serve both; Ho et al. (2022a) train this way."),
])
