"""The latent benchmark: lesson 15's autoencoder and latent transformer beside the pixel 3D U-Net.

    python -m course_lib bench latent --preset cpu --out benchmarks/results   # the trained cpu models
    python -m course_lib bench latent --quick                                   # tiny models, seconds

Rows, on bouncing shapes at the preset's clip size:

* ``autoencoder``: parameters, and how well it reconstructs ``--n`` held-out clips (clips the
  training never drew: :meth:`Recipe.real_examples`): PSNR and SSIM per frame, averaged
  (:func:`course_lib.metrics.video.per_frame_psnr`, ``per_frame_ssim``);
* ``dit`` (the space-time transformer on the autoencoder's latents) and ``unet3d`` (the pixel
  U-Net of lesson 07): parameters (the dit's own, without the frozen autoencoder), seconds per
  training step (the whole step, the dit's encoding of the batch included; interleaved, median of
  ``--steps``), the memory estimate, and -- for trained models -- motion pass, video consistency
  and FVD-style distance of ``--n`` clips sampled with DDIM at the preset's steps, as ``bench video``.

Models come from ``--checkpoints`` (train_or_load's folder; the shipped weights are used when it has
none), the dit from ``--dit-checkpoint`` when given; ``--train-minutes`` trains a missing one first;
quick runs train a few steps into ``--out``. The "trained" column says how far each was trained.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from dataclasses import dataclass
from typing import ClassVar

import torch

from course_lib._validation import check_positive_int
from course_lib.config import PRESETS, get_preset
from course_lib.models.inspect import count_parameters
from course_lib.training import Trainer
from course_lib.training.memory import estimate_trainer_memory
from course_lib.training.speed import time_steps
from course_lib.workshop import zoo
from course_lib.workshop.bench.common import (
    Record, Table, TrainedModelsConfig, add_trained_model_arguments, check_checkpoint_file, trained_model,
)
from course_lib.workshop.cli import positive_int
from course_lib.workshop.recipes import get_recipe

TASK = "video-shapes"
MODELS = ("dit", "unet3d")  # the latent transformer and the pixel U-Net, timed side by side
TARGET_PSNR = 28.0  # dB on held-out clips at 4x compression
TARGET_MOTION = 0.70  # motion pass of the dit's samples
HELD_OUT_SEED = 7  # real_examples' seed for the autoencoder's held-out clips
COLUMNS = ("model", "parameters", "ms/step", "CPU ms/step", "vs unet3d", "CPU share", "memory MiB", "PSNR dB", "SSIM", "n",
           "motion pass", "consistent", "FVD", "trained")
FORMATS = {"ms/step": ".0f", "CPU ms/step": ".0f", "vs unet3d": ".2f", "CPU share": ".0%", "memory MiB": ".0f", "PSNR dB": ".1f",
           "SSIM": ".3f", "motion pass": ".0%", "consistent": ".0%", "FVD": ".1f"}
QUICK = {"steps": 2, "train_steps": 2, "n": 4,
         "preset": dict(num_diffusion_steps=50, sample_steps=2, video_size=16, video_frames=3, video_base_channels=8,
                        video_batch_size=2)}


@dataclass
class LatentBenchConfig(TrainedModelsConfig):
    """``n`` held-out / sampled clips; ``steps`` timed training steps per model."""

    kind: ClassVar[str] = "latent"
    n: int = 128
    steps: int = 5
    dit_checkpoint: str | None = None

    def __post_init__(self):
        super().__post_init__()
        check_checkpoint_file("dit_checkpoint", self.dit_checkpoint)
        check_positive_int("n", self.n)
        check_positive_int("steps", self.steps)


def _trained(config: LatentBenchConfig, model: str, device) -> tuple[object, object | None, str]:
    """(recipe to sample with, trainer or None, status) of ``model``, by :func:`trained_model`: a file named by
    ``--dit-checkpoint``; a quick run's few steps; train_or_load's file (trained first for ``train_minutes`` when
    asked); the shipped export; else not trained."""
    recipe = get_recipe(TASK, config.preset, model, seed=config.seed)
    shipped = zoo.checkpoint_path(recipe, folder=zoo.shipped.SHIPPED_FOLDER)
    found = trained_model(recipe, config.checkpoints, device,
                          checkpoint=config.dit_checkpoint if model == "dit" else None, argument="dit_checkpoint",
                          train_minutes=config.train_minutes, quick_steps=config.train_steps,
                          quick_path=Path(config.out) / f"{config.name}-{model}.pt",
                          fallback=shipped if shipped.is_file() else None, progress=config.progress)
    return found.recipe, found.trainer, found.status


def reconstructed_clips(autoencoder, clips: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """``clips`` (N, T, C, H, W) encoded and decoded by ``autoencoder`` ``batch`` at a time, in [-1, 1], on the CPU."""
    device = next(autoencoder.parameters()).device
    return torch.cat([autoencoder.eval().reconstruct(chunk.to(device)).clamp(-1, 1).cpu()
                      for chunk in clips.split(batch)])


def reconstruction_scores(autoencoder, clips: torch.Tensor, batch: int = 16) -> tuple[float, float]:
    """(mean PSNR dB, mean SSIM) per frame of ``autoencoder.reconstruct`` on clips (N, T, C, H, W)."""
    from course_lib.metrics.video import per_frame_psnr, per_frame_ssim

    out = reconstructed_clips(autoencoder, clips, batch)
    return float(per_frame_psnr(out, clips).mean()), float(per_frame_ssim(out, clips).mean())


def _step_times(config: LatentBenchConfig, device) -> dict[str, tuple]:
    """{model: (StepTiming, memory bytes, parameters)}: freshly built trainers, steps interleaved."""
    trainers, memory, parameters = {}, {}, {}
    for name in MODELS:
        recipe = get_recipe(TASK, config.preset, name, seed=config.seed)
        trainers[name] = Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch,
                                 recipe.train_config(10**9, progress=False), device)
        memory[name] = estimate_trainer_memory(trainers[name]).total
        network = trainers[name].model
        parameters[name] = count_parameters(network.denoiser if name == "dit" else network)
    timings = time_steps({name: lambda k, t=trainer: t.train_step() for name, trainer in trainers.items()},
                         device, config.steps, warmup=1)
    return {name: (timings[name], memory[name], parameters[name]) for name in MODELS}


def latent_benchmark(config: LatentBenchConfig, device: torch.device | None = None) -> Table:
    """Measure the autoencoder, then time and score dit and unet3d; write ``<out>/<name>.md`` and ``.json``."""
    from course_lib.metrics.video import score_samples, video_judge_for

    device = torch.device("cpu") if device is None else device
    title = f"Latent video diffusion, preset {config.preset.name}" + (" (quick: tiny sizes)" if config.quick else "")
    table = Table(title, COLUMNS, formats=FORMATS)
    record = Record(config, table, device, threads=torch.get_num_threads())
    blank = {column: None for column in COLUMNS}

    recipe, trainer, status = _trained(config, "autoencoder", device)
    psnr = ssim = None
    if trainer is not None:
        held_out = recipe.real_examples(config.n, seed=HELD_OUT_SEED)
        psnr, ssim = reconstruction_scores(trainer.ema_model, held_out)
    table.rows.append(tuple({**blank, "model": f"autoencoder (4x, {recipe.latent_shape[1]} channels)",
                             "parameters": count_parameters(recipe.build_model()), "PSNR dB": psnr, "SSIM": ssim,
                             "n": config.n if psnr is not None else None, "trained": status}.values()))
    record.save()

    timed = _step_times(config, device)
    unet_s = statistics.median(timed["unet3d"][0].cpu_s)
    judge = None
    for name in MODELS:
        timing, memory, parameters = timed[name]
        recipe, trainer, status = _trained(config, name, device)
        row = {**blank, "model": name + (" (latent)" if name == "dit" else " (pixels)"), "parameters": parameters,
               "ms/step": 1000 * timing.median_s, "CPU ms/step": 1000 * statistics.median(timing.cpu_s),
               "vs unet3d": unet_s / statistics.median(timing.cpu_s),
               "CPU share": timing.cpu_share, "memory MiB": memory / 2**20, "trained": status}
        if trainer is not None:
            judge = video_judge_for(recipe) if judge is None else judge
            _, scores = score_samples(recipe, trainer.ema_model.eval(), config.n, judge, seed=1,
                                      progress=config.progress)
            row.update({"n": config.n, "motion pass": scores.motion_pass, "consistent": scores.consistent,
                        "FVD": scores.fvd})
        table.rows.append(tuple(row.values()))
        record.save()

    table.notes += [record.machine_note(),
                    f"ms/step: median of {config.steps} interleaved training steps (batch {recipe.batch_size}; the "
                    "dit's step includes encoding its batch); vs unet3d: the U-Net's CPU time / this model's (CPU time: "
                    "what other programs on the machine do not change)",
                    f"PSNR, SSIM: per frame, {config.n} held-out clips; motion pass, consistent, FVD: "
                    f"{config.n} DDIM-{config.preset.sample_steps} clips, as bench video"]
    autoencoder_row, dit_row = dict(zip(COLUMNS, table.rows[0])), dict(zip(COLUMNS, table.rows[1]))
    if autoencoder_row["PSNR dB"] is not None:
        table.verdicts.append(f"{'met' if autoencoder_row['PSNR dB'] >= TARGET_PSNR else 'NOT met'}: autoencoder "
                              f"PSNR {autoencoder_row['PSNR dB']:.1f} dB (target >= {TARGET_PSNR:.0f} dB)")
    if dit_row["motion pass"] is not None:
        table.verdicts.append(f"{'met' if dit_row['motion pass'] >= TARGET_MOTION else 'NOT met'}: dit motion pass "
                              f"{dit_row['motion pass']:.0%} (target >= {TARGET_MOTION:.0%})")
    return record.finish()


# --- the subcommand -------------------------------------------------------------------------------

def add_latent_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu", help="model and clip sizes (default cpu)")
    add_trained_model_arguments(parser)
    parser.add_argument("--n", type=positive_int, default=None, help="held-out and sampled clips (default 128)")
    parser.add_argument("--steps", type=positive_int, default=None, help="timed training steps per model (default 5)")
    parser.add_argument("--dit-checkpoint", default=None,
                        help="score this checkpoint of the dit model (default: train_or_load's file, else the shipped one)")
    parser.add_argument("--quick", action="store_true", help="tiny models trained 2 steps into --out: seconds")


def run_latent(args: argparse.Namespace) -> Table:
    preset = get_preset("smoke" if args.quick else args.preset)  # smoke: the video judge's quick settings
    quick = {}
    if args.quick:
        preset = preset.replace(**QUICK["preset"])
        quick = {"train_steps": QUICK["train_steps"]}
    if args.threads is None and args.device_obj.type == "cpu":
        torch.set_num_threads(1)  # the table's step times are per thread (the bench's main restores the count)
    config = LatentBenchConfig(preset=preset, seed=args.seed, out=args.out, quick=args.quick,
                               progress=not args.quiet, checkpoints=args.checkpoints,
                               train_minutes=args.train_minutes, n=args.n or (QUICK["n"] if args.quick else 128),
                               steps=args.steps or (QUICK["steps"] if args.quick else 5),
                               dit_checkpoint=args.dit_checkpoint, **quick)
    return latent_benchmark(config, device=args.device_obj)
