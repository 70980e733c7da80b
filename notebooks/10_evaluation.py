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
# # 10 · Evaluating video models
#
# **Goals.** Compute the numbers papers report for generated video — PSNR, SSIM, the Inception
# Score, FID and an FVD-style distance — from their formulas, on clips whose faults *we* chose,
# and learn what each number notices and what it is blind to. Add a test no benchmark can offer:
# because our data's true dynamics are known, measure whether the objects in a clip *move* right,
# and whether each stays *itself* — the check a viewer makes first.
# Finish with the two classic traps: distances that depend on the sample count, and a judge
# network that only understands its own kind of data.
#
# **Prerequisites.** Lessons 04 (the digit judge, IS and FID in use) and 07 (a video model);
# means and covariances; the idea of a classifier's features.
#
# **Time.** Reading: about 40 minutes. Running with shipped weights: the moving-digits 3D U-Net of
# the trained-model section is shipped and loads in seconds; README's time table gives the measured
# run time of the whole lesson. Training from scratch (`cpu` preset, 2000 steps): about 20 minutes
# on one CPU thread (the shipped file's training record, BENCHMARKS.md "Shipped checkpoints"), with
# `train_or_load(recipe, folder=CHECKPOINTS, retrain=True)`, then loaded from `../checkpoints/`;
# the small video judge trains in the lesson and prints how long it took,
# and the digit judge for 14-pixel digits (the video consistency's reader) trains once in about
# 10 s. The failure cases sample 15 clips (`cpu` preset) from the shipped bouncing-shapes model.
# **Seed section:** §9.2 (how to evaluate video diffusion models).
#
# Clips have F frames; the code names the frame count `T`.
#
# ## What the seed says, and one correction
#
# §9.2 lists three measures: PSNR, "similarity between generated and real video"; SSIM, their
# "structural similarity"; and the Inception Score, which it calls a "starting distance" (起始距离)
# that measures "diversity and quality". Two things need fixing:
#
# * **The Inception Score is a score, not a distance.** It looks at generated samples only —
#   never at real data — and is *higher* when better (at most the number of classes). The
#   *distances* the field reports are **FID** (images) and **FVD** (video): they compare generated
#   with real data, are 0 for identical distributions and *lower* when better. "起始" is a literal
#   translation of "Inception", the name of the classifier network, not a concept.
# * **PSNR and SSIM need a ground truth.** They compare a clip with *its* real counterpart, pixel
#   by pixel: fine for prediction, frame repair or compression, meaningless for free generation,
#   where a generated clip has no real twin.
#
# | measure | compares | needs a matching real clip? | better | kind |
# |---|---|---|---|---|
# | PSNR, SSIM | one clip with its reference, frame by frame | yes | higher | similarity |
# | Inception Score (IS) | the judge's class predictions on generated clips | no (never sees real data) | higher | score |
# | FID / FVD | feature statistics of generated vs real sets | no (but a real *set*) | lower | distance |
# | motion consistency | each clip's object track vs the true physics | no (the physics is known) | higher | pass rate |
# | video consistency | one object in every frame, moving right, keeping its look (digit, or colour and shape) | no | higher | pass rate per part and combined |

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
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from course_lib.config import get_preset, seed_everything
from course_lib.data.video import PALETTE_NAMES, SHAPE_KINDS, frames_to_batch, moving_digits, shuffle_frames
from course_lib.metrics.frechet import frechet_distance_from_features
from course_lib.metrics.inception_score import inception_score
from course_lib.metrics.judge import accuracy, get_digit_judge, judge_config_for_preset
from course_lib.metrics.video import (
    DIRECTIONS,
    frechet_video_distance,
    get_video_judge,
    motion_direction,
    per_frame_psnr,
    per_frame_ssim,
)
from course_lib.metrics.consistency import video_consistency
from course_lib.workshop.recipes import get_recipe
from course_lib.workshop.shipped import SHIPPED_FOLDER
from course_lib.views.figures import animate, filmstrip
from course_lib.workshop.zoo import load_checkpoint, train_or_load

CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises

