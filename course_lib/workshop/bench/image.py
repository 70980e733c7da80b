"""Benchmarks: train one part of the course from scratch, measure it, print one table.

    python -m course_lib.workshop.bench.image image                  # cpu preset: 10 min of training, then DDPM vs DDIM
    python -m course_lib.workshop.bench.image image --quick          # a tiny run (seconds) that exercises everything
    python -m course_lib.workshop.bench.image image --checkpoint runs/bench/image-cpu.pt   # re-measure a trained model
    python -m course_lib.workshop.bench.image all --preset cpu       # every benchmark in one run, every table printed
    python -m course_lib.workshop.bench.image all --quick            # the same in a minute: tiny runs of each

Benchmarks: ``image`` (here), ``video`` (:mod:`course_lib.workshop.bench.video`), ``sampling``
(:mod:`course_lib.workshop.bench.sampling`), ``prediction`` (:mod:`course_lib.workshop.bench.prediction`),
``training`` (:mod:`course_lib.workshop.bench.training`), and ``all``, which runs them in that order with
their defaults. Each is a :class:`Benchmark` in :data:`BENCHMARKS`; its name is the subcommand. To
add one, write ``add_arguments(parser)`` and ``run(args) -> Table`` and register them. Results go
to ``--out`` (default ``runs/bench``) as ``<name>-<preset>.md`` (the table) and ``.json`` (every
number, rewritten after each row); ``all`` also writes ``all-<preset>.md`` with every table.

Timings depend on the machine *and on everything else running on it*. Every table names the
machine, torch's threads and the load average, and gives each stage's **CPU share**: CPU seconds
of this process / (wall seconds x threads). A share well below 100% means other programs took the
cores; wall seconds x share then estimates the time on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from course_lib._validation import check_float_range, check_positive_int, fail
from course_lib.workshop.cli import non_negative_float, positive_int, positive_minutes, unit_float
from course_lib.config import PRESETS, Preset, get_device, get_preset

PROG = "python -m course_lib.workshop.bench.image"
DEFAULT_OUT = "runs/bench"

# --- tables ------------------------------------------------------------------------------------


@dataclass
class Table:
    """One benchmark's result: ``rows`` of cells (str, int, float or None, shown as "–") under ``columns``.

    ``formats`` maps a column to a format spec for its floats (e.g. ``".2f"``); ``notes`` are
    printed above the table (machine, settings), ``verdicts`` below it (targets met or not).
    """

    title: str
    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    def cell(self, column: str, value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return format(value, self.formats.get(column, ".3g"))
        return str(value)

    def to_markdown(self) -> str:
        """The title, the notes, a Markdown table, then the verdicts."""
        lines = [f"### {self.title}", ""] + [f"{note}  " for note in self.notes] + [""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(self.cell(c, v) for c, v in zip(self.columns, row)) + " |")
        if self.verdicts:
            lines += [""] + [f"- {verdict}" for verdict in self.verdicts]
        return "\n".join(lines)

    def as_dicts(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}`` dicts (plain numbers, for JSON)."""
        return [dict(zip(self.columns, row)) for row in self.rows]


# --- the machine and how busy it is ------------------------------------------------------------


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average (runnable processes), or None where the OS does not say."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def describe_machine(device: torch.device) -> str:
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (f"{cpu_name()}, {os.cpu_count()} cores{gpu}; torch {torch.__version__} on {device.type} "
            f"with {torch.get_num_threads()} thread(s)")


def configure_threads(threads: int | None, device: torch.device) -> str | None:
    """Set torch's CPU threads: ``threads``, or 1 when every core is already busy. Returns a note or None."""
    if threads is not None:
        torch.set_num_threads(check_positive_int("threads", threads))
        return None
    load, cores = load_average(), os.cpu_count() or 1
    if device.type == "cpu" and torch.get_num_threads() > 1 and load is not None and load >= cores:
        torch.set_num_threads(1)  # threads that wait on each other are slower than one on a full machine
        return f"the machine was busy (load {load:.1f} on {cores} cores), so torch used 1 thread (--threads to choose)"
    return None


