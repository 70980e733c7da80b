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
# # 06 · A conv + LSTM video denoiser: the seed's §5, debugged
#
# **Goals.** Run the seed's video model (§5.1) exactly as printed and watch each of its failures
# happen: an in-place write that changes the channel count, in-place writes that break
# backpropagation and erase the input, an `nn.LSTM` fed feature maps, an output that cannot be
# reshaped back into maps, and a timestep `t` that is never used. Fix each one, then build the
# model §5.2 describes so that it works: a per-frame convolutional encoder, a **ConvLSTM** over
# time (bidirectional to denoise a whole clip, causal for prediction), the timestep in every block,
# a convolutional decoder. Train it on bouncing shapes and on moving digits and sample videos.
#
# **Prerequisites.** Lessons 04 (the U-Net, timestep embeddings, training and sampling) and 05 (the
# `(B, F, C, H, W)` layout); what an LSTM's gates do; reading a Python traceback.
#
# **Time.** Reading: about 50 minutes. Running with shipped weights: both ConvLSTMs (on shapes, and
# on digits for half the steps) are shipped and load in seconds; README's time table gives the
# measured run time of the whole lesson. Training from scratch (`cpu` preset): about 30 minutes for
# the 2000 shapes steps and 16 for the 1000 digits steps on one CPU thread (the shipped files'
# training records, BENCHMARKS.md "Shipped checkpoints"); `train_or_load(recipe, retrain=True)` does
# it and saves the model in `../checkpoints/`, which is loaded from then on. The `smoke` preset
# trains for seconds (its samples are noise). **Seed sections:** §5 (code example and its
# explanation), §1.2 (the recurrent-network direction).
#
# ## What the seed proposes
#
# §1.2 lists three directions of video diffusion research. The second one reads (translated):
# *"Recurrent neural networks: use an RNN to model the temporal dependencies in the video, and use
# the RNN's output as the input of the diffusion model."* §5 turns this into code. §5.2 explains it
# in three steps: *"first, a series of convolutional layers extract the spatio-temporal features of
# the video frames; then an LSTM models the temporal dependencies between the frames; finally, a
# convolutional layer generates the video frames."*
#
# The plan is sound: a convolution sees one frame, a recurrent network carries information from
# frame to frame, and a denoiser of clips needs both. One correction to its words: the
# convolutions of §5.2 run on each frame alone, so the features they extract are *spatial*; only
# the LSTM relates frames, and it is the only spatio-temporal part. The printed code does not run. It lives in
# `course_lib.models.seed_video_model`, character for character (only its Chinese comments are
# translated), so that we can run it here and read each error where PyTorch raises it.
#
# The cells that show an error are marked: their first line is `# NBVAL_RAISES_EXCEPTION` and they
# carry the cell tag `raises-exception`, so "Run All" in Jupyter and the course's tests go on past
# them. Read each traceback: its last lines name the seed's line that failed.

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
import inspect
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from course_lib.config import get_preset, seed_everything
from course_lib.data.video import bouncing_shapes
from course_lib.metrics.motion import motion_consistency
from course_lib.models.conv_lstm import ConvLSTMCell, ConvLSTMDenoiser, frame_influence, layer_shapes
from course_lib.models.inspect import count_parameters
from course_lib.models.seed_video_model import (
    PatchedVideoDiffusionModel,
    VideoDiffusionModel,
    describe_error,
    encode_frames,
    forward_with_pooled_lstm_input,
    lstm_input_of,
)
from course_lib.workshop.recipes import get_recipe
from course_lib.views.figures import animate, filmstrip
from course_lib.workshop.zoo import train_or_load

preset = get_preset()
g = seed_everything(0)
T, S = preset.video_frames, preset.video_size
CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises
clip = bouncing_shapes(2, frames=T, size=S, seed=6).video  # (2, F, 3, S, S) in [-1, 1]; F = T frames
t = torch.tensor([10, 900])  # one timestep per clip (0-indexed: 0 is the least noise)
print(f"preset {preset.name}: clips (B, F, C, H, W) = {tuple(clip.shape)}, timesteps t = {t.tolist()}")

