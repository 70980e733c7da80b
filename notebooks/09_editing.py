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
# # 09 · Editing videos with a diffusion model
#
# **Goals.** Use one unconditional video model, with no retraining, to edit clips three ways, and
# measure each edit against a ground truth: **SDEdit** (re-noise a rough clip to some level t and
# denoise it back — how far to go is a trade-off you will set on a slider), **inpainting** a region
# in every frame (RePaint-style resampling), and **repairing** dropped or corrupted frames.
#
# **Prerequisites.** Lesson 08 (conditional sampling by replacement, reconstruction guidance);
# q(x_t | x_0) from lesson 01.
#
# **Time.** Reading: about 35 minutes. Running with shipped weights: the lesson edits with the
# shipped 3D U-Net of lesson 07 (loaded in seconds); its sampling has not been timed in the `cpu`
# preset yet. Training from scratch (`cpu` preset): that U-Net, about 10 minutes on 2 CPU threads
# (the shipped file's record, BENCHMARKS.md), with `train_or_load(recipe, retrain=True)`.
# **Seed section:** §6 ("video editing: add effects, change the background, repair damaged
# videos").
#
# Clips have F frames; t is the diffusion step (T = 1000 of them). The code names the frame count `T`.
#
# Every edit starts from a true clip of bouncing shapes, damages it on purpose, and scores the
# result against the undamaged clip — so "it looks better" becomes a number.

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

from course_lib.config import get_preset, seed_everything
from course_lib.data.video import bouncing_shapes
from course_lib.diffusion.editing import inpaint, repair_frames, sdedit, sdedit_start
from course_lib.metrics.image import psnr
from course_lib.metrics.prediction import frames_psnr, interpolate_frames, motion_passes, palette_distance, region_psnr
from course_lib.workshop.recipes import get_recipe
from course_lib.views.figures import animate, filmstrip, slider_view
from course_lib.workshop.zoo import train_or_load

CHECKPOINTS = Path("..") / "checkpoints"  # shared by the lessons and the exercises

