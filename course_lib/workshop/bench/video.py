"""The video benchmark: the 3D U-Net and the conv+LSTM denoiser side by side.

    python -m course_lib.workshop.bench.image video                  # both models at (8, 8, 1, 32, 32) and (4, 16, 3, 64, 64)
    python -m course_lib.workshop.bench.image video --quick          # tiny shapes and 2-step models: seconds, checks the machinery
    python -m course_lib.workshop.bench.image video --train-minutes 30   # train missing checkpoints for 30 min each first

For each model and clip shape (B, T, C, H, W): parameters, the median time of a training step
(forward, MSE, backward, AdamW; :func:`course_lib.models.profile.benchmark_train_step`) after a
warm-up, and the peak memory of those steps (:func:`peak_memory`). Then, for each model trained by
:func:`course_lib.workshop.zoo.train_or_load` for the task (``checkpoints/`` by default, the preset's
recipe), the time to sample one batch, the FVD-style distance of its samples to real clips (video
judge features, :mod:`course_lib.metrics.video`) and their motion-consistency pass rate
(:mod:`course_lib.metrics.motion`). A model without a checkpoint reads "not trained": the
benchmark never trains for an hour unless ``--train-minutes`` says so.

The same helpers fill notebook 07's side-by-side table: :func:`measure_train_step`,
:func:`score_samples`, :func:`video_judge_for`.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_lib._validation import check_choice, check_float_range, check_positive_int, fail
from course_lib.workshop.bench.image import DEFAULT_OUT, PROG, Stopwatch, Table, describe_machine, load_average
from course_lib.config import Preset, get_device, get_preset

MODELS = ("unet3d", "conv_lstm")
BENCH_SHAPES = ((8, 8, 1, 32, 32), (4, 16, 3, 64, 64))  # (B, T, C, H, W) of the table
TARGET_PARAMS = 2_000_000  # the 3D U-Net of the target has at least this many parameters ...
TARGET_STEP_S = 0.5  # ... and trains one step at TARGET_SHAPE in at most this many seconds
TARGET_SHAPE = (8, 8, 1, 32, 32)
DEFAULT_SAMPLES = 64  # clips per model for FVD and motion (FVDs compare only at equal N)
QUICK = {"shapes": ((2, 4, 1, 16, 16), (1, 4, 3, 16, 16)), "steps": 2, "warmup": 1, "samples": 4,
         "train_steps": 2, "num_diffusion_steps": 50, "sample_steps": 2}
VIDEO_COLUMNS = ("model", "measured on", "params", "step s", "CPU share", "peak MB", "sampling s/batch",
                 "FVD ↓", "motion pass", "trained")
VIDEO_FORMATS = {"step s": ".3f", "CPU share": ".0%", "peak MB": ".0f", "sampling s/batch": ".2f", "FVD ↓": ".3g",
                 "motion pass": ".0%"}


# --- building the models -------------------------------------------------------------------------

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


def build_video_model(model: str, shape, preset: Preset | None = None, seed: int = 0) -> nn.Module:
    """``model`` ("unet3d" or "conv_lstm") as the recipes build it for clips of ``shape`` (B, T, C, H, W).

    Widths come from ``preset`` (default :func:`get_preset`); frames, size and channels from the
    shape (C = 1: the moving-digits recipe, C = 3: bouncing shapes). A shape the model cannot take
    (H, W not divisible by 8 for the U-Net's three halvings) fails later, in its forward.
    """
    from course_lib.workshop.recipes import get_recipe

    check_choice("model", model, MODELS)
    B, T, C, H, W = check_shape(shape)
    if H != W:
        fail("shape", "square frames (H = W), as the course's video recipes make", shape)
    preset = get_preset() if preset is None else preset
    sized = preset.replace(video_frames=T, video_size=H, video_channels=C)
    return get_recipe(task_for_channels(C), sized, model=model, seed=seed).build_model()


# --- memory --------------------------------------------------------------------------------------

def _proc_status_kib(field: str) -> int | None:
    """A "VmRSS"/"VmHWM" line of /proc/self/status in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0): True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Collect garbage and give freed heap memory back to the OS (glibc malloc_trim), so RSS starts low."""
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(libc).malloc_trim(0)
        except (OSError, AttributeError):
            pass


def peak_memory(fn: Callable[[], Any], device: torch.device | str = "cpu") -> tuple[Any, int | None, str]:
    """Run ``fn()`` -> (its result, peak extra memory in bytes or None, how it was measured).

    CUDA: ``torch.cuda.max_memory_allocated`` minus what was allocated before (tensors only).
    CPU on Linux: growth of the process's peak resident set (VmHWM, reset through
    /proc/self/clear_refs) over the resident set before, after freeing what Python and malloc
    hold: everything the process touched, tensors, allocator slack and libraries' buffers.
    Elsewhere: growth of ``ru_maxrss``, which only rises, so a peak below an earlier one reads 0.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - before, "torch.cuda.max_memory_allocated"
    _release_free_memory()
    if _reset_peak_rss():
        before = _proc_status_kib("VmRSS")
        result = fn()
        peak = _proc_status_kib("VmHWM")
        if before is not None and peak is not None:
            return result, max(peak - before, 0) * 1024, "peak RSS growth (VmHWM)"
        return result, None, "not measured"
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fn()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return result, grown * unit, "max RSS growth (ru_maxrss)"