# %% [markdown]
# ## The seed's model, as printed

# %%
print(inspect.getsource(VideoDiffusionModel))

# %% [markdown]
# ## Failure 1 · an in-place write that changes the channel count
#
# Build it as anyone would: 3 colour channels in and out, two convolutions, 16 hidden channels, and
# give it a clip and its timesteps.

# %% tags=["raises-exception"]
# NBVAL_RAISES_EXCEPTION
seed_model = VideoDiffusionModel(in_channels=3, out_channels=3, num_layers=2, hidden_dim=16)
seed_model(clip.clone(), t)

# %% [markdown]
# The failing line is `x[:, i] = F.relu(conv_layer(x[:, i]))`. The first convolution maps frame i
# from 3 to 16 channels, and the line writes the 16-channel result back into frame i's slot *of
# the input*, which has room for 3 channels: "the expanded size of the tensor (3) must match the
# existing size (16)". A tensor's shape cannot change under an assignment.
#
# **Fix:** keep the features in a new tensor. Fold time into the batch, (B, F, C, H, W) →
# (B·F, C, H, W), so that every frame goes through the same convolutions at once, write
# `h = relu(conv(h))` for each layer, and unfold again: `encode_frames` does exactly this
# (exercise 6.1 asks you to write it).

# %%
features = encode_frames(seed_model.conv_layers, clip)
print(f"encode_frames: {tuple(clip.shape)} -> {tuple(features.shape)}")

# %% [markdown]
# ## Failure 2 · in-place writes break backpropagation and erase the input
#
# Give the seed the benefit of the doubt: with `hidden_dim = in_channels = 3` every write fits and
# the convolutions run. `lstm_input_of` runs the seed's own `forward` and stops it at the LSTM call,
# returning what the LSTM was given.

# %%
same = VideoDiffusionModel(in_channels=3, out_channels=3, num_layers=2, hidden_dim=3)
x = clip.clone()
seed_features = lstm_input_of(same, x, t)
print(f"features handed to the LSTM: {tuple(seed_features.shape)}")
print(f"the caller's clip after the call: max |x − clip| = {(x - clip).abs().max():.2f}  (it was overwritten)")

# %% [markdown]
# The forward pass got through, but it wrote its features into the caller's tensor: the noisy
# clip is gone, and any code that uses `x_t` after the model call (every sampler does) reads
# features instead. Training goes further: it calls `backward()`.

# %% tags=["raises-exception"]
# NBVAL_RAISES_EXCEPTION
seed_features.sum().backward()

# %% [markdown]
# To compute the gradient of a convolution's weights, autograd keeps the convolution's *input*: a
# view of frame i of `x`. The next line overwrote that frame, so the saved input is no longer the
# one the forward pass used (its version counter moved on) and autograd refuses. (Had `x` itself
# required gradients, the write would fail at once: "a view of a leaf Variable that requires grad
# is being used in an in-place operation".)
#
# **Fix:** the same `encode_frames`. It computes the same numbers, leaves `x` alone, and
# backpropagates to the input and to every weight.

# %%
x = clip.clone().requires_grad_(True)
fixed = encode_frames(same.conv_layers, x)
fixed.square().sum().backward()
print(f"same numbers as the seed's loop: max difference {(fixed - seed_features).abs().max():.1e}")
print(f"input untouched: {torch.equal(x.detach(), clip)}; gradient norms: x {x.grad.norm():.3f}, "
      f"first conv {same.conv_layers[0].weight.grad.norm():.3f}")

# %% [markdown]
# ## Failure 3 · `nn.LSTM` gets feature maps
#
# Still with `hidden_dim = 3`, let the seed's `forward` run on to its LSTM.

# %% tags=["raises-exception"]
# NBVAL_RAISES_EXCEPTION
same(clip.clone(), t)

