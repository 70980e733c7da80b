"""How good are a video recipe's clips after a time budget? Train it, sample it, measure it.

    python -m course_lib bench quality --task video-shapes --minutes 15          # the shapes target
    python -m course_lib bench quality --task video-digits --minutes 30          # the digits target
    python -m course_lib bench quality --task video-shapes --cpu-minutes 3 --lr 1e-3   # an experiment

One run trains a recipe (:func:`course_lib.workshop.recipes.get_recipe`, overrides from the command line)
until a budget is spent -- wall-clock minutes, CPU minutes of this process, or steps
(:func:`course_lib.workshop.zoo.train`) -- then samples
``n`` clips with DDIM and prints one line (and a JSON record with ``--json``):

* **video consistency** -- :func:`course_lib.metrics.consistency.video_consistency`: the share of
  clips a viewer would accept -- one object present in every frame, moving at constant velocity
  between bounces, keeping its colour and shape (shapes) or showing the requested digit in every
  frame (moving digits) -- and the share passing each of those parts (real clips: 100%);
* **FVD ratio** -- the FVD-style distance (:func:`course_lib.metrics.video.frechet_video_distance`,
  video-judge features) of the samples to real clips, divided by that of samples from the same
  network untrained (same ``n``, same noise): below 0.5 is the target;
* **frame digit accuracy** (video-digits) -- :func:`course_lib.metrics.video.frame_digit_accuracy`:
  the share of frames in which the video judge reads the digit the clip was asked for (moving
  digits are class-conditional: clip i shows digit i mod 10, sampled with guidance w =
  ``--guidance``, default the recipe's ``guidance_scale``).

Other programs on the machine slow every step, so each run records wall seconds, CPU seconds of this process and
the load average: CPU seconds of one thread are what a budget costs on an idle core.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_lib._validation import check_positive_int, fail
from course_lib.config import PRESETS, get_device
from course_lib.diffusion.schedules import SCHEDULES
from course_lib.metrics.video import frame_digit_accuracy, sample_in_batches
from course_lib.training import Trainer
from course_lib.workshop import zoo
from course_lib.workshop.bench.common import PROG, load_average
from course_lib.workshop.cli import non_negative_float, unit_float
from course_lib.workshop.recipes import GUIDANCE_SCALE, OBJECTIVES, TASK_MODELS, Recipe, get_recipe, is_video_task

VIDEO_TASKS = tuple(task for task in TASK_MODELS if is_video_task(task))
DEFAULT_CLIPS = 64  # clips sampled per measurement (FVDs compare only at equal n)
SAMPLE_BATCH = 16  # clips per sampling call (bounds memory)
TARGET_CONSISTENT = 0.85  # share of shapes clips passing every part of the video consistency
TARGET_FVD_RATIO = 0.5  # FVD(trained) < 0.5 x FVD(untrained)
TARGET_DIGIT_CLIPS = 0.70  # share of moving-digits clips showing the requested digit in every frame


# --- training within a budget -----------------------------------------------------------------------

@dataclass
class TrainingRun:
    """What a budgeted training cost: steps done, wall and CPU seconds, load average before/after, threads."""

    steps: int
    wall_seconds: float
    cpu_seconds: float
    load_before: float | None
    load_after: float | None
    threads: int
    final_loss: float
    loss_curve: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # see :func:`loss_curve`


def _load_average() -> float | None:
    load = load_average()
    return None if load is None else round(load, 2)


def loss_curve(losses: Sequence[float], points: int = 10) -> list[tuple[int, float]]:
    """The training loss in ``points`` equal windows: (last step of the window, mean loss in it).

    Where a run broke shows as a window whose mean rises; a final loss alone hides it.
    """
    check_positive_int("points", points)
    n = len(losses)
    edges = [round(n * k / points) for k in range(points + 1)]
    return [(end, float(np.mean(losses[start:end]))) for start, end in zip(edges, edges[1:]) if end > start]


def train_for(recipe: Recipe, steps: int | None = None, minutes: float | None = None,
              cpu_minutes: float | None = None, device: torch.device | str | None = None) -> tuple[Trainer, TrainingRun]:
    """Train ``recipe`` from scratch, in memory, until ``steps`` (default ``recipe.steps``) or a budget is spent.

    minutes: wall-clock budget; cpu_minutes: CPU time of this process (all threads). No step starts
    once a budget is spent (:func:`course_lib.workshop.zoo.train`). Returns (trainer, cost); sample
    from ``trainer.ema_model``.
    """
    load_before = _load_average()
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    trainer = zoo.train(recipe, None, steps, resume=False, minutes=minutes, cpu_minutes=cpu_minutes, progress=False,
                        device=device, report_memory=False)
    run = TrainingRun(steps=trainer.step, wall_seconds=time.perf_counter() - wall_start,
                      cpu_seconds=time.process_time() - cpu_start, load_before=load_before,
                      load_after=_load_average(), threads=torch.get_num_threads(),
                      final_loss=trainer.recent_loss(50) if trainer.step else float("nan"),
                      loss_curve=loss_curve(trainer.history["loss"]))
    return trainer, run


# --- sampling ---------------------------------------------------------------------------------------

def sample_clips(recipe: Recipe, model: nn.Module, n: int, sample_steps: int | None = None, seed: int = 0,
                 eta: float = 0.0, guidance_scale: float | None = None) -> torch.Tensor:
    """n clips (n, T, C, H, W) from ``model`` with DDIM (η = ``eta``), on the CPU; the same seed gives the same clips.

    Class-conditional recipes (moving digits): clip i shows digit i mod 10 (``recipe.cycled_labels``),
    with classifier-free guidance ``guidance_scale`` (None: the plain conditional model).
    """
    clips, _ = sample_in_batches(recipe, model, n, seed, batch_size=SAMPLE_BATCH, steps=sample_steps, eta=eta,
                                 guidance_scale=guidance_scale)  # an unconditional recipe refuses a scale
    return clips


# --- the measurement ----------------------------------------------------------------------------------

@dataclass
class VideoQuality:
    """Scores of n generated clips. fvd_ratio = fvd / untrained_fvd (lower is better; target < 0.5).

    consistency, real_consistency: {part: pass rate, ..., "combined": rate} of the samples and of
    real clips (:attr:`course_lib.metrics.consistency.ConsistencyReport.rates`).
    """

    n: int
    consistency: dict[str, float]
    real_consistency: dict[str, float]
    fvd: float
    untrained_fvd: float
    real_fvd: float  # two sets of real clips: the floor at this n
    frame_digit_accuracy: float | None = None
    real_frame_digit_accuracy: float | None = None
    sample_seconds: float = 0.0

    @property
    def fvd_ratio(self) -> float:
        return self.fvd / self.untrained_fvd

    @property
    def consistent(self) -> float:
        """Share of the samples passing every part of the video consistency."""
        return self.consistency["combined"]


def measure(recipe: Recipe, model: nn.Module, n: int = DEFAULT_CLIPS, sample_steps: int | None = None,
            seed: int = 0, judge: nn.Module | None = None, eta: float = 0.0,
            guidance_scale: float | None = None, digit_judge: nn.Module | None = None) -> VideoQuality:
    """Sample n clips from ``model`` (trained for ``recipe``) and score them against n real clips.

    The untrained reference is ``recipe.build_model()`` sampled from the same noise (``seed``), both
    with DDIM at ``eta`` (0: deterministic) and, for moving digits, the same requested digits and
    guidance scale; a frame of moving digits counts when the judge reads the *requested* digit.
    judge: the video judge behind FVD and frame digit accuracy (default: the cached one for the preset's
    clips); digit_judge: the reader of the consistency's digit part (default: the cached one for the digits' size).
    """
    from course_lib.metrics.consistency import video_consistency
    from course_lib.metrics.video import frechet_video_distance, get_video_judge

    if not is_video_task(recipe.task):
        fail("recipe", f"a recipe of a video task ({', '.join(VIDEO_TASKS)})", recipe.task)
    check_positive_int("n", n)
    if n < 2:
        fail("n", "at least 2 clips (a distance between sets needs them)", n)
    start = time.perf_counter()
    clips = sample_clips(recipe, model, n, sample_steps, seed, eta, guidance_scale)
    sample_seconds = time.perf_counter() - start
    untrained = sample_clips(recipe, recipe.build_model().to(next(model.parameters()).device), n, sample_steps, seed,
                             eta, guidance_scale)
    real, other_real = recipe.real_examples(n, seed=seed + 1), recipe.real_examples(n, seed=seed + 2)
    p = recipe.preset
    judge = judge or get_video_judge(frames=p.video_frames, size=p.video_size, channels=recipe.channels)
    real_features = judge.features(real)
    labels = recipe.cycled_labels(n) if guidance_scale != 0 else None  # w = 0 asks for no digit
    quality = VideoQuality(
        n=n,
        consistency=video_consistency(clips, recipe.object_size, labels, digit_judge).rates,
        real_consistency=video_consistency(real, recipe.object_size, None, digit_judge).rates,
        fvd=frechet_video_distance(judge.features(clips), real_features),
        untrained_fvd=frechet_video_distance(judge.features(untrained), real_features),
        real_fvd=frechet_video_distance(judge.features(other_real), real_features),
        sample_seconds=sample_seconds,
    )
    if recipe.task == "video-digits":
        from course_lib.data.video import moving_digits

        truth = moving_digits(n, frames=p.video_frames, size=p.video_size, seed=seed + 1, split="test")
        quality.frame_digit_accuracy = frame_digit_accuracy(clips, judge, labels=recipe.cycled_labels(n))
        quality.real_frame_digit_accuracy = frame_digit_accuracy(truth.video, judge, labels=truth.labels[:, 0])
    return quality


def verdicts(recipe: Recipe, quality: VideoQuality) -> list[str]:
    """The targets, met or not, one line each."""
    def mark(ok: bool) -> str:
        return "✓" if ok else "✗"

    lines = [f"{mark(quality.fvd_ratio < TARGET_FVD_RATIO)} FVD ratio {quality.fvd_ratio:.2f} "
             f"(target < {TARGET_FVD_RATIO})"]
    if recipe.task == "video-shapes":
        lines.insert(0, f"{mark(quality.consistent >= TARGET_CONSISTENT)} consistent {quality.consistent:.0%} "
                        f"(target >= {TARGET_CONSISTENT:.0%}; real clips {quality.real_consistency['combined']:.0%})")
    else:
        digit = quality.consistency["digit"]
        lines.insert(0, f"{mark(digit >= TARGET_DIGIT_CLIPS)} requested digit in every frame {digit:.0%} of clips "
                        f"(target >= {TARGET_DIGIT_CLIPS:.0%}; real clips {quality.real_consistency['digit']:.0%})")
    return lines


def consistency_line(rates: dict[str, float]) -> str:
    """``consistent 55% (present 100%, motion 80%, colour 60%, shape 97%)`` from ``ConsistencyReport.rates``."""
    parts = ", ".join(f"{name} {rate:.0%}" for name, rate in rates.items() if name != "combined")
    return f"consistent {rates['combined']:.0%} ({parts})"


# --- command line -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} quality",
                                     description="Train a video recipe within a budget, then print its video "
                                                 "consistency (present, motion, look kept), FVD ratio and (digits) "
                                                 "frame digit accuracy.")
    parser.add_argument("--task", choices=VIDEO_TASKS, default="video-shapes")
    parser.add_argument("--model", default=None, help="unet3d (default) or conv_lstm")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu")
    budget = parser.add_argument_group("budget (the first spent ends training)")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock minutes of training")
    budget.add_argument("--cpu-minutes", type=float, default=None, help="CPU minutes of this process")
    budget.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    recipe = parser.add_argument_group("recipe overrides (default: get_recipe's)")
    recipe.add_argument("--lr", type=float)
    recipe.add_argument("--batch-size", type=int)
    recipe.add_argument("--warmup-steps", type=int)
    recipe.add_argument("--objective", choices=OBJECTIVES)
    recipe.add_argument("--schedule", choices=SCHEDULES)
    recipe.add_argument("--snr-focus", type=float, help="share of timesteps drawn where clips take shape (0: uniform)")
    recipe.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None,
                        help="measure this trained checkpoint (from python -m course_lib train) instead of training")
    parser.add_argument("--save", default=None, metavar="FILE",
                        help="write the trained model to FILE (measure it again with --checkpoint FILE)")
    parser.add_argument("--n", type=int, default=DEFAULT_CLIPS, help=f"clips to sample (default {DEFAULT_CLIPS})")
    parser.add_argument("--sample-steps", type=int, default=None, help="DDIM steps (default: the preset's)")
    parser.add_argument("--eta", type=unit_float, default=0.0,
                        help="DDIM's η: 0 deterministic (default), 1 fresh noise at every step like DDPM")
    parser.add_argument("--guidance", type=non_negative_float, default=None,
                        help=f"moving digits: classifier-free guidance scale w (default {GUIDANCE_SCALE:g}; "
                             "1: the plain conditional model; 0: unconditional)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", default=None, help="append the record as one JSON line to this file")
    return parser


def _guidance(recipe: Recipe, guidance: float | None) -> float | None:
    """The guidance scale to sample ``recipe`` with: ``guidance``, else the recipe's (None for an unconditional task)."""
    if recipe.num_classes is None and guidance is not None:
        fail("--guidance", f"no value: task {recipe.task!r} is not class-conditional", guidance)
    return recipe.guidance_scale if guidance is None else guidance


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(check_positive_int("threads", args.threads))
    overrides = {name: getattr(args, name) for name in ("lr", "batch_size", "warmup_steps", "objective", "schedule", "snr_focus")
                 if getattr(args, name) is not None}
    device = get_device(args.device)
    if args.checkpoint:
        recipe, trainer = zoo.load_checkpoint(args.checkpoint, device=device, progress=False)
        guidance = _guidance(recipe, args.guidance)
        run = TrainingRun(steps=trainer.step, wall_seconds=trainer.seconds, cpu_seconds=float("nan"), load_before=None,
                          load_after=None, threads=torch.get_num_threads(), final_loss=trainer.recent_loss(50),
                          loss_curve=loss_curve(trainer.history["loss"]))
    else:
        recipe = get_recipe(args.task, args.preset, args.model, seed=args.seed, **overrides)
        guidance = _guidance(recipe, args.guidance)
        trainer, run = train_for(recipe, args.steps, args.minutes, args.cpu_minutes, device)
        if args.save:
            zoo.save_checkpoint(trainer, recipe, args.save, trainer.step)
    quality = measure(recipe, trainer.ema_model, args.n, args.sample_steps, seed=args.seed, eta=args.eta,
                      guidance_scale=guidance)
    p = recipe.preset
    print(f"{recipe.task} {recipe.model_name} preset {p.name} ({p.video_frames}x{p.video_size}px, batch "
          f"{recipe.batch_size}, lr {recipe.lr:g}, {recipe.objective}, {recipe.schedule_name}): {run.steps} steps in "
          f"{run.wall_seconds / 60:.1f} min wall, {run.cpu_seconds / 60:.1f} CPU min, {run.threads} thread(s), load "
          f"{run.load_before}->{run.load_after}, loss {run.final_loss:.4f}")
    if run.loss_curve:
        print("loss by step: " + ", ".join(f"{step} {loss:.4f}" for step, loss in run.loss_curve))
    guided = "" if guidance is None else f", guidance w = {guidance:g}"
    print(f"{quality.n} clips (DDIM {args.sample_steps or p.sample_steps}, η = {args.eta:g}{guided}, "
          f"{quality.sample_seconds:.0f} s to sample): {consistency_line(quality.consistency)}; real clips "
          f"{quality.real_consistency['combined']:.0%}; FVD {quality.fvd:.1f} vs untrained {quality.untrained_fvd:.1f} "
          f"(ratio {quality.fvd_ratio:.2f}; real vs real {quality.real_fvd:.1f})"
          + (f"; frame digit accuracy {quality.frame_digit_accuracy:.0%} (real {quality.real_frame_digit_accuracy:.0%})"
             if quality.frame_digit_accuracy is not None else ""))
    for line in verdicts(recipe, quality):
        print(line)
    if args.json:
        record = {"recipe": {k: v for k, v in recipe.info().items() if k not in ("preset", "model_config")},
                  "preset": dataclasses.asdict(p), "run": dataclasses.asdict(run),
                  "sampling": {"steps": args.sample_steps or p.sample_steps, "eta": args.eta,
                               "guidance": guidance},
                  "quality": {**dataclasses.asdict(quality), "fvd_ratio": quality.fvd_ratio}}
        with Path(args.json).open("a") as file:
            file.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
