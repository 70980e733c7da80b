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
# # 12 · Memory, scale and limits
#
# **Goals.** Lesson 11 made steps cheaper. This lesson measures the rest of the seed's closing
# challenges (§8.2, §9.3) — compute as memory and scale, interpretability ("a complex black box"),
# data ("a lot of video data") — and the limits of this course. Every claim is a number a cell prints:
#
# | seed | question | section |
# |---|---|---|
# | §8.2 / §9.3 compute | where does the memory of a training step go, and how far can the batch grow? | 1 |
# | §8.2 / §9.3 compute | how do gradient accumulation and data-parallel training get past one device? | 2 |
# | §8.2 / §9.3 interpretability | what does the model look at across frames, and does it matter? | 3 |
# | §8.2 / §9.3 data | what changes between 100 and 10,000 training clips? | 4 |
# | §8.1, §9.3 | what can a CPU do, and what changes on a GPU? | 5 |
#
# **Prerequisites.** Lesson 11 (timing a training step, counting its FLOPs); lesson 07 (the 3D U-Net
# and its temporal attention); lesson 10 (motion consistency); what a training step does.
#
# **Time.** Reading: about 35 minutes. Running with shipped weights: README's run-time table gives
# the measured time of a first run (`python -m course_lib notebooks time` writes it); the lesson
# loads the shipped shapes model, and section 4 trains two small models that are not shipped, 1000
# steps each (saved to `../checkpoints/` and loaded on the next run). Training from scratch: the
# shapes U-Net (about 10 minutes on 2 CPU threads, `train_or_load(recipe, retrain=True)`). In the
# `smoke` preset memory and time are real; attention maps and data effects are those of untrained models.
# **Seed sections:** §8.2, §9.3, §8.1. Clips have F frames; t is the diffusion step (T of them).

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
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_lib.config import get_device, get_preset, seed_everything
from course_lib.diffusion.forward import q_sample, training_target
from course_lib.metrics.motion import motion_consistency
from course_lib.models.inspect import capture_temporal_attention, count_parameters
from course_lib.training import speed
from course_lib.views.figures import filmstrip
from course_lib.workshop import data_scale
from course_lib.workshop.recipes import get_recipe
from course_lib.workshop.zoo import train_or_load

preset = get_preset()
device = get_device()
seed_everything(0)
CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises
MiB = 2**20
T = preset.num_diffusion_steps
print(f"preset {preset.name} on {device.type}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores")

# %% [markdown]
# ## 1 · Where the memory goes, and how far the batch can grow
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
# The first three are counted from the parameters; the activations are *measured* exactly by
# autograd's saved-tensor hooks (`speed.saved_activation_bytes`). The real peak is measured too: on
# CUDA by the allocator, on CPU by the growth of the process's peak resident memory (which also counts
# temporary buffers). The model is lesson 07's video U-Net, freshly built (memory ignores training).

# %%
video = get_recipe("video-shapes", preset)
video_model = video.build_model().to(device)
batch = video.make_batch(torch.Generator().manual_seed(0)).to(device)  # (B, F, C, H, W)
memory = speed.training_memory(video_model, video.loss_fn, batch)
peak, method = speed.measured_step_memory(video_model, video.loss_fn, batch)
print(f"{count_parameters(video_model):,}-parameter UNet3D, batch {tuple(batch.shape)}:")
for name, value in [("weights", memory.weights), ("gradients", memory.gradients), ("AdamW moments", memory.optimizer),
                    ("activations (saved for backward)", memory.activations)]:
    print(f"  {name:34s} {value / MiB:8.1f} MiB")
print(f"  {'a step adds: estimated':34s} {memory.step_bytes / MiB:8.1f} MiB (gradients + AdamW + activations)")
measured_text = f"{peak / MiB:8.1f} MiB" if peak is not None else "not measurable here"
print(f"  {'a step adds, measured':34s} {measured_text} ({method})")

# %% [markdown]
# Now the batch: activations grow linearly with it, the rest does not; throughput (clips per second)
# rises with the batch until the cores are busy.

