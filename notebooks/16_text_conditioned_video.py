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
# # 16 · Text-conditioned video
#
# **Goals.** Ask for a clip in words. Write a **caption** for every training clip from the
# parameters that drew it, turn captions into **tokens** of a small vocabulary, encode them with a
# tiny **text encoder**, and let lesson 15's space-time transformer read them through
# **cross-attention**. Train both together with **caption dropout**, so that one network also knows
# the empty caption, and sample with **classifier-free guidance** on the caption. Then measure
# whether the clips show what was asked (**caption match**) with guidance on and off, edit a clip by
# changing its caption (SDEdit in latent space), and see where the systems people use go further.
#
# **Prerequisites.** Lessons 04 (classifier-free guidance on a label), 09 (SDEdit), 10 (reading
# clips with the course's own tools) and 15 (the video autoencoder, patchify, adaLN-Zero, the
# space-time transformer on latents).
#
# **Time.** Reading: about 45 minutes. Running: well under a minute in the `smoke` preset (a tiny
# model trained for a few steps: its clips are noise and its caption match is 0%). Running with
# shipped weights (`cpu` preset): lesson 15's autoencoder is shipped and reused (same clips); the
# caption model is not shipped yet, so the first run trains the transformer and text encoder (three
# times `video_train_steps` = 6000 steps; the first run's time: README's time table) and every later
# run loads them from `checkpoints/`. Training from scratch (`cpu`): the autoencoder first, then the
# same; `python -m course_lib train --task video-captions --model dit --preset cpu` does it from a terminal.
#
# A clip has F frames (`F = preset.video_frames` in the code) of 3 × H × W pixels; a caption has L
# tokens (16, padded).

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

# %%
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from course_lib.config import get_preset, seed_everything
from course_lib.data.captions import VOCABULARY, captioned_shapes, null_tokens, tokenize
from course_lib.diffusion.editing import sdedit
from course_lib.diffusion.guidance import caption_guided_denoiser
from course_lib.metrics.caption_match import caption_match
from course_lib.models.inspect import count_parameters
from course_lib.views.figures import animate, filmstrip
from course_lib.workshop.recipes import CAPTION_GUIDANCE_SCALE, get_recipe
from course_lib.workshop.zoo import train_or_load

CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises
RESULTS = Path("..") / "benchmarks" / "results"  # what python -m course_lib bench writes

preset = get_preset()
g = seed_everything(0)
recipe = get_recipe("video-captions", preset)  # captioned shapes; the dit model with a text encoder
F, S = preset.video_frames, preset.video_size
print(f"preset {preset.name}: clips of F = {F} frames, {S}x{S} RGB; latents {recipe.latent_shape}")

# %% [markdown]
# ## 1 · Captions from the generator's parameters
#
# Real systems caption millions of videos with another model (the Sora report re-captions its whole
# training set; Brooks et al. 2024). The course's clips need no such model: the generator chose the
# shape, the colour and the heading of every object, so a caption is a sentence built from those
# numbers, and it is exactly true. `captioned_shapes` draws one shape per clip heading in one of 8
# compass directions and writes its caption ("and bounces off the wall" when it hits one).

# %%
data = captioned_shapes(4, frames=F, size=S, generator=torch.Generator().manual_seed(16))
for i, caption in enumerate(data.captions):
    print(f"clip {i}: {caption}")
filmstrip(data.clips.video, row_labels=[f"clip {i}" for i in range(4)], title="four captioned clips")
plt.show()

# %% [markdown]
# ## 2 · Tokens and the vocabulary
#
# A network reads numbers, so each word becomes its index in a fixed **vocabulary**: here every
# word the captions use, plus two special tokens, `<pad>` (filler after the last word) and `<null>`
# (the empty caption, section 5). `tokenize` pads every caption to L = 16 tokens and returns a
# **mask**, True on the real words: attention must never look at the padding. A word outside the
# vocabulary is an error that lists it; there is no "unknown" token, because a typo should be seen.
# Real systems split text into sub-word pieces (tens of thousands of them) for the same reason: any
# text becomes known tokens.

