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
# # 11 · Speed, scale and limits
#
# **Goals.** The seed ends (§8.2 and §9.3) with three challenges of video diffusion models:
# *compute* ("training and generation need a lot of computing resources"), *data* ("training a
# high-quality model needs a lot of video data") and *interpretability* ("a complex black box whose
# decisions are hard to explain"); §8.1 hopes for "faster generation, up to real time". Each is
# true, and each can be *measured*. In this notebook every claim is a number printed by a cell:
#
# | seed | question | section |
# |---|---|---|
# | §8.1 faster generation | how much quality do fewer sampling steps cost? | 1 |
# | §8.2 / §9.3 compute | what do bf16 and `torch.compile` buy on this machine? | 2 |
# | §8.2 / §9.3 compute | where does the memory go, and how far can the batch grow? | 3 |
# | §8.2 / §9.3 compute | where does the time of a training step go? | 4 |
# | §8.2 / §9.3 interpretability | what does the model look at across frames, and does it matter? | 5 |
# | §8.2 / §9.3 data | what changes between 100 and 10,000 training clips? | 6 |
# | §8.1, §9.3 | what can a CPU do, and what changes on a GPU? | 7 |
#
# **Prerequisites.** Lessons 04 (DDPM, DDIM, the digit judge and FID) and 07 (the 3D U-Net and its
# temporal attention); lesson 10's FID; what a training step does (forward, backward, optimiser).
#
# **Time.** Reading: about 45 minutes. Running with shipped weights (`cpu` preset): it loads the
# shipped digits and shapes models, but has not been timed as a whole, and its parts are slow:
# DDPM over all 1000 steps (about 16 minutes for 50 digits), two `torch.compile` settings whose
# first step compiles for several minutes each, and two small data-scale models (about 5 minutes
# each) — expect about an hour (the parts are in BENCHMARKS.md). Training from scratch: the
# digits U-Net (about 18 minutes on 2 CPU threads) and the shapes U-Net (about 10 minutes), with
# `train_or_load(recipe, retrain=True)`. In the `smoke` preset the models are barely trained, so
# the *timings* are real but the *quality* numbers are those of noise.
# **Seed sections:** §8 (8.1 trends, 8.2 challenges), §9.3 (limitations).
#
# Timings move with the machine's load. Every timing below is a median over several steps, and
# the CPU seconds of this process are printed next to the wall seconds; when the CPU share is far
# below 100 %, other programs took the cores. Clips have F frames; t is the diffusion step (T of them).

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
import torch.nn.functional as F

from course_lib.workshop import data_scale
from course_lib.training import speed
from course_lib.config import get_device, get_preset, seed_everything
from course_lib.diffusion.forward import q_sample
from course_lib.metrics.frechet import frechet_distance_from_features
from course_lib.metrics.judge import get_digit_judge, image_scores, judge_config_for_preset, reference_digits
from course_lib.metrics.motion import motion_consistency
from course_lib.models.inspect import capture_temporal_attention, count_parameters
from course_lib.workshop.recipes import get_recipe
from course_lib.diffusion.samplers import ddpm_steps
from course_lib.views.figures import filmstrip
from course_lib.workshop.zoo import train_or_load

preset = get_preset()
device = get_device()
seed_everything(0)
CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises
MiB = 2**20
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
print(f"preset {preset.name} on {device.type}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores, "
      f"load average {load:.1f}")

# %% [markdown]
# ## 1 · Fewer sampling steps (§8.1 "faster generation")
#
# Sampling costs one network call per step, so its time is proportional to the number of steps.
# DDPM visits all T = 1000 steps; DDIM (notebooks 02 and 04) jumps along a subsequence of S of
# them with a deterministic update. How much quality does each saved step cost? We take the
# class-conditional digit U-Net of notebook 04 (trained once, then loaded from `../checkpoints/`),
# draw the same N digits — the same labels, the same starting noise, no guidance — with DDIM at 5,
# 10, 20 and 50 steps and with DDPM, and score them with the digit judge: **accuracy** (does the judge read
# the requested digit?) and **FID** (distance of the judge's features from real held-out digits;
# lower is better).
#
# N is small on purpose: FID's estimate is biased upwards by roughly a constant / N (notebook 10),
# so the numbers below compare *with each other*, at this N, and with the FID of two sets of N
# *real* digits — the best any sampler could score at this N.

