"""Presets, device choice and seeding: the one place that decides how big things are.

A preset names the size of every experiment in the course:

* ``smoke`` -- CI and a first read: every notebook runs in seconds to a minute on 2 CPU cores.
* ``cpu``   -- a laptop: minutes of training, samples a person recognises.
* ``gpu``   -- full size (64x64 video, 16 frames), mixed precision, for a CUDA GPU (e.g. Colab).

``get_preset()`` reads ``COURSE_PRESET``; without it the hardware decides (CUDA -> ``gpu``, else
``cpu``). Notebooks call ``get_preset()`` once and never hard-code a size.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import torch

from course_lib._validation import check_choice, fail, replace_fields

PRESET_ENV = "COURSE_PRESET"
DEVICE_ENV = "COURSE_DEVICE"


@dataclass(frozen=True)
class Preset:
    """Sizes for every experiment. Fields are grouped by the notebook that uses them."""

    name: str
    num_diffusion_steps: int = 1000  # T: the forward chain has T steps, indices 0..T-1
    sample_steps: int = 50  # DDIM steps used when a notebook samples for display
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16": autocast dtype used by the trainer
    compile: bool = False  # torch.compile the model in the trainer
    # toy data (notebooks 01-03)
    toy_points: int = 10_000
    toy_train_steps: int = 3000
    toy_batch_size: int = 256
    # images (notebooks 03-04)
    image_size: int = 28
    image_base_channels: int = 32
    image_train_steps: int = 2000
    image_batch_size: int = 64
    # video (notebooks 05-12)
    video_size: int = 32
    video_frames: int = 8
    video_channels: int = 1
    video_base_channels: int = 32
    video_train_steps: int = 2000
    video_batch_size: int = 8
    # the frame-conditional predictor of lesson 08: a rollout compounds its errors, so it trains
    # longer than the video U-Net (BENCHMARKS.md, "Prediction and long videos")
    prediction_train_steps: int = 8000
    # evaluation
    eval_samples: int = 500
    # lesson 10's test bench of real and broken clips: clips per set behind every FVD and IS it
    # compares (the course's FVD_SAMPLES), and of those the clips per set for the slow per-clip
    # metrics (SSIM, object tracking)
    fvd_clips: int = 500
    per_clip_eval: int = 100

    def replace(self, **changes) -> "Preset":
        """A copy with some fields changed, e.g. ``preset.replace(toy_train_steps=100)``."""
        return replace_fields(self, **changes)


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        sample_steps=10,
        toy_points=2000,
        toy_train_steps=200,
        toy_batch_size=256,
        image_base_channels=8,  # 16 made notebook 04's DDPM-1000 cell 13 s of its ~25 s; 8 takes ~8 s
        image_train_steps=30,
        image_batch_size=16,
        video_size=32,
        video_frames=4,
        video_base_channels=16,
        video_train_steps=10,
        video_batch_size=4,
        prediction_train_steps=20,
        eval_samples=64,
        fvd_clips=160,  # above the video judge's 128 features, so the covariances stay full rank
        per_clip_eval=32,
    ),
    "cpu": Preset(name="cpu"),
    "gpu": Preset(
        name="gpu",
        precision="bf16",
        compile=True,
        toy_train_steps=5000,
        image_size=32,
        image_base_channels=64,
        image_train_steps=20_000,
        image_batch_size=128,
        video_size=64,
        video_frames=16,
        video_channels=3,
        video_base_channels=64,
        video_train_steps=50_000,
        video_batch_size=16,
        prediction_train_steps=50_000,  # not measured on a GPU: the video U-Net's length
        eval_samples=2000,
    ),
}


def get_preset(name: str | None = None) -> Preset:
    """The preset called ``name``; else ``$COURSE_PRESET``; else ``gpu`` with CUDA, ``cpu`` without."""
    if name is None:
        name = os.environ.get(PRESET_ENV) or ("gpu" if torch.cuda.is_available() else "cpu")
        check_choice(f"${PRESET_ENV}", name, PRESETS)
    check_choice("name", name, PRESETS)
    return PRESETS[name]


def get_device(name: str | None = None) -> torch.device:
    """``name`` if given, else ``$COURSE_DEVICE``, else CUDA, then Apple MPS, then CPU.

    Never assumes CUDA: asking for a device that is not there is a clear error.
    """
    name = name or os.environ.get(DEVICE_ENV)
    if name is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = check_choice("device", str(name).split(":")[0], ("cpu", "cuda", "mps"))
    if kind == "cuda" and not torch.cuda.is_available():
        fail("device", "an available device (CUDA is not available here; use 'cpu')", name)
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        fail("device", "an available device (MPS is not available here; use 'cpu')", name)
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means plain fp32.

    fp16 is only used on CUDA (it needs loss scaling); on CPU fp16 falls back to bf16.
    """
    check_choice("precision", precision, ("fp32", "bf16", "fp16"))
    if precision == "fp32" or device.type == "mps":
        return None
    if precision == "fp16" and device.type == "cuda":
        return torch.float16
    return torch.bfloat16


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute in bf16 natively


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when this CPU computes bf16 natively (Linux ``/proc/cpuinfo`` flags AVX512-BF16 or AMX-BF16).

    There bf16 autocast trains the course's models 1.5-1.8x faster than fp32 (bench training);
    elsewhere bf16 is emulated and slower. cpuinfo: the file's text (default: read it; no file -> False).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU ``torch.Generator`` with that seed.

    The same seed gives the same numbers on CPU. Pass the returned generator to samplers and data
    makers for streams that do not depend on what else ran before.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        fail("seed", "an int", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def describe_environment() -> str:
    """One line per fact: torch version, device, threads, preset. Used by notebook 00."""
    device = get_device()
    preset = get_preset()
    lines = [
        f"torch {torch.__version__}",
        f"device: {device.type}" + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""),
        f"CPU threads: {torch.get_num_threads()}",
        f"preset: {preset.name} (set {PRESET_ENV}=smoke|cpu|gpu to change)",
    ]
    return "\n".join(lines)