# %%
batch_sizes = [1, 2, 4, 8] if preset.name == "smoke" else [1, 2, 4, 8, 16]
sweep = {}
for b in batch_sizes:
    b_clips = video.replace(batch_size=b).make_batch(torch.Generator().manual_seed(0)).to(device)
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
# The activations per clip are constant: on a GPU with M bytes free the largest batch is about
# (M − 16 bytes × parameters) / (activations of one clip) (section 5 does this for the `gpu` preset).
# Past that, *gradient checkpointing* (`torch.utils.checkpoint`) keeps fewer activations and
# recomputes the rest in the backward pass, and gradient accumulation splits the batch.
#
# ## 2 · Gradient accumulation and data-parallel training
#
# A batch's loss is the mean of its clips' losses, so its gradient is the sum of the gradients of A
# micro-batches of B/A clips, each loss divided by A: **gradient accumulation**. `backward()` adds
# into `.grad`, the optimizer steps once after the last micro-batch, and only one micro-batch's
# activations are alive at a time. Below, one batch and its micro-batches of 2 clips, with the same
# t and ε for every clip.

# %%
B, micro = batch.shape[0], 2
g = torch.Generator().manual_seed(3)
t = torch.randint(0, T, (B,), generator=g).to(device)
eps = torch.randn(batch.shape, generator=g).to(device)
target = training_target(batch, eps, t, video.schedule, video.objective)
grads = []
for parts in ([slice(0, B)], [slice(i, i + micro) for i in range(0, B, micro)]):  # one batch, then micro-batches
    video_model.zero_grad(set_to_none=True)
    for rows in parts:  # backward() adds each part's gradient into .grad
        x_t = q_sample(batch[rows], t[rows], video.schedule, noise=eps[rows])
        (F.mse_loss(video_model(x_t, t[rows]), target[rows]) / len(parts)).backward()
    grads.append(torch.cat([p.grad.flatten() for p in video_model.parameters() if p.grad is not None]))
print(f"one batch of {B} vs {B // micro} micro-batches of {micro}: the gradients differ by at most "
      f"{(grads[0] - grads[1]).abs().max():.1e} (largest entry {grads[0].abs().max():.1e}): rounding")
print(f"activations: {sweep[B]['activations'] / MiB:.1f} MiB for the batch, "
      f"{sweep[micro]['activations'] / MiB:.1f} MiB for one micro-batch (section 1)")

# %% [markdown]
# The `Trainer` does this with `TrainConfig(accumulate=A)` (`--accumulate A` on the command line).
#
# **More than one GPU.** Data-parallel training computes the same sum on W devices at once:
# `torchrun` starts one process per GPU, each with a full copy of the model and B/W clips of every
# batch; DistributedDataParallel averages the gradients in the backward pass, so the copies stay
# identical. Each GPU needs the activations of B/W clips, but the weights, gradients and AdamW moments
# are replicated (sharding them is what FSDP / ZeRO add). On GPUs the speed-up can approach W (not
# measured here); on 2 CPU cores it is small (BENCHMARKS.md, "Data-parallel training on a CPU").
# Commands and guarantees: [docs/training_at_scale.md](../docs/training_at_scale.md).
#
# ## 3 · What the model attends to (§8.2 / §9.3 "interpretability")
#
# The 3D U-Net mixes frames only in its temporal attention (lesson 07): per pixel, head and layer an
# F × F matrix whose row i says how much frame i reads from each frame j. We noise four real clips to
# the middle of the chain, run the shipped shapes model once, and summarise each layer: how much of
# each frame's attention stays on itself (the diagonal; 1/F means "no preference"), how far in frames
# it reaches on average (E|i − j|), and, in the picture, its weights averaged over clips and pixels.

