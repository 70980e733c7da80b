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
# # 04 · Image DDPM: a U-Net on digits
#
# **Goals.** Run the seed's recipe (§3.1 training: preprocess, diffuse, train; §3.2 generation:
# noise, reverse process, sample) on real images: rendered digits. Train a class-conditional U-Net
# and watch its samples improve while it trains; sample with DDPM (all 1000 steps) and DDIM (50
# and 20 steps) and compare time and quality; see why we sample from the EMA weights; steer the
# class with classifier-free guidance; and watch one sample come out of the noise, together with
# the model's guess of the clean image at every step. We end with what changes for video (§9.1).
#
# **Prerequisites.** Lessons 01–03 (the forward chain, the ε loss, DDPM and DDIM, schedules); a
# convolutional network with skip connections, at the level of "a CNN whose decoder reuses the
# encoder's feature maps".
#
# **Time.** Reading: about 60 minutes. Running with shipped weights: the `cpu` preset loads the
# course's shipped digits U-Net (README's time table has the whole lesson). Training from scratch (`RETRAIN = True` in
# section 4; `cpu` preset, 2000 steps): about 18 minutes on 2 CPU threads, the training record of
# the shipped model (BENCHMARKS.md, "Shipped checkpoints"); it is then saved in `../checkpoints/`
# and loaded from then on. In the `smoke` preset it trains in seconds. **Seed sections:** §3.1, §3.2, §9.1.
#
# Everything about the task -- data, network, loss, schedule, sampler -- comes from one recipe,
# `get_recipe("digits")`, the same one the command line (`python -m course_lib train --task
# digits`) and the benchmark (`python -m course_lib bench image`) use.

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

from course_lib.workshop import zoo
from course_lib.config import get_preset, seed_everything
from course_lib.diffusion.forward import q_sample
from course_lib.metrics.judge import get_digit_judge, image_scores, judge_config_for_preset, reference_digits
from course_lib.diffusion.guidance import guided_denoiser
from course_lib.models.inspect import count_parameters
from course_lib.workshop.recipes import get_recipe
from course_lib.diffusion.samplers import ddim_steps
from course_lib.training import Trainer
from course_lib.views.figures import animate, filmstrip, image_grid, plot_trajectory, step_scrubber