# %% [markdown]
# `nn.LSTM(hidden_dim, hidden_dim, batch_first=True)` reads a sequence of *vectors*, (B, F, 3):
# three numbers per frame. It was handed (B, F, 3, H, W): a 3-channel *map* per frame. The two
# obvious repairs both lose something. Flattening every map into one vector of 3·H·W numbers gives
# an LSTM whose two weight matrices have 2·(4·3·H·W)·(3·H·W) entries — 75 million per layer at
# 32×32 — and that treats neighbouring pixels as unrelated numbers. Averaging each map to one vector per frame keeps
# the LSTM small but throws away *where* things are. The hook `forward_with_pooled_lstm_input`
# tries the second: it hands the LSTM the mean of each map, and the seed's code runs on.

# %% [markdown]
# ## Failure 4 · vectors cannot be viewed as maps

# %% tags=["raises-exception"]
# NBVAL_RAISES_EXCEPTION
forward_with_pooled_lstm_input(same, clip.clone(), t)

# %% [markdown]
# The LSTM's output holds B·F·3 numbers; the seed's `output.view(B * T, 3, H, W)` (its `T` is the
# frame count) needs H·W times more. No
# reshape can bring back the "where" that the averaging removed: the output layer must paint
# frames, and a vector per frame does not say where the shapes are.
#
# **Fix:** let the recurrence run *on the maps*. The simplest way: an LSTM along time at every
# pixel, all pixels sharing its weights (the features become B·H·W sequences of F vectors).
# `PatchedVideoDiffusionModel` is the seed's model with this change and with `encode_frames`:
# bugs 1–4 are gone, it runs forward and backward.

# %%
patched = PatchedVideoDiffusionModel(in_channels=3, out_channels=3, num_layers=2, hidden_dim=16)
out = patched(clip, t)
out.square().mean().backward()
print(f"patched seed model: {tuple(clip.shape)} -> {tuple(out.shape)}, backward OK, "
      f"{count_parameters(patched):,} parameters")

# %% [markdown]
# A per-pixel LSTM still has a blind spot: the memory of a pixel only hears from that pixel, so it
# cannot follow an object that moves from one pixel to the next. The ConvLSTM below fixes that.
#
# ## Failure 5 · the timestep is never used
#
# `forward(self, x, t)` takes t and nothing reads it. No exception shows this one; a measurement
# does. Same clip, four timesteps:

# %%
with torch.no_grad():
    outputs = {step: patched(clip, torch.full((2,), step)) for step in (0, 250, 500, preset.num_diffusion_steps - 1)}
for step, output in list(outputs.items())[1:]:
    print(f"t = {step:3d}: max |output − output at t = 0| = {(output - outputs[0]).abs().max():.1e}")

# %% [markdown]
# Exactly the same output for every noise level. A denoiser must know t: at t = 0 its input is
# nearly the clean clip, at t = 999 it is nearly pure noise, and the right answer to "what is the
# noise in this x_t?" differs between the two — even for the same x_t. A network that cannot see
# t can only average over all noise levels, and sampling, which walks from t = 999 down to 0,
# needs a different answer at every step.
#
# **Fix:** embed t (sinusoidal features and a small MLP, as in the U-Nets of notebook 04) and add
# a learned per-channel shift of it to the features in every block (exercise 6.3).
#
# ## The working model: ConvLSTM denoiser
#
# A **ConvLSTM** (Shi et al. 2015) is an LSTM whose states are maps and whose gates are
# convolutions. At frame k (k, not f: here f is the forget gate), with input features x_k and the
# previous state (h, c):
#
# $$[i, f, g, o] = \mathrm{Conv}([x_k, h_{k-1}]),\qquad c_k = \sigma(f)\odot c_{k-1} + \sigma(i)\odot\tanh(g),\qquad h_k = \sigma(o)\odot\tanh(c_k).$$
#
# The forget gate f decides how much of the memory c to keep, the input gate i how much of the new
# candidate g to write, the output gate o how much of the memory to show. Because the gates are
# 3×3 convolutions over [x, h], the memory at a pixel is updated from its neighbourhood: an object
# that moves a pixel or two per frame stays within reach (at a quarter of the resolution, each
# step of the cell sees a 12×12-pixel window of the frame).