preset = get_preset()
g = seed_everything(0)
T, S = max(8, preset.video_frames), preset.video_size  # motion needs frames: at least 8, in every preset
N = preset.fvd_clips  # clips per set behind every FVD and IS below: 500 (FVD_SAMPLES), fewer in smoke
print(f"preset {preset.name}: {N} clips per set, each {T} frames of {S}x{S}")

# %% [markdown]
# ## The test bench: real clips and copies we broke on purpose
#
# Two independent sets of real moving digits (held-out fonts, different seeds) play "the data"
# (`data`, the reference set) and "a perfect model" (`real`). Every other row is `real` with one
# fault. Some faults change the pixels (noise at three levels, blur), some keep every pixel of
# every frame but break time (shuffled frames, a frozen clip that repeats its first frame), and
# two are *not faults at all*: the clip shifted one pixel to the right, and the clip played
# backwards — with bouncing motion, a reversed clip is just as real as the original.

# %%
data = moving_digits(N, frames=T, size=S, seed=2, split="test").video  # the reference set
real_batch = moving_digits(N, frames=T, size=S, seed=1, split="test")
real, labels = real_batch.video, real_batch.labels[:, 0]  # (N, F, 1, S, S), (N,)
object_size = float(real_batch.sizes[0, 0])  # the digit box, in pixels


def add_noise(video, sigma):
    return (video + sigma * torch.randn(video.shape, generator=torch.Generator().manual_seed(3))).clamp(-1, 1)


def blur(video, sigma=1.0):  # Gaussian blur of every frame (not along time)
    return torch.from_numpy(ndimage.gaussian_filter(video.numpy(), sigma=(0, 0, 0, sigma, sigma)))


sets = {
    "real": real,
    "noise σ=0.05": add_noise(real, 0.05),
    "noise σ=0.1": add_noise(real, 0.1),
    "noise σ=0.2": add_noise(real, 0.2),
    "blur σ=1 px": blur(real),
    "shifted 1 px": real.roll(1, dims=-1),
    "shuffled frames": shuffle_frames(real, torch.Generator().manual_seed(4)),
    "frozen (frame 0)": real[:, :1].expand_as(real).contiguous(),
    "reversed": real.flip(1),
}
names = list(sets)
filmstrip(torch.stack([sets[name][0] for name in names]), row_labels=names, title="clip 0 of each set")
plt.show()

# %% [markdown]
# Playing, in the same order (left to right, then the next row): which broken copies can you tell
# from the real clip (first) at a glance, and which only when you watch the motion?

# %%
animate(torch.stack([sets[name][0] for name in names]), fps=4, nrow=4)

# %% [markdown]
# ## PSNR and SSIM: similarity to a reference, frame by frame
#
# **PSNR** (peak signal-to-noise ratio) turns the mean squared error of a frame into decibels,
# relative to the largest possible error:
#
# $$\mathrm{PSNR} = 10 \log_{10} \frac{R^2}{\mathrm{MSE}}, \qquad \mathrm{MSE} = \frac{1}{CHW} \sum (x - y)^2,$$
#
# with R the data range (max − min of the pixel scale): *R = 2* for our [−1, 1] pixels, R = 1 for
# [0, 1], R = 255 for bytes. Using the wrong R shifts every value by 20·log10 of the ratio (6 dB
# for 2 vs 1), the commonest PSNR bug. **SSIM** (Wang et al. 2004) compares local means μ,
# contrasts σ and the correlation σ_xy in Gaussian windows (11 × 11, σ = 1.5) and averages:
#
# $$\mathrm{SSIM} = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}{(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}, \qquad C_1 = (0.01R)^2,\ C_2 = (0.03R)^2.$$
#
# For video, both are computed per frame (`per_frame_psnr`, `per_frame_ssim`: (B, F) values) and
# averaged. Each corrupted copy is compared with the clip it was made from; the reference set has
# no matching clips, so there is no PSNR between it and `real` at all — exactly the situation of a
# generative model. (SSIM is the slow one: `preset.per_clip_eval` clips per set, 100 outside the
# `smoke` preset, are plenty for a mean.)

