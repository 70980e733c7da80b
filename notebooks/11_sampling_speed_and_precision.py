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
# # 11 · Sampling speed and precision
#
# **Goals.** The seed hopes for "faster generation, up to real time" (§8.1) and names compute as a
# challenge of video diffusion models (§8.2, §9.3: "training and generation need a lot of computing
# resources"). This lesson measures three ways to spend less of it; every claim is a number a cell prints:
#
# | seed | question | section |
# |---|---|---|
# | §8.1 faster generation | how much quality do fewer sampling steps cost, and what does η change? | 1 |
# | §8.2 / §9.3 compute | what does bf16 autocast buy on this machine, and `torch.compile` on a GPU? | 2 |
# | §8.2 / §9.3 compute | where does the time of a training step go, and what can speeding up one part give? | 3 |
#
# Lesson 12 goes on with memory, scale, interpretability, data and the limits of the methods.
#
# **Prerequisites.** Lessons 04 (DDPM, DDIM, the digit judge), 07 (the video U-Net) and 10 (FID);
# what a training step does (forward, backward, optimiser).
#
# **Time.** Reading: about 30 minutes. Running with shipped weights: README's run-time table gives
# the measured run time (`python -m course_lib notebooks time` writes it); the lesson loads the
# shipped digits and shapes models and samples 50 digits with DDIM at 5 to 50 steps (135 network
# calls). DDPM over all 1000 steps would take about 16 minutes more: the `cpu` preset
# times its first 20 steps and extrapolates (set `FULL_DDPM = True` to run it). No `torch.compile`
# on a CPU. Training from scratch: the digits U-Net (about 18 minutes on 2 CPU threads) and the
# shapes U-Net (about 10 minutes), with `train_or_load(recipe, retrain=True)`. In the `smoke`
# preset the models are barely trained: the *timings* are real, the *quality* numbers are noise.
# **Seed sections:** §8.1 (trends), §8.2 and §9.3 (compute).
#
# Timings move with the machine's load: each is a median over several steps, and the CPU seconds
# of this process are printed next to the wall seconds (a CPU share far below 100 % means other
# programs took the cores). Clips have F frames; t is the diffusion step (T of them).

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

from course_lib.config import get_device, get_preset, seed_everything
from course_lib.diffusion.samplers import ddpm_steps
from course_lib.metrics.frechet import frechet_distance_from_features
from course_lib.metrics.judge import get_digit_judge, image_scores, judge_config_for_preset, reference_digits
from course_lib.models.inspect import count_parameters
from course_lib.training import speed
from course_lib.workshop.recipes import get_recipe
from course_lib.workshop.zoo import train_or_load

preset = get_preset()
device = get_device()
seed_everything(0)
CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises
load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
print(f"preset {preset.name} on {device.type}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores, "
      f"load average {load:.1f}")

# %% [markdown]
# ## 1 · Fewer sampling steps (§8.1 "faster generation")
#
# Sampling costs one network call per step, so its time is proportional to the number of steps.
# DDPM visits all T = 1000 steps; DDIM (lessons 02 and 04) jumps along a subsequence of S of them,
# deterministically with η = 0, or adding fresh noise of scale η at each step. How much quality
# does each saved step cost? We take the class-conditional digit U-Net of lesson 04 (shipped, loaded
# from `../checkpoints/`), draw the same N digits — the same labels, the same starting noise, no
# guidance — with DDIM at 5, 10, 20 and 50 steps, at 50 steps with η = 1, and with DDPM, and score
# them with the digit judge: **accuracy** (does the judge read the requested digit?) and **FID**
# (distance of the judge's features from real held-out digits; lower is better).
#
# N is small on purpose: FID's estimate is biased upwards by roughly a constant / N (lesson 10), so
# the numbers below compare *with each other*, at this N, and with the FID of two sets of N *real*
# digits — the best any sampler could score at this N.

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
for steps, eta in ((5, 0.0), (10, 0.0), (20, 0.0), (50, 0.0), (50, 1.0)):
    start = time.perf_counter()
    samples = digits.sample(digit_model, N, steps=steps, labels=labels, eta=eta,
                            generator=torch.Generator().manual_seed(2))
    rows[f"DDIM {steps}" + (f", η = {eta:g}" if eta else "")] = {
        "steps": steps, "seconds": time.perf_counter() - start, **image_scores(samples.cpu(), reference, labels, judge)}