# %%
cell = ConvLSTMCell(in_channels=3, hidden_channels=8)
h, c = cell(clip[:, 0])  # the first frame, from a zero state
h, c = cell(clip[:, 1], (h, c))  # the second frame, with the memory of the first
print(f"gates: one Conv2d {tuple(cell.gates.weight.shape)} = (4·hidden, in + hidden, 3, 3)")
print(f"frame {tuple(clip[:, 1].shape)} + state -> h {tuple(h.shape)}, c {tuple(c.shape)}")

# %% [markdown]
# The denoiser wraps the cell in the seed's three steps, each done so that it works:
#
# ```text
#  x_t (B, F, C, H, W)              t (B,) ── sinusoidal + MLP ── emb ─┐ (added in every ResBlock)
#     │ fold time into the batch: (B·F, C, H, W)                        │
#  per frame   conv_in ─ ResBlock ─────────────────── skip 0 (H)        │
#              stride-2 conv ─ ResBlock ───────────── skip 1 (H/2)      │
#              stride-2 conv                          (H/4)             │
#     │ unfold: (B, F, 2·base, H/4, W/4)                                │
#  over time   ConvLSTM forward  (frames 0 → F−1) ─┐                    │
#              ConvLSTM backward (frames F−1 → 0) ─┴─ 1×1 conv merge    │
#     │ fold again                                                      │
#  per frame   up ─ concat skip 1 ─ ResBlock ─ up ─ concat skip 0 ─ ResBlock ─ conv_out
#     ▼
#  prediction (B, F, C, H, W)
# ```
#
# The network trained below comes from the recipe (`get_recipe("video-shapes", model="conv_lstm")`).
# `layer_shapes` runs it once and lists each part with the shape it returned and how often it ran.

# %%
recipe = get_recipe("video-shapes", preset, model="conv_lstm")
model = recipe.build_model()
print(f"{'part':15s} {'calls':>5s}  {'output shape':24s} {'parameters':>10s}")
for row in layer_shapes(model, clip, t):
    print(f"{row.name:15s} {row.calls:5d}  {str(row.output_shape):24s} {row.parameters:10,d}")
print(f"{'total':15s} {'':5s}  {'':24s} {count_parameters(model):10,d}")

# %% [markdown]
# The two cells run F times each (once per frame) on (B, 2·base, H/4, W/4) maps; everything else
# runs once on all B·F frames. The ConvLSTM works at a quarter of the resolution: cheaper, and a
# 3×3 gate there covers 12×12 pixels of the frame.
#
# Unlike the seed's model, this one reads t:

# %%
with torch.no_grad():
    early, late = model(clip, torch.zeros(2, dtype=torch.long)), model(clip, torch.full((2,), 999))
print(f"ConvLSTM denoiser: max |output(t = 0) − output(t = 999)| = {(early - late).abs().max():.3f} (untrained)")

# %% [markdown]
# ## Bidirectional or causal
#
# To *denoise a whole clip*, every frame should see every other frame: a second ConvLSTM runs
# from the last frame back to the first, and the two directions are merged. To *predict* the
# future (notebook 08), frame k must not depend on frames after k, or the model would learn to
# copy the answer: `causal=True` keeps only the forward direction. Everything else in the network
# works frame by frame, so the whole network is causal then.
#
# Measured: replace the frames from k = F/2 on by noise and see how much each *output* frame
# moves (`frame_influence`; same seed for both models, untrained).

# %%
k = T // 2
directions = {
    "bidirectional": ConvLSTMDenoiser(3, preset.video_base_channels, 2 * preset.video_base_channels),
    "causal": ConvLSTMDenoiser(3, preset.video_base_channels, 2 * preset.video_base_channels, causal=True),
}
fig, ax = plt.subplots(figsize=(6, 2.6))
for shift, (name, net) in zip((-0.2, 0.2), directions.items()):
    change = frame_influence(net, clip, t, changed_from=k, generator=torch.Generator().manual_seed(1))
    ax.bar(torch.arange(T) + shift, change, width=0.4, label=name)
    print(f"{name:13s} max output change per frame: " + "  ".join(f"{v:.3f}" for v in change.tolist()))
ax.axvline(k - 0.5, color="k", ls="--", lw=1)
ax.set(xlabel="output frame", ylabel="max |change|", title=f"input frames {k}..{T - 1} replaced by noise")
ax.legend()
plt.show()