# %%
n_pixel = min(N, preset.per_clip_eval)
pixel_scores = {}
for name in names[1:]:
    frame_psnr = per_frame_psnr(sets[name][:n_pixel], real[:n_pixel])  # (n, F) dB; +inf where a frame is unchanged
    frame_ssim = per_frame_ssim(sets[name][:n_pixel], real[:n_pixel])
    pixel_scores[name] = (frame_psnr.clamp(max=99).mean().item(), frame_ssim.mean().item(), frame_psnr)
print("against the clip each was made from; an unchanged frame (PSNR = +inf) counts as 99 dB")
print(f"{'set':20s} {'PSNR dB':>8s} {'SSIM':>6s}")
for name, (p, s, _) in pixel_scores.items():
    print(f"{name:20s} {p:8.1f} {s:6.3f}")

fig, ax = plt.subplots(figsize=(6, 3))
for name in ["noise σ=0.1", "blur σ=1 px", "shifted 1 px", "frozen (frame 0)", "shuffled frames"]:
    ax.plot(pixel_scores[name][2].clamp(max=60).mean(0), marker=".", label=name)
ax.set(xlabel="frame t", ylabel="mean PSNR (dB, capped at 60)", title="PSNR frame by frame")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# PSNR falls by 6 dB each time the noise doubles (the MSE quadruples). The two metrics disagree on
# what is worse: blur gets the PSNR of strong noise but the SSIM of faint noise — SSIM averages
# over the whole frame, and most of our frame is empty background, which noise spoils everywhere
# and blur leaves alone. PSNR punishes the *one-pixel shift* harder than the strongest noise, and
# SSIM as hard as moderate noise, although the shifted clip is a perfectly good video: pixel
# metrics measure *agreement with one answer*, not quality. The
# frozen clip is perfect at frame 0 and worse at every later frame as the digit moves away.
# Shuffled and reversed clips score badly only *because a reference exists*: for a generated clip
# there is none, and then a per-frame metric is simply unavailable.
#
# ## A judge for videos
#
# FID and FVD need a network that "understands" the data. For ImageNet images that is
# Inception-v3; FVD (Unterthiner et al. 2018) uses I3D trained on human-action videos. For our
# moving digits we train our own **video judge**: a small space-time CNN (3 × 3 convolutions per
# frame, 3-tap convolutions along time, the per-frame vectors kept in order) with two heads — the
# *digit*, and the *compass direction* (8 bins of 45°) of the first frame's motion. Its 128 hidden
# activations are the features for FVD. It is trained once (the cell prints how long) and cached,
# so every notebook scores with the same weights; its accuracy is measured on clips
# with held-out fonts.

# %%
start = time.perf_counter()
judge = get_video_judge(frames=T, size=S, verbose=True)
print(f"ready in {time.perf_counter() - start:.0f} s")
digits_read = judge.logits(real[:6]).argmax(1)
directions_read = judge.direction_logits(real[:6]).argmax(1)
true_directions = motion_direction(real_batch.velocities[:6, 0, 0])  # compass bin of frame 0's (dy, dx)
truth = [f"{labels[i].item()} {DIRECTIONS[int(d)]}" for i, d in enumerate(true_directions)]
filmstrip(real[:6], row_labels=[f"reads {d.item()} {DIRECTIONS[int(m)]} (true {t})"
                                for d, m, t in zip(digits_read, directions_read, truth)],
          title="what the judge reads: digit and heading")
plt.show()

# %% [markdown]
# ## The Inception Score: a *score* of generated samples alone
#
# The judge turns each clip x into class probabilities p(y|x). Over a set of clips, p(y) = E_x
# p(y|x) is how often each class appears. Salimans et al. (2016):
#
# $$\mathrm{IS} = \exp\Big(\mathbb{E}_x\, \mathrm{KL}\big(p(y\mid x)\,\|\,p(y)\big)\Big), \qquad 1 \le \mathrm{IS} \le K.$$
#
# It is high when each clip is classified confidently (peaked p(y|x)) *and* all classes appear
# (flat p(y)); K = 10 digits, perfectly sharp and evenly spread, give 10. It never looks at real
# data, and here it only reads the digit head — so it cannot see motion at all.
#
# ## FID and FVD: *distances* between feature distributions
#
# Fit a Gaussian N(μ, Σ) to the judge's features of the generated clips and another to those of
# real clips; the Fréchet distance between them (Heusel et al. 2017 for images with Inception
# features = FID; Unterthiner et al. 2018 for video with I3D features = FVD) is
#
# $$d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \mathrm{Tr}\big(\Sigma_1 + \Sigma_2 - 2\,(\Sigma_1\Sigma_2)^{1/2}\big).$$
#
# Ours is "FVD-style": the formula of FVD with our judge's features. Because the judge keeps the
# frames in order, its features change when motion changes, not only when pictures do. Next to it
# we compute a **frame FID**: the same distance over *single frames*, using the digit judge of
# notebook 04 — the image metric of an image model applied to video.

