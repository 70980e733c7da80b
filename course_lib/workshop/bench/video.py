"""The video benchmark: the 3D U-Net and the conv+LSTM denoiser side by side.

    python -m course_lib bench video                      # both models at (8, 8, 1, 32, 32) and (4, 16, 3, 64, 64)
    python -m course_lib bench video --quick              # tiny shapes and 2-step models: seconds, checks the machinery
    python -m course_lib bench video --train-minutes 30   # train missing checkpoints for 30 min each first

For each model and clip shape (B, T, C, H, W): parameters, the median time of a training step of
the recipe's loss on a batch of random clips (:func:`course_lib.training.speed.time_training_steps`)
after a warm-up, and the peak memory of those steps (:func:`course_lib.training.speed.peak_memory`).
Then, for each model trained by :func:`course_lib.workshop.zoo.train_or_load` for the task
(``checkpoints/`` by default, the preset's recipe), the time to sample one batch, the FVD-style
distance of its samples to real clips and their video consistency, part by part: the object
present in every frame, moving consistently, keeping its look (colour and shape, or the requested
digit), and all of them (:func:`course_lib.metrics.video.score_samples`). A model without a checkpoint reads "not
trained": the benchmark never trains for an hour unless ``--train-minutes`` says so.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from course_lib._validation import check_choice, check_positive_int, fail
from course_lib.config import PRESETS, Preset, get_device, get_preset
from course_lib.metrics.video import real_clip_scores, score_samples, video_judge_for
from course_lib.models.inspect import count_parameters
from course_lib.training.speed import peak_memory, time_training_steps
from course_lib.workshop.bench.common import (
    Record, Table, TrainedModelsConfig, add_trained_model_arguments, trained_model,
)
from course_lib.workshop.cli import non_negative_int, positive_int
from course_lib.workshop.recipes import get_recipe

MODELS = ("unet3d", "conv_lstm")
BENCH_SHAPES = ((8, 8, 1, 32, 32), (4, 16, 3, 64, 64))  # (B, T, C, H, W): the cpu preset's clips, and larger RGB ones
TARGET_PARAMS = 2_000_000  # the 3D U-Net of the target has at least this many parameters ...
TARGET_STEP_S = 0.5  # ... and trains one step at TARGET_SHAPE in at most this many seconds
TARGET_SHAPE = (8, 8, 1, 32, 32)
DEFAULT_SAMPLES = 64  # clips per model for FVD and consistency (FVDs compare only at equal N)
QUICK = {"shapes": ((2, 4, 1, 16, 16), (1, 4, 3, 16, 16)), "steps": 2, "warmup": 1, "samples": 4,
         "train_steps": 2, "num_diffusion_steps": 50, "sample_steps": 2}
QUICK_JUDGE_CHANGES = {"train_clips": 64, "steps": 4, "batch_size": 8, "test_clips": 16}  # --quick: machinery only
VIDEO_COLUMNS = ("model", "measured on", "params", "step s", "CPU share", "peak MB", "sampling s/batch",
                 "FVD ↓", "present", "motion", "look kept", "consistent", "trained")
VIDEO_FORMATS = {"step s": ".3f", "CPU share": ".0%", "peak MB": ".0f", "sampling s/batch": ".2f", "FVD ↓": ".3g",
                 "present": ".0%", "motion": ".0%", "look kept": ".0%", "consistent": ".0%"}


# --- the models at a clip shape ------------------------------------------------------------------

def task_for_channels(channels: int) -> str:
    """The video task whose clips have ``channels`` channels: 1 -> "video-digits", 3 -> "video-shapes"."""
    if channels not in (1, 3) or isinstance(channels, bool):
        fail("shape", "clips with C = 1 (moving digits) or C = 3 (bouncing shapes) channels", f"C = {channels!r}")
    return "video-digits" if channels == 1 else "video-shapes"


def check_shape(shape) -> tuple[int, int, int, int, int]:
    """A clip-batch shape (B, T, C, H, W) of positive ints with C in (1, 3), as a tuple."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
    if (not isinstance(shape, tuple) or len(shape) != 5
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
        fail("shape", "5 positive ints (B, T, C, H, W)", shape)
    task_for_channels(shape[2])
    return shape


def recipe_for_shape(model: str, shape, preset: Preset | None = None, seed: int = 0):
    """The video recipe of ``model`` ("unet3d" or "conv_lstm") for batches of clips of ``shape`` (B, T, C, H, W).

    Widths come from ``preset`` (default :func:`get_preset`); batch, frames, size and channels from
    the shape (C = 1: the moving-digits recipe, C = 3: bouncing shapes). A shape the model cannot
    take (H, W not divisible by 8 for the U-Net's three halvings) fails later, in its forward.
    """
    check_choice("model", model, MODELS)
    B, T, C, H, W = check_shape(shape)
    if H != W:
        fail("shape", "square frames (H = W), as the course's video recipes make", shape)
    preset = get_preset() if preset is None else preset
    sized = preset.replace(video_frames=T, video_size=H, video_channels=C)
    return get_recipe(task_for_channels(C), sized, model=model, seed=seed, batch_size=B)


def build_video_model(model: str, shape, preset: Preset | None = None, seed: int = 0) -> nn.Module:
    """``model`` as its recipe builds it for clips of ``shape`` (:func:`recipe_for_shape`)."""
    return recipe_for_shape(model, shape, preset, seed).build_model()


@dataclass
class StepMeasurement:
    """One model at one clip shape: parameters, seconds per training step, CPU share, peak memory."""

    model: str
    shape: tuple[int, ...]
    params: int
    median_s: float
    min_s: float
    cpu_share: float | None  # CPU seconds / (wall seconds x threads), None on a GPU
    peak_bytes: int | None
    memory_method: str
    threads: int
    device: str

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / 2**20


def measure_train_step(model: str, shape, preset: Preset | None = None, steps: int = 5, warmup: int = 2,
                       device: torch.device | str | None = None, seed: int = 0) -> StepMeasurement:
    """Time ``steps`` training steps (median, after ``warmup``) of ``model`` on random clips of ``shape``.

    The recipe of :func:`recipe_for_shape` gives the network and its loss; the batch is random
    clips in [-1, 1] (and random digits for the class-conditional moving digits), so any shape can
    be timed. The steps train a fresh copy with AdamW (:func:`course_lib.training.speed.time_training_steps`);
    the peak memory covers the warm-up and timed steps, the copy's weights included (:func:`peak_memory`).
    """
    check_choice("model", model, MODELS)
    check_positive_int("steps", steps)
    device = get_device(None if device is None else str(device))
    recipe = recipe_for_shape(model, shape, preset, seed)
    network = recipe.build_model().to(device)
    generator = torch.Generator().manual_seed(seed)
    batch = torch.rand(tuple(shape), generator=generator) * 2 - 1
    if recipe.num_classes is not None:
        batch = (batch, torch.randint(0, recipe.num_classes, (shape[0],), generator=generator))
    timing, peak, method = peak_memory(
        lambda: time_training_steps(network, recipe.loss_fn, batch, steps=steps, warmup=warmup, seed=seed), device)
    return StepMeasurement(model, tuple(shape), count_parameters(network), timing.median_s, min(timing.wall_s),
                           timing.cpu_share, peak, method, timing.threads, device.type)


def _prime(device: torch.device) -> None:
    """One tiny training step first, so that one-time set-up (thread pools, kernels' buffers) is not
    counted in the first measurement's time and memory."""
    measure_train_step("unet3d", (1, 2, 1, 8, 8), get_preset("smoke"), steps=1, warmup=1, device=device)


# --- the benchmark ---------------------------------------------------------------------------------

@dataclass
class VideoBenchConfig(TrainedModelsConfig):
    """What :func:`video_benchmark` does.

    shapes: clip shapes (B, T, C, H, W) for the training-step rows. steps / warmup: timed and
    untimed steps per measurement. task: the data of the sample rows; the recipe is
    ``get_recipe(task, preset, model)``. samples: clips per model for FVD and consistency. judge_changes:
    fields of the video judge's config (quick runs train a tiny judge).
    """

    kind: ClassVar[str] = "video"
    shapes: tuple[tuple[int, ...], ...] = BENCH_SHAPES
    models: tuple[str, ...] = MODELS
    steps: int = 5
    warmup: int = 2
    task: str = "video-shapes"
    samples: int = DEFAULT_SAMPLES
    judge_changes: dict | None = None

    def __post_init__(self):
        super().__post_init__()
        self.shapes = tuple(check_shape(shape) for shape in self.shapes)
        if not self.models:
            fail("models", f"one or more of {MODELS}", self.models)
        for model in self.models:
            check_choice("models", model, MODELS)
        check_positive_int("steps", self.steps)
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            fail("warmup", "an int >= 0", self.warmup)
        check_choice("task", self.task, ("video-shapes", "video-digits"))
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 2:
            fail("samples", "an int >= 2 (the FVD fits a covariance to the samples)", self.samples)


def step_time_verdicts(config: VideoBenchConfig, steps: list[StepMeasurement]) -> list[str]:
    """The step-time target of the 3D U-Net, met (✓) or not (✗), where it was measured."""
    rows = [m for m in steps if m.model == "unet3d" and m.shape == TARGET_SHAPE]
    if config.quick or not rows:
        return [f"target not judged: the 3D U-Net was not measured at {TARGET_SHAPE}"]
    m = rows[0]
    ok = m.params >= TARGET_PARAMS and m.median_s <= TARGET_STEP_S
    share = ""
    if m.cpu_share is not None:  # other programs took CPU: wall x share estimates the time on an idle machine
        share = f", CPU share {m.cpu_share:.0%}"
        if m.cpu_share < 0.9:
            share += f": about {m.median_s * m.cpu_share:.2f} s on an idle machine"
    return [f"{'✓' if ok else '✗'} 3D U-Net, {m.params / 1e6:.2f}M parameters (target ≥ {TARGET_PARAMS / 1e6:g}M): "
            f"one training step at {TARGET_SHAPE} in {m.median_s:.3f} s median with {m.threads} thread(s) on "
            f"{m.device}{share} (target ≤ {TARGET_STEP_S} s)"]


def video_benchmark(config: VideoBenchConfig, device: torch.device | None = None, judge=None) -> Table:
    """Measure both video models: training steps at ``config.shapes``, then samples of trained models.

    Writes ``<out>/video-<preset>[-quick].md`` and ``.json`` (rewritten after each row).
    judge: the video judge for the task's clips (default :func:`course_lib.metrics.video.video_judge_for`).
    """
    if not isinstance(config, VideoBenchConfig):
        fail("config", "a VideoBenchConfig", type(config).__name__)
    device = get_device(None if device is None else str(device))
    table = Table(f"Video benchmark: 3D U-Net vs conv+LSTM, preset {config.preset.name}", VIDEO_COLUMNS,
                  formats=VIDEO_FORMATS)
    record = Record(config, table, device, steps=[], samples={})

    _prime(device)
    measured = []
    for shape in config.shapes:
        for model in config.models:
            m = measure_train_step(model, shape, config.preset, config.steps, config.warmup, device, config.seed)
            measured.append(m)
            table.rows.append((model, f"train step {shape}", m.params, m.median_s, m.cpu_share, m.peak_mb,
                               None, None, None, None, None, None, None))
            record.data["steps"].append(asdict(m))
            print(f"{model} {shape}: {m.median_s:.3f} s/step, {m.params:,} parameters", file=sys.stderr, flush=True)
            record.save()

    recipes = {model: get_recipe(config.task, config.preset, model=model, seed=config.seed) for model in config.models}
    first = next(iter(recipes.values()))
    T, C, S, _ = first.example_shape
    where = f"{config.task} {config.preset.name} {T}×{C}×{S}×{S}, N = {config.samples}"
    trained = {model: trained_model(recipe, config.checkpoints, device, train_minutes=config.train_minutes,
                                    quick_steps=config.train_steps,
                                    quick_path=f"{config.out}/{config.name}-{recipe.model_name}.pt",
                                    progress=config.progress)
               for model, recipe in recipes.items()}
    if any(found.trainer is not None for found in trained.values()):  # the judge trains once: only when needed
        judge = judge or video_judge_for(first, config.judge_changes)
        real = real_clip_scores(first, config.samples, judge)
        table.rows.append(("real clips", where, None, None, None, None, None, real.fvd, *_consistency_cells(real), None))
        record.data["samples"]["real clips"] = asdict(real)
        record.save()
    for model, recipe in recipes.items():
        found = trained[model]
        if found.trainer is None:
            table.rows.append((model, f"samples: {where}", None, None, None, None, None, None, None, None, None, None,
                               found.status))
            record.data["samples"][model] = None
        else:
            _, scores = score_samples(recipe, found.model, config.samples, judge, progress=config.progress)
            params = sum(p.numel() for p in found.model.parameters())  # the EMA copy is frozen
            table.rows.append((model, f"samples: {where}", params, None, None, None,
                               scores.seconds_per_batch, scores.fvd, *_consistency_cells(scores), found.status))
            record.data["samples"][model] = {**asdict(scores), "trained": found.status}
        record.save()

    methods = sorted({m.memory_method for m in measured})
    trained_from = (f"trained here for {config.train_steps} steps (quick run)" if config.train_steps else
                    f"train_or_load checkpoints of the {config.preset.name} recipes in {config.checkpoints}/ "
                    "(--train-minutes M trains missing ones)")
    widths = f"base width {config.preset.video_base_channels} (preset {config.preset.name})"
    table.notes = [
        record.machine_note(),
        f"training steps: the recipe's loss + backward + AdamW on random clips, median of {config.steps} "
        f"after {config.warmup} warm-up; models built by the video recipes at {widths}",
        f"peak MB: {', '.join(methods)} during those steps, a fresh copy's weights included (on CPU: the "
        "process's resident memory, allocator and library buffers included)",
        f"samples: DDIM {config.preset.sample_steps} steps from the EMA weights, {first.batch_size} clips per batch; "
        f"FVD-style distance to {config.samples} real clips (video judge features; compare only at equal N); "
        "'real clips' is a second real set: the floor at this N",
        "consistent = the clip passes every part (course_lib.metrics.consistency): one object present in every "
        "frame, moving at constant velocity between bounces (motion), and keeping its look in every frame: "
        "colour and shape (shapes) or the requested digit (moving digits)",
        f"trained models: {trained_from}",
        "CPU share = CPU seconds / (wall seconds x threads): below 100% other programs took the cores",
    ]
    table.verdicts = step_time_verdicts(config, measured)
    return record.finish()


def _consistency_cells(scores) -> tuple[float, float, float, float]:
    """The cells present, motion, look kept, consistent of a row of sample scores."""
    return scores.consistency["present"], scores.consistency["motion"], scores.look_kept, scores.consistent


# --- the subcommand ----------------------------------------------------------------------------

def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="model widths, sampling steps and the checkpoints' recipe (default: $COURSE_PRESET, "
                             "else gpu with CUDA, cpu without)")
    parser.add_argument("--models", choices=MODELS, nargs="+", default=list(MODELS), help="models to measure")
    parser.add_argument("--steps", type=positive_int, default=5, help="timed training steps per measurement (default 5)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--task", choices=("video-shapes", "video-digits"), default="video-shapes",
                        help="data of the trained models whose samples are scored (default video-shapes)")
    parser.add_argument("--samples", type=positive_int, default=None,
                        help=f"clips per model for FVD and consistency (default {DEFAULT_SAMPLES})")
    add_trained_model_arguments(parser)
    parser.add_argument("--quick", action="store_true",
                        help="a run in seconds: tiny shapes, 2 timed steps, 2-step models, 4 samples, a tiny judge")


def run_video(args: argparse.Namespace) -> Table:
    preset = get_preset(args.preset)
    settings: dict[str, Any] = dict(steps=args.steps, warmup=args.warmup, samples=args.samples or DEFAULT_SAMPLES)
    if args.quick:
        preset = preset.replace(num_diffusion_steps=QUICK["num_diffusion_steps"], sample_steps=QUICK["sample_steps"])
        settings = dict(shapes=QUICK["shapes"], steps=QUICK["steps"], warmup=QUICK["warmup"],
                        samples=args.samples or QUICK["samples"], train_steps=QUICK["train_steps"],
                        judge_changes=QUICK_JUDGE_CHANGES)
    config = VideoBenchConfig(preset=preset, models=tuple(args.models), task=args.task,
                              checkpoints=args.checkpoints, train_minutes=args.train_minutes, seed=args.seed,
                              out=args.out, progress=not args.quiet, quick=args.quick, **settings)
    return video_benchmark(config, device=args.device_obj)
