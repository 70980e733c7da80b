"""The sampling benchmark: DDPM against DDIM at fewer and fewer steps, and flow matching's ODE solvers
at the same numbers of network calls, on the course's trained models.

    python -m course_lib bench sampling               # digits U-Net and video 3D U-Net: DDPM, DDIM 100/50/20/10;
                                                      # the flow-matching twins: Euler and Heun at as many calls
    python -m course_lib bench sampling --objectives eps   # the ε models only
    python -m course_lib bench sampling --no-ddpm     # DDIM only
    python -m course_lib bench sampling --quick       # tiny models trained for 2 steps: seconds, checks the machinery
    python -m course_lib bench sampling --digits-checkpoint runs/bench/image-cpu.pt \\
        --video-checkpoint runs/video-shapes-unet3d-cpu.pt        # models trained elsewhere

For each model and sampler: seconds per sample (wall clock, the same batch size for every
sampler), the speed-up over DDPM, and the quality of ``--samples`` samples -- digits: FID and the
judge's accuracy of class-guided samples (:mod:`course_lib.metrics.judge`, as ``bench image``);
video: the FVD-style distance to real clips, the motion-consistency pass rate and the share of clips
that pass the whole video consistency (object in every frame, consistent motion, kept look)
(:func:`course_lib.metrics.video.score_samples`, as ``bench video``). A "real" row per model is the
floor at that n. DDPM visits all T steps (hours for 500 digits on a CPU), so it samples only
``--ddpm-samples`` (default 16) for its time; its quality is measured only at the full n.

Each task also has a flow-matching model (the same network and recipe with ``objective="flow"``),
sampled by the Euler solver with N network calls and by Heun with the most steps that fit in N calls
(2·steps − 1), for each N of ``--ddim-steps``: one table, the same seeds, the same judge.

Trained models are found by :func:`course_lib.workshop.bench.common.trained_model`: a file
named on the command line (``--digits-checkpoint``, ``--digits-flow-checkpoint``, ...); else :func:`course_lib.workshop.zoo.train_or_load`'s checkpoint in
``--checkpoints``, trained first for ``--train-minutes`` if missing; for digits, else the image
benchmark's model in ``--out``. A model without any reads "not trained".
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from course_lib._validation import check_choice, check_float_range, check_positive_int, fail
from course_lib.config import PRESETS, get_device, get_preset
from course_lib.workshop.bench.common import (
    Record, Stopwatch, Table, Trained, TrainedModelsConfig, add_trained_model_arguments, check_checkpoint_file,
    trained_model,
)
from course_lib.workshop.bench.image import sample_digits
from course_lib.workshop.bench.video import DEFAULT_SAMPLES, QUICK_JUDGE_CHANGES
from course_lib.workshop.cli import positive_int
from course_lib.workshop.recipes import GUIDANCE_SCALE, get_recipe

TASKS = ("digits", "video-shapes")
OBJECTIVES = ("eps", "flow")  # the ε model (DDPM, DDIM) and its flow-matching twin (Euler, Heun)
DDIM_STEPS = (100, 50, 20, 10)
DDPM_SAMPLES = 16  # DDPM is timed on this many samples (1000 network calls each)
DIGITS_BATCH = 16  # digits denoised at once, by every sampler (guidance doubles the network's batch)
QUICK = {"num_diffusion_steps": 50, "sample_steps": 2, "train_steps": 2, "samples": {"digits": 10, "video-shapes": 4},
         "ddpm_samples": 4, "ddim_steps": (10, 4)}
SAMPLING_COLUMNS = ("model", "sampler", "network calls", "n", "s/sample", "CPU share", "speed-up vs DDPM", "FID ↓",
                    "judge accuracy", "FVD ↓", "motion pass", "consistent", "trained")
SAMPLING_FORMATS = {"s/sample": ".3g", "CPU share": ".0%", "speed-up vs DDPM": ".1f", "FID ↓": ".2f",
                    "judge accuracy": ".1%", "FVD ↓": ".3g", "motion pass": ".0%",
                    "consistent": ".0%"}


def default_samples(task: str) -> int:
    """Samples per sampler when --samples is not given: FID_SAMPLES digits, bench video's 64 clips."""
    from course_lib.metrics.judge import FID_SAMPLES

    return FID_SAMPLES if check_choice("task", task, TASKS) == "digits" else DEFAULT_SAMPLES