@dataclass
class Stopwatch:
    """Wall and CPU seconds of a block: ``with Stopwatch() as watch: ...; watch.wall, watch.cpu_share``."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> "Stopwatch":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu

    @property
    def cpu_share(self) -> float:
        """CPU seconds / (wall seconds x torch threads): 1.0 on an idle machine (CPU only)."""
        return self.cpu / (self.wall * torch.get_num_threads()) if self.wall > 0 else math.nan


# --- the image benchmark -----------------------------------------------------------------------

IMAGE_GUIDANCE_SCALE = 3.0  # w of classifier-free guidance (1 = plain conditional), chosen on the cpu preset
IMAGE_DDIM_STEPS = (50, 20)
IMAGE_DDIM_ETAS = (0.0, 1.0)  # deterministic DDIM, and DDIM with fresh noise at each step (Song et al. 2021, Eq. 16)
IMAGE_MINUTES = 10.0  # default training budget
TARGET_ACCURACY = 0.90  # judge accuracy of guided samples, over >= FID_SAMPLES samples
TARGET_FID_RATIO = 1.15  # FID(DDIM 50) <= 1.15 x FID(DDPM), judged for each η
TARGET_SPEEDUP = 15.0  # DDPM sampling time / DDIM 50 sampling time
QUICK = {"num_diffusion_steps": 50, "train_steps": 4, "samples": 10, "ddim_steps": (10, 4)}
IMAGE_COLUMNS = ("stage", "steps", "seconds", "steps/s", "CPU share", "speed-up vs DDPM", "IS ↑", "FID ↓",
                 "judge accuracy")
IMAGE_FORMATS = {"seconds": ".1f", "steps/s": ".2f", "CPU share": ".0%", "speed-up vs DDPM": ".1f",
                 "IS ↑": ".2f", "FID ↓": ".2f", "judge accuracy": ".1%"}


@dataclass
class ImageBenchConfig:
    """What :func:`image_benchmark` does. ``minutes`` and ``train_steps`` both stop training (None: no limit)."""

    preset: Preset
    minutes: float | None = IMAGE_MINUTES
    train_steps: int | None = None
    idle_minutes: float | None = None  # a budget of CPU time / threads instead of wall time (see _train)
    samples: int = 500
    guidance_scale: float = IMAGE_GUIDANCE_SCALE
    ddim_steps: tuple[int, ...] = IMAGE_DDIM_STEPS
    ddim_etas: tuple[float, ...] = IMAGE_DDIM_ETAS  # each DDIM step count runs with each η
    seed: int = 0
    batch: int = 100  # samples denoised at once (guidance doubles the network's batch)
    ddpm: bool = True  # False skips the DDPM row (1000 network calls per sample: hours on a CPU)
    checkpoint: str | None = None  # evaluate this file if it exists, else train and save there
    out: str = DEFAULT_OUT
    progress: bool = True
    quick: bool = False  # only names the output files (image-<preset>-quick.*)
    lr: float | None = None  # the recipe's learning rate (None: get_recipe's)

    def __post_init__(self):
        if not isinstance(self.preset, Preset):
            fail("preset", "a course_lib.config.Preset", type(self.preset).__name__)
        if self.minutes is not None:
            check_float_range("minutes", self.minutes, 1e-6, 1e6)
        if self.train_steps is not None:
            check_positive_int("train_steps", self.train_steps)
        if self.idle_minutes is not None:
            check_float_range("idle_minutes", self.idle_minutes, 1e-6, 1e6)
            if self.minutes is not None:
                fail("minutes", "None when idle_minutes is given (one budget: wall or CPU time)", self.minutes)
        if self.minutes is None and self.train_steps is None and self.idle_minutes is None:
            fail("minutes", "a budget in minutes when train_steps is None (training needs an end)", None)
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 2:
            fail("samples", "an int >= 2 (FID fits a covariance to the samples)", self.samples)
        check_float_range("guidance_scale", self.guidance_scale, 0.0, 100.0)
        T = self.preset.num_diffusion_steps
        if not self.ddim_steps or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= T
                                      for s in self.ddim_steps):
            fail("ddim_steps", f"one or more ints in [1, {T}]", self.ddim_steps)
        if not self.ddim_etas or any(isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 <= e <= 1
                                     for e in self.ddim_etas):
            fail("ddim_etas", "one or more numbers in [0, 1] (0: deterministic DDIM)", self.ddim_etas)
        check_positive_int("batch", self.batch)
        if self.lr is not None:
            check_float_range("lr", self.lr, 1e-8, 1.0)

    @property
    def name(self) -> str:
        return f"image-{self.preset.name}" + ("-quick" if self.quick else "")


def _train(config: ImageBenchConfig, recipe, device: torch.device):
    """(trainer, Stopwatch or None): train from scratch within the budget, or load ``config.checkpoint``."""
    from course_lib.workshop import zoo

    if config.checkpoint and Path(config.checkpoint).exists():
        stored, trainer = zoo.load_checkpoint(config.checkpoint, device=device, progress=False)
        if stored.info() != recipe.replace(steps=stored.steps).info():
            fail("checkpoint", f"a checkpoint of the digits recipe at preset {recipe.preset.name!r}",
                 f"{config.checkpoint} ({stored.name()})")
        return trainer, None
    path = Path(config.checkpoint) if config.checkpoint else Path(config.out) / f"{config.name}.pt"
    cap = config.train_steps or 10**7  # with only a time budget, the budget ends training
    command = " ".join([PROG, *sys.argv[1:]])
    with Stopwatch() as watch:
        if config.idle_minutes is None:
            trainer = zoo.train(recipe, path, steps=cap, resume=False, minutes=config.minutes,
                                progress=config.progress, device=device, command=command)
        else:
            trainer = _train_for_cpu_time(recipe, path, cap, config.idle_minutes, config.progress, device, command)
    return trainer, watch


IDLE_CHUNK_STEPS = 50  # steps between two looks at the CPU clock (resume is exact, so chunks change nothing)


def _train_for_cpu_time(recipe, path: Path, cap: int, idle_minutes: float, progress: bool, device, command: str):
    """Train until this process has used ``idle_minutes`` x 60 x threads CPU seconds (or ``cap`` steps).

    On a shared machine a wall-clock budget shrinks with everybody else's load; CPU time does not:
    ``idle_minutes`` is the wall time the same training would take on an idle machine with torch's
    threads all busy. Training runs in chunks of :data:`IDLE_CHUNK_STEPS` steps, each resumed
    exactly from the previous one's checkpoint; the budget is checked between chunks.
    """
    from course_lib.workshop import zoo

    budget = idle_minutes * 60.0 * torch.get_num_threads()
    start, trainer = time.process_time(), None
    while trainer is None or (trainer.step < cap and time.process_time() - start < budget):
        target = min(cap, (trainer.step if trainer else 0) + IDLE_CHUNK_STEPS)
        trainer = zoo.train(recipe, path, steps=target, resume=trainer is not None, progress=progress,
                            device=device, command=command)
    return trainer


def ddim_label(steps: int, eta: float) -> str:
    """The row name of DDIM with ``steps`` steps: "DDIM 50", or "DDIM 50, η = 1" when η > 0."""
    return f"DDIM {steps}" if eta == 0 else f"DDIM {steps}, η = {eta:g}"


def _sample(recipe, model, labels: torch.Tensor, sampler: str, steps: int | None, config: ImageBenchConfig,
            eta: float = 0.0):
    """(samples (N, 1, H, W) on CPU, Stopwatch): guided samples for ``labels``, ``config.batch`` at a time.

    Every sampler starts from the same noise (generator seeded with ``config.seed``).
    """
    generator = torch.Generator().manual_seed(config.seed)
    chunks = []
    with Stopwatch() as watch:
        for part in labels.split(config.batch):
            chunks.append(recipe.sample(model, len(part), steps=steps, sampler=sampler, generator=generator,
                                        guidance_scale=config.guidance_scale, labels=part,
                                        progress=config.progress, eta=eta).cpu())
    return torch.cat(chunks), watch


def _verdicts(config: ImageBenchConfig, scores: dict[str, dict[str, float]], seconds: dict[str, float]) -> list[str]:
    """Each target of the image benchmark, met (✓) or not (✗), from the measured numbers."""
    from course_lib.metrics.judge import FID_SAMPLES

    main = ddim_label(config.ddim_steps[0], config.ddim_etas[0])
    if config.samples < FID_SAMPLES:
        return [f"targets not judged: {config.samples} samples (the targets are defined over {FID_SAMPLES})"]
    mark = {True: "✓", False: "✗"}
    accuracy = scores[main]["accuracy"]
    verdicts = [f"{mark[accuracy >= TARGET_ACCURACY]} judge accuracy of guided {main} samples {accuracy:.1%} "
                f"(target ≥ {TARGET_ACCURACY:.0%} over ≥ {FID_SAMPLES} samples)"]
    if "DDPM" not in scores:
        return verdicts + ["FID and speed-up against DDPM not measured (DDPM skipped)"]
    for eta in config.ddim_etas:  # the targets hold for DDIM with this many steps at some η
        label = ddim_label(config.ddim_steps[0], eta)
        ratio = scores[label]["FID"] / scores["DDPM"]["FID"]
        speedup = seconds["DDPM"] / seconds[label]
        verdicts += [
            f"{mark[ratio <= TARGET_FID_RATIO]} FID {label} / FID DDPM = {ratio:.3f} (target ≤ {TARGET_FID_RATIO})",
            f"{mark[speedup >= TARGET_SPEEDUP]} {label} samples {speedup:.1f}x faster than DDPM "
            f"(target ≥ {TARGET_SPEEDUP:g}x)",
        ]
    return verdicts


def image_benchmark(config: ImageBenchConfig, device: torch.device | None = None, judge=None) -> Table:
    """Train the digits model (``course_lib.workshop.recipes``, task "digits") and measure DDPM and DDIM sampling.

    Rows: training (steps, steps/s); real held-out digits (the best IS/FID/accuracy reachable at
    this N); guided DDPM with all T steps; guided DDIM with each of ``config.ddim_steps`` at each of
    ``config.ddim_etas``. All
    samples are drawn from the EMA weights for labels 0, 1, ..., 9, 0, ... with guidance scale
    ``config.guidance_scale``, from the same starting noise, and scored by the digit judge
    against ``config.samples`` real digits. Writes ``<out>/image-<preset>.md`` and ``.json``.
    """
    from course_lib.data.digits import render_digits
    from course_lib.metrics.judge import get_digit_judge, image_scores, judge_config_for_preset, reference_digits
    from course_lib.models.profile import count_parameters
    from course_lib.workshop.recipes import get_recipe

    if not isinstance(config, ImageBenchConfig):
        fail("config", "an ImageBenchConfig", type(config).__name__)
    device = get_device(None if device is None else str(device))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    recipe = get_recipe("digits", config.preset, seed=config.seed, **({} if config.lr is None else {"lr": config.lr}))
    size, T = config.preset.image_size, config.preset.num_diffusion_steps
    judge = judge or get_digit_judge(size, config=judge_config_for_preset(config.preset))

    table = Table(f"Image benchmark: class-conditional digits, preset {config.preset.name}", IMAGE_COLUMNS,
                  formats=IMAGE_FORMATS)
    results: dict[str, Any] = {"config": {k: v for k, v in vars(config).items() if k != "preset"},
                               "preset": config.preset.name, "machine": describe_machine(device),
                               "load_before": load_before}

    def save() -> None:
        results["rows"] = table.as_dicts()
        (out / f"{config.name}.json").write_text(json.dumps(results, indent=2, default=str))

    trainer, training_watch = _train(config, recipe, device)  # no watch: a loaded checkpoint
    train_steps = len(trainer.history["loss"])
    table.rows.append(("training, from scratch" if training_watch else "training (loaded)", trainer.step,
                       trainer.seconds, train_steps / trainer.seconds if trainer.seconds else None,
                       training_watch.cpu_share if training_watch and device.type == "cpu" else None,
                       None, None, None, None))
    results["final_loss"] = trainer.recent_loss(50)
    save()

    n = config.samples
    labels = torch.arange(n) % 10
    reference = reference_digits(n, size, seed=0)
    real = render_digits(n, size, "test", seed=1, labels=labels)[0]
    scores = {"real": image_scores(real, reference, labels, judge)}
    table.rows.append(("real digits (held-out fonts)", None, None, None, None, None,
                       scores["real"]["IS"], scores["real"]["FID"], scores["real"]["accuracy"]))
    save()

    # the fast samplers first: their rows are ready long before DDPM's
    model = trainer.ema_model.eval()
    runs = [(ddim_label(s, eta), "ddim", s, eta) for s in config.ddim_steps for eta in config.ddim_etas]
    runs += [("DDPM", "ddpm", None, 0.0)] if config.ddpm else []
    seconds, sampled = {}, {}
    for label, sampler, steps, eta in runs:
        samples, watch = _sample(recipe, model, labels, sampler, steps, config, eta)
        seconds[label], scores[label] = watch.wall, image_scores(samples, reference, labels, judge)
        sampled[label] = (steps or T, watch)
        print(f"{label}: {n} samples in {watch.wall:.1f} s, accuracy {scores[label]['accuracy']:.1%}, "
              f"FID {scores[label]['FID']:.2f}", file=sys.stderr, flush=True)
        results.setdefault("samplers", {})[label] = {"seconds": watch.wall, "cpu_seconds": watch.cpu, **scores[label]}
        save()
    for label, *_ in (runs[-1:] + runs[:-1] if config.ddpm else runs):  # DDPM first in the table
        steps, watch = sampled[label]
        table.rows.append((label, steps, watch.wall, steps / watch.wall,
                           watch.cpu_share if device.type == "cpu" else None,
                           seconds["DDPM"] / watch.wall if config.ddpm else None,
                           scores[label]["IS"], scores[label]["FID"], scores[label]["accuracy"]))

    load_after = load_average()
    load = "" if load_before is None else f"; load average {load_before:.1f} before, {load_after:.1f} after"
    budget = " and ".join(([f"{config.minutes:g} min"] if config.minutes else [])
                          + ([f"{config.idle_minutes:g} idle-machine min (CPU time / threads)"] if config.idle_minutes else [])
                          + ([f"{config.train_steps} steps"] if config.train_steps else []))
    table.notes = [
        f"machine: {describe_machine(device)}{load}",
        f"model: UNet2D, {count_parameters(trainer.model):,} parameters, {size}x{size}, T = {T}, "
        f"batch {recipe.batch_size}, lr {recipe.lr:g}, {config.preset.precision}; training budget {budget if training_watch else '(loaded checkpoint)'}; "
        f"final loss {results['final_loss']:.4f}",
        f"sampling: {n} samples from the EMA weights, labels 0-9 in turn, guidance scale w = "
        f"{config.guidance_scale:g}, {config.batch} at a time; judge: {judge.test_accuracy:.1%} on held-out fonts",
        "CPU share = CPU seconds / (wall seconds x threads): below 100% other programs took the cores",
    ]
    table.verdicts = _verdicts(config, scores, seconds)
    results.update(load_after=load_after, notes=table.notes, verdicts=table.verdicts)
    save()
    (out / f"{config.name}.md").write_text(table.to_markdown() + "\n")
    return table


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    presets = tuple(PRESETS)
    parser.add_argument("--preset", choices=presets, default=None,
                        help="sizes (default: $COURSE_PRESET, else gpu with CUDA, cpu without)")
    parser.add_argument("--minutes", type=positive_minutes, default=None,
                        help=f"training budget in minutes of wall-clock time (default {IMAGE_MINUTES:g})")
    parser.add_argument("--idle-minutes", type=positive_minutes, default=None,
                        help="instead of --minutes: a budget of CPU time / threads, i.e. minutes on an idle machine "
                             "(for a machine that other programs share)")
    parser.add_argument("--steps", type=positive_int, default=None, help="stop training after this many steps too")
    parser.add_argument("--samples", type=positive_int, default=None,
                        help="samples per sampler for IS, FID and accuracy (default: FID_SAMPLES = 500)")
    parser.add_argument("--guidance", type=non_negative_float, default=IMAGE_GUIDANCE_SCALE,
                        help=f"classifier-free guidance scale w, 1 = plain conditional (default {IMAGE_GUIDANCE_SCALE:g})")
    parser.add_argument("--ddim-steps", type=positive_int, nargs="+", default=None,
                        help="DDIM step counts, the first one judged against DDPM (default 50 20)")
    parser.add_argument("--ddim-eta", type=unit_float, nargs="+", default=None,
                        help="η of each DDIM run: 0 deterministic, 1 fresh noise at every step like DDPM "
                             "(default 0 1)")
    parser.add_argument("--batch", type=positive_int, default=100, help="samples denoised at once (default 100)")
    parser.add_argument("--no-ddpm", action="store_true",
                        help="skip DDPM (1000 network calls per sample, hours for 500 samples on a CPU); "
                             "the FID and speed-up targets are then not judged")
    parser.add_argument("--checkpoint", default=None,
                        help="evaluate this checkpoint if it exists (no training), else train and save it there")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run in seconds (T = 50, 4 training steps, 10 samples): checks the machinery")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                        help="autocast while training (default: the preset's; bf16 is 1.5-1.8x faster on CPUs with "
                             "AVX512-BF16 or AMX)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the digits recipe's)")


def run_image(args: argparse.Namespace) -> Table:
    from course_lib.metrics.judge import FID_SAMPLES

    preset = get_preset(args.preset)
    if args.precision:
        preset = preset.replace(precision=args.precision)
    minutes, steps, samples, ddim_steps = args.minutes or IMAGE_MINUTES, args.steps, args.samples, args.ddim_steps
    if args.idle_minutes is not None:
        if args.minutes is not None:
            raise SystemExit(f"{PROG} image: error: --minutes and --idle-minutes are two budgets; give one")
        minutes = None
    if args.quick:
        preset = preset.replace(num_diffusion_steps=QUICK["num_diffusion_steps"])
        minutes = args.minutes
        steps = steps or QUICK["train_steps"]
        samples, ddim_steps = samples or QUICK["samples"], ddim_steps or QUICK["ddim_steps"]
    config = ImageBenchConfig(preset=preset, minutes=minutes, train_steps=steps, idle_minutes=args.idle_minutes,
                              samples=samples or FID_SAMPLES,
                              guidance_scale=args.guidance, ddim_steps=tuple(ddim_steps or IMAGE_DDIM_STEPS),
                              ddim_etas=tuple(args.ddim_eta or IMAGE_DDIM_ETAS),
                              seed=args.seed, batch=args.batch, checkpoint=args.checkpoint,
                              ddpm=not args.no_ddpm, out=args.out, progress=not args.quiet, quick=args.quick,
                              lr=args.lr)
    return image_benchmark(config, device=args.device_obj)


# --- the command line --------------------------------------------------------------------------


@dataclass
class Report:
    """Several tables printed one after another (what ``all`` returns): a title, notes, the tables."""

    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        head = "\n".join([f"## {self.title}", ""] + [f"{note}  " for note in self.notes])
        return "\n\n".join([head] + [table.to_markdown() for table in self.tables])


@dataclass(frozen=True)
class Benchmark:
    """A subcommand: ``add_arguments(parser)`` declares its options, ``run(args)`` measures and returns a
    Table (or, for ``all``, a Report of several)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Table | Report]


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    from course_lib.workshop.bench.video import add_video_arguments as add  # imported late: bench_video imports this module

    add(parser)