# --- training steps ------------------------------------------------------------------------------

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


def measure_train_step(model: str | nn.Module, shape, preset: Preset | None = None, steps: int = 5, warmup: int = 2,
                       device: torch.device | str | None = None, seed: int = 0, name: str | None = None,
                       num_threads: int | None = None) -> StepMeasurement:
    """Time ``steps`` training steps (median, after ``warmup``) of a model on random clips of ``shape``.

    model: "unet3d" / "conv_lstm" (a fresh one from :func:`build_video_model` and ``preset``) or a
    network (its weights are trained on noise: pass a throwaway copy). shape: (B, T, C, H, W).
    num_threads: torch CPU threads for the steps (None: the current setting). The peak memory
    covers the warm-up and timed steps (:func:`peak_memory`).
    """
    from course_lib.models.profile import benchmark_train_step

    shape = check_shape(shape)
    check_positive_int("steps", steps)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        fail("warmup", "an int >= 0", warmup)
    device = get_device(None if device is None else str(device))
    if isinstance(model, str):
        name, network = name or model, build_video_model(model, shape, preset, seed)
    elif isinstance(model, nn.Module):
        name, network = name or type(model).__name__, model
    else:
        fail("model", f"one of {MODELS} or a torch.nn.Module", type(model).__name__)
    network = network.to(device)
    with Stopwatch() as watch:
        result, peak, method = peak_memory(
            lambda: benchmark_train_step(network, shape, steps, warmup=warmup, num_threads=num_threads, seed=seed),
            device)
    threads = result["threads"]
    share = watch.cpu / (watch.wall * threads) if device.type == "cpu" and watch.wall > 0 else None
    return StepMeasurement(name, shape, result["params"], result["median_s"], result["min_s"], share, peak, method,
                           threads, device.type)


def _prime(device: torch.device) -> None:
    """One tiny training step first, so that one-time set-up (thread pools, kernels' buffers) is not
    counted in the first measurement's time and memory."""
    from course_lib.models.profile import benchmark_train_step
    from course_lib.models.unet3d import UNet3D

    with torch.random.fork_rng(devices=[]):
        tiny = UNet3D(in_channels=1, base_channels=8, channel_mults=(1, 2), max_frames=2).to(device)
    benchmark_train_step(tiny, (1, 2, 1, 8, 8), steps=1, warmup=1)


# --- samples: time, FVD, motion --------------------------------------------------------------------

SMOKE_JUDGE_CHANGES = {"train_clips": 500, "steps": 100, "test_clips": 200}  # smoke preset: ~20 CPU-s once, rough
QUICK_JUDGE_CHANGES = {"train_clips": 64, "steps": 4, "batch_size": 8, "test_clips": 16}  # --quick: machinery only


def video_judge_for(recipe, changes: dict | None = None):
    """The video judge for ``recipe``'s clips (frames, size, channels): the full one, or a lighter one in smoke.

    changes: fields of :class:`course_lib.metrics.video.VideoJudgeConfig` to change (default:
    :data:`SMOKE_JUDGE_CHANGES` for the smoke preset, none otherwise). Trained once, then cached.
    """
    from course_lib.metrics.video import VideoJudgeConfig, get_video_judge

    T, C, H, _ = recipe.example_shape
    if changes is None:
        changes = SMOKE_JUDGE_CHANGES if recipe.preset.name == "smoke" else {}
    config = VideoJudgeConfig(frames=T, size=H, channels=C, **changes)
    return get_video_judge(frames=T, size=H, channels=C, config=config)


@dataclass
class SampleScores:
    """n clips sampled from one model: seconds per batch of ``batch`` clips, FVD to real clips, motion pass rate."""

    n: int
    batch: int
    seconds_per_batch: float
    fvd: float
    motion_pass: float


