"""Training-step time of the latent space-time transformer against the pixel-space 3D U-Net, side by side.

    OMP_NUM_THREADS=2 python benchmarks/transformer_vs_unet3d.py [--preset cpu] [--steps 15] [--attention full] [--dim D --depth N]

The transformer trains on latents of a video autoencoder with 4x spatial compression and 4 latent
channels, (B, F, 4, S/4, S/4); the U-Net on the pixels (B, F, C, S, S) of clips of the preset's
size. Each model gets a :class:`~course_lib.training.Trainer` (ε objective, AdamW, EMA) on a fixed
batch; :func:`course_lib.training.speed.time_steps` runs their steps interleaved, one of each per
round, so that other programs on the machine slow both alike. Prints parameters, median wall and
CPU seconds per step, and the ratio.
"""
from __future__ import annotations

import argparse
import os

import torch

from course_lib.config import get_preset
from course_lib.diffusion.objectives import DiffusionObjective
from course_lib.diffusion.schedules import make_schedule
from course_lib.models.inspect import count_parameters
from course_lib.models.transformer import PRESET_SIZES, SpaceTimeTransformer
from course_lib.models.unet3d import unet3d_for_preset
from course_lib.training import TrainConfig, Trainer
from course_lib.training.speed import time_steps

LATENT_CHANNELS, COMPRESSION = 4, 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--attention", default="factorised", choices=("factorised", "full"))
    parser.add_argument("--dim", type=int, help="token width (default: the preset's)")
    parser.add_argument("--depth", type=int, help="number of blocks (default: the preset's)")
    args = parser.parse_args()
    torch.manual_seed(0)
    preset = get_preset(args.preset)
    B, T, C, S = preset.video_batch_size, preset.video_frames, preset.video_channels, preset.video_size
    latent = S // COMPRESSION
    dim, depth, heads, patch = PRESET_SIZES[preset.name]
    dim, depth = args.dim or dim, args.depth or depth
    transformer = SpaceTimeTransformer(LATENT_CHANNELS, T, latent, patch, dim, depth, heads, attention=args.attention)
    models = {
        f"transformer, {args.attention} (latent)": (transformer, torch.randn(B, T, LATENT_CHANNELS, latent, latent)),
        "unet3d (pixels)": (unet3d_for_preset(preset), torch.randn(B, T, C, S, S)),
    }
    loss_fn = DiffusionObjective(make_schedule("linear", preset.num_diffusion_steps))
    config = TrainConfig(steps=10_000, progress=False)
    steppers = {}
    for name, (model, batch) in models.items():
        trainer = Trainer(model, loss_fn, lambda generator, batch=batch: batch, config, device="cpu")
        steppers[name] = lambda k, trainer=trainer: trainer.train_step()
    timings = time_steps(steppers, "cpu", steps=args.steps, warmup=2)
    print(f"preset {preset.name}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f} (1 min)")
    for name, (model, batch) in models.items():
        timing = timings[name]
        print(f"{name:32s} batch {tuple(batch.shape)}  {count_parameters(model) / 1e6:.2f}M parameters  "
              f"median {timing.median_s * 1000:.0f} ms wall, {timing.cpu_per_step_s * 1000:.0f} ms CPU per step")
    unet, dit = timings["unet3d (pixels)"], timings[next(iter(models))]
    print(f"U-Net step / transformer step: {unet.median_s / dit.median_s:.1f}x wall, "
          f"{unet.cpu_per_step_s / dit.cpu_per_step_s:.1f}x CPU")


if __name__ == "__main__":
    main()