def run_video(args: argparse.Namespace) -> Table:
    from course_lib.workshop.bench.video import run_video as run

    return run(args)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    from course_lib.workshop.bench.training import add_training_arguments as add  # imported late: it imports this module

    add(parser)


def run_training(args: argparse.Namespace) -> Table:
    from course_lib.workshop.bench.training import run_training as run

    return run(args)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    from course_lib.workshop.bench.sampling import add_sampling_arguments as add  # imported late: it imports this module

    add(parser)


def run_sampling(args: argparse.Namespace) -> Table:
    from course_lib.workshop.bench.sampling import run_sampling as run

    return run(args)


def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    from course_lib.workshop.bench.prediction import add_prediction_arguments as add  # imported late: it imports this module

    add(parser)


def run_prediction(args: argparse.Namespace) -> Table:
    from course_lib.workshop.bench.prediction import run_prediction as run

    return run(args)


ALL_ORDER = ("image", "video", "sampling", "prediction", "training")  # what `all` runs, in this order


def add_all_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="the preset of every benchmark (default: $COURSE_PRESET, else gpu with CUDA, cpu without)")
    parser.add_argument("--checkpoints", default="checkpoints",
                        help="folder of train_or_load's checkpoints, for video, sampling and prediction")
    parser.add_argument("--train-minutes", type=positive_minutes, default=None,
                        help="video, sampling, prediction: train missing models for this many minutes first")
    parser.add_argument("--skip", choices=ALL_ORDER, nargs="+", default=[], help="benchmarks to leave out")
    parser.add_argument("--quick", action="store_true", help="the quick run of every benchmark (about a minute)")