# --- the benchmark ---------------------------------------------------------------------------------

@dataclass
class SamplingBenchConfig(TrainedModelsConfig):
    """What :func:`sampling_benchmark` measures.

    tasks: "digits" (the class-conditional U-Net) and/or "video-shapes" (the 3D U-Net). objectives:
    "eps" (DDPM and DDIM) and/or "flow" (Euler and Heun at each DDIM step count). samples:
    samples per sampler for the quality scores (None: :func:`default_samples`). ddpm: time DDPM on
    ``ddpm_samples`` samples (its quality is measured only when that is all ``samples``).
    guidance_scale / batch: digits only, as in ``bench image``. digits_checkpoint, video_checkpoint,
    digits_flow_checkpoint, video_flow_checkpoint: files named on the command line (else see
    :class:`TrainedModelsConfig`).
    """

    kind: ClassVar[str] = "sampling"
    tasks: tuple[str, ...] = TASKS
    objectives: tuple[str, ...] = OBJECTIVES
    ddim_steps: tuple[int, ...] = DDIM_STEPS
    samples: int | None = None
    ddpm: bool = True
    ddpm_samples: int = DDPM_SAMPLES
    guidance_scale: float = GUIDANCE_SCALE
    batch: int = DIGITS_BATCH
    digits_checkpoint: str | None = None
    video_checkpoint: str | None = None
    digits_flow_checkpoint: str | None = None
    video_flow_checkpoint: str | None = None
    judge_changes: dict | None = None

    def __post_init__(self):
        super().__post_init__()
        self.tasks, self.objectives, self.ddim_steps = tuple(self.tasks), tuple(self.objectives), tuple(self.ddim_steps)
        for name, chosen, allowed in (("tasks", self.tasks, TASKS), ("objectives", self.objectives, OBJECTIVES)):
            if not chosen or any(c not in allowed for c in chosen) or len(set(chosen)) != len(chosen):
                fail(name, "distinct names among " + ", ".join(allowed), chosen)
        T = self.preset.num_diffusion_steps
        if not self.ddim_steps or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= T
                                      for s in self.ddim_steps):
            fail("ddim_steps", f"one or more ints in [1, {T}]", self.ddim_steps)
        if self.samples is not None and (isinstance(self.samples, bool) or not isinstance(self.samples, int)
                                         or self.samples < 2):
            fail("samples", "an int >= 2 (FID and FVD fit a covariance to the samples)", self.samples)
        check_positive_int("ddpm_samples", self.ddpm_samples)
        check_float_range("guidance_scale", self.guidance_scale, 0.0, 100.0)
        check_positive_int("batch", self.batch)
        check_checkpoint_file("digits_checkpoint", self.digits_checkpoint)
        for argument in ("video_checkpoint", "digits_flow_checkpoint", "video_flow_checkpoint"):
            check_checkpoint_file(argument, getattr(self, argument))

    @property
    def name(self) -> str:
        """``sampling-<preset>[-quick]``, with the tasks when not all are measured (their records then sit side by side)."""
        return super().name + ("" if set(self.tasks) == set(TASKS) else "-" + "-".join(self.tasks))

    def samples_for(self, task: str) -> int:
        """Samples per sampler for ``task``: ``samples``, else the quick run's few, else :func:`default_samples`."""
        if self.samples is not None:
            return self.samples
        return QUICK["samples"][task] if self.quick else default_samples(task)