# %%
digit_judge = get_digit_judge(preset.image_size, config=judge_config_for_preset(preset))


def frames_for_digit_judge(video):  # every frame as an image, resized to the digit judge's size
    images = frames_to_batch(video)
    return F.interpolate(images, size=(preset.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)


reference_features = judge.features(data)
reference_frames = digit_judge.features(frames_for_digit_judge(data))
judge_scores = {}
for name, video in sets.items():
    judge_scores[name] = {
        "IS": inception_score(judge.logits(video)),
        "FVD": frechet_video_distance(judge.features(video), reference_features),
        "frame FID": frechet_distance_from_features(digit_judge.features(frames_for_digit_judge(video)),
                                                    reference_frames),
    }
print(f"distances to the reference set, {N} clips each:")
print(f"{'set':20s} {'IS':>5s} {'FVD':>9s} {'frame FID':>10s}")
for name, s in judge_scores.items():
    print(f"{name:20s} {s['IS']:5.2f} {s['FVD']:9.2f} {s['frame FID']:10.3f}")

# %% [markdown]
# Read the columns against the first row (a perfect "model": real clips, but not the reference's):
#
# * **IS** changes little for shuffled, frozen or reversed clips — the digits are still readable —
#   and collapses towards 1 with strong noise or blur, once the judge can no longer read the digit.
#   It is blind to time.
# * **Frame FID** gives shuffled and reversed clips *exactly* the real set's value: they hold the
#   same frames, only in another order, and a per-frame statistic cannot tell. Frozen clips barely
#   differ either: their frames are real frames.
# * **FVD** separates them: shuffled and frozen clips are far from the real set, while the reversed
#   clips (legitimate bounces) and the one-pixel shift stay close. Noise, invisible to the eye at
#   σ = 0.05, already moves it: feature distances are sensitive to anything outside the training
#   data of their judge.
#
# ## Motion consistency: checking the physics
#
# Our clips come with known dynamics: one object at constant velocity, bouncing off the walls. So
# each clip can be *measured*: `motion_consistency` finds the object in every frame (the centroid of
# the bright pixels and the number of separate blobs), fits the best constant-velocity path with
# bounces to the track, and passes the clip when every frame shows one blob of steady size and the
# fit's RMS error is at most 1.5 px. No judge network and no real set are involved.
#
# Motion follows *positions* only: a red ball that turns yellow on a perfect path passes it, and no
# viewer would. So the course scores clips with `video_consistency`, which adds what a viewer checks
# first and reports every part of it:
#
# 1. *present* — every frame shows exactly one object of the data's size;
# 2. *motion* — the motion consistency above;
# 3. *the same look in every frame* — for moving digits the *digit*, read frame by frame by a
#    digit judge trained on digits of this size (and, for samples asked for a digit, that digit);
#    for bouncing shapes the *colour* (the nearest palette colour) and the *shape* (which of a
#    circle and a square, drawn by the data's own renderer, fits the object better). A reading that
#    is not clear — a colour between two palette colours, a blurred blob — is no evidence of change.
#
# A clip passes when every part does; a failing clip's *kind* is its first failing part. Here the
# sets' clips are all asked to show their real digit, `labels`.

# %%
n_motion = min(N, preset.per_clip_eval)  # tracking is per clip in NumPy: 100 clips give the rates to a few percent
consistency = {name: video_consistency(video[:n_motion], object_size, labels=labels[:n_motion])
               for name, video in sets.items()}
motion = {name: report.motion_report for name, report in consistency.items()}  # the motion part's tracks and fits
for name, report in consistency.items():
    print(f"{name:20s} {report.summary()}   median fit error {np.median(motion[name].fit_error):5.2f} px")

fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, name in zip(axes, ["real", "shuffled frames"]):
    track = motion[name].track[0]  # (F, 2): (y, x) of clip 0
    ax.plot(track[:, 1], marker="o", label="x (column)")
    ax.plot(track[:, 0], marker="s", label="y (row)")
    ax.set(title=f"{name}: fit error {motion[name].fit_error[0]:.2f} px", xlabel="frame t")
axes[0].set_ylabel("tracked centre (px)")
axes[0].legend(fontsize=7)
plt.show()

# %% [markdown]
# Real clips pass every part (the score's floor, measured on real data: a score that failed real
# clips would blame models for its own faults). Shuffled frames fail on motion: their track
# zig-zags. Blur and strong noise fail on the digit: the reader can no longer read every frame, and
# a viewer would squint too. But the test has its own blind spots: the *frozen* clip passes every
# part — standing still *is* constant velocity, zero, and the digit stays the same — and faint noise
# passes (it stays below the brightness threshold and leaves the digit legible). No single number
# sees everything.
#
# ### Failure cases of a trained model
#
# Broken copies of real clips fail in the ways we built in. What does a trained model get wrong? The
# shipped bouncing-shapes 3D U-Net of lesson 07 (loaded from the course's own weights, whatever the
# preset) samples clips with this preset's DDIM steps; each failure kind gets its first clip.

# %%
shipped_recipe, shipped = load_checkpoint(next(SHIPPED_FOLDER.glob("video-shapes-unet3d-cpu-*.pt")), progress=False)
n_shipped = max(8, preset.eval_samples // 32)  # 8 (smoke), 15 (cpu), 62 (gpu)
start = time.perf_counter()
shipped_clips = shipped_recipe.sample(shipped.ema_model, n_shipped, steps=preset.sample_steps,
                                      generator=torch.Generator().manual_seed(0)).cpu()
report = video_consistency(shipped_clips, shipped_recipe.object_size)
print(f"{n_shipped} clips (DDIM {preset.sample_steps}) in {time.perf_counter() - start:.0f} s: {report.summary()}")


def reading(kind, i):  # what a part saw in clip i, frame by frame ("?": no single object, or not clear)
    if kind == "present":
        return "objects per frame " + " ".join(map(str, report.motion_report.blobs[i]))
    if kind == "motion":
        return f"fit error {report.motion_report.fit_error[i]:.1f} px"
    names = PALETTE_NAMES if kind == "colour" else SHAPE_KINDS
    return " ".join(names[r][:3] if r >= 0 else "?" for r in report.readings[kind][i])


failures = report.failures()
kinds = [kind for kind in report.parts if kind in failures]
shown = [failures.index(kind) for kind in kinds] + [failures.index("")] * ("" in failures)
row_labels = [f"{kind or 'passes'}: {reading(kind or 'colour', i)}" for kind, i in zip(kinds + [""], shown)]
filmstrip(shipped_clips[shown], row_labels=row_labels, title="one clip per failure kind (and one that passes)")
plt.show()
missing = [kind for kind in report.parts if kind not in failures]
print("no clip fails first on: " + (", ".join(missing) if missing else "— every kind occurs"))

# %% [markdown]
# Read each row as a viewer: would you have failed that clip, and for that reason? The labels show
# what the failing part saw, frame by frame ("?" where it saw no single object or nothing clear). A
# model's failures are not broken copies of real clips: an object that fades away, one that jumps
# and becomes another, a colour that drifts on a clean path. Only the last is invisible to motion
# consistency, and it is a failure a learner notices at once in the GIF.

# ## The scoreboard

# %%
print(f"{'set':20s} {'PSNR':>6s} {'SSIM':>6s} {'IS':>5s} {'FVD':>9s} {'frame FID':>10s} {'motion':>7s} {'consistent':>10s}")
for name in names:
    p, s = (pixel_scores[name][0], pixel_scores[name][1]) if name in pixel_scores else (None, None)
    pixel = f"{p:6.1f} {s:6.3f}" if p is not None else f"{'—':>6s} {'—':>6s}"  # real is the PSNR reference
    j = judge_scores[name]
    c = consistency[name].rates
    print(f"{name:20s} {pixel} {j['IS']:5.2f} {j['FVD']:9.2f} {j['frame FID']:10.3f} {c['motion']:7.0%} {c['combined']:10.0%}")

# %% [markdown]
# | fault | PSNR / SSIM | IS | frame FID | FVD | motion | video consistency |
# |---|---|---|---|---|---|---|
# | pixel noise | sees it | sees strong noise | sees it | sees it (very sensitive) | blind | sees strong noise (digit) |
# | blur | PSNR sees it, SSIM hardly | sees it | sees it | sees it | mostly blind | sees it (digit) |
# | 1-px shift (harmless) | punishes it | blind (right) | blind (right) | blind (right) | blind (right) | blind (right) |
# | shuffled frames | only with a reference | blind | **blind** | sees it | sees it | sees it (motion) |
# | frozen clip | only with a reference | blind | nearly blind | sees it | **blind** | **blind** |
# | reversed (harmless) | punishes it (with a reference) | blind (right) | blind (right) | blind (right) | blind (right) | blind (right) |
#
# ## A trained model on the scoreboard
#
# `train_or_load` gives the 3D U-Net (the model of notebook 07) trained on moving digits with this
# preset's sizes (class-conditional: `sample` asks for the digits 0, 1, 2, … in turn): in the
# `smoke` preset 10 steps, so expect noise; in `cpu` the course's shipped model of 2000 steps (see
# Time above). Sampling is slow, so the model gets 136 clips in the `cpu` and `gpu` presets (`n_model`:
# just above the video judge's 128 features, so the covariances stay full rank), and it is compared with real clips *at
# the same count* — the next section shows why that matters.

# %%
recipe = get_recipe("video-digits", preset.replace(video_frames=T))
start = time.perf_counter()
model = train_or_load(recipe, folder=CHECKPOINTS).ema_model.eval()
n_model = min(136, preset.eval_samples, N)  # below FVD_SAMPLES: the model and the real set are scored at this count
samples = recipe.sample(model, n_model, generator=torch.Generator().manual_seed(5)).cpu()
print(f"{n_model} samples in {time.perf_counter() - start:.0f} s (training or loading included)")
filmstrip(samples[:4], title=f"samples of the model ({recipe.steps} training steps)")
plt.show()

print(f"{n_model} clips per set, FVD against {n_model} clips of the reference set:")
for name, video, asked in (("real", real[:n_model], labels[:n_model]), ("model", samples, recipe.cycled_labels(n_model))):
    fvd = frechet_video_distance(judge.features(video), judge.features(data[:n_model]))
    parts = video_consistency(video[:n_motion].clamp(-1, 1), object_size, labels=asked[:n_motion]).summary()
    print(f"{name:6s} IS {inception_score(judge.logits(video)):5.2f}   FVD {fvd:9.2f}   {parts}")

# %% [markdown]
# ## Pitfall 1: FVD and FID depend on the sample count
#
# The Gaussian fits use N clips, and their errors only ever *add* distance: two sets from the same
# distribution score above zero, by roughly a constant / N (with 128 features, and N below 128 the
# covariance is not even full rank). So an FVD at N = 64 cannot be compared with one at N = 500,
# and a paper's FVD means little without its N. In this course every FVD/IS that is compared uses
# `FVD_SAMPLES` = 500 clips per set (the `smoke` preset, which only checks that the lesson runs,
# uses fewer: `preset.fvd_clips`, printed at the top), except the trained model above, which is
# compared with real clips at its own count, `n_model`.

# %%
counts = [n for n in (25, 50, 100, 200, 300, 400, N) if n <= N]
features_real, features_shuffled = judge.features(real), judge.features(sets["shuffled frames"])
curves = {"real vs reference": [], "shuffled vs reference": []}
for n in counts:
    curves["real vs reference"].append(frechet_video_distance(features_real[:n], reference_features[:n]))
    curves["shuffled vs reference"].append(frechet_video_distance(features_shuffled[:n], reference_features[:n]))
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, values in curves.items():
    ax.plot(counts, values, marker="o", label=name)
ax.set(xscale="log", yscale="log", xlabel="clips per set N", ylabel="FVD-style distance",
       title="the same two distributions, measured with N clips")
ax.legend()
plt.show()
real_curve = curves["real vs reference"]
print(f"real vs reference: {real_curve[0]:.1f} at N = {counts[0]}, {real_curve[-1]:.1f} at N = {counts[-1]}")

# %% [markdown]
# ## Pitfall 2: a judge only understands its own domain
#
# Our video judge was trained on exactly this kind of data, which is why its FVD is sharp here —
# and why it would mean little for anything else (natural video, other sizes, other speeds). The
# same holds for I3D and FVD on data unlike its training videos. To see a judge out of its domain,
# ask the **digit judge** of notebook 04 (trained on large, centred digits) to read our frames,
# where a digit is small and anywhere:

# %%
frames = frames_for_digit_judge(real[:, :1])  # frame 0 of every clip: (N, 1, H, W)
for name, logits in [("digit judge, frame 0 of each clip", digit_judge.logits(frames)),
                     ("video judge, the same clips", judge.logits(real))]:
    print(f"{name:34s} accuracy {accuracy(logits, labels):4.0%}   IS {inception_score(logits):.2f}")

# %% [markdown]
# Near chance: out of its domain, a judge's IS and FID measure the judge, not the samples. A second,
# quieter risk: the judge was trained on the same distribution the model learns, so a model that
# memorised training clips would get an excellent FVD — distances between feature statistics
# cannot tell copying from generating.
#
# ## Summary
#
# * PSNR and SSIM compare a clip with *its* reference; they punish harmless shifts, and without a
#   reference — free generation — they do not exist.
# * The *Inception Score is a score* of generated samples alone (higher is better, ≤ K), not a
#   distance as the seed says; here it reads digits and cannot see motion.
# * *FID and FVD are distances* (lower is better) between Gaussian fits of judge features; a
#   judge that keeps frame order sees shuffled and frozen clips that frame-level metrics miss.
# * Known dynamics allow a **physics check** (motion consistency) that needs no judge; it has its
#   own blind spots (frozen clips, and an object that changes colour on a clean path).
# * The **video consistency** scores clips as a viewer would — one object present in every frame,
#   moving right, keeping its look — and reports each part, so a failure says what went wrong.
# * Compare distances only at the *same sample count* and with the *same judge*, trained on
#   the domain being judged.
#
# **Exercises** (`exercises/10_evaluation.ipynb`): write PSNR from the MSE, FID from two feature sets
# (with its matrix square root), and the Inception Score from a table of probabilities.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("The seed calls the Inception Score a distance. What is it?",
             ["a distance to real data: lower is better",
              "a score of generated samples alone: higher is better, and it never sees real data",
              "a per-frame similarity like PSNR"],
             "a score of generated samples alone: higher is better, and it never sees real data",
             "IS = exp E_x KL(p(y|x) ‖ p(y)) is at most the number of classes. FID and FVD are the distances."),
    Question("Which metric gives clips with shuffled frames exactly the real set's value?",
             ["motion consistency", "FVD-style distance", "frame FID"], "frame FID",
             "Shuffled clips hold the same frames in another order, and a per-frame statistic cannot see "
             "order; the video judge and the physics check do."),
    Question("Why compare FID or FVD values only at the same number N of samples?",
             ["the estimate is biased upwards by roughly a constant / N",
              "larger N always means a worse model",
              "FVD is only defined for N = 500"],
             "the estimate is biased upwards by roughly a constant / N",
             "The Gaussian fits' errors only add distance: two sets from the same distribution score above "
             "zero, more so at small N."),
    NumericQuestion("PSNR computed with the data range R = 2 instead of R = 1: by how many dB do the values "
                    "differ?", 6.02,
                    "PSNR = 10 log10(R²/MSE), so the shift is 20·log10(2) ≈ 6.02 dB: the commonest PSNR bug.",
                    tolerance=0.05),
    Question("Which fault does the motion-consistency test miss?",
             ["shuffled frames", "a frozen clip that repeats its first frame", "a digit that jumps between frames"],
             "a frozen clip that repeats its first frame",
             "Standing still is a constant velocity (zero). No single number sees everything."),
])
