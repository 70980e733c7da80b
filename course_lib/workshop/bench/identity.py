"""The identity benchmark: do sampled clips of bouncing shapes keep their object's colour, and when is it decided?

    python -m course_lib bench identity --preset cpu --out benchmarks/results     # the shipped video U-Net
    python -m course_lib bench identity --checkpoint a.pt --checkpoint b.pt       # trained files, side by side
    python -m course_lib bench identity --quick                                   # a tiny model, seconds

Each checkpoint (a file ``python -m course_lib train --task video-shapes`` writes, any pixel model;
default: the shipped ``unet3d`` of the preset) draws ``--n`` clips with DDIM in the preset's steps
(η = 0) from the same noise. Its row gives the video consistency of the clips
(:func:`course_lib.metrics.consistency.video_consistency`: present, motion, colour, shape, all), and
how many clips have *split* at the timesteps of :data:`SPLIT_AT`: a clip splits at step t when two
frames of the sampler's prediction of the clean clip, x̂0 at t, clearly read different colours. A
sampler step never looks at x̂0 again, so a split that appears stays to the end unless the network
heals it: the columns show at which noise levels the frames of a clip part ways.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from course_lib._validation import check_positive_int, fail
from course_lib.config import PRESETS, get_preset
from course_lib.metrics.consistency import UNCLEAR, video_consistency
from course_lib.workshop import zoo
from course_lib.workshop.bench.common import (
    Record, Table, Trained, TrainedModelsConfig, add_trained_model_arguments, check_checkpoint_file, command_line,
    load_trained,
)
from course_lib.workshop.cli import positive_int
from course_lib.workshop.recipes import get_recipe

TASK = "video-shapes"
PIXEL_MODELS = ("unet3d", "conv_lstm", "forcing")
SPLIT_AT = (800, 700, 600, 500, 300)  # code timesteps of a 1000-step chain (the nearest step DDIM visits)
PARTS = ("present", "motion", "colour", "shape")
COLUMNS = ("model", "n", *PARTS, "all", *(f"split t={t}" for t in SPLIT_AT), "split end", "s/clip", "trained")
FORMATS = {**{part: ".0%" for part in (*PARTS, "all")}, **{f"split t={t}": ".0%" for t in SPLIT_AT},
           "split end": ".0%", "s/clip": ".2f"}
QUICK = {"train_steps": 2, "n": 4,
         "preset": dict(num_diffusion_steps=50, sample_steps=5, video_size=16, video_frames=4, video_base_channels=8,
                        video_batch_size=2)}


@dataclass
class IdentityBenchConfig(TrainedModelsConfig):
    """``n`` clips per checkpoint in ``checkpoint_files`` (empty: the shipped unet3d), ``batch`` at a time."""

    kind: ClassVar[str] = "identity"
    n: int = 128
    batch: int = 32
    checkpoint_files: tuple[str, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("n", self.n)
        check_positive_int("batch", self.batch)
        if self.n < 2:
            fail("n", "at least 2 clips", self.n)


def split_clips(readings: np.ndarray) -> np.ndarray:
    """(B,) bool from colour readings (B, T): the clips whose frames clearly read two or more colours."""
    return np.array([len(set(row[row != UNCLEAR].tolist())) > 1 for row in readings])


def nearest_visited(visited: list[int], schedule_steps: int) -> dict[int, int]:
    """{t in SPLIT_AT: the visited step nearest to t scaled to a chain of ``schedule_steps``}."""
    return {t: min(visited, key=lambda v: abs(v - round(t * schedule_steps / 1000))) for t in SPLIT_AT}


@torch.no_grad()
def identity_scores(recipe, model: torch.nn.Module, n: int, batch: int = 32, seed: int = 1) -> dict[str, float]:
    """The row's numbers for ``model``: consistency parts of n DDIM clips and the share split at each SPLIT_AT step."""
    from course_lib.diffusion.samplers import ddim_steps, ddim_timesteps

    steps = recipe.preset.sample_steps
    visited = ddim_timesteps(recipe.schedule.num_steps, steps)
    watch = nearest_visited(visited, recipe.schedule.num_steps)
    split = {t: [] for t in SPLIT_AT}
    clips = []
    for k, start in enumerate(range(0, n, batch)):
        size = min(batch, n - start)
        generator = torch.Generator().manual_seed(seed + k)
        for step in ddim_steps(model, recipe.sample_shape(size), recipe.schedule, steps=steps,
                               objective=recipe.objective, generator=generator,
                               device=next(model.parameters()).device):
            for t, at in watch.items():
                if step.t == at:
                    readings = video_consistency(step.x0_pred.clamp(-1, 1), recipe.object_size).readings["colour"]
                    split[t].append(split_clips(readings))
        clips.append(step.x.cpu().clamp(-1, 1))
    report = video_consistency(torch.cat(clips), recipe.object_size)
    scores = {**{part: float(report.parts[part].mean()) for part in PARTS}, "all": report.pass_rate}
    scores.update({f"split t={t}": float(np.concatenate(split[t]).mean()) for t in SPLIT_AT})
    scores["split end"] = float(split_clips(report.readings["colour"]).mean())
    return scores


