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
# # 08 · Prediction and long videos
#
# **Goals.** Predict the future frames of a clip from its past with a diffusion model, in three
# ways, and *measure* which works: (a) a model trained with the known frames as extra input
# channels, (b) the replacement method with an unconditional model, (c) reconstruction guidance.
# See on an exact example why (b) drifts. Then chain predictions into videos four times longer than
# anything the models were trained on, measure how quality decays with length, and try one remedy.
#
# **Prerequisites.** Lessons 02 (why x̂_0 matters in a reverse step), 04 (DDIM, guidance) and 07
# (the 3D U-Net); PSNR and SSIM as "higher is closer to the truth" (lesson 10 defines them).
#
# **Time.** Reading: about 45 minutes. Running with shipped weights: the unconditional 3D U-Net
# (lesson 07) and both frame-conditional predictors are shipped and load in seconds (README's time
# table has the whole lesson). Training from scratch (`cpu` preset): two predictors of 8000 steps
# each (plain, and with conditioning augmentation), about 75 and 79 minutes on one CPU thread (the
# shipped files' training records, BENCHMARKS.md "Shipped checkpoints"); a model you train is saved
# in `../checkpoints/` and loaded from then on. The `smoke` preset trains for seconds and its
# pictures are noise. **Seed sections:** §1.2 (autoregressive models: "predict the next frame and
# feed the prediction back"), §6 (video prediction), §8.1 (longer videos).
#
# A clip has F frames, K of them known (the past) and F − K to predict; t is the diffusion step, of
# which there are T. The code names the frame count `T`, as in `T = preset.video_frames`.
#
# The clips are bouncing shapes, so the true future of every test clip is known: every method is
# scored against it with PSNR, SSIM and the motion-consistency metric of notebook 10, on the same
# clips, next to the simplest baseline there is — *repeat the last frame* — and judged as a viewer
# would with notebook 10's video consistency: one object, moving on, keeping its colour and shape.

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

from course_lib.diffusion.conditioning import conditional_sample
from course_lib.config import get_preset, seed_everything
from course_lib.data.video import bouncing_shapes
from course_lib.diffusion.forward import eps_from_x0
from course_lib.diffusion.rollout import autoregressive_rollout
from course_lib.metrics.consistency import video_consistency
from course_lib.metrics.prediction import (
    comparison_table,
    decay_table,
    decay_with_length,
    min_moving_speed,
    repeat_last_frame,
    run_predictor,
    score_predictions,
)
from course_lib.views.prediction import plot_decay
from course_lib.workshop.predictor import (
    known_frames, predictor_steps, train_or_load_frame_conditional, video_predictors,
)
from course_lib.workshop.recipes import get_recipe
from course_lib.views.figures import animate, filmstrip
from course_lib.workshop.zoo import train_or_load

CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises

preset = get_preset()
g = seed_everything(0)
recipe = get_recipe("video-shapes", preset)  # bouncing shapes, the 3D U-Net, the preset's sizes
T, S = preset.video_frames, preset.video_size
K = known_frames(preset)  # F // 2 known frames (F = T frames here); the model predicts the other F - K
n_test = max(8, preset.eval_samples // 32)  # test clips: 8 (smoke), 15 (cpu), 62 (gpu)
min_speed = min_moving_speed(S)  # half the slowest speed in the data (S/32 px per frame): slower means "stopped"
print(f"preset {preset.name}: clips of F = {T} frames, {S}x{S} RGB; predict {T - K} frames from {K}; "
      f"{n_test} test clips; {preset.sample_steps} sampling steps")

# %% [markdown]
# ## The task, the truth and a baseline
#
# Each test clip is cut in two: the first K frames are given, the last F − K are to be predicted.
# Test clips come from their own seed, so they are not the training clips. The baseline freezes the
# last known frame: it is right wherever the background stays background, which is most pixels, and
# wrong where the object moves. A method that does not beat it has not learned motion.

# %%
truth = bouncing_shapes(n_test, frames=T, size=S, seed=808).video  # (n_test, F, 3, S, S)
still = run_predictor(repeat_last_frame, truth, K)
filmstrip(torch.cat([truth[:2], still[:2]]), row_labels=["truth 0", "truth 1", "repeat 0", "repeat 1"],
          frame_labels=[f"{'known' if j < K else 'predict'} {j}" for j in range(T)],
          title=f"frames 0–{K - 1} are given; the baseline repeats frame {K - 1}")
plt.show()
scores = {"repeat last frame": score_predictions(still, truth, K, recipe.object_size, min_speed)}
print(comparison_table(scores, baseline="repeat last frame"))

# %% [markdown]
# The baseline's motion score is 0 %: its object stops. (The motion metric alone would accept it: a
# standing object fits a "constant velocity" path of speed 0 within the tolerance, so
# `score_predictions` also asks for a median speed of at least `min_speed`.)
#
# ## Three ways to condition on the past
#
# Write the clip as x, the known frames as `known` and a mask m that is 1 on them (one value per
# frame, shape (B, F, 1, 1, 1)). Sampling runs the usual DDIM loop over the diffusion steps, code
# t = T−1 … 0 (T diffusion steps, not frames); the methods differ in how the known frames enter it.
#
# **(b) Replacement** (Song et al. 2021b, "replacement method"). Use an *unconditional* video model.
# After every step t → t', overwrite the known frames of x_{t'} with the truth noised to the same
# level:
#
# $$x_{t'} \leftarrow m \odot \big(\sqrt{\bar\alpha_{t'}}\,\text{known} + \sqrt{1-\bar\alpha_{t'}}\,\varepsilon\big) + (1-m) \odot x_{t'} .$$
#
# Free — no training — but the unknown frames only learn about the known ones through the noisy
# copy in x_t, which at high noise says almost nothing.
#
# **(c) Reconstruction guidance** (Ho et al. 2022a, "Video Diffusion Models", Eq. 7). Same model,
# same replacement, but before each step push the model's clean estimate x̂0 so that *its* known
# frames match the truth, with the gradient through the network:
#
# $$\tilde x_0 = \hat x_0 - \frac{w\sqrt{\bar\alpha_t}}{2}\,\nabla_{x_t}\big\lVert m \odot (\text{known} - \hat x_0(x_t))\big\rVert^2 .$$
#
# The gradient flows into the *unknown* frames too: "move the future so that the model's picture of
# the past comes out right". One backward pass per step: about 3× the cost of (b).
#
# **(a) Frame-conditional training** (Voleti et al. 2022, MCVD; Höppe et al. 2022, RaMViD). Give the
# network the condition as input: each frame enters as [x_t, m·known, m] — 2C + 1 = 7 channels —
# and training shows it a random number k ∈ {0, …, F−1} of leading frames per clip as the known,
# given frames, with the loss on the others (`course_lib.workshop.predictor`). The network *learns* p(future | past); it costs a
# training run of its own.
#
# ## Why replacement drifts: an exact experiment
#
# Take data whose denoiser we know exactly: 2D points x0 ~ N(0, Σ) with Σ = s²[[1, ρ], [ρ, 1]].
# Then E[x0 | x_t] = √ᾱ_t Σ (ᾱ_t Σ + (1 − ᾱ_t) I)⁻¹ x_t — a perfect "model", no training. Condition
# on the first coordinate x0[0] = a: the true conditional of the second is N(ρa, s²(1 − ρ²)). Any
# error now is the method's, not the network's.

# %%
schedule = recipe.schedule
rho, s, a = 0.9, 0.5, 0.8
cov = s**2 * torch.tensor([[1.0, rho], [rho, 1.0]])


def exact_eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact ε-prediction for x0 ~ N(0, cov): E[x0 | x_t] turned into ε (x_t: (N, 2), one t for all)."""
    ab = schedule.alpha_bars[t[0]]
    x0 = x_t @ (ab.sqrt() * cov @ torch.linalg.inv(ab * cov + (1 - ab) * torch.eye(2))).T
    return eps_from_x0(x_t, t, x0, schedule)


known_point = torch.tensor([[a, 0.0]]).expand(4000, 2).clone()
point_mask = torch.tensor([[1.0, 0.0]])
runs = {
    "(b) replacement": dict(method="replacement"),
    "(b) + RePaint resampling ×5": dict(method="replacement", resample=5),
    "(c) guidance w = 3": dict(method="guidance", guidance_weight=3.0),
}
fig, ax = plt.subplots(figsize=(7, 3.2))
grid = torch.linspace(-1, 2, 200)
true_sd = s * (1 - rho**2) ** 0.5
ax.plot(grid, torch.exp(-((grid - rho * a) ** 2) / (2 * true_sd**2)) / (true_sd * (2 * torch.pi) ** 0.5), "k",
        lw=2, label=f"true p(x[1] | x[0] = {a}): mean {rho * a:.2f}, sd {true_sd:.2f}")
for name, kwargs in runs.items():
    x = conditional_sample(exact_eps, known_point, point_mask, schedule, steps=50, clip_x0=False,
                           generator=torch.Generator().manual_seed(0), **kwargs)
    ax.hist(x[:, 1].numpy(), bins=60, density=True, histtype="step", lw=1.5,
            label=f"{name}: mean {x[:, 1].mean():.2f}, sd {x[:, 1].std():.2f}")
ax.set(xlabel="x[1]", title="sampling x[1] given x[0] with an exact denoiser")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The replacement samples sit between the prior mean 0 and the truth, and spread too wide: the
# method *under-uses* the condition. At step t the model sees only a noisy copy of the known part,
# and the next step replaces it with a *fresh* noisy copy, independent of what the unknown part was
# built on; the unknown part follows E[x0 | x_t] for whatever noise was drawn, and the information
# the noise destroyed is never recovered. RePaint's resampling (jump back up a step and redo it,
# notebook 09) gives the two parts time to agree; guidance pulls them together through the
# gradient. Both bring the mean close to the truth, though their spread comes out too narrow:
# fixing the mean is not the same as sampling the exact conditional. In video the drift shows up
# as a future that is plausible on its own but does not continue the past: the object jumps at the
# seam or moves the wrong way.
#
# ## The two video models
#
# `train_or_load` loads the unconditional 3D U-Net of notebook 07 (the course's shipped file, or
# yours from `checkpoints/`; the file name is a hash of the recipe), and
# `train_or_load_frame_conditional` the predictor the same way. The frame-conditional model is the
# same U-Net with 7 input channels, trained on the same data and schedule, with two additions for
# extrapolating: a kernel-3 convolution along time after each ResBlock (neighbouring frames'
# differences are velocities) and a learned embedding of each frame's index, and half of its
# training clips have exactly K = F/2 known frames, the task it is used for here. It also trains
# longer, the preset's `prediction_train_steps` (`cpu`: 8000 against the U-Net's 2000): a long
# rollout feeds the predictor its own output again and again, so its small errors compound. What
# each of these bought in the `cpu` preset: BENCHMARKS.md, "Results the lessons cite".

# %%
start = time.perf_counter()
unconditional = train_or_load(recipe, folder=CHECKPOINTS).ema_model.eval()
conditional = train_or_load_frame_conditional(recipe, folder=CHECKPOINTS).ema_model.eval()
print(f"two models ready in {time.perf_counter() - start:.0f} s "
      f"({recipe.steps} and {predictor_steps(recipe)} training steps; shipped, or trained once and then loaded)")

# %% [markdown]
# ## Predict and measure
#
# Each method becomes a *predictor* `predict(past, frames) -> clip` with the same sampler settings
# and seed: `video_predictors` wraps `predict_future(model, past, frames, schedule, method=...)`
# with `method="frame-conditional"` for (a), `"replacement"` for (b) and `"guidance"` for (c) (the
# same predictors that `python -m course_lib bench prediction` measures). `run_predictor` feeds
# each one the first K frames of every test clip.

# %%
# (a), (b), (c) with the preset's DDIM steps, guidance weight w = 2 and noise seeded with 1
predictors = video_predictors(recipe, unconditional=unconditional, conditional=conditional)
predictions = {"repeat last frame": still}
for name, predict in predictors.items():
    start = time.perf_counter()
    predictions[name] = run_predictor(predict, truth, K, batch_size=preset.video_batch_size)
    scores[name] = score_predictions(predictions[name], truth, K, recipe.object_size, min_speed)
    print(f"{name:24s} {time.perf_counter() - start:6.1f} s for {n_test} clips")
print()
print(comparison_table(scores, baseline="repeat last frame"))
print("\nvideo consistency of the whole clip, known and predicted frames together (notebook 10):")
for name, video in predictions.items():
    print(f"{name:24s} {video_consistency(video.clamp(-1, 1), recipe.object_size).summary()}")

# %% [markdown]
# Read the table per clip, not only on average: "beats" is the share of clips on which a method's
# PSNR is higher than the still picture's on *the same clip*. PSNR rewards a prediction that puts
# the object in the right place; SSIM rewards the right shape and edges; the motion pass says the
# whole clip — past and future together — shows one object moving at constant velocity between
# bounces; the video consistency adds what a viewer checks next — the same colour and shape in every
# frame — so a prediction that turns the red ball yellow on the right path fails it. (In the smoke
# preset the models have trained for a few steps and everything loses to the baseline; run the cpu
# preset to see the methods separate.)

# %%
show = [0, 1, 2]
rows = torch.cat([torch.stack([predictions[name][i] for name in predictions] + [truth[i]]) for i in show])
labels = [f"{i}: {name.split(' ')[0]}" for i in show for name in [*predictions, "truth"]]
filmstrip(rows, row_labels=labels, frame_labels=[f"{'known' if j < K else 'pred'} {j}" for j in range(T)],
          title="three test clips: every method, then the truth")
plt.show()

# %% [markdown]
# ## Long videos: autoregressive rollout (seed §1.2, §8.1)
#
# A model trained on F-frame clips can still make longer videos: predict a chunk, keep its last
# `keep` frames as the past of the next chunk, repeat. Each chunk adds F − keep frames. Errors now
# compound: a slightly wrong frame becomes the condition for everything after it. We roll out to
# 4F frames from the first K true frames and measure, against the true long clip, the PSNR of each
# frame and the motion pass rate of the first L frames for growing L.

# %%
n_long = max(4, n_test // 2)
long_truth = bouncing_shapes(n_long, frames=4 * T, size=S, seed=809).video
best = predictors["(a) frame-conditional"]
start = time.perf_counter()
rolled = autoregressive_rollout(best, long_truth[:, :K], total_frames=4 * T, keep=K, frames=T)
print(f"{n_long} videos of {4 * T} frames in {time.perf_counter() - start:.0f} s "
      f"({(4 * T - K) // (T - K)} chunks of {T - K} new frames each)")
animate(torch.cat([rolled[:4], long_truth[:4]]), fps=6, nrow=4)

# %% [markdown]
# Top row: the rollout; bottom row: the truth from the same first frames. The truth is only one of
# many plausible futures (a bounce a few frames early is not "wrong"), so PSNR against it must fall
# with time; the motion pass says whether the video still shows one object moving like the data,
# and the video consistency (printed below the curves, for the whole 4F frames) whether it also kept
# its colour and shape all along.

# %%
lengths = [L for L in (T, 2 * T, 3 * T, 4 * T)]
curves = {
    f"keep {K} (F/2)": decay_with_length(rolled, long_truth, recipe.object_size, lengths, min_speed),
    "repeat last frame": decay_with_length(repeat_last_frame(long_truth[:, :K], 4 * T), long_truth,
                                           recipe.object_size, lengths, min_speed),
}
plot_decay(curves, train_frames=T)
plt.show()
for name, video in {f"rollout, keep {K}": rolled, "truth": long_truth}.items():  # a viewer's verdict on each video
    print(f"{name:18s} {video_consistency(video.clamp(-1, 1), recipe.object_size).summary()}")

# %% [markdown]
# ## One remedy: more context, shorter steps
#
# With keep = F/2 each chunk extrapolates F/2 frames from F/2 frames. Keeping more of the past —
# keep = F − F/4 — gives the model a longer look at the velocity and asks it for fewer, nearer
# frames per chunk, at the price of more chunks (more sampling). Does the video stay on track
# longer?

# %%
keep_more = T - T // 4
start = time.perf_counter()
rolled_more = autoregressive_rollout(best, long_truth[:, :K], total_frames=4 * T, keep=keep_more, frames=T)
print(f"keep {keep_more}: {time.perf_counter() - start:.0f} s")
curves[f"keep {keep_more} (more context)"] = decay_with_length(rolled_more, long_truth, recipe.object_size, lengths,
                                                               min_speed)
plot_decay(curves, train_frames=T)
plt.show()
print(decay_table(curves))

# %% [markdown]
# ## A second remedy: train on an imperfect past (conditioning augmentation)
#
# Look at *how* the rollout fails: the brightest pixel of each frame, averaged over the videos.
# A model trained only on clean pasts draws the object a little dimmer with every frame it
# extrapolates, and the next chunk takes those dimmer frames as its past: the fade compounds until
# the object is gone. Conditioning augmentation (Ho et al. 2022c, cascaded diffusion) trains the
# model on a spoiled past on purpose: each clip's known frames are put through the forward process
# to a random step s ≤ 150 before the network sees them, while the frames it must produce stay
# clean. A dimmed, noisy past then still means a crisp object. At sampling we show it its past at
# step 75, the middle of that range. (`python -m course_lib bench prediction --context-noise 150`
# measures the same on more videos: BENCHMARKS.md, "Prediction and long videos".)

# %%
augmented_model = train_or_load_frame_conditional(recipe, folder=CHECKPOINTS,
                                                  context_noise=150).ema_model.eval()
(augmented,) = video_predictors(recipe, conditional=augmented_model, context_noise=75).values()
start = time.perf_counter()
rolled_augmented = autoregressive_rollout(augmented, long_truth[:, :K], total_frames=4 * T, keep=K, frames=T)
print(f"conditioning augmentation: {time.perf_counter() - start:.0f} s")
curves[f"keep {K}, conditioning augmentation"] = decay_with_length(rolled_augmented, long_truth, recipe.object_size,
                                                                   lengths, min_speed)

fig, ax = plt.subplots(figsize=(6, 2.6))
for name, video in {f"keep {K}": rolled, f"keep {K}, augmented": rolled_augmented, "truth": long_truth}.items():
    ax.plot(video.amax(dim=(2, 3, 4)).mean(0), label=name)  # (4F,) the brightest pixel per frame
ax.axvline(K - 0.5, color="gray", lw=0.5)
ax.set_xlabel("frame")
ax.set_ylabel("brightest pixel (mean)")
ax.legend(fontsize=8)
plt.show()
plot_decay(curves, train_frames=T)
plt.show()
print(decay_table(curves))

# %% [markdown]
# What to look for: with augmentation the object keeps its brightness and size to the last frame;
# what fails after that is *speed*. Each chunk reads the velocity from a few generated frames, so
# small errors add up over the chunks, and an object that reaches a wall at a chunk's end often
# stays there. How far the `cpu` preset gets, and what else was tried, is in BENCHMARKS.md
# ("Prediction and long videos"). A model that keeps the velocity over many chunks — a longer
# past, or per-frame noise levels as in diffusion forcing — is the next thing to try.

# %% [markdown]
# ## Summary
#
# * Conditioning an unconditional model by **replacement** is free but under-uses the condition —
#   exactly measurable on a Gaussian, visible in video as a future that ignores the past's motion.
# * **Reconstruction guidance** fixes much of it with a gradient through the model (≈ 3× the cost).
# * **Training with the condition as input** (the known frames as extra channels, a random number
#   of them) is the most reliable, and one network then predicts, rolls out and samples freely.
# * **Autoregressive rollout** makes videos longer than the training clips; errors compound, so
#   quality decays with length. Measure it against a truth, and try remedies with a number:
#   training on a deliberately spoiled past (conditioning augmentation) stops the fade.
#
# Exercises: `exercises/08_prediction_and_long_videos.ipynb` (replacement, guidance, and a rollout
# loop with conditioning augmentation).
# Next: notebook 09 uses the same machinery to *edit* clips — re-noise and denoise (SDEdit), fill
# a hole in every frame, and repair damaged frames.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("Why does the replacement method under-use the known frames?",
             ["it needs a second network",
              "the unknown frames see them only through a noisy copy, and each step draws a fresh one",
              "it ignores the known frames until the last step"],
             "the unknown frames see them only through a noisy copy, and each step draws a fresh one",
             "What the noise destroyed is never recovered, so the prediction sits between the prior and the "
             "truth — exactly measurable on the Gaussian example. Resampling or guidance pulls the parts together."),
    NumericQuestion("The frame-conditional U-Net gets each RGB frame as [x_t, m·known, m]. How many input "
                    "channels is that?", 7,
                    "2C + 1 = 3 + 3 + 1: the noisy frame, the known frame (zero where unknown) and the mask."),
    NumericQuestion("Clips of F = 8 frames, rolled out from 4 true frames to 32 frames, keeping 4 frames as "
                    "the past of each chunk: how many chunks does that take?", 7,
                    "Each chunk adds F − keep = 4 new frames, and 32 − 4 = 28 frames are missing: 28 / 4 = 7."),
    Question("What does conditioning augmentation train the predictor on?",
             ["twice as many clips",
              "pasts taken from its own rollouts",
              "a past put through the forward process to a random step, with clean frames to produce"],
             "a past put through the forward process to a random step, with clean frames to produce",
             "A slightly dim, noisy past then still means a crisp object, so the fade no longer compounds "
             "from chunk to chunk (Ho et al. 2022c)."),
    Question("\"Repeat the last frame\" scores 0% on the motion test although a still object fits a constant "
             "velocity of 0. Why?",
             ["the test also asks for a minimum speed, and a still object is below it",
              "its PSNR is too low", "the motion test needs a model"],
             "the test also asks for a minimum speed, and a still object is below it",
             "score_predictions requires a median speed of at least min_speed, so a method that stops "
             "the object cannot pass as moving."),
])
