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
# # 14 · Long videos with diffusion forcing
#
# **Goals.** See why chunked prediction (lesson 08) loses an object's speed over a long rollout,
# and what a *noise level per frame* changes: train one video U-Net with an independent noise
# level for every frame (**diffusion forcing**), draw the **schedule matrix** that tells a sampler
# which frame sits at which level, and use the one model three ways — a whole clip at once, a
# rolling window that commits one frame at a time (a **pyramid schedule**), and lesson 08's
# chunked prediction. Then roll videos out to 4× and 8× the training length and measure how
# quality decays with length, beside lesson 08's predictor.
#
# **Prerequisites.** Lessons 04 (DDIM), 07 (the 3D U-Net) and 08 (prediction, autoregressive
# rollout, the decay curves); the exercises of lesson 02 (x̂_0 from ε̂).
#
# **Time.** Reading: about 40 minutes. Running with shipped weights: the forcing model and lesson
# 08's predictor, which joins the comparison, are shipped and load in seconds (README's time table
# has the whole lesson).
# Training from scratch (`cpu` preset): the forcing model trains the preset's
# `prediction_train_steps` (8000), about 82 minutes on one CPU thread (the shipped file's training
# record, BENCHMARKS.md "Shipped checkpoints"). The `smoke` preset trains for seconds and its
# pictures are noise.
#
# A clip has F frames (`T = preset.video_frames` in the code, as in lesson 08), K of them known;
# t is the diffusion step, 0 … 999 in code.

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
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from course_lib.config import get_preset, seed_everything
from course_lib.data.video import bouncing_shapes
from course_lib.diffusion.forcing import (
    chunked_rollout, forcing_predictor, pyramid_schedule, q_sample_frames, rolling_delay, rolling_rollout,
)
from course_lib.diffusion.rollout import autoregressive_rollout
from course_lib.metrics.prediction import (
    comparison_table, decay_table, decay_with_length, min_moving_speed, repeat_last_frame, run_predictor,
    score_predictions,
)
from course_lib.views.figures import animate, filmstrip
from course_lib.views.prediction import plot_decay
from course_lib.workshop import zoo
from course_lib.workshop.predictor import (frame_conditional_parts, known_frames, train_or_load_frame_conditional,
                                           video_predictors)
from course_lib.workshop.recipes import get_recipe

CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises

preset = get_preset()
g = seed_everything(0)
recipe = get_recipe("video-shapes", preset, "forcing")  # bouncing shapes, the U-Net trained with diffusion forcing
T, S = preset.video_frames, preset.video_size
K = known_frames(preset)  # F // 2 known frames, as in lesson 08
LEVELS = max(2, preset.sample_steps // 4)  # noise levels of the rollouts' samplers (DDIM steps per frame)
n_test, n_long = preset.eval_samples // 16, max(4, preset.eval_samples // 64)  # few: bench prediction measures more
min_speed = min_moving_speed(S)
print(f"preset {preset.name}: clips of F = {T} frames, {S}x{S} RGB; {n_test} test clips, {n_long} long videos; "
      f"rollouts with {LEVELS} noise levels")

# %% [markdown]
# ## 1 · Why chunked prediction drifts
#
# Lesson 08 rolled a video out chunk by chunk: keep the last K frames, predict F − K more, repeat.
# Every chunk re-reads the object's velocity from K frames, and from the second chunk on those
# frames are the model's own output. A small error in the speed is not corrected; it is the new
# truth for the next chunk, and over seven chunks the errors add up: the object slows, stops at a
# wall or changes course, and the motion test of lesson 10 fails. (BENCHMARKS.md, "Prediction and
# long videos", measures it: from true frames one chunk passes almost always; at 4× the training
# length well under half of the videos still do.)
#
# The fix this lesson follows comes from sequence models (Chen et al. 2024, "Diffusion Forcing";
# Ruhe et al. 2024, "Rolling Diffusion"; Song et al. 2025): do not commit a whole chunk at once.
# Keep a window in which the near future is almost clean and the far future still noisy, and
# finish one frame at a time. For that the network must accept a clip whose frames sit at
# *different* noise levels.
#
# ## 2 · A noise level per frame
#
# Every lesson so far noised a clip with one timestep t for all its frames. **Diffusion forcing**
# draws one for every frame, t of shape (B, F), and noises frame j with its own level:
#
# $$x_t[b, j] = \sqrt{\bar\alpha_{t[b,j]}}\; x_0[b, j] + \sqrt{1 - \bar\alpha_{t[b,j]}}\; \epsilon[b, j].$$
#
# A clip at mixed levels is just B·F images with one timestep each, so `q_sample_frames` reshapes
# the clip and calls lesson 01's `q_sample`. The 3D U-Net of lesson 07 embeds a timestep per frame
# when given t of shape (B, F) (one per clip, (B,), still works exactly as before).

# %%
clip = bouncing_shapes(1, frames=T, size=S, seed=14).video  # (1, F, 3, S, S)
rising = torch.linspace(0, preset.num_diffusion_steps - 1, T).round().long()[None]  # (1, F): clean -> pure noise
noisy = q_sample_frames(clip, rising, recipe.schedule, generator=g)
filmstrip(torch.cat([clip, noisy]), row_labels=["clean", "noised"],
          frame_labels=[f"t = {int(t)}" for t in rising[0]], title="one clip, noise rising along the frames",
          out_of_range="clip")
plt.show()

# %% [markdown]
# Training is the simple loss of lesson 02 with these per-frame levels, each drawn independently:
# `DiffusionForcingObjective`. The network sees clips whose past is clean and future noisy,
# the reverse, every frame at the same level, and everything between — so the same weights can
# later be asked for any of them.
#
# ## 3 · The schedule matrix
#
# A sampler for such a model is a plan: after iteration i, which frame sits at which level? Write
# it as a matrix, rows = iterations, columns = frames, values = noise level from S (pure noise)
# down to 0 (clean). `pyramid_schedule(frames, S, known, delay)` builds it: known frames are 0
# throughout, and frame j starts to fall `delay` iterations after frame j − 1:
#
# * `delay = 0`: every column the same — ordinary sampling of the whole clip;
# * `delay = 1`: the pyramid of diffusion forcing — noise rises by one level per frame;
# * `delay ≥ S`: one frame at a time, each finished before the next starts.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, delay in zip(axes, (0, 1, 6)):
    matrix = pyramid_schedule(8, 6, known=2, delay=delay)
    ax.imshow(matrix, cmap="magma", vmin=0, vmax=6, aspect="auto", interpolation="nearest")
    ax.set_title(f"delay {delay}: {len(matrix) - 1} iterations", fontsize=10)
    ax.set_xlabel("frame (2 known)")
    ax.set_ylabel("iteration")
fig.colorbar(axes[-1].images[0], ax=axes, label="noise level (6 = pure noise, 0 = clean)")
plt.show()

# %% [markdown]
# With a window of W frames, the rolling sampler shows the model only the W frames that end with
# the last frame being denoised. If about S / delay frames are part-way at any time, a delay of
# ⌈S / (W − c)⌉ leaves c clean frames of context in view (`rolling_delay`). The matrix can then be
# as long as we like: the video grows a frame every `delay` iterations, for ever.
#
# ## 4 · Train (or load) the forcing model
#
# The recipe's model "forcing" is lesson 08's U-Net layout (temporal convolutions and a frame
# embedding) with the usual 3 input channels, trained by `DiffusionForcingObjective` for the
# preset's `prediction_train_steps`. `train_or_load` finds it in `checkpoints/` (or the course's
# shipped file) and trains it otherwise.

# %%
start = time.perf_counter()
trainer = zoo.train_or_load(recipe, folder=CHECKPOINTS)
model = trainer.ema_model.eval()
print(f"forcing model ready in {time.perf_counter() - start:.0f} s ({recipe.steps} training steps)")

# %% [markdown]
# ## 5 · One model, three uses
#
# **(a) A whole clip.** Every frame at the same level (`delay = 0`, or `recipe.sample`, which
# passes one t per clip): the model is an ordinary video model.

# %%
clips = recipe.sample(model, 4, generator=torch.Generator().manual_seed(1))
filmstrip(clips, title="(a) whole clips, every frame at one level")
plt.show()

# %% [markdown]
# **(c) Predict the future, lesson 08's task.** The K known frames sit at level 0 and the rest are
# sampled together: `forcing_predictor(model, schedule, steps)` is a predictor `predict(past,
# frames)` like lesson 08's. The same test clips and baseline as there:

# %%
truth = bouncing_shapes(n_test, frames=T, size=S, seed=808).video
predict = forcing_predictor(model, recipe.schedule, preset.sample_steps, objective=recipe.objective, seed=1)
predictions = {"repeat last frame": run_predictor(repeat_last_frame, truth, K),
               f"forcing, {T - K} from {K}": run_predictor(predict, truth, K, batch_size=n_test)}
scores = {name: score_predictions(video, truth, K, recipe.object_size, min_speed) for name, video in predictions.items()}
print(comparison_table(scores, baseline="repeat last frame"))

# %% [markdown]
# **(b) Roll out.** Now the long videos, to 8× the training length from K true frames, by two
# samplers of the same model: the rolling window (W = F frames, half of them clean context, a new
# frame started every `delay` iterations) and lesson 08's chunks. Both use `LEVELS` noise levels
# per frame, so they cost about the same number of network calls. Lesson 08's frame-conditional
# predictor (shipped, or yours in `../checkpoints/`) joins with the same settings.

# %%
long_truth = bouncing_shapes(n_long, frames=8 * T, size=S, seed=809).video
delay = rolling_delay(LEVELS, T, K)
rollouts, seconds = {}, {}
start = time.perf_counter()
rollouts["forcing, rolling window"] = rolling_rollout(model, long_truth[:, :K], 8 * T, T, recipe.schedule, LEVELS,
                                                      objective=recipe.objective, generator=torch.Generator().manual_seed(1))
seconds["forcing, rolling window"] = time.perf_counter() - start
start = time.perf_counter()
rollouts["forcing, chunks"] = chunked_rollout(model, long_truth[:, :K], 8 * T, T, K, recipe.schedule, LEVELS,
                                              objective=recipe.objective, seed=1)
seconds["forcing, chunks"] = time.perf_counter() - start
plain = get_recipe("video-shapes", preset)  # lesson 08's predictor was trained on this recipe
if preset.name == "smoke" or zoo.is_trained(plain, folder=CHECKPOINTS, parts=frame_conditional_parts(plain)):
    lesson08 = train_or_load_frame_conditional(plain, folder=CHECKPOINTS).ema_model.eval()
    start = time.perf_counter()
    chunked08 = video_predictors(plain, conditional=lesson08, steps=LEVELS)["(a) frame-conditional"]
    rollouts["lesson 08 predictor"] = autoregressive_rollout(chunked08, long_truth[:, :K], 8 * T, keep=K, frames=T)
    seconds["lesson 08 predictor"] = time.perf_counter() - start
else:
    print("lesson 08's predictor is neither shipped for this preset nor in ../checkpoints: run lesson 08 to add it")
for name, s in seconds.items():
    print(f"{name:24s} {n_long} videos of {8 * T} frames in {s:5.1f} s")
print(f"rolling window: delay {delay}, {LEVELS + delay * (8 * T - K - 1)} network calls on {T} frames")

# %%
shown = torch.cat([video[:3] for video in rollouts.values()] + [long_truth[:3]])
print("rows:", ", ".join(f"3 × {name}" for name in [*rollouts, "truth"]))
animate(shown, fps=8, nrow=3)

# %% [markdown]
# Each block of three rows starts from the same K true frames. Watch the speed: does the object
# still move at frame 40, and at the same pace as at the start? The truth is one of many
# plausible futures, so a bounce a few frames off is not a failure; a stop is.
#
# ## 6 · Decay with length
#
# Lesson 08's curves, for every rollout: the PSNR of each frame against the truth, and the share
# of videos whose first L frames still pass the motion test, for L up to 8F.

# %%
lengths = [T, 2 * T, 4 * T, 8 * T]
curves = {name: decay_with_length(video, long_truth, recipe.object_size, lengths, min_speed)
          for name, video in rollouts.items()}
curves["repeat last frame"] = decay_with_length(repeat_last_frame(long_truth[:, :K], 8 * T), long_truth,
                                                recipe.object_size, lengths, min_speed)
plot_decay(curves, train_frames=T)
plt.show()
print(decay_table(curves))

# %% [markdown]
# What to read: the motion pass rate at 4F and 8F is the number that matters (PSNR against one
# truth must fall whatever the method). How far each method gets in the `cpu` preset is measured by
# `python -m course_lib bench prediction` (BENCHMARKS.md); in the `smoke` preset the models have
# trained for seconds and nothing passes. If the rolling window does not beat the chunks, the
# levers are the ones the papers use: more levels per frame, a longer window, and guidance on the
# past (history guidance, Song et al. 2025): `history_guided(model, w, T)` asks the model twice,
# with the clean past and with the past replaced by pure noise, and mixes the answers as
# classifier-free guidance does; pass it wherever `model` goes above and try w = 2.
#
# ## Summary
#
# * **Diffusion forcing** trains a video denoiser with an independent noise level per frame, t of
#   shape (B, F); the loss and the forward process are the usual ones, applied frame by frame.
# * A sampler for it is a **schedule matrix** (iterations × frames, levels from S down to 0):
#   `delay = 0` samples a whole clip, a **pyramid schedule** lets noise rise along the frames, and a
#   long delay commits one frame at a time.
# * One model serves three uses: whole clips, lesson 08's chunked prediction (known frames at
#   level 0), and a rolling window that makes videos of any length one frame at a time.
# * Measure long videos with the decay curves: the motion pass rate at 4× and 8× the training length.
#
# Exercises: `exercises/14_long_videos_with_diffusion_forcing.ipynb` (per-frame noising, the
# pyramid matrix, one step of the rolling sampler).

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("What does diffusion forcing change in training?",
             ["the network predicts the next frame only",
              "each frame of a clip gets its own, independent noise level",
              "the noise schedule is learned"],
             "each frame of a clip gets its own, independent noise level",
             "t has shape (B, F); the loss is the usual one, frame by frame, so one network learns every "
             "mix of clean, noisy and pure-noise frames (Chen et al. 2024)."),
    NumericQuestion("pyramid_schedule(frames=8, levels=6, known=2, delay=1): how many rows has the matrix?", 12,
                    "S + delay·(frames − known − 1) + 1 = 6 + 5 + 1 = 12: the start row and 11 iterations."),
    Question("In the schedule matrix, what does delay = 0 give?",
             ["one frame at a time", "ordinary sampling of the whole clip", "no sampling at all"],
             "ordinary sampling of the whole clip",
             "Every column is the same, so every frame falls together: the sampler of lessons 04 and 07."),
    NumericQuestion("S = 24 levels, a window of W = 8 frames, 4 of them clean context: what is the smallest "
                    "delay that fits (rolling_delay)?", 6,
                    "About S / delay frames are part-way at any time; they must fit in W − c = 4 frames: "
                    "⌈24 / 4⌉ = 6."),
    Question("Why can the rolling sampler keep an object's speed better than chunks of four frames?",
             ["it uses a bigger network",
              "frames are committed one at a time while the next ones are still partly noisy, so the "
              "velocity is never re-read from a few finished frames only",
              "it adds no noise"],
             "frames are committed one at a time while the next ones are still partly noisy, so the "
             "velocity is never re-read from a few finished frames only",
             "A chunk re-reads the speed from its K clean frames; the window carries a half-finished future "
             "along, which the next frames are denoised together with."),
])
