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
# # 15 · Latent video diffusion
#
# **Goals.** See why the video systems people use today (Stable Video Diffusion, Open-Sora, Latte,
# CogVideoX, Wan) do not denoise pixels: train a small video autoencoder (a **VAE**) that squeezes every
# frame 4× smaller per side, look at its reconstructions and its latent channels, and scale the
# latents to unit variance (**the scale factor**). Then build the denoiser those systems use, a
# space-time transformer (a **DiT**): cut the latent clip into patches (**patchify**), condition every
# block on the timestep by **adaLN-Zero**, and let tokens attend within a frame and along time
# (**factorised space-time** attention). Train it on latents, sample latents, decode them to clips, and
# compare it with lesson 07's pixel U-Net.
#
# **Prerequisites.** Lessons 02 (the simple loss), 04 (DDIM), 07 (the 3D U-Net, factorised
# space-time layers) and 10 (motion pass, FVD). Attention as in lesson 07's temporal attention.
#
# **Time.** Reading: about 40 minutes. Running with shipped weights (`cpu` preset): the autoencoder
# is shipped and loads in a second; the transformer is not shipped yet, so the first run trains it
# (three times `video_train_steps` = 6000 steps; the whole first run's time is the "first run" row of
# README's time table), and every later run loads it. Training from scratch (`cpu`): the
# autoencoder's quarter of `video_train_steps` first (its time: BENCHMARKS.md, shipped checkpoints),
# then the transformer. The `smoke` preset trains tiny models for seconds: its pictures are noise.
#
# A clip has F frames (`F = preset.video_frames` in the code) of C × H × W pixels; its latent has
# c channels of H/4 × W/4.

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
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from course_lib.config import get_preset, seed_everything
from course_lib.metrics.video import per_frame_psnr, per_frame_ssim
from course_lib.models.inspect import count_parameters
from course_lib.models.transformer import modulate, patchify, unpatchify
from course_lib.views.figures import animate, filmstrip
from course_lib.workshop.recipes import get_recipe
from course_lib.workshop.zoo import train_or_load

CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises
RESULTS = Path("..") / "benchmarks" / "results"  # what python -m course_lib bench writes

preset = get_preset()
g = seed_everything(0)
autoencoder_recipe = get_recipe("video-shapes", preset, "autoencoder")  # bouncing shapes, the VAE
recipe = get_recipe("video-shapes", preset, "dit")  # the space-time transformer on its latents
F, S = preset.video_frames, preset.video_size
print(f"preset {preset.name}: clips of F = {F} frames, {S}x{S} RGB; latents {recipe.latent_shape}")

# %% [markdown]
# ## 1 · Why latents: the cost of pixels
#
# A diffusion model is run once per sampling step on the whole clip, and trained on millions of
# noisy clips. Its cost grows with the number of values it sees, and for a transformer with the
# square of the number of tokens. Most of those values are redundant: neighbouring pixels agree,
# and a bouncing square is a few numbers (where, how big, what colour), not 3 × 32 × 32.
#
# **Latent diffusion** (Rombach et al. 2022) splits the work in two. An autoencoder, trained once,
# learns to squeeze each frame into a small latent and back; the diffusion model then learns the
# distribution of latents, which are k times smaller per side. Sampling draws a latent clip and
# decodes it once. Count the values and the transformer's tokens (patches of 2 × 2):

