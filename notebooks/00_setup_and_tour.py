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
# # 00 · Set-up and a tour of the course
#
# **Goals.** Check that your machine runs the course, learn how presets choose the size of every
# experiment, meet the conventions used in every lesson, and see how exercises are checked.
#
# **Prerequisites.** Python and a terminal; the course installed (README, "Set-up"). For the course
# as a whole: PyTorch basics (tensors, autograd, `nn.Module`, an optimiser step) and Gaussians,
# means, variances and expectations.
#
# **Time.** Reading: about 15 minutes. Running with shipped weights: nothing to load or train (the
# README's table gives the measured run time). Training from scratch: nothing to train.
# **Seed sections:** §7 (tools and resources).
#
# The course follows one article on video diffusion (the "seed") from the 1D forward chain to
# video models you train yourself. Everything it needs is generated here: no data set or weight
# file is ever downloaded.

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

# %% [markdown]
# The cell above starts every notebook of the course. Here it found the course installed and
# printed what it runs on; on Colab it first installs the course from your clone (README, "Run on
# Colab"), then detects the GPU and picks the `gpu` preset.

# %%
import torch

from course_lib.config import PRESETS, get_device, get_preset, seed_everything

# %% [markdown]
# ## Presets
#
# Every notebook asks `get_preset()` how big to make things. The environment variable
# `COURSE_PRESET` chooses one of three presets; without it the hardware decides (`gpu` when CUDA
# is there, else `cpu`):
#
# | preset | for | what it means |
# |---|---|---|
# | `smoke` | CI, a first read | tiny models, few steps: each lesson runs quickly; samples are noise |
# | `cpu` | a laptop | minutes of training; samples you recognise |
# | `gpu` | a CUDA GPU (Colab) | full size: 64×64 video, 16 frames, mixed precision |

# %%
preset = get_preset()
device = get_device()
for name, p in PRESETS.items():
    marker = "  <- this run" if name == preset.name else ""
    print(f"{name:6s} image {p.image_size}px, video {p.video_frames}x{p.video_size}px, "
          f"{p.image_train_steps} image steps, precision {p.precision}{marker}")

# %% [markdown]
# ## Seeds
#
# `seed_everything(seed)` seeds Python, NumPy and PyTorch and returns a `torch.Generator`. The same
# seed gives the same numbers on a CPU, so your plots match the ones described in the text.

# %%
g = seed_everything(0)
first = torch.randn(3, generator=g)
g = seed_everything(0)
again = torch.randn(3, generator=g)
assert torch.equal(first, again)
print("same seed, same numbers:", [round(v, 4) for v in first.tolist()])

# %% [markdown]
# ## Conventions used everywhere
#
# The README's "Conventions" table is the one notation of the course; the rules to remember:
#
# * **Two indices, never one letter.** A diffusion step is t, and there are T of them (1000 here); a
#   frame is f, and a clip has F of them. A clip batch is `(B, F, C, H, W)`, an image batch
#   `(B, C, H, W)`, values in `[-1, 1]`. (Some code names the frame count `T`, as in
#   `T = preset.video_frames`; the text never does.)
# * **Formulas count like the paper, code from 0.** Formulas use steps t = 1 … T (x_0 is data, x_T
#   is noise); code uses `t = 0 … T−1`, and code `t` is the paper's step t + 1. So code `t = 0` is
#   *one* step of noise and the seed's worked example x_0 → x_3 is code `t = 0, 1, 2`. Plots and
#   printed lines say "code timestep t" or "t = …" for the code index.
# * **Notation.** α_t is the signal variance one step keeps, β_t = 1 − α_t the noise variance it
#   adds, ᾱ_t = α_1·α_2·…·α_t the signal variance left after t steps.
# * **Three objects with clean seams:** a *network* maps `(x_t, t)` to a prediction and knows
#   nothing of noise; `course_lib.diffusion.forward` and `course_lib.diffusion.samplers` own the schedule, the loss
#   and sampling; the trainer owns data, optimiser and EMA.
#
# A first taste: noise a made-up image with the closed form q(x_t | x0).

# %%
import matplotlib.pyplot as plt

from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.schedules import make_schedule

yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
ring = ((xx**2 + yy**2).sqrt() - 0.6).abs() < 0.12
image = torch.where(ring, 1.0, -1.0)[None, None]  # (B=1, C=1, H, W) in [-1, 1]
schedule = make_schedule("linear", 1000)
fig, axes = plt.subplots(1, 5, figsize=(10, 2.2))
for ax, t in zip(axes, [0, 100, 250, 500, 999]):
    noisy = q_sample(image, t, schedule, generator=torch.Generator().manual_seed(t))
    ax.imshow(noisy[0, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
    ax.set_title(f"code t = {t}")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Tools (seed §7)
#
# The seed names PyTorch, TensorFlow and Hugging Face. This course uses **PyTorch** only, and
# deliberately does not download pretrained models from a hub: every model you see is trained in
# these notebooks (or by the course's own `train` command), so you can see exactly what produced it.
#
# ## How exercises work
#
# Each notebook has an exercise notebook in `exercises/` (your copy, with
# `raise NotImplementedError("Exercise N.M: ...")` where your code goes) and a filled twin in
# `solutions/`. Under each exercise a *check cell* calls one function, e.g.
# `check_to_model_range(to_model_range)`, which runs your function against the course's reference
# on fresh inputs and prints one line: `✓ Exercise 0.1: ...` or `✗ Exercise 0.1: ...` with a hint.
#
# To check a whole exercise notebook from a terminal (it passes only when every answer is right):
#
# ```
# python -m pytest --nbval exercises/00_setup_and_tour.ipynb
# ```
#
# Try it now: open `exercises/00_setup_and_tour.ipynb`.

# %% [markdown]
# ## Summary
#
# * The set-up cell at the top of every lesson installs the course where needed and prints the
#   device and preset; `COURSE_PRESET=smoke|cpu|gpu` overrides the choice.
# * `seed_everything(seed)` makes every run repeatable.
# * Diffusion steps are t (T of them, 0-indexed in code: code t is the paper's step t + 1); frames
#   are f (F of them); clips are `(B, F, C, H, W)` in [−1, 1].
# * Exercises live in `exercises/`; a check cell prints one ✓ or ✗ line.
#
# Next: `01_forward_chain` noises data step by step. Exercises: `exercises/00_setup_and_tour.ipynb`.

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("In code, what does the timestep t = 0 mean?",
             ["no noise at all", "one step of noise (the paper's step 1)", "pure noise"],
             "one step of noise (the paper's step 1)",
             "Code is 0-indexed: code t is the paper's step t + 1, so t = 0 has already taken one noising "
             "step, and t = T − 1 is (almost) pure noise."),
    NumericQuestion("With T = 1000 diffusion steps, what is the largest code timestep?", 999,
                    "Code timesteps run 0 … T − 1."),
    Question("A batch of 4 RGB clips of 8 frames, 32×32 pixels, has which shape?",
             ["(8, 4, 3, 32, 32)", "(4, 3, 8, 32, 32)", "(4, 8, 3, 32, 32)"], "(4, 8, 3, 32, 32)",
             "The course's layout is (B, F, C, H, W): clips, frames, channels, height, width, frames second."),
    Question("Without COURSE_PRESET and without a CUDA GPU, which preset do the lessons use?",
             ["cpu", "smoke", "gpu"], "cpu",
             "The hardware decides: gpu with CUDA, else cpu. The tests set smoke explicitly."),
])