def _models(config: IdentityBenchConfig, device) -> list[tuple[str, object]]:
    """[(row name, Trained)]: quick runs train a tiny model (not saved); else each file, else the shipped unet3d."""
    recipe = get_recipe(TASK, config.preset, seed=config.seed)
    if config.train_steps is not None:
        trainer = zoo.train(recipe, None, steps=config.train_steps, resume=False, progress=False, device=device,
                            command=command_line())
        return [("unet3d (quick)", Trained(recipe, trainer, f"{trainer.step} steps (quick)"))]
    files = config.checkpoint_files or (str(zoo.checkpoint_path(recipe, folder=zoo.shipped.SHIPPED_FOLDER)),)
    models = []
    for path in files:
        trained = load_trained(recipe, check_checkpoint_file("--checkpoint", path), "--checkpoint", device)
        if trained.recipe.model_name not in PIXEL_MODELS:
            fail("--checkpoint", f"a pixel-space model of {TASK} ({', '.join(PIXEL_MODELS)})",
                 f"{path} ({trained.recipe.model_name})")
        models.append((f"{trained.recipe.model_name} ({Path(path).name})", trained))
    return models


def identity_benchmark(config: IdentityBenchConfig, device: torch.device | None = None) -> Table:
    """One row per model; write ``<out>/<name>.md`` and ``.json``."""
    device = torch.device("cpu") if device is None else device
    title = f"Identity: do clips keep their colour, and when do their frames part ways? ({TASK}, preset " \
            f"{config.preset.name})" + (" (quick: tiny sizes)" if config.quick else "")
    table = Table(title, COLUMNS, formats=FORMATS)
    record = Record(config, table, device, threads=torch.get_num_threads())
    for name, trained in _models(config, device):
        start = time.perf_counter()
        scores = identity_scores(trained.recipe, trained.model, config.n, config.batch)
        seconds = time.perf_counter() - start
        table.rows.append((name, config.n, *(scores[c] for c in COLUMNS[2:-2]), seconds / config.n, trained.status))
        record.save()
    steps = config.preset.sample_steps
    table.notes += [record.machine_note(),
                    f"{config.n} clips per model, DDIM-{steps} (η = 0), the same noise for every model; present, "
                    "motion, colour, shape, all: video consistency of the clips; split t=…: clips whose predicted "
                    "clean clip x̂0 at that step (the nearest visited) shows two clearly different colours; "
                    "split end: the same of the clips themselves"]
    return record.finish()


# --- the subcommand -------------------------------------------------------------------------------

def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu", help="model and clip sizes (default cpu)")
    add_trained_model_arguments(parser)
    parser.add_argument("--checkpoint", action="append", default=None,
                        help="a video-shapes checkpoint to score (repeat for several; default: the shipped unet3d)")
    parser.add_argument("--n", type=positive_int, default=None, help="clips per model (default 128)")
    parser.add_argument("--batch", type=positive_int, default=32, help="clips sampled at once (default 32)")
    parser.add_argument("--quick", action="store_true", help="a tiny model trained 2 steps: seconds")


def run_identity(args: argparse.Namespace) -> Table:
    preset = get_preset("smoke" if args.quick else args.preset)
    quick = {}
    if args.quick:
        if args.checkpoint:
            fail("--checkpoint", "no file with --quick (a quick run trains its own tiny model)", args.checkpoint[0])
        preset = preset.replace(**QUICK["preset"])
        quick = {"train_steps": QUICK["train_steps"]}
    config = IdentityBenchConfig(preset=preset, seed=args.seed, out=args.out, quick=args.quick,
                                 progress=not args.quiet, checkpoints=args.checkpoints,
                                 train_minutes=args.train_minutes, n=args.n or (QUICK["n"] if args.quick else 128),
                                 batch=args.batch, checkpoint_files=tuple(args.checkpoint or ()), **quick)
    return identity_benchmark(config, device=args.device_obj)