preset = get_preset()
g = seed_everything(0)
recipe = get_recipe("video-shapes", preset)
T, S = preset.video_frames, preset.video_size
n_edit = max(8, preset.eval_samples // 32)  # clips per experiment: 8 (smoke), 15 (cpu), 62 (gpu)
min_speed = S / 64  # half the data's slowest speed: a slower object counts as stopped (see notebook 08)
schedule = recipe.schedule
sampling = dict(steps=preset.sample_steps, objective=recipe.objective)

start = time.perf_counter()
model = train_or_load(recipe, folder=CHECKPOINTS).ema_model.eval()  # the unconditional 3D U-Net of notebooks 07 and 08
truth = bouncing_shapes(n_edit, frames=T, size=S, seed=909).video  # (n_edit, F, 3, S, S): the ground truth
print(f"preset {preset.name}: {n_edit} clips of {T} frames, {S}x{S}; "
      f"model ready in {time.perf_counter() - start:.0f} s")


def motion_rate(video: torch.Tensor) -> float:
    """Share of clips showing one object moving like the data (notebook 08's motion test)."""
    return float(motion_passes(video, recipe.object_size, min_speed).mean())


def off_colour(video: torch.Tensor) -> float:
    """Mean distance of the pixels to the data's colours (0 = clean shapes on black; blur, blocks, noise: more)."""
    return float(palette_distance(video).mean())


print(f"the true clips: off-colour {off_colour(truth):.3f}, motion pass {100 * motion_rate(truth):.0f} %")


# %% [markdown]
# ## 1 · SDEdit: re-noise, then denoise (Meng et al. 2022)
#
# Given a rough clip y — here the true clip made blocky, as if someone had sketched it at a quarter
# of the resolution — pick a strength s ∈ [0, 1], start at code timestep t₀ = round(s·(T−1)) of the
# T diffusion steps (not the clip's frames), draw
#
# $$x_{t_0} = \sqrt{\bar\alpha_{t_0}}\, y + \sqrt{1-\bar\alpha_{t_0}}\,\varepsilon \qquad \text{(Ho et al. 2020, Eq. 4)}$$
#
# and run the ordinary sampler from t₀ down to 0. The noise hides the details that are wrong (the
# blocks) but not the coarse layout (where the colour is), and the model fills in details that
# look like its training data. Small s: faithful to y, blocks and all. Large s: realistic, but the
# layout is the model's invention, not y's. Because we know the clip y came from, we can measure
# both sides of the trade-off — and "looks like the data" too: how far the pixels are from the
# data's colours (`palette_distance`: clean shapes on black score about 0, blocks and blur more),
# and whether the clip passes the motion test.

# %%
def blocky(video: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """A rough version of each frame: averaged over factor x factor blocks, then scaled back up."""
    b, t = video.shape[:2]
    frames = video.flatten(0, 1)
    rough = F.interpolate(F.avg_pool2d(frames, factor), scale_factor=factor, mode="nearest")
    return rough.view(b, t, *rough.shape[1:])


rough = blocky(truth)
strengths = [round(0.1 * i, 1) for i in range(11)]
start = time.perf_counter()
edited = {s: sdedit(model, rough, s, schedule, generator=torch.Generator().manual_seed(1), **sampling)
          for s in strengths}
print(f"SDEdit at {len(strengths)} strengths in {time.perf_counter() - start:.0f} s; strength s starts at "
      f"t0 = round(s·{schedule.num_steps - 1}), e.g. s = 0.5 -> t0 = {sdedit_start(0.5, schedule.num_steps)}")

psnr_truth = [psnr(edited[s].flatten(0, 1), truth.flatten(0, 1)).item() for s in strengths]
psnr_input = [psnr(edited[s].flatten(0, 1), rough.flatten(0, 1)).item() if s > 0 else float("inf") for s in strengths]
off_colours = [off_colour(edited[s]) for s in strengths]
realism = [motion_rate(edited[s]) for s in strengths]

# %% [markdown]
# Move the slider: the rows are the rough input, the SDEdit result at that strength, and the clip
# the input was made from. (All strengths were computed above, so the slider only redraws.)

# %%
def render(fig, strength):
    s = round(strength, 1)
    ax = fig.subplots()
    rows = torch.cat([rough[:2], edited[s][:2], truth[:2]])
    filmstrip(rows, ax=ax, row_labels=["rough 0", "rough 1", "SDEdit 0", "SDEdit 1", "truth 0", "truth 1"],
              out_of_range="clip")
    i = strengths.index(s)
    ax.set_title(f"strength {s} (t0 = {sdedit_start(s, schedule.num_steps)}): PSNR vs truth {psnr_truth[i]:.1f} dB, "
                 f"vs input {psnr_input[i]:.1f} dB\noff-colour {off_colours[i]:.3f}, "
                 f"motion pass {100 * realism[i]:.0f} %", fontsize=9)


slider_view(render, figsize=(8, 5), strength=(0.0, 1.0, 0.1, 0.5))

# %%
fig, (ax_psnr, ax_colour, ax_motion) = plt.subplots(1, 3, figsize=(13, 3.2))
ax_psnr.plot(strengths, psnr_truth, marker="o", label="vs the true clip (restoration)")
ax_psnr.plot(strengths[1:], psnr_input[1:], marker="o", label="vs the rough input (faithfulness)")
ax_psnr.set(xlabel="SDEdit strength s", ylabel="PSNR (dB)", title="faithful or restored?")
ax_psnr.legend(fontsize=8)
ax_colour.plot(strengths, off_colours, marker="o", color="C2")
ax_colour.axhline(off_colour(truth), color="gray", ls=":", label="the true clips")
ax_colour.set(xlabel="SDEdit strength s", ylabel="distance to the data's colours", title="clean shapes?")
ax_colour.legend(fontsize=8)
ax_motion.plot(strengths, [100 * r for r in realism], marker="o", color="C3")
ax_motion.set(xlabel="SDEdit strength s", ylabel="motion pass (%)", ylim=(-5, 105), title="moving like the data?")
plt.show()
best = strengths[max(range(len(strengths)), key=lambda i: psnr_truth[i])]
print(f"closest to the truth at strength {best}: {max(psnr_truth):.1f} dB "
      f"(the rough input itself: {psnr_truth[0]:.1f} dB)")

# %% [markdown]
# Faithfulness to the input can only fall as s grows: more of y is replaced by noise. Distance to
# the *truth* first improves — the blocks are replaced by sharp shapes where the blocks were — and
# then worsens, once the noise also erases where the object was and the model puts it anywhere.
# The colours tell the realism side: at s = 0 the blocks are full of in-between colours, and the
# more noise the model gets to remove, the closer its output comes to clean shapes on black. (The
# motion test alone does not see blocks: a blocky object still moves like one.)
# There is no strength that is best for everything; for a new clip you choose by eye, which is why
# the slider is the natural interface for SDEdit.
#
# ## 2 · Inpainting a region in every frame
#
# Now a hole: a square in the middle of every frame is lost (imagine a logo removed). The known
# pixels are everything outside it, so this is conditional sampling with a pixel mask instead of a
# frame mask — the replacement method of notebook 08 works unchanged. **RePaint** (Lugmayr et al.
# 2022) adds *resampling*: after each step t → t', jump back to t by the forward process,
#
# $$x_t = \sqrt{\bar\alpha_t/\bar\alpha_{t'}}\; x_{t'} + \sqrt{1 - \bar\alpha_t/\bar\alpha_{t'}}\;\varepsilon ,$$
#
# and redo the step, r times in all. Each round lets the generated part adjust to the known part —
# the fix for the replacement method's drift that notebook 08 measured on a Gaussian.

# %%
hole = torch.zeros(1, 1, 1, S, S)
hole[..., S // 4 : 3 * S // 4, S // 4 : 3 * S // 4] = 1  # (1, 1, 1, H, W): the same square in all frames
damaged = truth * (1 - hole)  # the hole shown as grey (0)
fills = {"grey (no model)": damaged}
for r in (1, 3):
    start = time.perf_counter()
    fills[f"RePaint r = {r}" if r > 1 else "replacement (r = 1)"] = inpaint(
        model, damaged, hole, schedule, resample=r, generator=torch.Generator().manual_seed(2), **sampling)
    print(f"resample {r}: {time.perf_counter() - start:.0f} s")
for name, video in fills.items():
    print(f"{name:22s} PSNR in the hole {region_psnr(video, truth, hole).mean():6.2f} dB   "
          f"off-colour {off_colour(video):.3f}   motion pass {100 * motion_rate(video):3.0f} %")
filmstrip(torch.cat([v[:1] for v in fills.values()] + [truth[:1]]), out_of_range="clip",
          row_labels=[*fills, "truth"], title="inpainting the centre of every frame")
plt.show()

# %% [markdown]
# The hole is large: when the object is entirely inside it, nothing outside says where it is, and
# the truth is only one of many right answers — a score against it is a lower bound on quality.
# The motion pass rate is the fairer judge there: one object, moving on, in every frame.
#
# ## 3 · Repairing damaged frames
#
# Last, whole frames are lost: two neighbouring frames dropped (black) and, in another copy, the
# same frames corrupted by heavy noise. Either way we mark them *damaged* and regenerate them from
# the intact frames — conditional sampling with a frame mask whose zeros are in the middle rather
# than at the end. The baseline needs no model: blend the nearest intact frames linearly.

# %%
bad = [T // 2 - 1, T // 2]  # two neighbouring frames in the middle
dropped = truth.clone()
dropped[:, bad] = -1.0
noisy = truth.clone()
noisy[:, bad] = (truth[:, bad] + 0.8 * torch.randn(truth[:, bad].shape, generator=g)).clamp(-1, 1)
repairs = {"dropped (as given)": dropped, "noisy (as given)": noisy,
           "linear interpolation": interpolate_frames(dropped, bad)}
for name, kwargs in {"replacement": dict(method="replacement"),
                     "RePaint r = 3": dict(method="replacement", resample=3),
                     "guidance w = 2": dict(method="guidance", guidance_weight=2.0)}.items():
    start = time.perf_counter()
    repairs[name] = repair_frames(model, dropped, bad, schedule, generator=torch.Generator().manual_seed(3),
                                  **kwargs, **sampling)
    print(f"{name:16s} {time.perf_counter() - start:5.1f} s")
same = repair_frames(model, noisy, bad, schedule, generator=torch.Generator().manual_seed(3), method="replacement",
                     **sampling)
print("repairing the noisy copy gives the same frames as the dropped one:", torch.equal(same, repairs["replacement"]))
print()
for name, video in repairs.items():
    print(f"{name:22s} PSNR of frames {bad}: {frames_psnr(video, truth, bad).mean():6.2f} dB   "
          f"off-colour {off_colour(video):.3f}   motion pass {100 * motion_rate(video):3.0f} %")
filmstrip(torch.cat([v[:1] for v in repairs.values()] + [truth[:1]]), out_of_range="clip",
          row_labels=[*repairs, "truth"], title=f"repairing frames {bad}")
plt.show()

# %% [markdown]
# The same clips playing, one per method in the order of the rows above: watch the repaired frames
# — does the object jump, fade or duplicate, or move on as in the truth (last)?

# %%
animate(torch.cat([v[:1] for v in repairs.values()] + [truth[:1]]), fps=4, nrow=len(repairs) + 1,
        out_of_range="clip")

# %% [markdown]
# The repair does not care whether a frame was dropped or corrupted: both are simply *not known*
# (the noisy frames' content is thrown away). Interpolation blends two positions of the object into
# two faint copies — the classic ghost — and fails the motion test; a diffusion repair draws one
# object where the motion says it should be.
#
# ## Summary
#
# * **SDEdit** = forward-noise to t₀, then the normal sampler. The strength s sets t₀ and trades
#   faithfulness to the input for realism; measure both, then choose.
# * **Inpainting** and **frame repair** are the conditional sampling of notebook 08 with another mask:
#   pixels in every frame, or whole frames in the middle. **RePaint resampling** lets the generated
#   part agree with the known part; **guidance** pushes it there with a gradient.
# * With a ground truth, every edit is a number — and with many right answers, a motion or realism
#   score keeps the number honest.
#
# Exercises: `exercises/09_editing.ipynb` (SDEdit and RePaint's resampling loop, written by you).

# %% [markdown]
# ## Check yourself
#
# Pick an answer to see whether it is right and why. (Without widgets the answers are printed.)

# %%
from course_lib.views.quiz import NumericQuestion, Question, check_yourself

check_yourself([
    Question("SDEdit with a large strength s gives a result that is:",
             ["faithful to the input, blocks and all",
              "realistic, but its layout is the model's invention rather than the input's",
              "always closest to the true clip"],
             "realistic, but its layout is the model's invention rather than the input's",
             "More noise hides more of the input: small s keeps the input's details (and faults), large s "
             "keeps little but the colours. No strength is best for everything."),
    NumericQuestion("With T = 1000 diffusion steps, at which code timestep t₀ = round(s·(T−1)) does SDEdit "
                    "with strength s = 0.5 start?", 500,
                    "round(0.5 · 999) = round(499.5) = 500 (Python rounds halves to even). T counts diffusion "
                    "steps here, not frames."),
    Question("What does RePaint's resampling do after a reverse step t → t′?",
             ["doubles the number of frames",
              "replaces the whole clip by the truth",
              "noises x_t′ back up to step t and redoes the step, several times"],
             "noises x_t′ back up to step t and redoes the step, several times",
             "Each round lets the generated part adjust to the known part: the fix for the replacement "
             "method's drift measured in lesson 08."),
    Question("To the repair, how does a dropped (black) frame differ from a frame ruined by heavy noise?",
             ["not at all: both are marked unknown and regenerated from the intact frames",
              "the noisy frame is denoised, the black one is copied", "only the black one can be repaired"],
             "not at all: both are marked unknown and regenerated from the intact frames",
             "The damaged frames' content is thrown away; the lesson checks that both repairs give the same frames."),
    Question("Blending the two intact neighbours of a missing frame of a moving object gives:",
             ["the object at the right place", "two faint copies of the object (a ghost)",
              "an empty frame"],
             "two faint copies of the object (a ghost)",
             "A pixel average of two positions is not a position between them; the diffusion repair draws "
             "one object where the motion says it should be."),
])