# %%
ids, mask = tokenize(data.captions[:2])
print(f"{len(VOCABULARY)} tokens in the vocabulary: {' '.join(VOCABULARY)}")
print(f"ids {tuple(ids.shape)}:\n{ids}\nmask, True on the words:\n{mask.int()}")
try:
    tokenize(["a purple triangle moves left"])
except ValueError as error:
    print("unknown words:", error)

# %% [markdown]
# ## 3 · The tiny text encoder
#
# Word ids carry no meaning by themselves, and a word's meaning depends on its neighbours ("moves
# *down and left*"). The **text encoder** maps ids to vectors: a learned embedding per word plus one
# per position, then two small transformer layers whose attention looks at the real words only.
# Its output, one vector per token, is the **context** the video model reads. Real systems use a
# large pretrained encoder (CLIP in Stable Diffusion, T5 in Imagen, Sora, CogVideoX and Wan; Raffel
# et al. 2020) and keep it frozen; the course's vocabulary is so small that the encoder is trained
# from scratch, together with the video model, behind the same loss.

# %%
model = recipe.build_model()  # a LatentDenoiser: autoencoder + (text encoder, transformer)
text_encoder = model.denoiser.text_encoder
with torch.no_grad():
    context = text_encoder(ids, mask)  # (2, L, D_c)
print(f"text encoder: {count_parameters(text_encoder):,} parameters, width D_c = {text_encoder.dim}")
print(f"context {tuple(context.shape)}; the padded rows are zero: {bool((context[~mask] == 0).all())}")

# %% [markdown]
# ## 4 · Cross-attention: video tokens read the caption
#
# In lesson 15 each video token attended to other video tokens. **Cross-attention** keeps the
# queries from the video tokens but takes the keys and values from the caption's tokens:
#
# $$\mathrm{CrossAttn}(h, c) = \mathrm{softmax}\!\Big(\frac{(h W_Q)(c W_K)^\top}{\sqrt d} + M\Big)\,(c W_V),
# \qquad M_{nl} = \begin{cases} 0 & \text{word } l \text{ is real} \\ -\infty & \text{padding} \end{cases}$$
#
# so every video token takes a weighted average of the words, and the padding gets weight exactly
# 0 (exp(−∞) = 0). Each `SpaceTimeBlock` of the course's transformer adds one cross-attention
# sub-layer after its spatial and temporal attention, h ← h + CrossAttn(LN(h), c), as PixArt-α and
# Open-Sora do (Zheng et al. 2024); the timestep still enters through adaLN. (Exercise 16.1 writes
# cross-attention with its mask.) The picture: the weights of one head with random projections,
# 8 video tokens reading the two captions above.

# %%
gen = torch.Generator().manual_seed(4)
D_c = context.shape[-1]
w_q, w_k = torch.randn(D_c, 8, generator=gen), torch.randn(D_c, 8, generator=gen)
queries = torch.randn(2, 8, D_c, generator=gen)  # stand-ins for 8 video tokens per clip
scores = (queries @ w_q) @ (context @ w_k).transpose(1, 2) / math.sqrt(8)  # (2, 8, L)
weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
fig, axes = plt.subplots(1, 2, figsize=(12, 2.8))
for ax, row, caption_ids in zip(axes, weights, ids):
    ax.imshow(row, cmap="viridis", aspect="auto", vmin=0)
    ax.set_xticks(range(ids.shape[1]), [VOCABULARY[i] for i in caption_ids], rotation=60, fontsize=8)
    ax.set_ylabel("video token")
axes[0].set_title("weights of each video token over the words (padding: 0)", fontsize=10)
plt.show()
print("each row sums to 1:", torch.allclose(weights.sum(-1), torch.ones(2, 8)))