# %% [markdown]
# The causal model's outputs for frames 0..k−1 do not move at all (exactly 0): they never saw the
# changed frames. The bidirectional model's do: its backward ConvLSTM carried the change to them.
#
# A recurrent model is not tied to a clip length: the same weights run on clips twice as long.
# Inputs of the wrong shape are refused with the argument named:

# %%
long_clip = bouncing_shapes(1, frames=2 * T, size=S, seed=7).video
with torch.no_grad():
    print(f"{2 * T} frames: {tuple(model(long_clip, t[:1]).shape)}")
print(describe_error(lambda: model(clip[0], t)))  # one clip without its batch axis
print(describe_error(lambda: model(clip[:, :, :1], t)))  # 1 channel for a 3-channel model
print(describe_error(lambda: frame_influence(model, clip, t, changed_from=T)))  # frames are 0 … T−1 here: there is no frame T

# %% [markdown]
# ## Train on bouncing shapes
#
# `train_or_load` trains the recipe once (x0-prediction, linear schedule, AdamW with EMA weights;
# the same machinery as notebook 04) and then loads it from `../checkpoints/`, under a name that
# hashes the recipe. In the `cpu` preset the course ships this model, so it is loaded at once (the
# line it prints says so); `train_or_load(recipe, folder=CHECKPOINTS, retrain=True)` trains it here.

# %%
start = time.perf_counter()
trainer = train_or_load(recipe, folder=CHECKPOINTS)
shapes_model = trainer.ema_model.eval()
print(f"{recipe.steps} steps of {recipe.batch_size} clips, objective {recipe.objective}, schedule "
      f"{recipe.schedule_name}: ready in {time.perf_counter() - start:.0f} s (trained in {trainer.seconds:.0f} s)")
fig, ax = plt.subplots(figsize=(6, 2.4))
ax.plot(trainer.history["step"], trainer.history["loss"], lw=0.8)
ax.set(xlabel="step", ylabel="loss", yscale="log", title="training loss, bouncing shapes")
plt.show()

# %% [markdown]
# ## Sample videos
#
# DDIM with `preset.sample_steps` steps from the EMA weights. In the `smoke` preset the model has
# trained for a few seconds and its samples are noise: that run only proves that the code works.
# Run the `cpu` preset to see shapes that move.