def _find_model(config: SamplingBenchConfig, task: str, objective: str, device: torch.device) -> Trained:
    recipe = get_recipe(task, config.preset, seed=config.seed, objective=objective)
    flow = "_flow" if objective == "flow" else ""
    image_model = Path(config.out) / f"image-{config.preset.name}.pt"  # what bench image trains (an ε model)
    argument = ("digits" if task == "digits" else "video") + flow + "_checkpoint"
    return trained_model(recipe, config.checkpoints, device, checkpoint=getattr(config, argument), argument=argument,
                         train_minutes=config.train_minutes, quick_steps=config.train_steps,
                         quick_path=Path(config.out) / f"{config.name}-{task}{flow.replace('_', '-')}.pt",
                         fallback=image_model if task == "digits" and not flow else None, progress=config.progress)


@dataclass
class SamplerRun:
    """One sampler on one model: label, network calls per sample, n samples drawn, wall seconds of
    sampling them, CPU share, and quality scores (None: not measured at this n)."""

    label: str
    steps: int
    n: int
    seconds: float
    cpu_share: float
    scores: dict[str, float | None] | None

    @property
    def seconds_per_sample(self) -> float:
        return self.seconds / self.n


def _runs(config: SamplingBenchConfig, recipe, n: int) -> list[tuple[str, str, int | None, int, int]]:
    """(label, sampler, its steps, network calls, how many samples) for each sampler of ``recipe``.

    ε: DDIM first (fast rows first), DDPM last. Flow: for each DDIM step count N, Euler with N steps
    and Heun with the most steps that fit in N network calls (2·steps − 1).
    """
    if recipe.objective == "flow":
        runs = []
        for calls in config.ddim_steps:
            runs.append((f"Euler {calls}", "euler", calls, calls, n))
            if calls >= 3:  # Heun's fewest: 2 steps, 3 calls (with 1 step it is Euler)
                heun = (calls + 1) // 2
                runs.append((f"Heun {heun}", "heun", heun, 2 * heun - 1, n))
        return runs
    T = recipe.preset.num_diffusion_steps
    if max(config.ddim_steps) > T:  # a checkpoint named on the command line may have a shorter chain
        fail("ddim_steps", f"ints in [1, {T}] for {recipe.name()} (T = {T})", config.ddim_steps)
    ddpm = [("DDPM", "ddpm", None, T, min(config.ddpm_samples, n))] if config.ddpm else []
    return [(f"DDIM {s}", "ddim", s, s, n) for s in config.ddim_steps] + ddpm


def _digits_runs(config: SamplingBenchConfig, trained: Trained, n: int) -> tuple[dict[str, float | None], list[SamplerRun]]:
    """(real digits' scores, one SamplerRun per sampler) for the class-conditional digits model."""
    from course_lib.data.digits import render_digits
    from course_lib.metrics.judge import get_digit_judge, image_scores, judge_config_for_preset, reference_digits

    recipe = trained.recipe
    size = recipe.preset.image_size
    judge = get_digit_judge(size, config=judge_config_for_preset(recipe.preset))
    labels = torch.arange(n) % 10
    reference = reference_digits(n, size, seed=0)
    real = image_scores(render_digits(n, size, "test", seed=1, labels=labels)[0], reference, labels, judge)
    runs = []
    for label, sampler, steps, calls, count in _runs(config, recipe, n):
        samples, watch = sample_digits(recipe, trained.model, labels[:count], sampler, steps, config.guidance_scale,
                                       config.batch, config.seed, config.progress)
        scores = image_scores(samples, reference, labels, judge) if count == n else None
        runs.append(SamplerRun(label, calls, count, watch.wall, watch.cpu_share, scores))
        _say(recipe, runs[-1])
    return real, runs