def _fvd(judge, clips: torch.Tensor, real: torch.Tensor) -> float:
    from course_lib.metrics.video import frechet_video_distance

    return frechet_video_distance(judge.features(clips), judge.features(real))


def real_clip_scores(recipe, n: int, judge, seed: int = 2) -> SampleScores:
    """The floor: a second set of n real clips scored like samples (FVD against the reference set, motion)."""
    from course_lib.metrics.motion import motion_consistency

    check_positive_int("n", n)
    reference, other = recipe.real_examples(n, seed=seed), recipe.real_examples(n, seed=seed + 1)
    return SampleScores(n, recipe.batch_size, 0.0, _fvd(judge, other, reference),
                        float(motion_consistency(other, recipe.object_size).pass_rate))


def sample_in_batches(recipe, model: nn.Module, n: int, seed: int = 1, progress: bool = False,
                      batch_size: int | None = None, **sample_kwargs) -> tuple[torch.Tensor, float]:
    """(n clips (n, T, C, H, W) on the CPU, clamped to [-1, 1]; seconds spent in ``recipe.sample``).

    Drawn ``batch_size`` at a time (default ``recipe.batch_size``; the last batch smaller) from one
    generator seeded with ``seed``: the same seed and batch size give the same clips. sample_kwargs go
    to ``recipe.sample`` (steps, sampler, eta, guidance_scale). A class-conditional recipe (moving
    digits) draws clip i with label i mod 10 (``recipe.cycled_labels``).
    """
    check_positive_int("n", n)
    batch_size = recipe.batch_size if batch_size is None else check_positive_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(seed)
    labels = recipe.cycled_labels(n)
    chunks, seconds = [], 0.0
    for done in range(0, n, batch_size):
        size = min(batch_size, n - done)
        start = time.perf_counter()
        if labels is not None:
            sample_kwargs["labels"] = labels[done:done + size]
        chunks.append(recipe.sample(model, size, generator=generator, progress=progress, **sample_kwargs).cpu())
        seconds += time.perf_counter() - start
    return torch.cat(chunks).clamp(-1, 1), seconds


def score_samples(recipe, model: nn.Module, n: int, judge, steps: int | None = None, seed: int = 1,
                  reference_seed: int = 2, progress: bool = False) -> tuple[torch.Tensor, SampleScores]:
    """(n clips sampled from ``model`` with DDIM, their scores).

    Clips are drawn ``recipe.batch_size`` at a time with ``steps`` DDIM steps (default
    ``preset.sample_steps``) from noise seeded with ``seed``; seconds per batch = total / n x
    batch size. FVD against ``recipe.real_examples(n, reference_seed)``; motion pass rate of the
    clips clamped to [-1, 1] (:func:`course_lib.metrics.motion.motion_consistency`).
    """
    from course_lib.metrics.motion import motion_consistency

    check_positive_int("n", n)
    if n < 2:
        fail("n", "at least 2 clips (the FVD fits a covariance)", n)
    clips, seconds = sample_in_batches(recipe, model, n, seed, progress, steps=steps)
    reference = recipe.real_examples(n, seed=reference_seed)
    scores = SampleScores(n, recipe.batch_size, seconds / n * recipe.batch_size, _fvd(judge, clips, reference),
                          float(motion_consistency(clips, recipe.object_size).pass_rate))
    return clips, scores


# --- the benchmark ---------------------------------------------------------------------------------

@dataclass
class VideoBenchConfig:
    """What :func:`video_benchmark` does.

    shapes: clip shapes (B, T, C, H, W) for the training-step rows. steps / warmup: timed and
    untimed steps per measurement. task: the data of the sample rows; the recipe is
    ``get_recipe(task, preset, model)``. samples: clips per model for FVD and motion.
    checkpoints: the folder :func:`course_lib.workshop.zoo.train_or_load` keeps them in. train_minutes:
    train a missing (or unfinished) checkpoint for this long first (None: report "not trained").
    train_steps: quick runs train this many steps into ``out`` instead.
    """

    preset: Preset
    shapes: tuple[tuple[int, ...], ...] = BENCH_SHAPES
    models: tuple[str, ...] = MODELS
    steps: int = 5
    warmup: int = 2
    task: str = "video-shapes"
    samples: int = DEFAULT_SAMPLES
    checkpoints: str = "checkpoints"
    train_minutes: float | None = None
    train_steps: int | None = None
    judge_changes: dict | None = None
    seed: int = 0
    out: str = DEFAULT_OUT
    progress: bool = True
    quick: bool = False

    def __post_init__(self):
        if not isinstance(self.preset, Preset):
            fail("preset", "a course_lib.config.Preset", type(self.preset).__name__)
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
        if self.train_minutes is not None:
            check_float_range("train_minutes", self.train_minutes, 1e-6, 1e6)
        if self.train_steps is not None:
            check_positive_int("train_steps", self.train_steps)

    @property
    def name(self) -> str:
        return f"video-{self.preset.name}" + ("-quick" if self.quick else "")