# %% [markdown]
# ## 5 · Classifier-free guidance on the caption
#
# Lesson 04 guided digits by their label; a caption works the same way (Ho & Salimans 2022). In
# training, **caption dropout** replaces 10% of the captions by the null caption `<null>`, so one
# network learns both the captioned answer ε̂_c = ε̂(z_t, t, c) and the unconditional one
# ε̂_∅ = ε̂(z_t, t, ∅). Sampling asks both and moves from the unconditional answer towards the
# captioned one, w times as far:
#
# $$\hat\epsilon_w = \hat\epsilon_\varnothing + w\,(\hat\epsilon_c - \hat\epsilon_\varnothing).$$
#
# w = 0 ignores the caption, w = 1 is the plain conditional model, w > 1 follows the caption more
# strongly, at some cost in variety. The course samples captions at w = `CAPTION_GUIDANCE_SCALE`.
# (Exercise 16.2 writes the guided prediction; the model predicts x0 here, and the same mix applies
# to any of its outputs.) The recipe drops captions where it draws each batch:

# %%
big = recipe.replace(batch_size=1000)
_, batch_ids, _ = big.make_batch(torch.Generator().manual_seed(0))
print(f"null captions in a batch of 1000: {(batch_ids[:, 0] == VOCABULARY.index('<null>')).float().mean():.1%} "
      f"(label_dropout = {recipe.label_dropout}); the null caption's tokens: {null_tokens(1)[0][0, :3].tolist()} + padding")
print(f"guidance scale the course samples with: w = {CAPTION_GUIDANCE_SCALE:g}")

# %% [markdown]
# ## 6 · Training the pair
#
# The recipe's loss is lesson 15's, with the tokens passed along: each batch of clips is encoded to
# latents by the frozen autoencoder (the one lesson 15 trained: the clips are bouncing shapes too),
# noised, and denoised by the transformer reading the encoded caption. One optimiser updates the
# transformer and the text encoder together, so the words' vectors become whatever helps denoising.
# `train_or_load(recipe)` loads the trained pair (or trains the autoencoder, then the pair).

# %%
trainer = train_or_load(recipe, folder=CHECKPOINTS)
model = trainer.ema_model.eval()
print(f"{count_parameters(trainer.model):,} trainable parameters (transformer and text encoder), "
      f"{trainer.step} training steps")

# %% [markdown]
# ## 7 · Sampling from captions
#
# `recipe.sample(model, n, captions=...)` encodes the captions once, runs DDIM on latents with the
# guided denoiser, and decodes the final latent with the autoencoder.

# %%
asked = ["a red square moves right", "a blue circle moves up", "a green square moves down and left",
         "a yellow circle moves left"]
clips = recipe.sample(model, 4, captions=asked, guidance_scale=CAPTION_GUIDANCE_SCALE,
                      generator=torch.Generator().manual_seed(1))
filmstrip(clips, row_labels=[c.removeprefix("a ") for c in asked], title=f"sampled from captions (w = {CAPTION_GUIDANCE_SCALE:g})")
plt.show()

# %%
animate(clips, fps=6, nrow=4)

# %% [markdown]
# ## 8 · Caption match, guidance on and off
#
# Does a clip show what its caption asked for? `caption_match` reads each clip with the course's own
# tools (lesson 10): the object's shape and colour from the frames, its direction from the tracker,
# and compares them with the caption. Below: clips for held-out captions, sampled from the same noise
# with guidance on (w = `CAPTION_GUIDANCE_SCALE`) and off (w = 0: the null caption, the unconditional
# model), then the share that matches in each part.

# %%
n = 8 if preset.name == "smoke" else 32
held_out = recipe.real_captioned(n)
rows = {}
for name, w in ((f"on (w = {CAPTION_GUIDANCE_SCALE:g})", CAPTION_GUIDANCE_SCALE), ("off (w = 0)", 0.0)):
    samples = recipe.sample(model, n, captions=held_out.captions, guidance_scale=w,
                            generator=torch.Generator().manual_seed(2))
    rows[name] = caption_match(samples, held_out.attributes, recipe.object_size).rates
print(f"caption match of {n} clips   shape  colour  direction  all")
for name, rates in rows.items():
    print(f"guidance {name:14s}  {rates['shape']:5.0%}  {rates['colour']:6.0%}  {rates['direction']:9.0%}  {rates['all']:4.0%}")