T = preset.num_diffusion_steps
FULL_DDPM = preset.name == "gpu"  # True: all T steps (about 16 minutes for 50 digits on 2 CPU cores)
start = time.perf_counter()
if FULL_DDPM:
    samples = digits.sample(digit_model, N, sampler="ddpm", labels=labels, generator=torch.Generator().manual_seed(2))
    rows["DDPM"] = {"steps": T, "seconds": time.perf_counter() - start,
                    **image_scores(samples.cpu(), reference, labels, judge)}
else:
    probe = 20
    on = next(digit_model.parameters()).device
    trajectory = ddpm_steps(lambda x, t: digit_model(x, t, labels.to(on)), digits.sample_shape(N), digits.schedule,
                            objective=digits.objective, generator=torch.Generator().manual_seed(2), device=on)
    with torch.no_grad():
        for _, _ in zip(range(probe), trajectory):
            pass
    rows["DDPM"] = {"steps": T, "seconds": (time.perf_counter() - start) * T / probe, "accuracy": None, "FID": None}
    print(f"DDPM timed on its first {probe} of {T} steps and extrapolated; its quality is in BENCHMARKS.md")

ddpm_s = rows["DDPM"]["seconds"]
print(f"{'sampler':15s} {'steps':>5s} {'seconds':>8s} {'ms/step':>8s} {'speed-up':>8s} {'accuracy':>8s} {'FID':>7s}")
for name, r in rows.items():
    quality = (f"{r['accuracy']:8.0%} {r['FID']:7.1f}" if r["FID"] is not None else f"{'—':>8s} {'—':>7s}")
    print(f"{name:15s} {r['steps']:5d} {r['seconds']:8.2f} {1e3 * r['seconds'] / r['steps']:8.1f} "
          f"{ddpm_s / r['seconds']:7.0f}x {quality}")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
