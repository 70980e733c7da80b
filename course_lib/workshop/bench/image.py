"""The image benchmark: train the class-conditional digits U-Net for a time budget, then DDPM against DDIM.

    python -m course_lib bench image                  # cpu preset: 10 min of training, then DDPM vs DDIM
    python -m course_lib bench image --quick          # a tiny run (seconds) that exercises everything
    python -m course_lib bench image --checkpoint runs/bench/image-cpu.pt   # re-measure a trained model

Rows: training (steps, steps/s); real held-out digits (the best IS/FID/accuracy reachable at this
N); guided DDPM with all T steps; guided DDIM at each step count and η. Every sample is drawn from
the EMA weights for labels 0, 1, ..., 9, 0, ... with guidance scale w, from the same starting
noise, and scored by the digit judge (:mod:`course_lib.metrics.judge`).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from course_lib._validation import check_float_range, check_positive_int, fail
from course_lib.config import PRESETS, get_device, get_preset
from course_lib.workshop import zoo
from course_lib.workshop.bench.common import (
    PROG, BenchConfig, Record, Stopwatch, Table, command_line,
)
from course_lib.workshop.cli import non_negative_float, positive_int, positive_minutes, unit_float
from course_lib.workshop.recipes import GUIDANCE_SCALE, get_recipe

IMAGE_DDIM_STEPS = (50, 20)
IMAGE_DDIM_ETAS = (0.0, 1.0)  # deterministic DDIM, and DDIM with fresh noise at each step (Song et al. 2021a, Eq. 16)
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
class ImageBenchConfig(BenchConfig):
    """What :func:`image_benchmark` does. ``minutes`` and ``train_steps`` both stop training (None: no limit)."""

    kind: ClassVar[str] = "image"
    minutes: float | None = IMAGE_MINUTES
    train_steps: int | None = None
    idle_minutes: float | None = None  # a budget of CPU time / threads instead of wall time (see _train)
    samples: int = 500
    guidance_scale: float = GUIDANCE_SCALE
    ddim_steps: tuple[int, ...] = IMAGE_DDIM_STEPS
    ddim_etas: tuple[float, ...] = IMAGE_DDIM_ETAS  # each DDIM step count runs with each η
    batch: int = 100  # samples denoised at once (guidance doubles the network's batch)
    ddpm: bool = True  # False skips the DDPM row (1000 network calls per sample: hours on a CPU)
    checkpoint: str | None = None  # evaluate this file if it exists, else train and save there
    lr: float | None = None  # the recipe's learning rate (None: get_recipe's)

    def __post_init__(self):
        super().__post_init__()
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


def _train(config: ImageBenchConfig, recipe, device: torch.device):
    """(trainer, Stopwatch or None): train from scratch within the budget, or load ``config.checkpoint``.

    ``idle_minutes`` is the wall time the training would take on an idle machine with torch's
    threads all busy: a budget of this process's CPU time (idle minutes x threads), which other
    programs on a shared machine do not shrink.
    """
    if config.checkpoint and Path(config.checkpoint).exists():
        stored, trainer = zoo.load_checkpoint(config.checkpoint, device=device, progress=False)
        if stored.info() != recipe.replace(steps=stored.steps).info():
            fail("checkpoint", f"a checkpoint of the digits recipe at preset {recipe.preset.name!r}",
                 f"{config.checkpoint} ({stored.name()})")
        return trainer, None
    path = Path(config.checkpoint) if config.checkpoint else Path(config.out) / f"{config.name}.pt"
    cap = config.train_steps or 10**7  # with only a time budget, the budget ends training
    cpu_minutes = None if config.idle_minutes is None else config.idle_minutes * torch.get_num_threads()
    with Stopwatch() as watch:
        trainer = zoo.train(recipe, path, steps=cap, resume=False, minutes=config.minutes, cpu_minutes=cpu_minutes,
                            progress=config.progress, device=device, command=command_line())
    return trainer, watch


def ddim_label(steps: int, eta: float) -> str:
    """The row name of DDIM with ``steps`` steps: "DDIM 50", or "DDIM 50, η = 1" when η > 0."""
    return f"DDIM {steps}" if eta == 0 else f"DDIM {steps}, η = {eta:g}"


def sample_digits(recipe, model, labels: torch.Tensor, sampler: str, steps: int | None, guidance_scale: float,
                  batch: int, seed: int = 0, progress: bool = False, eta: float = 0.0):
    """(samples (N, 1, H, W) on CPU, Stopwatch): guided samples for ``labels``, ``batch`` at a time.

    Every sampler starts from the same noise (a generator seeded with ``seed``).
    """
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    with Stopwatch() as watch:
        for part in labels.split(batch):
            chunks.append(recipe.sample(model, len(part), steps=steps, sampler=sampler, generator=generator,
                                        guidance_scale=guidance_scale, labels=part, progress=progress, eta=eta).cpu())
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
    from course_lib.models.inspect import count_parameters

    if not isinstance(config, ImageBenchConfig):
        fail("config", "an ImageBenchConfig", type(config).__name__)
    device = get_device(None if device is None else str(device))
    recipe = get_recipe("digits", config.preset, seed=config.seed, **({} if config.lr is None else {"lr": config.lr}))
    size, T = config.preset.image_size, config.preset.num_diffusion_steps
    judge = judge or get_digit_judge(size, config=judge_config_for_preset(config.preset))

    table = Table(f"Image benchmark: class-conditional digits, preset {config.preset.name}", IMAGE_COLUMNS,
                  formats=IMAGE_FORMATS)
    record = Record(config, table, device)

    trainer, training_watch = _train(config, recipe, device)  # no watch: a loaded checkpoint
    train_steps = len(trainer.history["loss"])
    table.rows.append(("training, from scratch" if training_watch else "training (loaded)", trainer.step,
                       trainer.seconds, train_steps / trainer.seconds if trainer.seconds else None,
                       training_watch.cpu_share if training_watch and device.type == "cpu" else None,
                       None, None, None, None))
    record.data["final_loss"] = trainer.recent_loss(50)
    record.save()

    n = config.samples
    labels = torch.arange(n) % 10
    reference = reference_digits(n, size, seed=0)
    real = render_digits(n, size, "test", seed=1, labels=labels)[0]
    scores = {"real": image_scores(real, reference, labels, judge)}
    table.rows.append(("real digits (held-out fonts)", None, None, None, None, None,
                       scores["real"]["IS"], scores["real"]["FID"], scores["real"]["accuracy"]))
    record.save()

    # the fast samplers first: their rows are ready long before DDPM's
    model = trainer.ema_model.eval()
    runs = [(ddim_label(s, eta), "ddim", s, eta) for s in config.ddim_steps for eta in config.ddim_etas]
    runs += [("DDPM", "ddpm", None, 0.0)] if config.ddpm else []
    seconds, sampled = {}, {}
    for label, sampler, steps, eta in runs:
        samples, watch = sample_digits(recipe, model, labels, sampler, steps, config.guidance_scale, config.batch,
                                       config.seed, config.progress, eta)
        seconds[label], scores[label] = watch.wall, image_scores(samples, reference, labels, judge)
        sampled[label] = (steps or T, watch)
        print(f"{label}: {n} samples in {watch.wall:.1f} s, accuracy {scores[label]['accuracy']:.1%}, "
              f"FID {scores[label]['FID']:.2f}", file=sys.stderr, flush=True)
        record.data.setdefault("samplers", {})[label] = {"seconds": watch.wall, "cpu_seconds": watch.cpu, **scores[label]}
        record.save()
    for label, *_ in (runs[-1:] + runs[:-1] if config.ddpm else runs):  # DDPM first in the table
        steps, watch = sampled[label]
        table.rows.append((label, steps, watch.wall, steps / watch.wall,
                           watch.cpu_share if device.type == "cpu" else None,
                           seconds["DDPM"] / watch.wall if config.ddpm else None,
                           scores[label]["IS"], scores[label]["FID"], scores[label]["accuracy"]))

    budget = " and ".join(([f"{config.minutes:g} min"] if config.minutes else [])
                          + ([f"{config.idle_minutes:g} idle-machine min (CPU time / threads)"] if config.idle_minutes else [])
                          + ([f"{config.train_steps} steps"] if config.train_steps else []))
    table.notes = [
        record.machine_note(),
        f"model: UNet2D, {count_parameters(trainer.model):,} parameters, {size}x{size}, T = {T}, "
        f"batch {recipe.batch_size}, lr {recipe.lr:g}, {config.preset.precision}; training budget {budget if training_watch else '(loaded checkpoint)'}; "
        f"final loss {record.data['final_loss']:.4f}",
        f"sampling: {n} samples from the EMA weights, labels 0-9 in turn, guidance scale w = "
        f"{config.guidance_scale:g}, {config.batch} at a time; judge: {judge.test_accuracy:.1%} on held-out fonts",
        "CPU share = CPU seconds / (wall seconds x threads): below 100% other programs took the cores",
    ]
    table.verdicts = _verdicts(config, scores, seconds)
    return record.finish()


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
    parser.add_argument("--guidance", type=non_negative_float, default=GUIDANCE_SCALE,
                        help=f"classifier-free guidance scale w, 1 = plain conditional (default {GUIDANCE_SCALE:g})")
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
                        help="autocast while training (default: the preset's; bf16 helps on CPUs with AVX512-BF16 "
                             "or AMX)")
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