# %% [markdown]
# Without guidance the model draws some shape of some colour going somewhere, so it can match a
# caption only by chance (1 in 2 shapes, 1 in 6 colours, 1 in 8 directions, and only in clips where
# one clear object is read at all); guidance must lift every part above that. A model that draws
# blurred or broken objects fails both rows: caption match needs a clip that looks like the data
# first. `python -m course_lib bench captions` measures the same on 128 captions at w = 4, 1 and 0
# (the course's targets: shape and colour ≥ 80%, direction ≥ 70%), and reads the held-out clips
# themselves after a trip through the autoencoder (the "ceiling": no latent model can draw what its
# decoder cannot; a 4× smaller latent may round a square's corners). Its record, when it has been run:

# %%
record_path = RESULTS / f"captions-{'cpu' if preset.name == 'smoke' else preset.name}.json"
if record_path.exists():
    record = json.loads(record_path.read_text())
    print(f"{record['title']} ({record['machine']})")
    for row in record["rows"]:
        label = row["guidance"] if row["w"] is None else f"guidance {row['guidance']}"
        print(f"{label}: " + ", ".join(f"{part} {row[part]:.0%}" for part in ("shape", "colour", "direction", "all")))
else:
    print(f"no record at {record_path}: run python -m course_lib bench captions --out benchmarks/results")

# %% [markdown]
# ## 9 · Editing by caption
#
# Lesson 09 edited clips with SDEdit (Meng et al. 2022): noise a clip part of the way, then denoise it
# with the model. With a caption the model is told what the result should show: encode a clip to
# latents, noise it to strength s, and denoise with guidance towards a *changed* caption. The layout
# and the motion survive the noise; the colour follows the new words.

# %%
def recolour(caption: str, colour: str) -> str:
    """'a red square moves left' -> 'a <colour> square moves left'."""
    words = caption.split()
    words[1] = colour
    return " ".join(words)


source, old = held_out.clips.video[:2], held_out.captions[:2]  # two held-out clips and their captions
new = [recolour(caption, "blue" if caption.split()[1] != "blue" else "red") for caption in old]
context, context_mask = recipe.encoded_captions(model, new, 2)
null_ids, null_mask = null_tokens(2)
with torch.no_grad():
    null_context = model.encode_text(null_ids, null_mask)
guided = caption_guided_denoiser(model, context, context_mask, null_context, null_mask, CAPTION_GUIDANCE_SCALE)
with torch.no_grad():
    latents = model.encode(source)
    edited = model.decode(sdedit(guided, latents, 0.6, recipe.schedule, steps=preset.sample_steps,
                                 generator=torch.Generator().manual_seed(3), objective=recipe.objective,
                                 clip_x0=recipe.clip_x0))
filmstrip(torch.cat([source, edited]), row_labels=["clip 1", "clip 2", "edited 1", "edited 2"],
          title="SDEdit in latent space (strength 0.6) towards a new caption")
plt.show()
for before, after in zip(old, new):
    print(f"{before!r} -> {after!r}")
print("edited clips match their new caption:", caption_match(edited, new, recipe.object_size).summary())