preset = get_preset()
g = seed_everything(0)
recipe = get_recipe("digits", preset)
T, size = preset.num_diffusion_steps, preset.image_size
w = recipe.guidance_scale  # the guidance scale used for samples below (section 7 explains it)
n_eval = max(10, preset.eval_samples // 10)  # samples behind each score in this notebook
CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lesson and its exercises
print(f"preset {preset.name}: {size}x{size} digits, T = {T}, {recipe.steps} training steps of batch "
      f"{recipe.batch_size}, DDIM with {preset.sample_steps} steps for pictures")

# %% [markdown]
# The **digit judge** is a small classifier trained on rendered digits: it reads a sample and says
# which digit it sees. It plays the role Inception plays for photos (notebook 10 explains IS and
# FID). It is trained once and cached; in the `smoke` preset it is a smaller one, and its
# accuracy on fonts it never saw is printed either way.

# %%
judge = get_digit_judge(size, config=judge_config_for_preset(preset), verbose=True)

# %% [markdown]
# ## 1 · Preprocess (seed §3.1, step 1)
#
# The data: digits 0–9 rendered from the fonts matplotlib ships, each with a random rotation,
# shear, scale, shift and stroke width (`course_lib.data.digits`). Preprocessing maps ink to +1
# and background to −1: the course's images live in [−1, 1]. Why that range? The forward chain
# shrinks the data by √ᾱ_t and adds noise of variance 1 − ᾱ_t, ending at N(0, I). Data of about
# unit scale makes "half signal, half noise" mean the same for every pixel, and lets the sampler
# clip its guess of the clean image to [−1, 1].

# %%
images, labels = recipe.digit_set  # (N, 1, H, W) in [-1, 1], labels (N,)
print(f"training set: {tuple(images.shape)}, values in [{images.min():.0f}, {images.max():.0f}], "
      f"{(images < -0.99).float().mean():.0%} of pixels are background")
print("digits per class:", torch.bincount(labels, minlength=10).tolist())
image_grid(images[:32], nrow=16, title="rendered training digits")
plt.show()

# %% [markdown]
# ## 2 · Diffuse (seed §3.1, step 2)
#
# Training never runs the chain step by step: q(x_t | x0) gives x_t in one jump,
# x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (notebook 01). Below, six digits at increasing t. The digit is
# still readable when the signal-to-noise ratio SNR_t = ᾱ_t/(1 − ᾱ_t) is around 1 and gone well
# before the last step.

# %%
ts = [0, 50, 100, 250, 500, 750, T - 1]
x0 = images[:6]
noisy = torch.stack([q_sample(x0, t, recipe.schedule, generator=g) for t in ts], dim=1)  # (6, S, 1, H, W)
filmstrip(noisy, frame_labels=[f"t={t}" for t in ts], out_of_range="clip",
          row_labels=[f"digit {int(d)}" for d in labels[:6]], title="q(x_t | x0) at growing t")
plt.show()
print("SNR_t:", "  ".join(f"t={t}: {recipe.schedule.snr[t]:.3g}" for t in ts))

# %% [markdown]
# ## 3 · The network: a U-Net that knows t and the class
#
# The denoiser ε_θ(x_t, t, y) is a U-Net (`course_lib.models.unet2d`): convolutions at 28×28,
# 14×14 and 7×7 (self-attention at 7×7 and in the middle), skip connections that carry the fine
# detail from the way down to the way up, and in every residual block the embedding of the
# timestep t plus the embedding of the label y. The label table has 11 rows: the digits 0–9 and a
# **null label** 10 meaning "no class", which classifier-free guidance needs (section 7). The
# network knows nothing of noise schedules: it maps (x_t, t, y) to a tensor of the image's shape.

# %%
model = recipe.build_model()
x, t, y = images[:4], torch.tensor([0, 10, 500, T - 1]), labels[:4]
print(f"{type(model).__name__}: {count_parameters(model):,} parameters, channel multipliers "
      f"{model.channel_mults}, attention at levels {model.attention_levels}, null label {model.null_label}")
print(f"x {tuple(x.shape)}, t {tuple(t.shape)}, y {tuple(y.shape)} -> ε̂ {tuple(model(x, t, y).shape)}")

# %% [markdown]
# ## 4 · Train (seed §3.1, step 3), watching samples improve
#
# One training step: take a batch of digits and labels; replace each label by the null label
# with probability 0.1 (so the same network also learns the unconditional ε(x_t, t, ∅)); draw t
# and ε; make x_t; regress ε_θ(x_t, t, y) on ε (the simple loss of notebook 02). The `Trainer`
# adds AdamW with warm-up, gradient clipping and an EMA copy of the weights.
#
# `sample_fn` is called every `sample_every` steps: here it draws ten digits, 0 to 9, from the
# EMA weights, always from the same starting noise, so the rows below show one model learning.
# `train_or_load` loads the model if it was trained before (in `../checkpoints/`, named by a hash
# of the recipe) or ships with the course (the `cpu` preset's digits model does): then the rows
# are those saved when it was trained here, or just the final model. Set `RETRAIN = True` to
# train from scratch and watch it learn (the `cpu` preset: about 18 minutes on 2 CPU threads).

# %%
RETRAIN = False
show_labels = torch.arange(10)
snapshots = {}  # training step -> (10, 1, H, W) samples


def snapshot(trainer: Trainer, step: int) -> None:
    """Ten guided samples, 0-9, from the EMA weights and fixed noise."""
    snapshots[step] = recipe.sample(trainer.ema_model, 10, labels=show_labels, guidance_scale=w,
                                    generator=torch.Generator().manual_seed(1)).cpu()


path = zoo.checkpoint_path(recipe, folder=CHECKPOINTS)
snapshot_file = path.with_name(path.stem + "-snapshots.pt")
if not RETRAIN and zoo.is_trained(recipe, folder=CHECKPOINTS):  # here, or shipped with the course
    trainer = zoo.train_or_load(recipe, folder=CHECKPOINTS)  # says where it came from
    snapshots = torch.load(snapshot_file) if snapshot_file.exists() else {}
    snapshot(trainer, trainer.step)
else:
    print(zoo.expected_time(recipe, recipe.steps) or f"training {recipe.steps} steps ...")  # the course's own time
    config = recipe.train_config(sample_every=max(1, recipe.steps // 5))
    trainer = Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch, config, sample_fn=snapshot)
    snapshot(trainer, 0)
    trainer.fit()
    zoo.save_checkpoint(trainer, recipe, path, recipe.steps)
    torch.save(snapshots, snapshot_file)
    print(f"trained {trainer.step} steps in {trainer.seconds:.0f} s ({trainer.steps_per_second:.2f} steps/s); "
          f"saved {path}")

# %%
fig, axes = plt.subplots(len(snapshots), 1, figsize=(7, 0.9 * len(snapshots)), squeeze=False)
for ax, (step, samples) in zip(axes[:, 0], snapshots.items()):
    image_grid(samples, nrow=10, ax=ax, out_of_range="clip")
    read = (judge.logits(samples).argmax(1) == show_labels).sum()
    ax.set_title(f"after {step} steps: the judge reads {read}/10 as the requested digit", fontsize=8)
fig.tight_layout()
plt.show()

loss = torch.tensor(trainer.history["loss"])
smooth = loss.unfold(0, min(50, len(loss)), 1).mean(1)
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(loss, lw=0.4, alpha=0.4, label="loss per step")
ax.plot(range(len(loss) - len(smooth), len(loss)), smooth, label="running mean")
ax.set_xlabel("step")
ax.set_ylabel("‖ε − ε̂‖²")
ax.legend()
plt.show()

# %% [markdown]
# ## 5 · Generate (seed §3.2): DDPM and DDIM
#
# Generation starts from pure noise x_T ~ N(0, I) and applies the learned reverse step T times,
# down to x_0 (code timesteps T−1 … 0). **DDPM** (Ho et al. 2020) takes all T = 1000 steps, each one
# adding fresh noise.
# **DDIM** (Song et al. 2021a) uses the same trained network but a deterministic update that can
# jump over many timesteps at once (exercise 4.2 writes it, with guidance inside the loop):
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon}{\sqrt{\bar\alpha_t}},\qquad
#   x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\hat\epsilon\qquad (t' < t).$$
#
# DDIM is a family (Song et al. 2021a, Eq. 12 and 16): with η > 0 each jump also adds fresh noise
# of standard deviation σ = η·√((1 − ᾱ_{t'})/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_{t'}) and takes that much less of
# ε̂; η = 0 is the deterministic update above, and η = 1 visiting every step is DDPM. The fresh
# noise costs nothing (one draw per step) and lets later steps correct what earlier ones got wrong.
#
# Each step costs one network call (two with guidance), so the time is proportional to the
# number of steps. Which quality do we give up? Below, the same labels and starting noise through
# four samplers, scored by the judge: accuracy (does it show the requested digit?), IS
# (confident and varied: at most the number of different digits asked for, `n_compare`) and FID (distance of the judge's features from real held-out
# digits; lower is better). With so few samples these scores are rough, and FID is biased
# upwards by a small sample: compare rows only with each other. The benchmark
# (`python -m course_lib bench image`, results in BENCHMARKS.md) does the same with 500 samples each.

# %%
n_compare = 2 if preset.name == "smoke" else 5  # DDPM's 1000 steps are most of this lesson's run time
compare_labels = torch.arange(n_compare) % 10
reference = reference_digits(max(n_compare, 10), size)
ema = trainer.ema_model
results, pictures = {}, {}
samplers = [("DDPM", "ddpm", None, 0.0), ("DDIM 50", "ddim", 50, 0.0), ("DDIM 50, η=1", "ddim", 50, 1.0),
            ("DDIM 20", "ddim", 20, 0.0)]
for name, sampler, steps, eta in samplers:
    start = time.perf_counter()
    samples = recipe.sample(ema, n_compare, steps=steps, sampler=sampler, labels=compare_labels, eta=eta,
                            guidance_scale=w, generator=torch.Generator().manual_seed(2)).cpu()
    results[name] = {"seconds": time.perf_counter() - start, "steps": steps or T,
                     **image_scores(samples, reference, compare_labels, judge)}
    pictures[name] = samples[:10]
print(f"{n_compare} guided samples (w = {w:g}) per sampler")
print(f"{'sampler':12s} {'steps':>5s} {'seconds':>8s} {'speed-up':>8s} {'accuracy':>8s} {'IS':>5s} {'FID':>7s}")
for name, r in results.items():
    print(f"{name:12s} {r['steps']:5d} {r['seconds']:8.1f} {results['DDPM']['seconds'] / r['seconds']:7.1f}x "
          f"{r['accuracy']:8.0%} {r['IS']:5.2f} {r['FID']:7.1f}")

# %%
fig, axes = plt.subplots(len(pictures), 1, figsize=(7, len(pictures)), squeeze=False)
for ax, (name, samples) in zip(axes[:, 0], pictures.items()):
    image_grid(samples, nrow=10, ax=ax, out_of_range="clip")
    ax.set_title(name, fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# DDIM with 50 or 20 steps starts from the same noise and lands on nearly the same digits (it is
# deterministic: the noise picks the image); DDPM's fresh noise at every step takes it elsewhere,
# and so does DDIM with η = 1. On CIFAR-10, Song et al. (2021a, Table 1) report FID 4.67 for DDIM
# with 50 steps against 4.73 for DDPM with all 1000 (σ_t² = β̃_t, as here) -- the same quality in
# a twentieth of the time; with 20 steps DDIM is clearly worse (6.84). That was a model trained
# for days; on our 10-minute model the benchmark finds deterministic DDIM 50 at 1.8× DDPM's FID and
# DDIM 50 with η = 1 slightly *below* it (BENCHMARKS.md, "Image"). A model that is not yet good
# makes small errors at each step; the deterministic path carries them to the end, the fresh noise
# lets later steps wash them out.
#
# ## 6 · EMA versus raw weights
#
# The trainer keeps θ_ema ← d·θ_ema + (1 − d)·θ after every step (d = 0.999: roughly an average
# over the last thousand steps). The raw weights θ still jump around with every noisy gradient;
# the average sits in the middle of where they wander, and samples from it are cleaner. Early in
# training (and in the `smoke` preset's few steps) the EMA's warm-up keeps the two close.

# %%
ema_labels = torch.arange(n_eval) % 10
for name, net in [("raw weights", trainer.model), ("EMA weights", trainer.ema_model)]:
    samples = recipe.sample(net, n_eval, labels=ema_labels, generator=torch.Generator().manual_seed(3)).cpu()
    scores = image_scores(samples, reference_digits(max(n_eval, 10), size), ema_labels, judge)
    print(f"{name}: accuracy {scores['accuracy']:.0%}, IS {scores['IS']:.2f}, FID {scores['FID']:.1f} "
          f"({n_eval} samples, plain conditional, DDIM {preset.sample_steps})")
drift = max((p - q).abs().max().item() for p, q in zip(trainer.model.parameters(), trainer.ema_model.parameters()))
print(f"largest difference between a raw and an EMA weight: {drift:.3g}")

# %% [markdown]
# ## 7 · Classifier-free guidance: how strongly to follow the label
#
# Training with label dropout gave one network two predictions: conditional ε(x_t, t, y) and
# unconditional ε(x_t, t, ∅). Classifier-free guidance (Ho & Salimans 2022) extrapolates from
# the second towards the first:
#
# $$\hat\epsilon = \epsilon(x_t, t, \varnothing) + w\,\big(\epsilon(x_t, t, y) - \epsilon(x_t, t, \varnothing)\big).$$
#
# w = 0 ignores the label, w = 1 is the plain conditional model, w > 1 pushes further towards
# "looks like a y" (the paper writes 1 + w for our w). Larger w: digits the judge reads more
# surely, but less varied and, too far, distorted; FID rises again when the samples stop
# covering the data. Each guided step costs two network calls (one batch of twice the size).

# %%
scales = sorted({0.0, 1.0, w, 2 * w})
guided = {}
for scale in scales:
    samples = recipe.sample(ema, n_eval, labels=ema_labels, guidance_scale=scale,
                            generator=torch.Generator().manual_seed(4)).cpu()
    guided[scale] = samples[:10]
    scores = image_scores(samples, reference_digits(max(n_eval, 10), size), ema_labels, judge)
    print(f"w = {scale:4.1f}: accuracy {scores['accuracy']:4.0%}, IS {scores['IS']:5.2f}, FID {scores['FID']:7.1f}")
fig, axes = plt.subplots(len(scales), 1, figsize=(7, 0.9 * len(scales)), squeeze=False)
for ax, scale in zip(axes[:, 0], scales):
    image_grid(guided[scale], nrow=10, ax=ax, out_of_range="clip")
    ax.set_title(f"w = {scale:g}", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 8 · The denoising trajectory
#
# The samplers yield every step: the current x_t and the network's guess x̂0 of the clean image.
# Early guesses are blurry averages of "some digit of this class"; the strokes settle first and
# the fine detail last. The animation plays x_t from noise to digit; the filmstrip shows x̂0
# over t for four of them; the slider scrubs both (top: x_t, bottom: x̂0).

# %%
steps = list(ddim_steps(guided_denoiser(ema, show_labels, w), (10, 1, size, size), recipe.schedule,
                        steps=preset.sample_steps, generator=torch.Generator().manual_seed(5)))
x_path = torch.stack([s.x for s in steps], dim=1)  # (10, S, 1, H, W)
animate(x_path, fps=6, nrow=10, out_of_range="clip")

# %%
plot_trajectory([s.x0_pred for s in steps], steps=[f"t={s.t}" for s in steps], title="x̂0 over t")
plt.show()

# %%
both = torch.stack([torch.cat([s.x.clamp(-1, 1), s.x0_pred]) for s in steps])  # (S, 20, 1, H, W)
step_scrubber(both, steps=[s.t for s in steps], nrow=10)

# %% [markdown]
# ## 9 · From images to video (seed §9.1)
#
# The seed's answer to "how do video diffusion models differ from image ones?" is: the input is
# a video, and the model must relate frames in time. In this course's terms:
#
# * **The input** becomes (B, F, C, H, W) — F frames — instead of (B, C, H, W) (notebook 05). The forward
#   chain, the loss, DDPM, DDIM and guidance are *unchanged*: they act on every pixel of every
#   frame alike. That is why `course_lib.diffusion.samplers` takes any shape.
# * **The network** must see across frames: run this U-Net on each frame and the frames are
#   denoised independently, so they flicker. Notebooks 06 and 07 add time: a ConvLSTM, and a
#   U-Net whose convolutions act on space and whose attention acts along the frame axis.
# * **The cost** multiplies by the number of frames, which is why video models are small here
#   and why fewer sampling steps (DDIM) matter even more.
#
# ## Summary
#
# * §3.1 preprocess → digits in [−1, 1]; diffuse → x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε in one jump;
#   train → a U-Net regressing ε from (x_t, t, y), with label dropout, AdamW, EMA.
# * §3.2 generate → DDPM (T steps, stochastic) or DDIM (any number of steps, deterministic at
#   η = 0). DDIM with 50 steps costs a twentieth of DDPM's time; on our model it matches DDPM's
#   quality only with fresh noise (η = 1), and is clearly worse deterministic (BENCHMARKS.md).
# * Sample from the EMA weights; steer the class with classifier-free guidance w (0: ignore the
#   label, 1: conditional, > 1: stronger, less varied).
#
# **Exercises** (`exercises/04_image_ddpm.ipynb`): write the training loss, a guided DDIM sampler
# (then generate digits with it) and the U-Net's residual block with its timestep embedding.
# **Benchmark:** `python -m course_lib bench image` trains this model from scratch for 10 minutes
# and prints time, IS, FID and accuracy for DDPM and DDIM.
# **Next:** notebook 05 turns to video data.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("Why are the digits mapped to [−1, 1] before training?",
             ["the U-Net only accepts negative numbers",
              "data of about unit scale matches the N(0, I) the chain ends at, and x̂_0 can be clipped",
              "it makes the images smaller on disk"],
             "data of about unit scale matches the N(0, I) the chain ends at, and x̂_0 can be clipped",
             "The forward chain shrinks the data by √ᾱ_t and adds unit-variance noise; with data in [−1, 1] "
             "\"half signal, half noise\" means the same for every pixel, and the sampler can clip x̂_0 to the range."),
    Question("Classifier-free guidance ε̂ = ε(x_t, t, ∅) + w (ε(x_t, t, y) − ε(x_t, t, ∅)) with w = 0 gives:",
             ["a stronger push towards the label", "the plain conditional model",
              "the unconditional model: the label is ignored"],
             "the unconditional model: the label is ignored",
             "w = 0 keeps only ε(x_t, t, ∅); w = 1 is the conditional model; w > 1 extrapolates past it."),
    NumericQuestion("Guided DDIM with 50 steps: how many network evaluations per sample, counting the "
                    "conditional and the unconditional one separately?", 100,
                    "Two per step (one batch of twice the size), so 2 × 50 = 100; without guidance, 50."),
    Question("On the course's 10-minute digits model, which 50-step DDIM matches DDPM's FID?",
             ["DDIM with fresh noise at every step (η = 1)", "deterministic DDIM (η = 0)", "neither"],
             "DDIM with fresh noise at every step (η = 1)",
             "The deterministic path carries each step's small error to the end (1.8× DDPM's FID); fresh "
             "noise lets later steps correct it (BENCHMARKS.md, \"Image\")."),
    Question("Why sample from the EMA weights rather than the last training step's weights?",
             ["they were trained on more data",
              "their running average sits in the middle of where the noisy raw weights wander",
              "they are smaller"],
             "their running average sits in the middle of where the noisy raw weights wander",
             "θ_ema ← d·θ_ema + (1 − d)·θ averages roughly the last 1/(1 − d) steps; samples from it are cleaner."),
])