# %%
shapes_trainer = train_or_load(video, folder=CHECKPOINTS)
shapes_model = shapes_trainer.ema_model.eval()
clips = video.real_examples(4, seed=5).to(device)  # (4, F, 3, H, W)
t_mid = torch.full((4,), T // 2, device=device)
x_t = q_sample(clips, t_mid, video.schedule, generator=torch.Generator().manual_seed(6))
maps = capture_temporal_attention(shapes_model, x_t, t_mid)  # {layer: (B, heads, H·W, F, F)}
Fr = video.example_shape[0]
offset = (torch.arange(Fr)[None, :] - torch.arange(Fr)[:, None]).abs().float().to(device)  # |i − j|
print(f"model trained for {shapes_trainer.step} steps\n{'layer':26s} {'(heads, pixels)':>15s} {'on itself':>9s} "
      f"{'reach (frames)':>14s}")
for name, weights in maps.items():
    print(f"{name:26s} {str(tuple(weights.shape[1:3])):>15s} {weights.diagonal(dim1=-2, dim2=-1).mean():9.2f} "
          f"{(weights * offset).sum(-1).mean():14.2f}")
print(f"(uniform attention: {1 / Fr:.2f} on itself, reach {offset.mean():.2f} frames)")

# %%
heads = next(iter(maps.values())).shape[1]
fig, axes = plt.subplots(len(maps), heads, figsize=(1.6 * heads, 1.6 * len(maps)), squeeze=False)
for row, (name, weights) in enumerate(maps.items()):
    mean = weights.mean(dim=(0, 2))  # (heads, F, F): over clips and pixels
    for head in range(heads):
        image = axes[row, head].imshow(mean[head], vmin=0, vmax=1, cmap="magma")
        axes[row, head].set(xticks=[], yticks=[], title=f"head {head}" if row == 0 else "",
                            ylabel=name.replace(".temporal", "") if head == 0 else "")
fig.suptitle(f"temporal attention at t = {T // 2}: row = query frame i, column = key frame j", fontsize=9)
fig.tight_layout()
fig.colorbar(image, ax=axes, shrink=0.3, label="weight")
plt.show()

# %% [markdown]
# Attention weights show where information *can* flow, not what the model does with it: a layer may
# read another frame and ignore what it read (Jain & Wallace 2019, "Attention is not Explanation").
# An **intervention** answers the causal question: switch the temporal attention off
# (`image_mode=True`: frames are denoised independently) and measure how the model's estimate of the
# clean clip (the recipe predicts x0) changes, and whether it gets worse.

# %%
with torch.no_grad():
    for t_value in (T // 4, T // 2, 3 * T // 4):
        tt = torch.full((4,), t_value, device=device)
        noisy = q_sample(clips, tt, video.schedule, generator=torch.Generator().manual_seed(7))
        with_time = shapes_model(noisy, tt)
        frames_alone = shapes_model(noisy, tt, image_mode=True)
        print(f"t = {t_value:4d}: attention off changes the x0 estimate by "
              f"{(with_time - frames_alone).norm() / with_time.norm():5.1%}; error vs the clean clip "
              f"{F.mse_loss(with_time, clips):.4f} with time, {F.mse_loss(frames_alone, clips):.4f} frame by frame")

# %% [markdown]
# In the `smoke` preset the model has trained for 10 steps: its attention is still uniform and
# switching it off changes little. Trained longer, frames read more from the *other* noisy frames and
# switching attention off hurts most at high noise, where each frame alone says least (BENCHMARKS.md,
# "Results the lessons cite"; the `cpu` preset shows the shipped model). What the maps cannot tell
# you is *why* a layer reads what it reads — the reason §8.2 lists interpretability as a challenge.
#
# ## 4 · Data: 100 clips or 10,000 (§8.2 / §9.3 "data requirements")
#
# The recipes draw a fresh clip for every example: an endless data set, which real video never is.
# Here the same small model (the recipe's U-Net on 16×16 clips) trains for the same steps on a fixed
# set of 100 clips or of 10,000 (helpers: `course_lib.workshop.data_scale`).

# %%
data_recipe = get_recipe("video-shapes", preset.replace(video_size=16))
Fd, Cd, Hd, Wd = data_recipe.example_shape
data_steps = 20 if preset.name == "smoke" else 1000
clip_set = data_scale.render_clip_set("video-shapes", 10_000, Fd, Hd, seed=0)  # the first 100 are the small set
unseen = data_scale.render_clip_set("video-shapes", 100, Fd, Hd, seed=1)  # in neither training set
print(f"10,000 clips of {tuple(clip_set.shape[1:])}, {clip_set.numel() / MiB:.0f} MiB as bytes; "
      f"{data_steps} training steps of batch {data_recipe.batch_size}")

# %%
data_results = {}
for n in (100, 10_000):
    path = CHECKPOINTS / f"data-scale-{n}clips-{data_recipe.name(data_steps)}.pt"
    model = data_scale.train_on_clip_set(data_recipe, clip_set[:n], data_steps, path=path).ema_model
    samples = data_recipe.sample(model, 16, generator=torch.Generator().manual_seed(8)).cpu().clamp(-1, 1)
    data_results[n] = {
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
# How to read it. Both losses use the *same* timesteps and noise, so they differ only by the clips:
# "train" the 100 clips both models trained on, "unseen" 100 clips neither saw. The **gap**
# (unseen − train) is memorisation in the loss. The nearest-neighbour columns give each sample's RMS
# pixel distance to its nearest training clip, next to the same for real unseen clips: a ratio well
# below 1 means samples are closer to the training clips than new real clips are — copies.
#
# In the `smoke` preset (20 steps) the rows agree up to noise. In the `cpu` preset (80 views of each
# of the 100 clips) the 100-clip model is better on its clips, worse on new ones, and its samples sit
# closer to its training clips than new real clips do: the start of memorisation (BENCHMARKS.md has
# one run's table; Somepalli et al. 2023 find copying mostly with small training sets). Below, a
# sample of each model next to its nearest training clip: for a model that copies, they look alike.

# %%
pairs = [data_results[n][key][:1] for n in (100, 10_000) for key in ("samples", "nearest of sample 0")]
fig = filmstrip(torch.cat(pairs), row_labels=["100: sample", "its nearest", "10k: sample", "its nearest"],
                title="each model's sample and nearest training clip")
plt.show()

# %% [markdown]
# The field's answers to §8.2's data problem show in this course's design: data whose physics is
# known (our shapes and digits), joint image and video training (`image_mode`, lesson 07; Ho et al.
# 2022a), video models started from image models' weights (e.g. Blattmann et al. 2023a). What no trick
# changes: with too few clips, a model memorises — and FID, which compares with the training
# distribution, rates copies as *excellent*. Nearest-neighbour checks belong in every evaluation.
#
# ## 5 · The honest limits: what a CPU can do, and what changes on a GPU
#
# Put it together for the `gpu` preset's model (64×64 RGB, 16 frames, base width 64, batch 16), which
# no CPU in this course trains. Its FLOPs and activations are *counted*; its time is estimated twice:
# from the FLOP rate this machine achieved on the small model in section 1 (as in lesson 11), and by
# timing one training step on a single clip of the full size, times the batch.

# %%
achieved = speed.step_flops(video_model, tuple(batch.shape))["total"] / sweep[B]["seconds"]  # FLOP/s, small model
gpu_recipe = get_recipe("video-shapes", get_preset("gpu"))
gpu_model = gpu_recipe.build_model().to(device)
gpu_batch_shape = gpu_recipe.sample_shape(gpu_recipe.batch_size)
gpu_flops = speed.step_flops(gpu_model, gpu_batch_shape)["total"]
one_clip = gpu_recipe.replace(batch_size=1).make_batch(torch.Generator().manual_seed(0)).to(device)
gpu_activations_per_clip = speed.saved_activation_bytes(gpu_model, gpu_recipe.loss_fn, one_clip)
one_clip_step = speed.time_training_steps(gpu_model, gpu_recipe.loss_fn, one_clip, steps=1, warmup=1)
params, B_gpu, steps_gpu = count_parameters(gpu_model), gpu_recipe.batch_size, gpu_recipe.steps
fixed, predicted = 16 * params, gpu_flops / achieved  # fixed: weights + gradients + AdamW in fp32
measured = one_clip_step.median_s * B_gpu  # one clip measured, times the batch (time is linear in the batch)
print(f"gpu preset: {params / 1e6:.1f}M parameters, batch {gpu_batch_shape}, {steps_gpu:,} steps; "
      f"one step: {gpu_flops / 1e12:.2f} TFLOP")
print(f"  on this {device.type}, from the small model's rate ({achieved / 1e9:.1f} GFLOP/s): {predicted:,.0f} s/step, "
      f"{predicted * steps_gpu / 86400:,.0f} days")
print(f"  on this {device.type}, one clip measured ({one_clip_step.median_s:.2f} s, "
      f"{gpu_flops / B_gpu / one_clip_step.median_s / 1e9:.1f} GFLOP/s) x {B_gpu}: {measured:,.0f} s/step, "
      f"{measured * steps_gpu / 86400:,.0f} days")
print(f"  memory: {fixed / MiB:.0f} MiB fixed + {gpu_activations_per_clip / MiB:.0f} MiB activations per clip "
      f"(fp32) = {(fixed + B_gpu * gpu_activations_per_clip) / 2**30:.1f} GiB at batch {B_gpu}")
for tflops in (50, 200):
    print(f"  a GPU sustaining {tflops} TFLOP/s: {1e3 * gpu_flops / (tflops * 1e12):.0f} ms/step, "
          f"{gpu_flops * steps_gpu / (tflops * 1e12) / 3600:.1f} h for {steps_gpu:,} steps")

# %% [markdown]
# The two CPU estimates disagree: the big model's wide convolutions keep the vector units busier than
# the small model's, so a rate measured on small layers underestimates large ones. Measure at the
# size you will run. Either way, the `smoke` and `cpu` presets train in seconds to tens of minutes,
# enough to see every idea work; the `gpu` preset would take months here, and hours on a GPU
# sustaining 50–200 TFLOP/s — arithmetic, not a measurement: on a GPU (the `gpu` preset is chosen
# automatically with CUDA) lessons 11 and 12 print the real numbers.
#
# **What this course cannot show** — limits of scale, not of ideas: photo-realistic, long or
# text-conditioned video needs billions of parameters trained on millions of clips (e.g. Ho et al.
# 2022b, "Imagen Video"; Blattmann et al. 2023b); the `smoke` preset's quality numbers are those of
# untrained models; and every timing here is one machine's, under its load at the time.
#
# ## Summary
#
# * **Memory**: weights + gradients + AdamW = 16 bytes per parameter; activations grow with the batch.
# * **Scale**: accumulation gives a batch's gradient with one micro-batch's activations; data-parallel
#   training computes the same sum on W devices, each holding a full copy of the model.
# * **Interpretability** (§8.2): attention maps show what each frame reads; interventions, whether it matters.
# * **Data** (§8.2): with few clips a model memorises; the loss gap and nearest-neighbour distances
#   reveal it, FID does not.
# * **Limits**: the `gpu` preset's training is months on a CPU, hours on a GPU: count before you run.
#
# **Exercises** (`exercises/12_memory_scale_and_limits.ipynb`): the memory of a convolution's output.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    NumericQuestion("In fp32 with AdamW, how many bytes per parameter do the weights, the gradients and the "
                    "two AdamW moments take together?", 16,
                    "4 (weights) + 4 (gradients) + 8 (moments m and v) = 16; activations grow with the batch."),
    NumericQuestion("A batch of 32 clips does not fit, so you accumulate gradients over 4 micro-batches. The "
                    "activations of how many clips are alive at a time?", 8,
                    "One micro-batch of 32 / 4 = 8 clips: its activations are freed by its backward pass before "
                    "the next one runs, and the gradients (each loss divided by 4) add up to the batch's."),
    Question("Attention maps show which frames each frame reads. What shows whether reading them matters?",
             ["the training loss curve",
              "a larger attention map",
              "an intervention: switch the temporal attention off and measure the change"],
             "an intervention: switch the temporal attention off and measure the change",
             "Attention weights show where information can flow, not what the model does with it (Jain & "
             "Wallace 2019); image_mode=True removes the flow and the error says what it was worth."),
    Question("A model trained on 100 clips gets an excellent FID. What reveals that it copies its training clips?",
             ["an even lower FID at a larger N",
              "samples closer to their nearest training clip than new real clips are",
              "a training loss that keeps falling"],
             "samples closer to their nearest training clip than new real clips are",
             "FID compares with the training distribution, so copies score well; nearest-neighbour "
             "distances, next to those of unseen real clips, show the copying (Somepalli et al. 2023)."),
])