# %%
digits = get_recipe("digits", preset)
digit_model = train_or_load(digits, folder=CHECKPOINTS).ema_model
judge = get_digit_judge(preset.image_size, config=judge_config_for_preset(preset))
N = max(10, preset.eval_samples // 10)  # samples per sampler: 10 (smoke), 50 (cpu), 200 (gpu)
labels = torch.arange(N) % 10
reference = reference_digits(N, preset.image_size, seed=0)
real_floor = frechet_distance_from_features(judge.features(reference_digits(N, preset.image_size, seed=1)),
                                            judge.features(reference))
print(f"{sum(p.numel() for p in digit_model.parameters()):,}-parameter U-Net; N = {N} digits per sampler; "
      f"FID of {N} real digits vs {N} other real digits: {real_floor:.1f} (the floor at this N)")

# %%
rows = {}
for steps in (5, 10, 20, 50):
    start = time.perf_counter()
    samples = digits.sample(digit_model, N, steps=steps, labels=labels, generator=torch.Generator().manual_seed(2))
    rows[f"DDIM {steps}"] = {"steps": steps, "seconds": time.perf_counter() - start,
                             **image_scores(samples.cpu(), reference, labels, judge)}

T = preset.num_diffusion_steps
FULL_DDPM = preset.name != "smoke"  # smoke: time DDPM on its first steps only and extrapolate
start = time.perf_counter()
if FULL_DDPM:
    samples = digits.sample(digit_model, N, sampler="ddpm", labels=labels, generator=torch.Generator().manual_seed(2))
    rows["DDPM"] = {"steps": T, "seconds": time.perf_counter() - start,
                    **image_scores(samples.cpu(), reference, labels, judge)}
else:
    probe = 20
    shape = digits.sample_shape(N)
    on = next(digit_model.parameters()).device
    trajectory = ddpm_steps(lambda x, t: digit_model(x, t, labels.to(on)), shape, digits.schedule,
                            objective=digits.objective, generator=torch.Generator().manual_seed(2), device=on)
    with torch.no_grad():
        for _, _ in zip(range(probe), trajectory):
            pass
    rows["DDPM"] = {"steps": T, "seconds": (time.perf_counter() - start) * T / probe,
                    "accuracy": None, "FID": None}
    print(f"smoke preset: DDPM timed on its first {probe} of {T} steps and extrapolated; its quality is not measured")

ddpm_s = rows["DDPM"]["seconds"]
print(f"{'sampler':8s} {'steps':>5s} {'seconds':>8s} {'ms/step':>8s} {'speed-up':>8s} {'accuracy':>8s} {'FID':>7s}")
for name, r in rows.items():
    quality = (f"{r['accuracy']:8.0%} {r['FID']:7.1f}" if r["FID"] is not None else f"{'—':>8s} {'—':>7s}")
    print(f"{name:8s} {r['steps']:5d} {r['seconds']:8.2f} {1e3 * r['seconds'] / r['steps']:8.1f} "
          f"{ddpm_s / r['seconds']:7.0f}x {quality}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
scored = {name: r for name, r in rows.items() if r["FID"] is not None}
ax.plot([r["seconds"] for r in scored.values()], [r["FID"] for r in scored.values()], "o-")
for name, r in scored.items():
    ax.annotate(name, (r["seconds"], r["FID"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.axhline(real_floor, color="k", lw=0.8, ls="--", label=f"two real sets of {N}")
ax.set_xscale("log")
ax.set_xlabel(f"seconds for {N} digits (log)")
ax.set_ylabel(f"FID at N = {N} (lower is better)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Reading the table.** The ms/step column is nearly constant: time is proportional to steps,
# so DDIM with S steps is T/S times faster than DDPM. For a well-trained model the quality falls
# mainly at the smallest S: on CIFAR-10, Song et al. (2021a, Table 1, η = 0) report FID 13.4, 6.8,
# 4.7 and 4.2 at 10, 20, 50 and 100 steps. At N = 10 or 50 the FIDs here are noisy enough that
# neighbouring rows can swap; the real-vs-real floor says how large that noise is. In the
# `smoke` preset the U-Net has trained for a few dozen steps and every row is noise (FIDs in the
# thousands, accuracy near chance): only the time columns mean something there. In the `cpu`
# preset the DDPM row is measured in full (many minutes on a CPU); compare each DDIM row with it
# *and* with the real-vs-real floor, which shows how much of every FID here is the small N rather
# than the sampler.
#
# "DDIM matches DDPM" is a statement about *well-trained* models: on a part-trained digit U-Net
# the same cells put deterministic DDIM far behind DDPM, and even on the fully trained model
# deterministic DDIM 50 has 1.8× DDPM's FID while DDIM with fresh noise (η = 1) matches it
# (BENCHMARKS.md, "Image" and "Results the lessons cite"). A likely reason, argued by Karras et al.
# (2022, Sec. 4): the deterministic path carries every error of the model to the end, while the
# noise DDPM adds at each step lets later steps correct earlier ones. Fewer steps are a reward for
# a good model, not a substitute for one.
#
# For video the steps matter even more: every step processes every frame. What is left after
# DDIM is to make each step cheaper (sections 2–4) or to need fewer steps through training:
# progressive distillation halves the steps repeatedly down to 4–8 (Salimans & Ho 2022), and
# consistency models aim at 1–2 (Song et al. 2023). These are not in this course; they are where
# §8.1's "real time" comes from.
#
# ## 2 · Mixed precision and `torch.compile` (§8.2 "computational efficiency")
#
# Two switches make a training step cheaper without changing the model:
#
# * **autocast** runs matrix products and convolutions in a 16-bit format while the weights, the
#   optimizer and the loss stay in fp32. **bf16** keeps fp32's 8-bit exponent (same range) with
#   an 8-bit mantissa (about 3 significant digits); **fp16** has more mantissa but a 5-bit
#   exponent, so small gradients underflow to zero unless the loss is scaled up first
#   (`GradScaler`). The course's `Trainer` uses fp16 + `GradScaler` on CUDA only and turns fp16
#   into bf16 on CPU (`course_lib.config.autocast_dtype`).
# * **`torch.compile`** traces the model once and generates fused kernels (fewer passes over
#   memory, less Python). The price is the first step, which includes the compilation.
#
# `speed.compare_settings` trains a copy of the video U-Net of notebook 07 per setting, on the same
# batch with the same t and ε, one step of each setting per round, so a change in the machine's
# load hits every setting alike.

# %%
video = get_recipe("video-shapes", preset)
video_model = video.build_model().to(device)
batch = video.make_batch(torch.Generator().manual_seed(0)).to(device)  # (B, F, C, H, W)
TRY_COMPILE = preset.name != "smoke"  # compiling takes minutes: never in the smoke preset
settings = {"fp32": {}, "bf16 autocast": {"precision": "bf16"}}
if device.type == "cuda":
    settings["fp16 + GradScaler"] = {"precision": "fp16"}
if TRY_COMPILE:
    settings["fp32 + compile"] = {"compile": True}
    settings["bf16 + compile"] = {"precision": "bf16", "compile": True}
timings = speed.compare_settings(video_model, video.loss_fn, batch, settings, steps=5, warmup=2)
base = timings["fp32"]
print(f"{count_parameters(video_model):,}-parameter UNet3D, batch {tuple(batch.shape)}, on {device.type}")
print(f"{'setting':18s} {'first step s':>12s} {'s/step':>7s} {'CPU s/step':>10s} {'CPU share':>9s} "
      f"{'clips/s':>7s} {'vs fp32':>7s} {'loss':>8s}")
for name, timing in timings.items():
    share = f"{timing.cpu_share:9.0%}" if timing.cpu_share is not None else f"{'—':>9s}"
    print(f"{name:18s} {timing.first_s:12.2f} {timing.median_s:7.3f} {timing.cpu_per_step_s:10.3f} {share} "
          f"{timing.examples_per_s:7.1f} {base.median_s / timing.median_s:6.2f}x {timing.loss:8.5f}")
if not TRY_COMPILE:
    print("torch.compile: skipped in the smoke preset (BENCHMARKS.md gives its cost on a CPU)")

# %% [markdown]
# What to read: the *loss* column differs between fp32 and bf16 only in the third or fourth digit
# (the same batch, t and ε: the difference is rounding), and the *vs fp32* column is the speed-up.
# On CPU, bf16 helps when the processor has bf16 instructions (`avx512_bf16`, AMX) *and* the
# layers are wide enough that the convolutions dominate: at the `smoke` sizes the casts cost about
# what they save. With `avx512_bf16` the `cpu` preset's model (B = 8, 8 frames, 3×32×32) runs about
# 1.5× faster in bf16 (BENCHMARKS.md, "Results the lessons cite").
#
# `torch.compile` pays back only over many steps: on a CPU its first step takes minutes
# (compiling), and later steps ran about 1.5× faster than eager (BENCHMARKS.md): worth it for a
# training run of thousands of steps, never for a notebook cell. Compiled kernels are cached on
# disk (`/tmp/torchinductor_<user>`), so the next process starts much sooner. The `gpu` preset turns on
# both bf16 and compile (`preset.precision`, `preset.compile`), where they pay most: an H100's
# tensor cores run dense bf16 products at about 990 TFLOP/s, against 67 for its plain fp32 units
# and about 495 for TF32, which PyTorch already uses for fp32 convolutions by default (NVIDIA's
# H100 SXM datasheet; not measured here). So on a GPU bf16 gains less than the first ratio
# suggests, and as much from moving half the bytes as from faster arithmetic. With a GPU present
# the table above also gets the fp16 row with its `GradScaler`.
#
# Why fp16 needs the scaler and bf16 does not: take the fp32 gradients of one real training step
# and ask how many would be lost in each format.

# %%
probe_model = video.build_model().to(device)
video.loss_fn(probe_model, batch, torch.Generator().manual_seed(0)).backward()
grads = torch.cat([p.grad.flatten() for p in probe_model.parameters() if p.grad is not None]).abs()
grads = grads[grads > 0]
fp16_tiny, fp16_normal = 2.0**-24, torch.finfo(torch.float16).tiny  # smallest subnormal, smallest normal
scale = 2.0**16  # GradScaler's starting scale
print(f"{len(grads):,} non-zero gradient entries, median |g| = {grads.median():.2e}")
print(f"fp16 would flush to 0:        {(grads < fp16_tiny / 2).float().mean():7.2%}   "
      f"(after scaling by 2^16: {(grads * scale < fp16_tiny / 2).float().mean():.2%})")
print(f"fp16 subnormal (< 11 bits):   {(grads < fp16_normal).float().mean():7.2%}   "
      f"(after scaling by 2^16: {(grads * scale < fp16_normal).float().mean():.2%})")
print(f"fp16 would overflow after scaling by 2^16: {(grads * scale > torch.finfo(torch.float16).max).float().mean():.2%} "
      f"(GradScaler then skips the step and halves the scale)")
print(f"bf16 would flush to 0:        {(grads < torch.finfo(torch.bfloat16).tiny).float().mean():7.2%}")
print(f"bf16 rounding of the gradients: median relative error "
      f"{((grads.bfloat16().float() - grads).abs() / grads).median():.1e} (fp16: "
      f"{((grads.half().float() - grads).abs() / grads)[grads > fp16_normal].median():.1e} where in range)")

# %% [markdown]
# ## 3 · Memory and batch size
#
# A training step holds four things in memory (bytes per parameter for fp32 and AdamW):
#
# | what | size | grows with the batch? |
# |---|---|---|
# | weights | 4 bytes per parameter | no |
# | gradients | 4 bytes per parameter | no |
# | AdamW moments m and v | 8 bytes per parameter | no |
# | activations kept for backward | every layer's input, attention weights, ... | **yes, linearly** |
#
# The first three are counted from the parameters. The activations are *measured* exactly:
# `speed.saved_activation_bytes` registers autograd's saved-tensor hooks and adds up every tensor
# the forward pass keeps for the backward pass. The real peak is measured too: on CUDA by the
# allocator (`torch.cuda.max_memory_allocated`, tensors only), on CPU by the growth of the
# process's peak resident memory, which also counts temporary buffers, the allocator's slack and
# libraries' workspaces. They are different measurements; both are printed.

# %%
memory = speed.training_memory(video_model, video.loss_fn, batch)
peak, method = speed.measured_step_memory(video_model, video.loss_fn, batch)
print(f"batch {tuple(batch.shape)}:")
for name, value in [("weights", memory.weights), ("gradients", memory.gradients), ("AdamW moments", memory.optimizer),
                    ("activations (saved for backward)", memory.activations)]:
    print(f"  {name:34s} {value / MiB:8.1f} MiB")
print(f"  {'a step adds: estimated':34s} {memory.step_bytes / MiB:8.1f} MiB (gradients + AdamW + activations)")
measured_text = f"{peak / MiB:8.1f} MiB" if peak is not None else "not measurable here"
print(f"  {'a step adds, measured':34s} {measured_text} ({method})")

# %% [markdown]
# Now the batch: activations grow linearly with it, the rest does not, and throughput (clips per
# second) usually rises with the batch until the cores are busy, then flattens.

# %%
batch_sizes = [1, 2, 4, 8] if preset.name == "smoke" else [1, 2, 4, 8, 16]
sweep = {}
for b in batch_sizes:
    b_clips = video.replace(batch_size=b).make_batch(torch.Generator().manual_seed(0))
    timing = speed.time_training_steps(video_model, video.loss_fn, b_clips, steps=2, warmup=1)
    sweep[b] = {"activations": speed.saved_activation_bytes(video_model, video.loss_fn, b_clips),
                "seconds": timing.median_s, "clips/s": timing.examples_per_s}
print(f"{'batch':>5s} {'activations MiB':>15s} {'per clip MiB':>12s} {'s/step':>7s} {'clips/s':>8s}")
for b, r in sweep.items():
    print(f"{b:5d} {r['activations'] / MiB:15.1f} {r['activations'] / b / MiB:12.2f} {r['seconds']:7.3f} {r['clips/s']:8.1f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(list(sweep), [r["activations"] / MiB for r in sweep.values()], "o-")
axes[0].set(xlabel="batch (clips)", ylabel="activations (MiB)", title="memory: linear in the batch")
axes[1].plot(list(sweep), [r["clips/s"] for r in sweep.values()], "o-")
axes[1].set(xlabel="batch (clips)", ylabel="clips per second", title="throughput")
fig.tight_layout()
plt.show()

# %% [markdown]
# The activations per clip are constant: the memory of a batch is the batch times the memory of
# one clip, plus the fixed cost of weights, gradients and optimizer. That is the budget to plan
# with: on a GPU with M bytes free, the largest batch is about (M − 16 bytes × parameters) divided
# by the activations of one clip (section 7 computes this for the `gpu` preset). When that is too
# small, *gradient checkpointing* (`torch.utils.checkpoint`) keeps fewer activations and
# recomputes the rest in the backward pass (about one more forward pass of compute), and
# *gradient accumulation* sums the gradients of several small batches before one update -- the
# trainer's shards do exactly that under data-parallel training.
#
# ## 4 · Where the time goes: a profile of one training step
#
# `speed.profile_step` runs one training step under `torch.profiler` and splits it three ways:
# by phase (forward + loss, backward, optimizer), by operator, and by kind of operator. Each
# operator's *self* time excludes the operators it called, so the self times add up to the step.

# %%
profile = speed.profile_step(video_model, video.loss_fn, batch)
step_total = sum(op.self_s for op in profile.ops)
print(f"one step: {1e3 * profile.total_s:.0f} ms under the profiler; phases: " +
      ", ".join(f"{name} {1e3 * s:.0f} ms" for name, s in profile.phases.items()))
print()
print(profile.table(12))
print()
kinds = profile.by_kind()
for kind, seconds in kinds.items():
    print(f"{kind:38s} {1e3 * seconds:7.1f} ms {seconds / step_total:6.1%}")

# %%
fig, ax = plt.subplots(figsize=(8, 3.2))
ax.barh(list(kinds)[::-1], [100 * s / step_total for s in kinds.values()][::-1])
ax.set_xlabel("share of the step's time (%)")
ax.set_title(f"one training step of the UNet3D, batch {tuple(batch.shape)}")
fig.tight_layout()
plt.show()

# %% [markdown]
# Convolutions (forward and their backward) are the largest kind here, matrix products — most of
# them the temporal attention's einsums, QKᵀ and the weighted sum of V — come next, and a visible
# share is Python and autograd bookkeeping, which shrinks as a share when the model grows and is
# what `torch.compile` removes. Profiles answer "what to speed up": by **Amdahl's law**, making a
# part that takes a fraction p of the time s times faster speeds the whole step up by
# 1 / ((1 − p) + p / s), never more than 1 / (1 − p) (exercise 11.3):

# %%
for kind in list(kinds)[:3]:
    p = kinds[kind] / step_total
    print(f"{kind:38s} p = {p:5.1%}: 2x faster -> step {1 / (1 - p + p / 2):.2f}x faster; free -> at most {1 / (1 - p):.2f}x")

# %% [markdown]
# A second view of the same step: count its arithmetic. `speed.step_flops` counts the
# floating-point operations of the matrix products and convolutions of one forward + backward
# pass on the *meta* device (no memory, no computing), and dividing by the measured time gives
# the rate this machine achieved.

# %%
flops = speed.step_flops(video_model, tuple(batch.shape))
achieved = flops["total"] / base.median_s
print(f"one training step at {tuple(batch.shape)}: {flops['total'] / 1e9:.2f} GFLOP "
      f"(convolutions {(flops.get('convolution', 0) + flops.get('convolution_backward', 0)) / flops['total']:.0%})")
print(f"measured {base.median_s:.3f} s/step in fp32 -> {achieved / 1e9:.1f} GFLOP/s achieved on {device.type} "
      f"with {torch.get_num_threads()} thread(s)")

# %% [markdown]
# ## 5 · What the model attends to (§8.2 / §9.3 "interpretability")
#
# The 3D U-Net mixes frames in one place only: its temporal attention, where every pixel's F
# feature vectors attend to each other (notebook 07). The weights are an F × F matrix per pixel,
# head and layer: row i says how much frame i reads from each frame j. These matrices are the
# model's own account of which frames it combines, so we can look at them.
#
# We take the trained video model (`train_or_load`, the recipe of notebook 07), noise four real
# clips to the middle of the chain, run the model once, and average each layer's weights over
# the clips and the pixels: one F × F picture per layer and head.

# %%
shapes_trainer = train_or_load(video, folder=CHECKPOINTS)
shapes_model = shapes_trainer.ema_model.eval()
clips = video.real_examples(4, seed=5).to(device)  # (4, F, 3, H, W)
t_mid = torch.full((4,), T // 2, device=device)
x_t = q_sample(clips, t_mid, video.schedule, generator=torch.Generator().manual_seed(6))
maps = capture_temporal_attention(shapes_model, x_t, t_mid)  # {layer: (B, heads, H·W, F, F)}
print(f"model trained for {shapes_trainer.step} steps; {len(maps)} temporal attention layers: " +
      ", ".join(f"{name} {tuple(w.shape[1:3])} (heads, pixels)" for name, w in maps.items()))

# %%
heads = next(iter(maps.values())).shape[1]
fig, axes = plt.subplots(len(maps), heads, figsize=(1.6 * heads, 1.6 * len(maps)), squeeze=False)
for row, (name, weights) in enumerate(maps.items()):
    mean = weights.mean(dim=(0, 2))  # (heads, F, F): over clips and pixels
    for head in range(heads):
        ax = axes[row, head]
        image = ax.imshow(mean[head], vmin=0, vmax=1, cmap="magma")
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(f"head {head}", fontsize=8)
        if head == 0:
            ax.set_ylabel(name.replace(".temporal", ""), fontsize=7)
fig.suptitle(f"temporal attention at t = {T // 2}: row = query frame i, column = key frame j", fontsize=9)
fig.tight_layout()
fig.colorbar(image, ax=axes, shrink=0.3, label="weight")
plt.show()

# %% [markdown]
# Two numbers per layer summarise the pictures: how much of each frame's attention stays on
# itself (the diagonal; 1/F means "no preference") and how far, in frames, it reaches on average
# (E|i − j|). And since the data is known, we can ask *where* in the frame the model looks
# across time: at pixels covered by the moving shape, or at the black background? A pixel counts
# as "object" at a layer's resolution when the shape covers it in some frame of the clean clip.

# %%
Tf = video.example_shape[0]
offset = (torch.arange(Tf, device=device)[None, :] - torch.arange(Tf, device=device)[:, None]).abs().float()  # |i − j|
ink = (clips > -0.9).any(dim=2).any(dim=1).float()[:, None]  # (B, 1, H, W): covered in some frame
print(f"{'layer':26s} {'on itself':>9s} {'reach (frames)':>14s} {'object px: self':>15s} {'background: self':>16s}")
for name, weights in maps.items():
    B, heads_, P = weights.shape[:3]
    side = int(P**0.5)
    on_object = F.adaptive_avg_pool2d(ink, side).flatten(1) > 0.5  # (B, P)
    self_weight = weights.diagonal(dim1=-2, dim2=-1).mean(dim=(1, 3))  # (B, P): over heads and frames
    reach = (weights * offset).sum(-1).mean()
    obj = self_weight[on_object].mean().item() if on_object.any() else float("nan")
    bg = self_weight[~on_object].mean().item() if (~on_object).any() else float("nan")
    print(f"{name:26s} {self_weight.mean():9.2f} {reach:14.2f} {obj:15.2f} {bg:16.2f}")
print(f"(uniform attention: {1 / Tf:.2f} on itself, reach {offset.mean():.2f} frames)")

# %% [markdown]
# Attention weights show where information *can* flow, not what the model does with it:
# a layer may read another frame and then ignore what it read (Jain & Wallace 2019, "Attention
# is not Explanation"). An **intervention** answers the causal question: switch the temporal
# attention off (`image_mode=True`: every frame attends only to itself, so frames are denoised
# independently) and measure how the model's estimate of the clean clip changes, and whether it
# gets worse. Here the model predicts x0 directly (the recipe's objective).

# %%
with torch.no_grad():
    for t_value in (T // 4, T // 2, 3 * T // 4):
        tt = torch.full((4,), t_value, device=device)
        noisy = q_sample(clips, tt, video.schedule, generator=torch.Generator().manual_seed(7))
        with_time = shapes_model(noisy, tt)
        frames_alone = shapes_model(noisy, tt, image_mode=True)
        change = (with_time - frames_alone).norm() / with_time.norm()
        print(f"t = {t_value:4d}: attention off changes the x0 estimate by {change:5.1%}; error vs the clean clip "
              f"{F.mse_loss(with_time, clips):.4f} with time, {F.mse_loss(frames_alone, clips):.4f} frame by frame")

# %% [markdown]
# In the `smoke` preset the model has trained for 10 steps: its attention is still uniform (every
# weight 1/F) and switching it off changes little. Trained longer, frames read more from the
# *other* frames than from themselves — to estimate a clean frame, the other noisy frames are extra
# evidence — and switching the attention off hurts most at high noise, where each frame alone says
# least (BENCHMARKS.md, "Results the lessons cite").
#
# Run the `cpu` preset (8 frames, the shipped model) to see whether the maps sharpen.
# What the maps cannot tell you is *why* a layer reads what it reads — that is the honest state
# of interpretability for these models, and the reason §8.2 lists it as a challenge.
#
# ## 6 · Data: 100 clips or 10,000 (§8.2 / §9.3 "data requirements")
#
# The recipes draw a fresh clip for every training example: an endless data set, which real
# video never is. Here the same small model (the recipe's U-Net on 16×16 clips, so that 10,000
# clips fit in memory as bytes) trains for the same number of steps on a fixed set of 100 clips
# or of 10,000. With B clips per step, each of the 100 is seen steps·B/100 times; each of the
# 10,000 only a few times. `course_lib.workshop.data_scale` holds the helpers.

# %%
data_preset = preset.replace(video_size=16)
data_recipe = get_recipe("video-shapes", data_preset)
Td, Cd, Hd, Wd = data_recipe.example_shape
data_steps = 20 if preset.name == "smoke" else 1000
start = time.perf_counter()
clip_set = data_scale.render_clip_set("video-shapes", 10_000, Td, Hd, seed=0)  # the first 100 are the small set
unseen = data_scale.render_clip_set("video-shapes", 100, Td, Hd, seed=1)  # in neither training set
print(f"10,000 clips of {tuple(clip_set.shape[1:])} rendered in {time.perf_counter() - start:.1f} s, "
      f"{clip_set.numel() / MiB:.0f} MiB as bytes; {data_steps} training steps of batch {data_recipe.batch_size}")

# %%
data_results = {}
for n in (100, 10_000):
    path = CHECKPOINTS / f"data-scale-{n}clips-{data_recipe.name(data_steps)}.pt"
    start = time.perf_counter()
    trainer = data_scale.train_on_clip_set(data_recipe, clip_set[:n], data_steps, path=path)
    model = trainer.ema_model
    samples = data_recipe.sample(model, 16, generator=torch.Generator().manual_seed(8)).cpu().clamp(-1, 1)
    data_results[n] = {
        "seconds": time.perf_counter() - start,
        "seen": data_steps * data_recipe.batch_size / n,
        "train loss": data_scale.fixed_noise_loss(model, data_recipe.loss_fn, clip_set[:100]),
        "unseen loss": data_scale.fixed_noise_loss(model, data_recipe.loss_fn, unseen),
        "samples -> train": data_scale.nearest_clip_distance(samples, clip_set[:n]).median().item(),
        "nearest of sample 0": data_scale.from_bytes(clip_set[data_scale.nearest_clip(samples[:1], clip_set[:n])[1]]),
        "real -> train": data_scale.nearest_clip_distance(data_scale.from_bytes(unseen[:16]), clip_set[:n]).median().item(),
        "motion": motion_consistency(samples, data_recipe.object_size).pass_rate,
        "samples": samples,
    }
print(f"{'clips':>6s} {'seen x':>7s} {'loss train':>10s} {'loss unseen':>11s} {'gap':>7s} "
      f"{'NN dist samples':>15s} {'NN dist real':>12s} {'ratio':>6s} {'motion':>6s}")
for n, r in data_results.items():
    print(f"{n:6d} {r['seen']:7.2f} {r['train loss']:10.4f} {r['unseen loss']:11.4f} "
          f"{r['unseen loss'] - r['train loss']:7.4f} {r['samples -> train']:15.3f} {r['real -> train']:12.3f} "
          f"{r['samples -> train'] / r['real -> train']:6.2f} {r['motion']:6.0%}")

# %% [markdown]
# How to read it. Both losses are the diffusion loss with the *same* timesteps and noise for every
# set of 100 clips, so the two columns differ only by the clips: "train" uses the 100 clips both
# models trained on, "unseen" 100 clips neither saw. The **gap** (unseen − train) is memorisation
# in the loss: a model that learned the data *distribution* scores alike on both; one that learned
# its 100 clips scores better on them. The nearest-neighbour columns look at samples: the RMS
# pixel distance of each sample to its nearest training clip, next to the same distance for real
# unseen clips. A ratio well below 1 means the samples are closer to the training clips than new
# real clips are — they are copies.
#
# In the `smoke` preset (20 steps) neither model has learned anything yet and the two rows agree
# up to noise. In the `cpu` preset (1000 steps, 80 views of each of the 100 clips) the 100-clip
# model is better on its own clips and worse on new ones, and its samples sit *closer* to its
# training clips than new real clips do (a ratio below 1): the start of memorisation; the
# 10,000-clip model's samples do not (BENCHMARKS.md has one run's table). The effect grows with the
# views per clip (Somepalli et al. 2023 find diffusion models copy mostly when the training set is
# small), which a longer run shows. Below, one sample of each model next to its nearest training
# clip: for a model that copies, the two rows of a pair look alike.

# %%
pairs = [data_results[n][key][:1] for n in (100, 10_000) for key in ("samples", "nearest of sample 0")]
fig = filmstrip(torch.cat(pairs), row_labels=["100: sample", "its nearest", "10k: sample", "its nearest"],
                title="each model's sample and nearest training clip")
plt.show()

# %% [markdown]
# The field's answers to §8.2's data problem are visible in this course's own design: generate
# data where the physics is known (our bouncing shapes and moving digits), train on *images* and
# video jointly so the plentiful images teach appearance and the scarce video teaches motion
# (`image_mode` in notebook 07; Ho et al. 2022a), and reuse image models' weights to start video
# models (e.g. Blattmann et al. 2023a). What no trick changes: with too few clips for the steps
# trained, a model memorises — and FID-style scores, which compare with the training
# distribution, rate copies of training clips as *excellent*. Nearest-neighbour checks like the
# one above belong in every evaluation.
#
# ## 7 · The honest limits: what a CPU can do, and what changes on a GPU
#
# Put sections 2–4 together for the `gpu` preset's model (64×64 RGB, 16 frames, base width 64,
# batch 16), which no CPU in this course trains. Its FLOPs and activations are *counted* (meta
# device and saved-tensor hooks). Its time is estimated twice: from section 4's measured rate
# (FLOPs per second of the small model), and by timing one training step on a single clip of the
# full size and multiplying by the batch.

# %%
gpu_preset = get_preset("gpu")
gpu_recipe = get_recipe("video-shapes", gpu_preset)
gpu_model = gpu_recipe.build_model().to(device)
gpu_batch_shape = gpu_recipe.sample_shape(gpu_recipe.batch_size)
gpu_flops = speed.step_flops(gpu_model, gpu_batch_shape)["total"]
one_clip = gpu_recipe.replace(batch_size=1).make_batch(torch.Generator().manual_seed(0))
gpu_activations_per_clip = speed.saved_activation_bytes(gpu_model, gpu_recipe.loss_fn, one_clip)
one_clip_step = speed.time_training_steps(gpu_model, gpu_recipe.loss_fn, one_clip, steps=1, warmup=1)
params = count_parameters(gpu_model)
fixed = 16 * params  # weights + gradients + AdamW, fp32
B_gpu, steps_gpu = gpu_recipe.batch_size, gpu_recipe.steps
predicted = gpu_flops / achieved  # section 4's rate, measured on the small model
measured = one_clip_step.median_s * B_gpu  # one clip measured, times the batch (time is linear in the batch)
print(f"gpu preset: {params / 1e6:.1f}M parameters, batch {gpu_batch_shape}, {steps_gpu:,} steps")
print(f"  one step: {gpu_flops / 1e12:.2f} TFLOP")
print(f"  on this {device.type}, from section 4's rate ({achieved / 1e9:.1f} GFLOP/s): {predicted:,.0f} s/step, "
      f"{predicted * steps_gpu / 86400:,.0f} days")
print(f"  on this {device.type}, one clip measured ({one_clip_step.median_s:.2f} s, "
      f"{gpu_flops / B_gpu / one_clip_step.median_s / 1e9:.1f} GFLOP/s) x {B_gpu}: {measured:,.0f} s/step, "
      f"{measured * steps_gpu / 86400:,.0f} days")
print(f"  memory: {fixed / MiB:.0f} MiB fixed + {gpu_activations_per_clip / MiB:.0f} MiB activations per clip "
      f"(fp32) = {(fixed + gpu_recipe.batch_size * gpu_activations_per_clip) / 2**30:.1f} GiB at batch {gpu_recipe.batch_size}")
for tflops in (50, 200):
    print(f"  a GPU sustaining {tflops} TFLOP/s: {1e3 * gpu_flops / (tflops * 1e12):.0f} ms/step, "
          f"{gpu_flops * gpu_recipe.steps / (tflops * 1e12) / 3600:.1f} h for {gpu_recipe.steps:,} steps")

# %%
# §8.1 hopes for real-time generation. How far is this machine at the preset's size?
start = time.perf_counter()
_ = video.sample(shapes_model, 1, steps=preset.sample_steps)
sample_s = time.perf_counter() - start
clip_s = video.example_shape[0] / 8  # the clip's length when played at 8 frames per second
print(f"one {video.example_shape} clip with DDIM {preset.sample_steps}: {sample_s:.2f} s to generate, "
      f"{clip_s:.2f} s to watch at 8 fps: generating takes {sample_s / clip_s:.1f}x the clip's length "
      f"(real time needs at most 1x)")

# %% [markdown]
# The two CPU estimates disagree, and the difference is a lesson of its own: the big model's wide
# convolutions keep the processor's vector units busier than the small model's do, so a rate
# measured on small layers underestimates what large ones achieve (on a GPU the gap between small
# and large is far wider still). Measure at the size you will run. Either way the answer is the
# same: the `smoke` and `cpu` presets (32×32, 4–8 frames, up to a few million parameters) train in
# seconds to tens of minutes, enough to see every idea of the course work; the `gpu` preset would
# take months here — and on a GPU sustaining 50–200 TFLOP/s (a fraction of an H100's bf16 peak;
# the real rate depends on the GPU, the precision and how much of the step is small operations)
# it takes hours.
# The 50 and 200 TFLOP/s rows are arithmetic, not measurements: run this notebook on a GPU (the
# `gpu` preset is chosen automatically with CUDA) and sections 2–4 print the real numbers there —
# including the fp16 + GradScaler row and the CUDA allocator's peak memory.
#
# **More than one GPU.** The `Trainer` supports data-parallel training with PyTorch's own engine:
# `torchrun` starts one process per GPU, each holds a full copy of the model, takes an equal
# share of every batch, and DistributedDataParallel averages the gradients after each backward
# pass, so all copies stay identical. The step then processes B/W clips per GPU for W GPUs: up to
# W times the throughput, minus the time spent exchanging gradients, and each GPU needs the
# activations of only B/W clips — but the weights, gradients and AdamW moments are replicated on
# every GPU (sharding them is what FSDP / ZeRO add). It pays when a step's compute is large
# next to sending the gradients: on GPUs, where a step's compute dwarfs the exchange, the speed-up
# can approach W (not measured in this course); on 2 CPU cores the gain is small
# (BENCHMARKS.md, "Data-parallel training on a CPU"). The commands, and what the trainer
# guarantees (the same numbers as one process with the whole batch), are in
# [docs/training_at_scale.md](../docs/training_at_scale.md).
#
# **What this course cannot show** — limits of scale, not of ideas: photo-realistic, long, or
# text-conditioned video needs models of billions of parameters trained on millions of clips
# (e.g. Ho et al. 2022b, "Imagen Video"; Blattmann et al. 2023b), far beyond any laptop; the
# quality numbers of the `smoke` preset are those of untrained models; and every timing here is
# one machine's, under its load at the time.
#
# ## Summary
#
# * **Steps** (§8.1): sampling time is proportional to the number of network calls: DDIM with
#   20–50 steps costs a twentieth to a fiftieth of DDPM's time. Whether it keeps DDPM's quality
#   depends on the model and on η: deterministic DDIM 50 had 1.8× DDPM's FID on our digits model,
#   DDIM 50 with fresh noise matched it (BENCHMARKS.md). Compare FIDs only at equal N, next to the
#   real-vs-real floor.
# * **Precision and compile** (§8.2): bf16 autocast changes the loss only by rounding and pays on
#   hardware with bf16 units; fp16 needs loss scaling because small gradients underflow;
#   `torch.compile` pays after its (long) first step.
# * **Memory**: weights + gradients + AdamW = 16 bytes per parameter, fixed; activations grow
#   linearly with the batch and usually dominate.
# * **Time**: a profile says what to optimise, Amdahl's law how much it can give.
# * **Interpretability** (§8.2, §9.3): attention maps show which frames each frame reads;
#   interventions (attention off) show whether reading them matters.
# * **Data** (§8.2, §9.3): with few clips a model memorises; the loss gap on unseen clips and
#   nearest-neighbour distances of samples reveal it, FID does not.
#
# **Exercises** (`exercises/11_speed_scale_limits.ipynb`): the DDIM timestep subsequence, the
# memory of a convolution's output, and the speed-up a profile allows (Amdahl).

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    NumericQuestion("DDPM takes T = 1000 steps. How many times faster is DDIM with 20 steps, at the same "
                    "time per step?", 50,
                    "Sampling time is proportional to the number of network calls: 1000 / 20 = 50."),
    Question("Why does fp16 training need a GradScaler while bf16 does not?",
             ["bf16 has more mantissa bits than fp16",
              "fp16's 5-bit exponent lets small gradients underflow to 0; bf16 keeps fp32's exponent range",
              "fp16 is only available on CPUs"],
             "fp16's 5-bit exponent lets small gradients underflow to 0; bf16 keeps fp32's exponent range",
             "Scaling the loss up moves the gradients into fp16's range; bf16 trades precision (8-bit "
             "mantissa) for fp32's range, so nothing underflows."),
    NumericQuestion("A part that takes half of a training step becomes infinitely fast. By Amdahl's law, at "
                    "most how many times faster is the step?", 2,
                    "1 / ((1 − p) + p / s) with p = 0.5 and s → ∞ is 1 / 0.5 = 2: the other half remains."),
    NumericQuestion("In fp32 with AdamW, how many bytes per parameter do the weights, the gradients and the "
                    "two AdamW moments take together?", 16,
                    "4 (weights) + 4 (gradients) + 8 (moments m and v) = 16; activations come on top and grow "
                    "with the batch."),
    Question("Attention maps show which frames each frame reads. What shows whether reading them matters?",
             ["the training loss curve",
              "a larger attention map",
              "an intervention: switch the temporal attention off and measure the change"],
             "an intervention: switch the temporal attention off and measure the change",
             "Attention weights show where information can flow, not what the model does with it (Jain & "
             "Wallace 2019); image_mode=True removes the flow and the error says what it was worth."),
])
