"""The captions benchmark: lesson 16's caption-conditioned latent transformer, with and without guidance.

    python -m course_lib bench captions --preset cpu --out benchmarks/results   # the trained cpu model
    python -m course_lib bench captions --quick                                   # a tiny model, seconds

The model (task ``video-captions``, model ``dit``) draws ``--n`` clips, one per caption of ``--n``
held-out captioned clips (:meth:`Recipe.real_captioned`), with DDIM at the preset's steps and three
guidance scales on the caption: w = :data:`~course_lib.workshop.recipes.CAPTION_GUIDANCE_SCALE` (what
the course samples with), w = 1 (the plain conditional model: no guidance) and w = 0 (the null
caption: the unconditional model, guidance off), and a last row, the ceiling: the held-out clips
themselves, encoded and decoded by the model's autoencoder. Each row is the caption match of those clips
(:func:`course_lib.metrics.caption_match.caption_match`): the share whose shape, colour and direction,
read from the frames by the course's own tools, are the caption's. The same noise seeds every row.

The model comes from ``--checkpoints`` (the file ``python -m course_lib train --task video-captions``
writes, finished or not), else the shipped weights; ``--train-minutes`` trains a missing one first;
quick runs train a few steps into ``--out``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import ClassVar

import torch

from course_lib._validation import check_positive_int, fail
from course_lib.config import PRESETS, get_preset
from course_lib.workshop import zoo
from course_lib.workshop.bench.common import (
    Record, Table, TrainedModelsConfig, add_trained_model_arguments, command_line, trained_status,
)
from course_lib.workshop.bench.latent import reconstructed_clips
from course_lib.workshop.cli import positive_int
from course_lib.workshop.recipes import CAPTION_GUIDANCE_SCALE, get_recipe

TASK = "video-captions"
TARGETS = {"shape": 0.80, "colour": 0.80, "direction": 0.70}  # of the clips guided at the default scale
SCALES = (CAPTION_GUIDANCE_SCALE, 1.0, 0.0)
COLUMNS = ("guidance", "w", "n", "shape", "colour", "direction", "all", "s/clip", "trained")
CEILING = "ceiling: real clips, decoded"  # the row of the held-out clips through the autoencoder
FORMATS = {"w": "g", "shape": ".0%", "colour": ".0%", "direction": ".0%", "all": ".0%", "s/clip": ".2f"}
QUICK = {"train_steps": 2, "n": 4,
         "preset": dict(num_diffusion_steps=50, sample_steps=2, video_size=16, video_frames=3, video_base_channels=8,
                        video_batch_size=2)}


@dataclass
class CaptionsBenchConfig(TrainedModelsConfig):
    """``n`` captions, one clip each, per guidance scale in ``scales``; ``batch`` clips sampled at once,
    with DDIM in ``sample_steps`` steps (None: the preset's)."""

    kind: ClassVar[str] = "captions"
    n: int = 128
    batch: int = 32
    scales: tuple[float, ...] = SCALES
    sample_steps: int | None = None

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("n", self.n)
        check_positive_int("batch", self.batch)
        if self.sample_steps is not None:
            check_positive_int("sample_steps", self.sample_steps)
        if CAPTION_GUIDANCE_SCALE not in self.scales or 0.0 not in self.scales:
            fail("scales", f"guidance scales that include {CAPTION_GUIDANCE_SCALE:g} and 0 (the verdicts compare them)",
                 self.scales)


def _trained(config: CaptionsBenchConfig, device):
    """(recipe, trainer or None, status): quick runs train into ``out``; else the checkpoint file as it
    is (finished or not), else the shipped weights; ``train_minutes`` trains a missing model first."""
    recipe = get_recipe(TASK, config.preset, seed=config.seed)
    if config.train_steps is not None:
        trainer = zoo.train_or_load(recipe, steps=config.train_steps, folder=config.out, progress=False,
                                    device=device, shipped_folder=None)
        return recipe.replace(steps=config.train_steps), trainer, f"{trainer.step} steps (quick)"
    path = zoo.checkpoint_path(recipe, folder=config.checkpoints)
    shipped = zoo.checkpoint_path(recipe, folder=zoo.shipped.SHIPPED_FOLDER)
    if not (path.exists() or shipped.exists()):
        if config.train_minutes is None:
            return recipe, None, "not trained"
        zoo.train(recipe, path, minutes=config.train_minutes, progress=config.progress, device=device,
                  command=command_line())
    stored, trainer = zoo.load_checkpoint(path if path.exists() else shipped, device=device, progress=False)
    return stored, trainer, trained_status(trainer, recipe.steps) + ("" if path.exists() else " (shipped)")


def sample_for_captions(recipe, model, captions: list[str], guidance_scale: float, batch: int = 32,
                        seed: int = 1, progress: bool = False, steps: int | None = None) -> torch.Tensor:
    """One clip per caption (N, T, C, H, W) on the CPU, ``batch`` at a time; the noise of clip i is the same
    at every guidance scale (seed + chunk index)."""
    clips = []
    for k, start in enumerate(range(0, len(captions), batch)):
        chunk = captions[start: start + batch]
        g = torch.Generator().manual_seed(seed + k)
        clips.append(recipe.sample(model, len(chunk), captions=chunk, guidance_scale=guidance_scale, generator=g,
                                   progress=progress, steps=steps).cpu())
    return torch.cat(clips)


def captions_benchmark(config: CaptionsBenchConfig, device: torch.device | None = None) -> Table:
    """Caption match of the trained model at w = default, 1 and 0; write ``<out>/<name>.md`` and ``.json``."""
    from course_lib.metrics.caption_match import caption_match

    device = torch.device("cpu") if device is None else device
    title = f"Caption-conditioned video (video-captions, dit), preset {config.preset.name}" + (
        " (quick: tiny sizes)" if config.quick else "")
    table = Table(title, COLUMNS, formats=FORMATS)
    record = Record(config, table, device, threads=torch.get_num_threads())
    recipe, trainer, status = _trained(config, device)
    if trainer is None:
        table.rows.append(tuple({**{c: None for c in COLUMNS}, "guidance": "-", "trained": status}.values()))
        return record.finish()
    model = trainer.ema_model.eval()
    held_out = recipe.real_captioned(config.n)
    names = {CAPTION_GUIDANCE_SCALE: "on (the default)", 1.0: "none (conditional)", 0.0: "off (null caption)"}
    steps = config.sample_steps or recipe.preset.sample_steps
    for w in config.scales:
        start = time.perf_counter()
        clips = sample_for_captions(recipe, model, held_out.captions, w, config.batch, progress=config.progress,
                                    steps=steps)
        seconds = time.perf_counter() - start
        rates = caption_match(clips, held_out.attributes, recipe.object_size).rates
        table.rows.append((names.get(w, "on"), w, config.n, rates["shape"], rates["colour"], rates["direction"], rates["all"],
                           seconds / config.n, status))
        record.save()
    rates = caption_match(reconstructed_clips(model.autoencoder, held_out.clips.video, config.batch),
                          held_out.attributes, recipe.object_size).rates
    table.rows.append((CEILING, None, config.n, rates["shape"], rates["colour"], rates["direction"], rates["all"],
                       None, "the autoencoder"))
    table.notes += [record.machine_note(),
                    f"{config.n} held-out captions, one clip each, DDIM-{steps}, the same noise "
                    "in every row; w = 0 asks with the null caption (the unconditional model), w = 1 with the caption "
                    "and no guidance; shape, colour, direction: read from the frames (caption_match); all: the three",
                    f"{CEILING}: the held-out clips themselves through the frozen autoencoder, read the same way: the "
                    "most any latent model can reach"]
    rows = {row[1]: dict(zip(COLUMNS, row)) for row in table.rows if row[0] != CEILING}
    guided, off = rows[CAPTION_GUIDANCE_SCALE], rows[0.0]
    for part, target in TARGETS.items():
        table.verdicts.append(f"{'met' if guided[part] >= target else 'NOT met'}: {part} {guided[part]:.0%} at "
                              f"w = {CAPTION_GUIDANCE_SCALE:g} (target >= {target:.0%})")
    lower = all(off[part] < guided[part] for part in TARGETS)
    table.verdicts.append(f"{'met' if lower else 'NOT met'}: guidance off (w = 0) is lower in every part "
                          f"(shape {off['shape']:.0%}, colour {off['colour']:.0%}, direction {off['direction']:.0%})")
    return record.finish()


# --- the subcommand -------------------------------------------------------------------------------

def add_captions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu", help="model and clip sizes (default cpu)")
    add_trained_model_arguments(parser)
    parser.add_argument("--n", type=positive_int, default=None, help="captions, one clip each (default 128)")
    parser.add_argument("--batch", type=positive_int, default=32, help="clips sampled at once (default 32)")
    parser.add_argument("--scales", type=float, nargs="+", default=list(SCALES),
                        help=f"guidance scales, {CAPTION_GUIDANCE_SCALE:g} and 0 among them (default: "
                             + " ".join(f"{w:g}" for w in SCALES) + ")")
    parser.add_argument("--sample-steps", type=positive_int, default=None,
                        help="DDIM steps per clip (default: the preset's sample_steps)")
    parser.add_argument("--quick", action="store_true", help="a tiny model trained 2 steps into --out: seconds")


def run_captions(args: argparse.Namespace) -> Table:
    preset = get_preset("smoke" if args.quick else args.preset)
    quick = {}
    if args.quick:
        preset = preset.replace(**QUICK["preset"])
        quick = {"train_steps": QUICK["train_steps"]}
    config = CaptionsBenchConfig(preset=preset, seed=args.seed, out=args.out, quick=args.quick,
                                 progress=not args.quiet, checkpoints=args.checkpoints, train_minutes=args.train_minutes,
                                 n=args.n or (QUICK["n"] if args.quick else 128), batch=args.batch,
                                 scales=tuple(args.scales), sample_steps=args.sample_steps, **quick)
    return captions_benchmark(config, device=args.device_obj)