def _video_runs(config: SamplingBenchConfig, trained: Trained, n: int) -> tuple[dict[str, float | None], list[SamplerRun]]:
    """(real clips' scores, one SamplerRun per sampler) for the video model, scored as ``bench video`` does."""
    from course_lib.metrics.video import real_clip_scores, sample_in_batches, score_clips, score_samples, video_judge_for

    recipe, model = trained.recipe, trained.model
    judge = video_judge_for(recipe, config.judge_changes)
    real = real_clip_scores(recipe, n, judge)
    runs = []
    for label, sampler, steps, calls, count in _runs(config, recipe, n):
        if sampler != "ddpm":
            with Stopwatch() as watch:  # sampling and scoring: its CPU share; the time is score_samples' own
                _, scores = score_samples(recipe, model, n, judge, steps=steps, seed=1, progress=config.progress,
                                          sampler=sampler)
            seconds, quality = scores.seconds_per_batch / scores.batch * n, _video_quality(scores)
        else:
            with Stopwatch() as watch:
                clips, _ = sample_in_batches(recipe, model, count, seed=1, progress=config.progress, sampler="ddpm")
            seconds, quality = watch.wall, None
            if count == n:  # scored like score_samples' clips: against the same reference set
                scores = score_clips(recipe, clips, judge)
                quality = _video_quality(scores)
        runs.append(SamplerRun(label, calls, count, seconds, watch.cpu_share, quality))
        _say(recipe, runs[-1])
    return _video_quality(real), runs


def _video_quality(scores) -> dict[str, float]:
    """FVD, motion pass and combined video consistency of a :class:`~course_lib.metrics.video.SampleScores`."""
    return {"FVD": scores.fvd, "motion": scores.motion_pass, "consistent": scores.consistent}


def _say(recipe, run: SamplerRun) -> None:
    print(f"{recipe.task} ({recipe.objective}) {run.label}: {run.n} samples, {run.seconds_per_sample:.3g} s/sample", file=sys.stderr,
          flush=True)


def _quality_cells(task: str, scores: dict[str, float | None] | None) -> tuple:
    """The cells FID, judge accuracy, FVD, motion pass, consistent of one row (None where not measured)."""
    scores = scores or {}
    if task == "digits":
        return scores.get("FID"), scores.get("accuracy"), None, None, None
    return None, None, scores.get("FVD"), scores.get("motion"), scores.get("consistent")


def _row(task: str, model_label: str, run: SamplerRun, ddpm_s: float | None, cpu: bool, status: str) -> tuple:
    speedup = ddpm_s / run.seconds_per_sample if ddpm_s else None
    return (model_label, run.label, run.steps, run.n, run.seconds_per_sample, run.cpu_share if cpu else None, speedup,
            *_quality_cells(task, run.scores), status)


def sampling_findings(task: str, runs: list[SamplerRun]) -> list[str]:
    """Plain findings for one model: how much faster the fewest DDIM steps are than DDPM, and what
    the quality does between the most and the fewest DDIM steps."""
    ddims = [run for run in runs if run.label.startswith("DDIM")]
    ddpm = next((run for run in runs if run.label == "DDPM"), None)
    if not ddims:
        return []
    most, fewest = max(ddims, key=lambda run: run.steps), min(ddims, key=lambda run: run.steps)
    metric = "FID" if task == "digits" else "FVD"
    line = f"{task}: DDIM {fewest.steps} takes {fewest.seconds_per_sample:.3g} s/sample"
    if ddpm is not None:
        line += f", {ddpm.seconds_per_sample / fewest.seconds_per_sample:.0f}x faster than DDPM ({ddpm.steps} steps)"
    if most is not fewest and most.scores and fewest.scores:
        line += (f"; {metric} {fewest.scores[metric]:.3g} at {fewest.steps} steps vs {most.scores[metric]:.3g} "
                 f"at {most.steps}")
    if ddpm is not None and ddpm.scores:
        line += f", {ddpm.scores[metric]:.3g} with DDPM"
    return [line]