def _trained_model(config: VideoBenchConfig, recipe, device: torch.device):
    """(trainer or None, what the "trained" cell says) for ``recipe``: a checkpoint, trained first when asked."""
    from course_lib.workshop import zoo

    if config.train_steps is not None:  # quick: a few steps into the output folder
        path = Path(config.out) / f"{config.name}-{recipe.model_name}.pt"
        trainer = zoo.train(recipe, path, steps=config.train_steps, resume=False, progress=False, device=device,
                            command=" ".join([PROG, *sys.argv[1:]]))
        return trainer, f"{trainer.step} steps (quick)"
    path = zoo.checkpoint_path(recipe, folder=config.checkpoints)
    if config.train_minutes is not None and not _finished(path, recipe.steps):
        zoo.train(recipe, path, minutes=config.train_minutes, progress=config.progress, device=device,
                  command=" ".join([PROG, *sys.argv[1:]]))
    if not path.exists():
        return None, "not trained"
    _, trainer = zoo.load_checkpoint(path, device=device, progress=False)
    done = "" if trainer.step >= recipe.steps else f" of {recipe.steps}"
    return trainer, f"{trainer.step}{done} steps, {trainer.seconds / 60:.0f} min"


def _finished(path: Path, steps: int) -> bool:
    from course_lib.training import read_checkpoint

    return path.exists() and int(read_checkpoint(path)["step"]) >= steps


def step_time_verdicts(config: VideoBenchConfig, steps: list[StepMeasurement]) -> list[str]:
    """The step-time target of the 3D U-Net, met (✓) or not (✗), where it was measured."""
    rows = [m for m in steps if m.model == "unet3d" and m.shape == TARGET_SHAPE]
    if config.quick or not rows:
        return [f"target not judged: the 3D U-Net was not measured at {TARGET_SHAPE}"]
    m = rows[0]
    ok = m.params >= TARGET_PARAMS and m.median_s <= TARGET_STEP_S
    share = ""
    if m.cpu_share is not None:  # a busy machine: wall x share estimates the time on an idle one
        share = f", CPU share {m.cpu_share:.0%}"
        if m.cpu_share < 0.9:
            share += f": about {m.median_s * m.cpu_share:.2f} s on an idle machine"
    return [f"{'✓' if ok else '✗'} 3D U-Net, {m.params / 1e6:.2f}M parameters (target ≥ {TARGET_PARAMS / 1e6:g}M): "
            f"one training step at {TARGET_SHAPE} in {m.median_s:.3f} s median with {m.threads} thread(s) on "
            f"{m.device}{share} (target ≤ {TARGET_STEP_S} s)"]