# %%
n = max(8, preset.eval_samples // 16)
start = time.perf_counter()
samples = recipe.sample(shapes_model, n, generator=torch.Generator().manual_seed(1))
print(f"{n} clips in {time.perf_counter() - start:.1f} s")
filmstrip(samples[:4], title="ConvLSTM samples, bouncing shapes", out_of_range="clip")
plt.show()

# %%
animate(samples[:8], fps=4, nrow=4, out_of_range="clip")

# %% [markdown]
# Are these moving objects? The motion-consistency test of notebook 10 finds the foreground (pixels
# above mid-grey) in every frame, follows its centre, and passes a clip when it is one object of
# about the right size moving at constant velocity between bounces. Real clips pass nearly always
# (the cell prints their rate next to the samples'); noise never does.

# %%
real = recipe.real_examples(n)
sample_pass = motion_consistency(samples.clamp(-1, 1), recipe.object_size).pass_rate
real_pass = motion_consistency(real, recipe.object_size).pass_rate
print(f"motion-consistency pass rate: samples {sample_pass:.0%}, real clips {real_pass:.0%} ({n} clips each)")

# %% [markdown]
# ## Train on moving digits
#
# The same network on one-channel moving digits, trained for half the steps: digits have thin
# strokes and ten different shapes, so expect rougher samples than for the shapes. The digits recipe
# is class-conditional, like notebook 04's: every clip is asked for a digit ("a moving 7"), its label
# embedded and added to the timestep embedding, so the digit cannot change from frame to frame.
# `sample` asks for 0, 1, 2, … unless you pass `labels=`.

# %%
digits_recipe = get_recipe("video-digits", preset, model="conv_lstm", steps=max(1, recipe.steps // 2))
start = time.perf_counter()
digits_trainer = train_or_load(digits_recipe, folder=CHECKPOINTS)
digits_model = digits_trainer.ema_model.eval()
print(f"moving digits: {digits_recipe.steps} steps, ready in {time.perf_counter() - start:.0f} s")
m = max(4, preset.eval_samples // 32)
digit_samples = digits_recipe.sample(digits_model, m, generator=torch.Generator().manual_seed(2))
digit_pass = motion_consistency(digit_samples.clamp(-1, 1), digits_recipe.object_size).pass_rate
real_digit_pass = motion_consistency(digits_recipe.real_examples(m), digits_recipe.object_size).pass_rate
print(f"motion-consistency pass rate: samples {digit_pass:.0%}, real clips {real_digit_pass:.0%} ({m} clips each)")
filmstrip(digit_samples[:4], title="ConvLSTM samples, moving digits 0, 1, 2, 3", out_of_range="clip")
plt.show()

# %%
animate(digit_samples[:4], fps=4, nrow=4, out_of_range="clip")

# %% [markdown]
# ## Summary
#
# * The seed's §5.1 fails five times: an in-place write changes the channel count; in-place writes
#   break autograd and erase the caller's input; `nn.LSTM` takes vectors, not maps; a vector per
#   frame cannot be viewed back as a map; and `t` is never read. Each one is a line you can point
#   at, and each has a small fix.
# * Fold time into the batch for per-frame layers, (B, F, C, H, W) → (B·F, C, H, W), and build new
#   tensors instead of writing into the input.
# * A ConvLSTM keeps the recurrence on maps: gates are convolutions over [x_k, h_{k−1}], so the
#   memory follows things that move. Bidirectional for denoising a clip, causal for prediction —
#   and the causal property can be *measured*.
# * A denoiser must see its timestep: add an embedding of t to every block.
#
# Exercises: `exercises/06_conv_lstm_video_diffusion.ipynb` (the seed's bugs fixed, and a ConvLSTM
# run both ways along time).
# Next: notebook 07 replaces the recurrence by a 3D U-Net that convolves space and attends over
# time, and compares the two on the same data.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import Question, check_yourself

check_yourself([
    Question("Why does the seed's `x[:, i] = F.relu(conv_layer(x[:, i]))` fail with 3 colour channels in "
             "and 16 hidden channels?",
             ["ReLU cannot run in place",
              "the 16-channel result cannot be written into frame i's 3-channel slot of the input",
              "the convolution has no bias"],
             "the 16-channel result cannot be written into frame i's 3-channel slot of the input",
             "An assignment cannot change a tensor's shape. Keep the features in a new tensor: fold the "
             "frames into the batch, convolve, unfold."),
    Question("What does nn.LSTM(hidden, hidden, batch_first=True) expect as input?",
             ["one image per clip", "a sequence of feature maps, (B, F, C, H, W)",
              "a sequence of vectors, (B, F, hidden)"],
             "a sequence of vectors, (B, F, hidden)",
             "An LSTM's gates are matrix products on vectors. To keep the maps, make the gates convolutions: "
             "a ConvLSTM."),
    Question("A denoiser that never reads its timestep t can at best do what?",
             ["predict an average over all noise levels", "denoise perfectly at every step",
              "work only for DDPM, not DDIM"],
             "predict an average over all noise levels",
             "The same x_t calls for different answers at t = 0 and at t = 999; without t the network can "
             "only average them. Embed t and add it in every block."),
    Question("For predicting future frames, the ConvLSTM must be:",
             ["bidirectional", "causal: frame k depends only on frames up to k", "either"],
             "causal: frame k depends only on frames up to k",
             "A bidirectional model would see the frames it should predict and learn to copy them; the "
             "lesson measures that a causal model's early outputs do not move when later frames change."),
    Question("§5.2 says the convolutional layers extract spatio-temporal features. Do they?",
             ["only in the smoke preset", "yes: a 2D convolution sees time",
              "no: they run on each frame alone; only the LSTM relates frames"],
             "no: they run on each frame alone; only the LSTM relates frames",
             "A per-frame 2D convolution sees one frame at a time, so its features are spatial. Time enters "
             "through the recurrence (here) or through temporal layers (lesson 07)."),
])