def flow_findings(task: str, ddim_runs: list[SamplerRun], flow_runs: list[SamplerRun]) -> list[str]:
    """One line per DDIM step count N: the quality of DDIM N next to flow matching's Euler and Heun
    within N network calls (digits: FID and judge accuracy; video: FVD, motion pass, consistent clips)."""
    metrics = ("FID", "accuracy") if task == "digits" else ("FVD", "motion", "consistent")
    lines = []
    for ddim in (run for run in ddim_runs if run.scores):
        rivals = [run for run in flow_runs if run.scores and ddim.steps // 2 < run.steps <= ddim.steps]
        if not rivals:
            continue
        parts = [f"{metric} " + ", ".join(f"{run.label} {_metric_text(metric, run.scores[metric])}"
                                          for run in [ddim, *rivals]) for metric in metrics]
        lines.append(f"{task} within {ddim.steps} network calls: " + "; ".join(parts))
    return lines


def _metric_text(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" if metric in ("accuracy", "motion", "consistent") else f"{value:.3g}"


def sampling_benchmark(config: SamplingBenchConfig, device: torch.device | None = None) -> Table:
    """Time and score every sampler on every trained model of ``config.tasks``; writes
    ``<out>/sampling-<preset>[-quick].md`` and ``.json`` (rewritten after each model)."""
    if not isinstance(config, SamplingBenchConfig):
        fail("config", "a SamplingBenchConfig", type(config).__name__)
    device = get_device(None if device is None else str(device))
    table = Table(f"Sampling benchmark: DDPM vs DDIM steps vs flow matching's ODE solvers, preset {config.preset.name}",
                  SAMPLING_COLUMNS,
                  formats=SAMPLING_FORMATS)
    record = Record(config, table, device, models={})

    findings, ddpm_partial = [], []
    for task in config.tasks:
        n, real_row, ddpm_s, ddim_runs = config.samples_for(task), None, None, []
        for objective in config.objectives:
            trained = _find_model(config, task, objective, device)
            label = f"{task} {trained.recipe.model_name}" + (" (flow matching)" if objective == "flow" else "")
            key = task + ("-flow" if objective == "flow" else "")
            if trained.trainer is None:
                table.rows.append((label, "–", *[None] * (len(SAMPLING_COLUMNS) - 3), trained.status))
                findings.append(f"{key}: not trained (no checkpoint; --train-minutes M trains one)")
                record.data["models"][key] = None
                record.save()
                continue
            real, runs = (_digits_runs if task == "digits" else _video_runs)(config, trained, n)
            if real_row is None:
                real_row = (label, "real data (the floor)", None, n, None, None, None, *_quality_cells(task, real), None)
                table.rows.append(real_row)
            ddpm_s = next((run.seconds_per_sample for run in runs if run.label == "DDPM"), ddpm_s)
            ordered = runs[-1:] + runs[:-1] if runs[-1].label == "DDPM" else runs  # DDPM first in the table
            for run in ordered:
                table.rows.append(_row(task, label, run, ddpm_s, device.type == "cpu", trained.status))
            if objective == "flow":
                findings += flow_findings(task, ddim_runs, runs)
            else:
                ddim_runs = [run for run in runs if run.label.startswith("DDIM")]
                findings += sampling_findings(task, runs)
            ddpm_partial += [f"{run.n} of {n}" for run in runs if run.label == "DDPM" and run.scores is None]
            record.data["models"][key] = {"trained": trained.status, "recipe": trained.recipe.name(), "real": real,
                                          "runs": [asdict(run) for run in runs]}
            record.save()

    trained_from = (f"trained here for {config.train_steps} steps (quick run)" if config.train_steps else
                    f"--digits-checkpoint / --video-checkpoint (and --*-flow-checkpoint), else train_or_load "
                    f"checkpoints in {config.checkpoints}/ "
                    f"(--train-minutes M trains missing ones), else (digits) the image benchmark's model in {config.out}/")
    table.notes = [
        record.machine_note(),
        f"digits: class-guided samples (w = {config.guidance_scale:g}, labels 0-9 in turn), {config.batch} at a "
        "time; FID and judge accuracy against held-out real digits, as bench image",
        "video: clips in batches of the recipe's batch size, from the EMA weights; FVD-style distance to real clips "
        "(video judge), motion-consistency pass rate and the share of clips passing the whole video consistency "
        "(course_lib.metrics.consistency), as bench video; FID and FVD compare only at equal n",
        "s/sample: wall seconds of sampling / n; CPU share = CPU seconds / (wall seconds x threads) (video DDIM "
        "and flow rows: over sampling and scoring); below 100% other programs took the cores",
        "flow matching: the same network and recipe trained on the flow-matching objective for as many steps; "
        "Euler N makes N network calls, Heun k makes 2k - 1 (the most that fit in N)",
        f"trained models: {trained_from}",
    ]
    if ddpm_partial:
        table.notes.append(f"DDPM: timed on {', '.join(ddpm_partial)} samples; its quality is not measured at that n "
                           "(--ddpm-samples N with N = --samples measures it)")
    table.verdicts = findings
    return record.finish()


# --- the subcommand ----------------------------------------------------------------------------

def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="the models' recipes (default: $COURSE_PRESET, else gpu with CUDA, cpu without)")
    parser.add_argument("--tasks", choices=TASKS, nargs="+", default=list(TASKS), help="models to measure (by task)")
    parser.add_argument("--objectives", choices=OBJECTIVES, nargs="+", default=list(OBJECTIVES),
                        help="eps: DDPM and DDIM; flow: the flow-matching model's Euler and Heun (default both)")
    parser.add_argument("--ddim-steps", type=positive_int, nargs="+", default=None,
                        help=f"DDIM step counts (default {' '.join(map(str, DDIM_STEPS))})")
    parser.add_argument("--samples", type=positive_int, default=None,
                        help="samples per sampler for the quality scores (default: 500 digits, 64 clips)")
    parser.add_argument("--no-ddpm", action="store_true", help="skip DDPM (all T steps: hours for 500 samples on a CPU)")
    parser.add_argument("--ddpm-samples", type=positive_int, default=None,
                        help=f"samples DDPM draws for its time (default {DDPM_SAMPLES}); its quality is measured only "
                             "when this is --samples")
    parser.add_argument("--batch", type=positive_int, default=DIGITS_BATCH,
                        help=f"digits denoised at once by every sampler (default {DIGITS_BATCH})")
    add_trained_model_arguments(parser)
    parser.add_argument("--digits-checkpoint", default=None,
                        help="the digits model to measure (a file of python -m course_lib train or bench image)")
    parser.add_argument("--video-checkpoint", default=None,
                        help="the video-shapes model to measure (a file of python -m course_lib train)")
    parser.add_argument("--digits-flow-checkpoint", default=None,
                        help="the flow-matching digits model (python -m course_lib train --objective flow)")
    parser.add_argument("--video-flow-checkpoint", default=None,
                        help="the flow-matching video-shapes model (python -m course_lib train --objective flow)")
    parser.add_argument("--quick", action="store_true",
                        help="a run in seconds: T = 50, models trained for 2 steps, a few samples, DDIM 10 and 4")


def run_sampling(args: argparse.Namespace) -> Table:
    preset = get_preset(args.preset)
    settings: dict[str, Any] = dict(samples=args.samples, ddim_steps=tuple(args.ddim_steps or DDIM_STEPS),
                                    ddpm_samples=args.ddpm_samples or DDPM_SAMPLES)
    if args.quick:
        preset = preset.replace(num_diffusion_steps=QUICK["num_diffusion_steps"], sample_steps=QUICK["sample_steps"])
        settings.update(ddim_steps=tuple(args.ddim_steps or QUICK["ddim_steps"]),
                        ddpm_samples=args.ddpm_samples or QUICK["ddpm_samples"], train_steps=QUICK["train_steps"],
                        judge_changes=QUICK_JUDGE_CHANGES)
    config = SamplingBenchConfig(preset=preset, tasks=tuple(args.tasks), objectives=tuple(args.objectives),
                                 ddpm=not args.no_ddpm, batch=args.batch,
                                 checkpoints=args.checkpoints, train_minutes=args.train_minutes,
                                 digits_checkpoint=args.digits_checkpoint, video_checkpoint=args.video_checkpoint,
                                 digits_flow_checkpoint=args.digits_flow_checkpoint,
                                 video_flow_checkpoint=args.video_flow_checkpoint,
                                 seed=args.seed, out=args.out, progress=not args.quiet, quick=args.quick, **settings)
    return sampling_benchmark(config, device=args.device_obj)