def video_benchmark(config: VideoBenchConfig, device: torch.device | None = None, judge=None) -> Table:
    """Measure both video models: training steps at ``config.shapes``, then samples of trained models.

    Writes ``<out>/video-<preset>[-quick].md`` and ``.json`` (rewritten after each row).
    judge: the video judge for the task's clips (default :func:`video_judge_for`).
    """
    from course_lib.workshop.recipes import get_recipe

    if not isinstance(config, VideoBenchConfig):
        fail("config", "a VideoBenchConfig", type(config).__name__)
    device = get_device(None if device is None else str(device))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    table = Table(f"Video benchmark: 3D U-Net vs conv+LSTM, preset {config.preset.name}", VIDEO_COLUMNS,
                  formats=VIDEO_FORMATS)
    results: dict[str, Any] = {"config": {k: v for k, v in vars(config).items() if k != "preset"},
                               "preset": config.preset.name, "machine": describe_machine(device),
                               "load_before": load_before, "steps": [], "samples": {}}

    def save() -> None:
        results["rows"] = table.as_dicts()
        (out / f"{config.name}.json").write_text(json.dumps(results, indent=2, default=str))

    _prime(device)
    measured = []
    for shape in config.shapes:
        for model in config.models:
            m = measure_train_step(model, shape, config.preset, config.steps, config.warmup, device, config.seed)
            measured.append(m)
            table.rows.append((model, f"train step {shape}", m.params, m.median_s, m.cpu_share, m.peak_mb,
                               None, None, None, None))
            results["steps"].append(asdict(m))
            print(f"{model} {shape}: {m.median_s:.3f} s/step, {m.params:,} parameters", file=sys.stderr, flush=True)
            save()

    recipes = {model: get_recipe(config.task, config.preset, model=model, seed=config.seed) for model in config.models}
    first = next(iter(recipes.values()))
    T, C, S, _ = first.example_shape
    where = f"{config.task} {config.preset.name} {T}×{C}×{S}×{S}, N = {config.samples}"
    trained = {model: _trained_model(config, recipe, device) for model, recipe in recipes.items()}
    if any(trainer is not None for trainer, _ in trained.values()):  # the judge trains once: only when needed
        judge = judge or video_judge_for(first, config.judge_changes)
        real = real_clip_scores(first, config.samples, judge)
        table.rows.append(("real clips", where, None, None, None, None, None, real.fvd, real.motion_pass, None))
        results["samples"]["real clips"] = asdict(real)
        save()
    for model, recipe in recipes.items():
        trainer, status = trained[model]
        if trainer is None:
            table.rows.append((model, f"samples: {where}", None, None, None, None, None, None, None, status))
            results["samples"][model] = None
        else:
            _, scores = score_samples(recipe, trainer.ema_model, config.samples, judge, progress=config.progress)
            params = sum(p.numel() for p in trainer.ema_model.parameters())  # the EMA copy is frozen
            table.rows.append((model, f"samples: {where}", params, None, None, None,
                               scores.seconds_per_batch, scores.fvd, scores.motion_pass, status))
            results["samples"][model] = {**asdict(scores), "trained": status}
        save()

    load_after = load_average()
    load = "" if load_before is None else f"; load average {load_before:.1f} before, {load_after:.1f} after"
    methods = sorted({m.memory_method for m in measured})
    trained_from = (f"trained here for {config.train_steps} steps (quick run)" if config.train_steps else
                    f"train_or_load checkpoints of the {config.preset.name} recipes in {config.checkpoints}/ "
                    "(--train-minutes M trains missing ones)")
    widths = f"base width {config.preset.video_base_channels} (preset {config.preset.name})"
    table.notes = [
        f"machine: {describe_machine(device)}{load}",
        f"training steps: forward + MSE + backward + AdamW on random clips, median of {config.steps} after "
        f"{config.warmup} warm-up; models built by the video recipes at {widths}",
        f"peak MB: {', '.join(methods)} during those steps (on CPU: the process's resident memory, allocator and "
        "library buffers included)",
        f"samples: DDIM {config.preset.sample_steps} steps from the EMA weights, {first.batch_size} clips per batch; "
        f"FVD-style distance to {config.samples} real clips (video judge features; compare only at equal N); "
        "'real clips' is a second real set: the floor at this N",
        f"trained models: {trained_from}",
        "CPU share = CPU seconds / (wall seconds x threads): below 100% other programs took the cores",
    ]
    table.verdicts = step_time_verdicts(config, measured)
    results.update(load_after=load_after, notes=table.notes, verdicts=table.verdicts)
    save()
    (out / f"{config.name}.md").write_text(table.to_markdown() + "\n")
    return table


# --- the command line (registered in course_lib.workshop.bench.image) -------------------------------------------

def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    from course_lib.workshop.cli import positive_int, positive_minutes
    from course_lib.config import PRESETS

    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="model widths, sampling steps and the checkpoints' recipe (default: $COURSE_PRESET, "
                             "else gpu with CUDA, cpu without)")
    parser.add_argument("--models", choices=MODELS, nargs="+", default=list(MODELS), help="models to measure")
    parser.add_argument("--steps", type=positive_int, default=5, help="timed training steps per measurement (default 5)")
    parser.add_argument("--warmup", type=_non_negative_int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--task", choices=("video-shapes", "video-digits"), default="video-shapes",
                        help="data of the trained models whose samples are scored (default video-shapes)")
    parser.add_argument("--samples", type=positive_int, default=None,
                        help=f"clips per model for FVD and motion (default {DEFAULT_SAMPLES})")
    parser.add_argument("--checkpoints", default="checkpoints",
                        help="folder of train_or_load's checkpoints (default checkpoints)")
    parser.add_argument("--train-minutes", type=positive_minutes, default=None,
                        help="train a missing or unfinished checkpoint for this many minutes first "
                             "(default: report 'not trained')")
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