scored = {name: r for name, r in rows.items() if r["FID"] is not None}
ax.plot([r["seconds"] for r in scored.values()], [r["FID"] for r in scored.values()], "o")
for name, r in scored.items():
    ax.annotate(name, (r["seconds"], r["FID"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.axhline(real_floor, color="k", lw=0.8, ls="--", label=f"two real sets of {N}")
ax.set_xscale("log")
ax.set(xlabel=f"seconds for {N} digits (log)", ylabel=f"FID at N = {N} (lower is better)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Reading the table.** The ms/step column is nearly constant: time is proportional to steps, so
# DDIM with S steps is T/S times faster than DDPM. For a well-trained model the quality falls mainly
# at the smallest S: on CIFAR-10, Song et al. (2021a, Table 1, η = 0) report FID 13.4, 6.8, 4.7 and
# 4.2 at 10, 20, 50 and 100 steps. At N = 10 or 50 neighbouring rows can swap; the real-vs-real floor
# says how large that noise is. In the `smoke` preset the U-Net has trained for a few dozen steps and
# every row is noise (FIDs in the thousands, accuracy near chance): only the time columns mean
# something there.
#
# Compare the two DDIM 50 rows. On a trained `cpu`-preset digits model deterministic DDIM 50 had 1.8×
# DDPM's FID, while DDIM 50 with fresh noise (η = 1) matched DDPM at a twentieth of its time
# (BENCHMARKS.md, "Image"; on a part-trained model deterministic DDIM fell far behind, "Results the
# lessons cite"). A
# likely reason, argued by Karras et al. (2022, Sec. 4): the deterministic path carries every error
# of the model to the end, while fresh noise at each step lets later steps correct earlier ones.
# Fewer steps are a reward for a good model, not a substitute for one.
#
# For video the steps matter even more: every step processes every frame. How far from real time is
# one clip of the shipped shapes model (lesson 07) on this machine?

# %%
video = get_recipe("video-shapes", preset)
shapes_model = train_or_load(video, folder=CHECKPOINTS).ema_model.eval()
start = time.perf_counter()
_ = video.sample(shapes_model, 1, steps=preset.sample_steps)
sample_s = time.perf_counter() - start
clip_s = video.example_shape[0] / 8  # the clip's length when played at 8 frames per second
print(f"one {video.example_shape} clip with DDIM {preset.sample_steps}: {sample_s:.2f} s to generate, "
      f"{clip_s:.2f} s to watch at 8 fps: generating takes {sample_s / clip_s:.1f}x the clip's length "
      f"(real time needs at most 1x)")

# %% [markdown]
# What is left after DDIM is to make each step cheaper (sections 2 and 3) or to need fewer steps
# through training: progressive distillation halves the steps repeatedly down to 4–8 (Salimans & Ho
# 2022), and consistency models aim at 1–2 (Song et al. 2023). They are not in this course; they are
# where §8.1's "real time" comes from.
#
# ## 2 · Mixed precision, and `torch.compile` on a GPU (§8.2 "computational efficiency")
#
# Two switches make a training step cheaper without changing the model:
#
# * **autocast** runs matrix products and convolutions in a 16-bit format while the weights, the
#   optimizer and the loss stay in fp32. **bf16** keeps fp32's 8-bit exponent (same range) with an
#   8-bit mantissa (about 3 significant digits); **fp16** has more mantissa but a 5-bit exponent, so
#   small gradients underflow to zero unless the loss is scaled up first (`GradScaler`). The course's
#   `Trainer` uses fp16 + `GradScaler` on CUDA only and turns fp16 into bf16 on CPU
#   (`course_lib.config.autocast_dtype`). Exercise 11.2 writes such a step by hand.
# * **`torch.compile`** traces the model once and generates fused kernels (fewer passes over memory,
#   less Python). The price is the first step, which includes the compilation: minutes on a CPU, so
#   this lesson compiles only where CUDA is present.
#
# `speed.compare_settings` trains a copy of the video U-Net of lesson 07 per setting, on the same
# batch with the same t and ε, one step of each setting per round, so a change in the machine's load
# hits every setting alike.

# %%
video_model = video.build_model().to(device)
batch = video.make_batch(torch.Generator().manual_seed(0)).to(device)  # (B, F, C, H, W)
settings = {"fp32": {}, "bf16 autocast": {"precision": "bf16"}}
COMPILE = device.type == "cuda" and preset.name != "smoke"  # a GPU only: on a CPU the first step compiles for minutes
if device.type == "cuda":
    settings["fp16 + GradScaler"] = {"precision": "fp16"}
if COMPILE:
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
if not COMPILE:
    print("torch.compile: not run here (it runs on a GPU, outside the smoke preset); "
          "its cost and gain on a CPU are in BENCHMARKS.md, 'Results the lessons cite'")

# %% [markdown]
# What to read: the *loss* column differs between fp32 and bf16 only in the third or fourth digit
# (the same batch, t and ε: the difference is rounding), and *vs fp32* is the speed-up. On CPU, bf16
# helps when the processor has bf16 instructions (`avx512_bf16`, AMX) *and* the convolutions are wide
# enough to dominate: at the `smoke` sizes the casts cost about what they save; with `avx512_bf16`
# the `cpu` preset's model runs about 1.5× faster in bf16 (BENCHMARKS.md, "Results the lessons cite").
#
# `torch.compile` pays back only over many steps: on a CPU its first step took minutes and later
# steps ran about 1.5× faster than eager (BENCHMARKS.md) — worth it for thousands of training steps,
# never for a notebook cell. On a GPU the table above gets the fp16 row and, outside the `smoke`
# preset, the two compiled rows. The `gpu` preset turns on both bf16 and compile (`preset.precision`,
# `preset.compile`), where they pay most: an H100's tensor cores run dense bf16 products at about
# 990 TFLOP/s, against 67 for its plain fp32 units and about 495 for TF32, which PyTorch already uses
# for fp32 convolutions by default (NVIDIA's H100 SXM datasheet; not measured here). So on a GPU bf16
# gains less than the first ratio suggests, and as much from moving half the bytes as from faster
# arithmetic.
#
# Why fp16 needs the scaler and bf16 does not: take the fp32 gradients of one real training step and
# ask how many would be lost in each format.

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
# ## 3 · Where the time goes: a profile of one training step
#
# `speed.profile_step` runs one training step under `torch.profiler` and splits it three ways: by
# phase (forward + loss, backward, optimizer), by operator, and by kind of operator. Each operator's
# *self* time excludes the operators it called, so the self times add up to the step.

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
# A second view of the same step: count its arithmetic. `speed.step_flops` counts the floating-point
# operations of the matrix products and convolutions of one forward + backward pass on the *meta*
# device (no memory, no computing); divided by the measured time, it gives the rate this machine
# achieved. Lesson 12 uses such a count to size the `gpu` preset's training on this machine.

# %%
flops = speed.step_flops(video_model, tuple(batch.shape))
achieved = flops["total"] / base.median_s
print(f"one training step at {tuple(batch.shape)}: {flops['total'] / 1e9:.2f} GFLOP "
      f"(convolutions {(flops.get('convolution', 0) + flops.get('convolution_backward', 0)) / flops['total']:.0%})")
print(f"measured {base.median_s:.3f} s/step in fp32 -> {achieved / 1e9:.1f} GFLOP/s achieved on {device.type} "
      f"with {torch.get_num_threads()} thread(s)")

# %% [markdown]
# ## Summary
#
# * **Steps** (§8.1): sampling time is proportional to the number of network calls: DDIM with 20–50
#   steps costs a twentieth to a fiftieth of DDPM's time. Whether it keeps DDPM's quality depends on
#   the model and on η: deterministic DDIM 50 had 1.8× DDPM's FID on a trained digits model, DDIM 50
#   with fresh noise (η = 1) matched it (BENCHMARKS.md). Compare FIDs only at equal N, next to the
#   real-vs-real floor.
# * **Precision and compile** (§8.2): bf16 autocast changes the loss only by rounding and pays on
#   hardware with bf16 units; fp16 needs loss scaling because small gradients underflow;
#   `torch.compile` pays after its long first step, over many steps, on a GPU.
# * **Time**: a profile says what to optimise, Amdahl's law how much it can give.
#
# **Exercises** (`exercises/11_sampling_speed_and_precision.ipynb`): the DDIM timestep subsequence, a
# mixed-precision training step, and the speed-up a profile allows (Amdahl).

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
    Question("Deterministic DDIM with 50 steps had 1.8× DDPM's FID on a trained digits model. What matched "
             "DDPM's FID at the same 50 steps?",
             ["DDIM 5, because fewer steps make fewer errors",
              "DDIM 50 with fresh noise at each step (η = 1)",
              "DDIM 50 in bf16 autocast"],
             "DDIM 50 with fresh noise at each step (η = 1)",
             "The deterministic path carries each step's error to the end; fresh noise lets later steps "
             "correct earlier ones (Karras et al. 2022), at the same number of network calls."),
    Question("Why does fp16 training need a GradScaler while bf16 does not?",
             ["bf16 has more mantissa bits than fp16",
              "fp16's 5-bit exponent lets small gradients underflow to 0; bf16 keeps fp32's exponent range",
              "fp16 is only available on CPUs"],
             "fp16's 5-bit exponent lets small gradients underflow to 0; bf16 keeps fp32's exponent range",
             "Scaling the loss up moves the gradients into fp16's range; bf16 trades precision (8-bit "
             "mantissa) for fp32's range, so nothing underflows."),
    Question("Why does this lesson run torch.compile on a GPU only?",
             ["torch.compile does not work on a CPU",
              "its first step compiles for minutes, which a notebook cell on a CPU never earns back",
              "compiled models compute a different loss"],
             "its first step compiles for minutes, which a notebook cell on a CPU never earns back",
             "Compiled steps are faster (about 1.5× on a CPU, BENCHMARKS.md), but the compilation is paid "
             "first: it pays over thousands of training steps, most on a GPU."),
    NumericQuestion("A part that takes half of a training step becomes infinitely fast. By Amdahl's law, at "
                    "most how many times faster is the step?", 2,
                    "1 / ((1 − p) + p / s) with p = 0.5 and s → ∞ is 1 / 0.5 = 2: the other half remains."),
])