def _argv_for(name: str, args: argparse.Namespace) -> list[str]:
    """The command line of benchmark ``name`` inside ``all``: its defaults, and the options ``all`` passes on."""
    argv = [name, "--out", args.out, "--seed", str(args.seed), "--checkpoints", args.checkpoints]
    argv += ["--quick"] * args.quick + ["--quiet"] * args.quiet
    for option, value in (("--preset", args.preset), ("--device", args.device), ("--threads", args.threads),
                          ("--train-minutes", args.train_minutes)):
        argv += [option, str(value)] if value is not None else []
    return argv


def run_all(args: argparse.Namespace) -> Report:
    """Every benchmark of :data:`ALL_ORDER` (less ``--skip``) with its defaults; writes ``<out>/all-<preset>.md``."""
    parser = build_parser()
    report = Report(f"All benchmarks, preset {get_preset(args.preset).name}" + (" (quick runs)" if args.quick else ""))
    for name in ALL_ORDER:
        if name in args.skip:
            continue
        sub, _ = parser.parse_known_args(_argv_for(name, args))  # drops what a benchmark does not take
        sub.device_obj, threads = args.device_obj, torch.get_num_threads()
        with Stopwatch() as watch:
            try:
                report.tables.append(BENCHMARKS[name].run(sub))
            finally:
                torch.set_num_threads(threads)  # each benchmark starts from the same threads
        took = f"{watch.wall:.0f} s" if watch.wall < 120 else f"{watch.wall / 60:.1f} min"
        report.notes.append(f"{name}: {took}")
        print(f"all: {name} done in {took}", file=sys.stderr, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"all-{get_preset(args.preset).name}" + ("-quick" if args.quick else "")
    (out / f"{name}.md").write_text(report.to_markdown() + "\n")
    return report


BENCHMARKS: dict[str, Benchmark] = {
    "image": Benchmark("train the class-conditional digits U-Net for a time budget; DDPM vs DDIM time, IS, FID, "
                       "judge accuracy of guided samples", add_image_arguments, run_image),
    "video": Benchmark("the 3D U-Net and the conv+LSTM denoiser: parameters, training-step time and peak memory at "
                       "two clip shapes; sampling time, FVD-style distance and motion pass rate of trained models "
                       "(course_lib.workshop.bench.video)", add_video_arguments, run_video),
    "training": Benchmark("training steps/s of the digits U-Net and the video 3D U-Net in fp32, bf16 autocast, "
                          "compiled and channels-last, with their memory estimates (course_lib.workshop.bench.training)",
                          add_training_arguments, run_training),
    "sampling": Benchmark("DDPM vs DDIM at 100/50/20/10 steps on the trained digits U-Net and video 3D U-Net: time per "
                          "sample, FID and judge accuracy, FVD-style distance and motion pass "
                          "(course_lib.workshop.bench.sampling)", add_sampling_arguments, run_sampling),
    "prediction": Benchmark("predict the future frames of bouncing shapes with the frame-conditional U-Net, "
                            "replacement and reconstruction guidance against 'repeat the last frame'; roll out 4x "
                            "longer videos (course_lib.workshop.bench.prediction)", add_prediction_arguments, run_prediction),
    "all": Benchmark("run image, video, sampling, prediction and training one after another with their defaults "
                     "and print every table", add_all_arguments, run_all),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Train and measure a part of the course; print one table.")
    commands = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, benchmark in BENCHMARKS.items():
        sub = commands.add_parser(name, help=benchmark.help, description=benchmark.help)
        benchmark.add_arguments(sub)
        sub.add_argument("--seed", type=int, default=0, help="seed of the model, data and noise (default 0)")
        sub.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None,
                         help="where to compute (default: $COURSE_DEVICE, else CUDA, MPS, CPU)")
        sub.add_argument("--threads", type=positive_int, default=None,
                         help="torch CPU threads (default: torch's, or 1 when the machine is already busy)")
        sub.add_argument("--out", default=DEFAULT_OUT, help=f"folder for the checkpoint and results (default {DEFAULT_OUT})")
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv`` (default ``sys.argv[1:]``), print the table(s) to stdout; returns the exit code (2: bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help (0) or an argparse error (2), already printed
        return int(exit.code or 0)
    threads = torch.get_num_threads()
    try:
        args.device_obj = get_device(args.device)
        note = configure_threads(args.threads, args.device_obj)
        if note:
            print(f"note: {note}", file=sys.stderr, flush=True)
        table = BENCHMARKS[args.benchmark].run(args)
    except ValueError as error:
        print(f"{PROG} {args.benchmark}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.benchmark}: interrupted", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)  # main() called from Python leaves the process as it found it
    print(table.to_markdown(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