# %%
c, h = recipe.latent_shape[1], recipe.latent_shape[2]
pixel_values, latent_values = F * 3 * S * S, F * c * h * h
for name, side in (("pixels", S), ("latents", h)):
    tokens = F * (side // 2) ** 2
    print(f"{name:8s}: {F * (3 if side == S else c) * side * side:6d} values, {tokens:5d} tokens, "
          f"{tokens ** 2:>10,d} token pairs for full attention")
print(f"the latent clip holds {pixel_values / latent_values:.0f}x fewer values")

# %% [markdown]
# ## 2 · The video autoencoder
#
# `VideoAutoencoder` works frame by frame (time folded into the batch), as the image autoencoders
# that video systems start from do. The encoder is a few convolutions with two stride-2 steps
# (4× smaller per side); it outputs, for every latent value, a mean μ and a log-variance log σ².
# Training draws z = μ + σ·ε (the *reparameterisation trick*), decodes it, and minimises
#
# $$\mathcal{L} = \lVert x - D(z) \rVert^2 + \beta\, \mathrm{KL}\big(\mathcal{N}(\mu, \sigma^2)\,\Vert\,\mathcal{N}(0, I)\big),
# \qquad \mathrm{KL} = \tfrac12 \textstyle\sum (\mu^2 + \sigma^2 - 1 - \log\sigma^2)$$
#
# (Kingma & Welling 2014). β is small (`AUTOENCODER_BETA` = 1e-4): the KL term only keeps the
# latents smooth and near the origin, so that nearby latents decode to similar frames; it is not
# asked to make them a standard normal. `train_or_load` finds the trained autoencoder in
# `checkpoints/` (or the course's shipped file) and trains it otherwise.

# %%
start = time.perf_counter()
autoencoder = train_or_load(autoencoder_recipe, folder=CHECKPOINTS).ema_model.eval()
print(f"autoencoder ready in {time.perf_counter() - start:.0f} s: {sum(p.numel() for p in autoencoder.parameters()):,} "
      "parameters, "
      f"{autoencoder_recipe.steps} training steps")  # the EMA copy is frozen: count_parameters would say 0

# %% [markdown]
# Reconstructions of clips it never saw in training, and the four latent channels of the first
# clip (each channel drawn as a grey image, 4× smaller):

# %%
held_out = autoencoder_recipe.real_examples(64, seed=15)  # (64, F, 3, S, S): not the training stream
with torch.no_grad():
    reconstructed = autoencoder.reconstruct(held_out).clamp(-1, 1)
    latent = autoencoder.encode(held_out[:1])  # (1, F, c, S/4, S/4), scaled
filmstrip(torch.cat([held_out[:2], reconstructed[:2]]), row_labels=["clip 1", "clip 2", "decoded 1", "decoded 2"],
          title="held-out clips and their reconstructions")
plt.show()
channels = latent[0].transpose(0, 1).unsqueeze(2)  # (c, F, 1, h, w): one row per channel
filmstrip(channels / channels.abs().max(), row_labels=[f"channel {i}" for i in range(c)],
          title=f"the latent of clip 1: {c} channels of {h}x{h}")
plt.show()
psnr, ssim = per_frame_psnr(reconstructed, held_out).mean(), per_frame_ssim(reconstructed, held_out).mean()
print(f"64 held-out clips: PSNR {psnr:.1f} dB, SSIM {ssim:.3f} (per frame, averaged)")

# %% [markdown]
# The latent channels are not pictures, but the square is still where it was: a per-frame
# convolutional encoder keeps the layout, so a 2 × 2 patch of latent covers an 8 × 8 patch of
# pixels. `python -m course_lib bench latent` measures the PSNR on 128 held-out clips (BENCHMARKS.md).
#
# ## 3 · The scale factor
#
# The forward process mixes data with N(0, I) noise, and every schedule of lesson 03 assumes data of
# about unit variance: at ᾱ_t = 0.5 signal and noise should weigh the same. The KL term leaves the
# latents' scale to the encoder, so LDM multiplies them by a **scale factor** 1 / std of the
# training latents. `VideoAutoencoder` keeps a running estimate of that std as a buffer, updated
# in training like BatchNorm's running variance, so the factor is saved with the weights:
# `encode` returns scaled latents, `decode` undoes the scale.

# %%
with torch.no_grad():
    raw_mean, _ = autoencoder.encode_distribution(held_out)
    scaled = autoencoder.encode(held_out)
print(f"scale factor 1/std = {autoencoder.scale.item():.3f}; std of the latents before {raw_mean.std():.3f}, "
      f"after {scaled.std():.3f}")
plt.figure(figsize=(6, 2.5))
plt.hist(raw_mean.flatten().numpy(), bins=80, alpha=0.6, density=True, label="encoder's latents")
plt.hist(scaled.flatten().numpy(), bins=80, alpha=0.6, density=True, label="scaled (what diffusion sees)")
plt.legend()
plt.xlabel("latent value")
plt.show()

# %% [markdown]
# ## 4 · Patchify: a clip as tokens
#
# A transformer reads a sequence of vectors. The DiT (Peebles & Xie 2023) cuts each latent frame
# into p × p patches and flattens each patch into one *token* of c·p·p numbers; a linear layer
# then maps it to the model width D. With F frames and N = (h/p)² patches per frame, a clip is
# F·N tokens. `unpatchify` is the exact inverse, used on the network's output. (Exercise 15.1
# writes both.)

# %%
tokens = patchify(latent, 2)  # (1, F, N, c·2·2)
print(f"latent {tuple(latent.shape)} -> tokens {tuple(tokens.shape)}: {tokens.shape[2]} patches per frame, "
      f"{tokens.shape[3]} numbers each")
print("unpatchify(patchify(z)) == z:", torch.equal(unpatchify(tokens, 2, c, h), latent))

# %% [markdown]
# ## 5 · adaLN-Zero: conditioning every block on the timestep
#
# The U-Net added the timestep embedding to its feature maps. The DiT instead lets it set the
# normalisation: from the embedding of t (and the label, if any) each block computes a shift β, a
# scale γ and a gate α per channel, and uses them around its attention and its MLP,
#
# $$h \leftarrow h + \alpha \cdot \mathrm{Attn}\big(\mathrm{LN}(h)\,(1 + \gamma) + \beta\big),$$
#
# (**adaptive layer norm**, `modulate(x, shift, scale)` = x·(1 + scale) + shift). "Zero": the
# layer that makes β, γ, α starts at zero, so every block starts as the identity and the final
# layer outputs zeros: the untrained network predicts 0 everywhere, a calm start that Peebles &
# Xie found to train best of the variants they tried. (Exercise 15.2 writes the modulation and the
# gated residual.)

# %%
fresh = recipe.build_model()  # an untrained LatentDenoiser: transformer + (untrained) autoencoder
z_t = torch.randn(2, *recipe.latent_shape, generator=g)
with torch.no_grad():
    out = fresh(z_t, torch.tensor([10, 500]))
x = torch.randn(2, 3, 5, 8)
print("modulate with shift = scale = 0 is the identity:", torch.equal(modulate(x, 0 * x, 0 * x), x))
print(f"the untrained transformer's output: max |value| = {out.abs().max():.1e} (adaLN-Zero: all zero)")

# %% [markdown]
# ## 6 · Factorised space-time attention
#
# Full attention over F·N tokens compares every pair: (F·N)² pairs. Latte (Ma et al. 2024) and
# Open-Sora factorise it, as lesson 07's U-Net factorised its layers: a *spatial* attention lets
# each token see the N tokens of its own frame, then a *temporal* attention lets it see the F
# tokens at its own patch position in every frame. Two steps reach every token, for F·N² + N·F²
# pairs. The picture: which tokens one token (the star) attends to.

# %%
N = tokens.shape[2]  # patches per frame
query = (F // 2, N // 3)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
for ax, kind in zip(axes, ("spatial", "temporal", "full")):
    seen = torch.zeros(F, N)
    if kind in ("spatial", "full"):
        seen[query[0]] = 1
    if kind in ("temporal", "full"):
        seen[:, query[1]] = 1
    if kind == "full":
        seen[:] = 1
    ax.imshow(seen, cmap="Blues", vmin=0, vmax=1.4, aspect="auto", interpolation="nearest")
    ax.plot(query[1], query[0], "r*", markersize=12)
    pairs = {"spatial": F * N ** 2, "temporal": N * F ** 2, "full": (F * N) ** 2}[kind]
    ax.set_title(f"{kind}: {int(seen.sum())} tokens seen; {pairs:,} pairs per layer", fontsize=10)
    ax.set_xlabel("patch n (in its frame)")
    ax.set_ylabel("frame")
plt.show()

# %% [markdown]
# Each `SpaceTimeBlock` of the course's `SpaceTimeTransformer` does spatial attention, temporal
# attention and an MLP, each wrapped in adaLN-Zero; positions are fixed sinusoids of the patch's
# row and column and of the frame index. `attention="full"` gives the unfactorised block.
#
# ## 7 · Training on latents
#
# The recipe's model "dit" is a `LatentDenoiser`: the transformer with the trained autoencoder
# frozen inside it (no gradients, always in eval mode, saved in the same checkpoint). The loss is
# the shapes U-Net's own (x0-prediction, the linear schedule), wrapped by `LatentObjective`: each
# batch of clips is encoded to scaled latents z0 first, then noised and denoised as in lesson 02,
#
# $$\mathcal{L} = \mathbb{E}_{t,\epsilon}\,\big\lVert z_0 - \hat z_\theta(\sqrt{\bar\alpha_t}\,z_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t)\big\rVert^2,\qquad z_0 = s\cdot E(x_0).$$
#
# `train_or_load(recipe)` trains (or loads) the autoencoder first, then the transformer.

# %%
start = time.perf_counter()
trainer = train_or_load(recipe, folder=CHECKPOINTS)
model = trainer.ema_model.eval()
print(f"latent transformer ready in {time.perf_counter() - start:.0f} s: {count_parameters(trainer.model):,} "
      f"trainable parameters, the transformer's ({recipe.steps} training steps)")

# %% [markdown]
# ## 8 · Sampling and decoding
#
# Sampling is lesson 04's DDIM, on latents of shape (F, c, h, w); `recipe.sample` then decodes the
# final latent with the autoencoder, once. One change: lesson 04's sampler clips each x̂0 to [−1, 1],
# the range of pixels. Latents have no such range (the histogram of section 3 reaches well past ±1,
# and the objects live in those values), so for the latent model `recipe.clip_x0` is False and
# nothing is clipped.

# %%
start = time.perf_counter()
clips = recipe.sample(model, 8, generator=torch.Generator().manual_seed(1))  # (8, F, 3, S, S)
print(f"8 clips in {time.perf_counter() - start:.1f} s (DDIM {preset.sample_steps} steps on latents, one decode)")
filmstrip(clips[:4], title="sampled and decoded clips")
plt.show()

# %%
animate(clips, fps=6, nrow=4)

# %% [markdown]
# ## 9 · Against the pixel U-Net
#
# `python -m course_lib bench latent` times a training step of both models side by side (the
# transformer's step includes encoding its batch) and scores 128 clips of each with lesson 10's
# metrics. Its record, when the benchmark has been run:

# %%
record_path = RESULTS / f"latent-{'cpu' if preset.name == 'smoke' else preset.name}.json"
if record_path.exists():
    record = json.loads(record_path.read_text())
    keep = ("model", "parameters", "CPU ms/step", "vs unet3d", "PSNR dB", "motion pass", "FVD", "trained")
    print(f"{record['title']} ({record['machine']})")
    for row in record["rows"]:
        print(" | ".join(f"{key}: {row[key]:.3g}" if isinstance(row[key], float) else f"{key}: {row[key]}"
                         for key in keep if row.get(key) is not None))
else:
    print(f"no record at {record_path}: run python -m course_lib bench latent --out benchmarks/results")

# %% [markdown]
# What to read: the transformer on latents takes a fraction of the U-Net's time per step at about
# the same parameter count, because it sees 16× fewer positions; the price is the autoencoder,
# trained once, and its reconstruction error, which bounds how sharp any sample can be. Per step
# is not per result: compare the motion pass, and the steps each model trained ("trained"). A
# transformer has no convolution's built-in locality and must learn what a neighbourhood is, so the
# recipe trains it for three times the U-Net's steps (each cheaper); transformers pay off with more steps, data and width,
# the regime real systems train in. At the
# scale of real systems the saving is what makes video diffusion affordable at all: Stable Video
# Diffusion and Open-Sora compress 8× per side (and Open-Sora, CogVideoX and Wan also 4× in time)
# before a transformer sees a token.
#
# ## Summary
#
# * **Latent diffusion** trains the diffusion model on the latents of an autoencoder trained once:
#   the clip here is 12× smaller, and a transformer sees 16× fewer tokens.
# * The video autoencoder is a per-frame convolutional **VAE**: loss = reconstruction + β·KL with a
#   small β; judge it by the PSNR / SSIM of held-out reconstructions.
# * The **scale factor** 1/std makes the latents unit-variance, as the noise schedule assumes; it is
#   kept with the autoencoder's weights.
# * A space-time transformer (a **DiT**) cuts latents into patches (**patchify**), conditions every block on
#   the timestep by **adaLN-Zero** (shift, scale, gate; zero-initialised, so it starts as the
#   identity) and attends within frames, then along time (**factorised space-time** attention).
# * Training encodes each batch with the frozen autoencoder; sampling draws latents and decodes once,
#   without clipping x̂0 to [−1, 1]: that is the range of pixels, and latents reach past it.
#
# Exercises: `exercises/15_latent_video_diffusion.ipynb` (patchify and unpatchify; adaLN modulation and the gated
# residual of a DiT block).

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("What does the diffusion model of latent diffusion learn?",
             ["to decode latents into pixels", "the distribution of the autoencoder's (scaled) latents",
              "the autoencoder's weights"],
             "the distribution of the autoencoder's (scaled) latents",
             "The autoencoder is trained first and frozen; the diffusion model only ever sees latents, and "
             "its samples are decoded once at the end (Rombach et al. 2022)."),
    NumericQuestion("Frames of 32x32 RGB, 4x compression per side, 4 latent channels: how many times fewer "
                    "values has a latent frame than a pixel frame?", 12,
                    "3·32·32 = 3072 values against 4·8·8 = 256: 12 times fewer."),
    Question("Why multiply the latents by 1/std (the scale factor)?",
             ["to make the decoder faster", "the noise schedule assumes data of about unit variance",
              "to make the KL term zero"],
             "the noise schedule assumes data of about unit variance",
             "With latents of std 0.2, say, the signal would vanish under the noise far earlier than the "
             "schedule intends; scaling restores the balance at every t."),
    NumericQuestion("A latent clip of 8 frames of 8x8, patches of 2x2: how many tokens?", 128,
                    "(8/2)·(8/2) = 16 patches per frame, times 8 frames = 128 tokens."),
    Question("What does the 'Zero' in adaLN-Zero make true at initialisation?",
             ["every attention weight is zero", "every block is the identity and the output is zero",
              "the learning rate starts at zero"],
             "every block is the identity and the output is zero",
             "The layer that produces shift, scale and gate starts at zero, so each residual branch is gated "
             "off and the final layer outputs zeros (Peebles & Xie 2023)."),
])