# %% [markdown]
# ## 10 · Where next: what real systems add
#
# The course's model has every piece of a text-to-video system, at toy size. The systems people use
# add scale, data and a few ideas:
#
# | system | autoencoder | text | denoiser and conditioning |
# |---|---|---|---|
# | Stable Video Diffusion (Blattmann et al. 2023b) | the image VAE of Stable Diffusion, 8× | CLIP image embedding (image-to-video) | a U-Net with temporal layers, started from an image model; curated data |
# | Sora report (Brooks et al. 2024) | a video autoencoder compressing space and time | re-captioned training videos, expanded prompts | a transformer over space-time patches of any size and length |
# | Latte (Ma et al. 2024) | the image VAE | T5 / class labels | DiT blocks alternating spatial and temporal attention — lesson 15's design |
# | Open-Sora (Zheng et al. 2024) | a video VAE, 4× in time | T5 | spatial-temporal DiT blocks with cross-attention to the caption |
# | CogVideoX (Yang et al. 2024) | a 3D causal VAE | T5 | text and video tokens in one sequence, full 3D attention (an "expert" adaLN per modality) |
# | HunyuanVideo (Kong et al. 2024) | a 3D causal VAE | a multimodal language model | dual-stream, then single-stream blocks over text and video tokens; flow matching |
# | Wan (Wan et al. 2025) | a 3D causal VAE, 4× in time, 8× in space | T5 (multilingual) | a DiT with cross-attention, flow matching (lesson 13) |
#
# Common to all: a pretrained, frozen text encoder of billions of parameters instead of a tiny one;
# training data captioned (or re-captioned) by another model; compression in time as well as space;
# flow matching or v-prediction; guidance scales of 5–7 and negative prompts (the null caption
# replaced by words to avoid); and far more compute.
#
# **The same pieces in the diffusers library.** The `diffusers` video pipelines (`CogVideoXPipeline`,
# `LattePipeline`, `HunyuanVideoPipeline`, `WanPipeline`, `StableVideoDiffusionPipeline`) are these
# four parts wired together, and `pipe.components` lists them:
#
# 1. `tokenizer` + `text_encoder`: the prompt to context vectors (here `tokenize` + `TextEncoder`);
# 2. `transformer` (or `unet`): the denoiser that cross-attends to the context (here
#    `SpaceTimeTransformer` with `context_dim`), called twice per step for classifier-free guidance
#    (`guidance_scale`; here `caption_guided_denoiser`);
# 3. `scheduler`: DDIM, DPM-Solver or a flow-matching Euler solver stepping the latents (lessons
#    04, 11 and 13; here `recipe.sample`);
# 4. `vae`: decodes the final latents to frames once (here `VideoAutoencoder.decode`, lesson 15).
#
# What changes between them is the size of each part, not the loop.
#
# ## Summary
#
# * A **caption** for each synthetic clip is written from the parameters that drew it, so it is exactly true.
# * Captions become **tokens** of a fixed **vocabulary**, padded to L with a **mask** on the real words.
# * A tiny **text encoder** (embeddings + two transformer layers) turns tokens into a **context**;
#   it trains with the video model, behind the same loss.
# * **Cross-attention** lets every video token read the caption: queries from the video, keys and
#   values from the words, the padding masked to −∞.
# * **Caption dropout** teaches one network the null caption too; **classifier-free guidance**
#   ε̂_∅ + w(ε̂_c − ε̂_∅) follows the caption more strongly.
# * **Caption match** reads shape, colour and direction back from the frames: with guidance off the
#   clips match only by chance.
# * **Editing by caption** is SDEdit in latent space with the guided denoiser of a new caption.
#
# Exercises: `exercises/16_text_conditioned_video.ipynb` (cross-attention with a mask; the guided
# prediction on a caption).

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("In cross-attention, where do the keys and values come from?",
             ["from the video tokens", "from the caption's tokens (the text encoder's output)",
              "from the timestep embedding"],
             "from the caption's tokens (the text encoder's output)",
             "The queries come from the video tokens, the keys and values from the words: each video token "
             "takes a weighted average of the caption."),
    Question("Why mask the padding with −∞ rather than 0 before the softmax?",
             ["−∞ is faster", "a score of 0 still gets weight exp(0) = 1 before normalising",
              "0 would make the weights negative"],
             "a score of 0 still gets weight exp(0) = 1 before normalising",
             "Only exp(−∞) = 0 removes a token from the average; a 0 score is an ordinary, average-looking word."),
    NumericQuestion("With ε̂_∅ = 0.2, ε̂_c = 0.5 and w = 4, what is the guided prediction?", 1.4,
                    "0.2 + 4·(0.5 − 0.2) = 1.4: four times as far from the unconditional answer."),
    Question("What does caption dropout (10% null captions in training) make possible?",
             ["faster training", "classifier-free guidance: the same network answers without a caption",
              "longer captions"],
             "classifier-free guidance: the same network answers without a caption",
             "Guidance needs ε̂_∅ as well as ε̂_c; dropout trains both in one network (Ho & Salimans 2022)."),
    NumericQuestion("With guidance off, a model that ignores the caption draws one of 8 directions at random: "
                    "what share of clips would match the caption's direction (in %)?", 12.5,
                    "1 in 8 = 12.5%: the chance level the guided model must beat."),
])
