"""The training benchmark: steps per second of the real trainer under each switch of the GPU path.

    python -m course_lib bench training               # cpu preset, 1 thread: digits U-Net and video 3D U-Net
    python -m course_lib bench training --quick       # tiny models, 2 timed steps, no compile: seconds
    python -m course_lib bench training --settings fp32 bf16 compile bf16+compile channels_last --device cuda

For each model (the recipe of ``digits`` -- the class-conditional U-Net -- and of ``video-shapes``
-- the factorised 3D U-Net -- at ``--preset``) and each setting, one :class:`~course_lib.training.Trainer`
is built with the recipe's model, data and loss and the setting's TrainConfig changes. Its first
step is timed on its own ("first step s": allocations, kernel choice, and with compile the whole
compilation). Then ``--steps`` rounds run one step of every setting in turn, so that other programs
slow them alike (:func:`course_lib.training.speed.time_steps`), and the table gives each setting's median seconds per step as steps/s, relative
to fp32, with the memory estimate of :mod:`course_lib.training.memory` (its activations under the
setting's precision and layout; compile is estimated as eager).

Timings include everything a training step does (drawing the batch, forward, backward, clipping,
AdamW, EMA). On CPU the benchmark uses 1 thread unless ``--threads`` says otherwise, and the notes
give the load average before and after, and each setting's CPU share (CPU seconds / wall seconds
per thread): below 100% means other programs took the core.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from course_lib._validation import check_positive_int, fail
from course_lib.config import PRESETS, get_preset
from course_lib.training import Trainer
from course_lib.training.memory import estimate_trainer_memory
from course_lib.training.speed import StepTiming, time_steps
from course_lib.workshop.bench.common import BenchConfig, Record, Table
from course_lib.workshop.cli import positive_int
from course_lib.workshop.recipes import get_recipe

TASKS = ("digits", "video-shapes")  # the 2-D U-Net of notebook 04 and the 3D U-Net of notebook 07
SETTINGS: dict[str, dict[str, Any]] = {  # name -> TrainConfig changes
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "compile": {"compile": True},
    "bf16+compile": {"precision": "bf16", "compile": True},
    "channels_last": {"memory_format": "channels_last"},
}
DEFAULT_SETTINGS = ("fp32", "bf16", "compile", "channels_last")
QUICK_SETTINGS = ("fp32", "bf16", "channels_last")  # compile takes about a minute per model: not in --quick
QUICK = {"steps": 2, "preset": dict(num_diffusion_steps=50, image_base_channels=8, image_batch_size=4,
                                    video_size=16, video_frames=3, video_base_channels=8, video_batch_size=2)}
TRAINING_COLUMNS = ("model", "setting", "steps/s", "ms/step", "vs fp32", "first step s", "CPU share", "memory MiB")
TRAINING_FORMATS = {"steps/s": ".2f", "ms/step": ".0f", "vs fp32": ".2f", "first step s": ".2f", "CPU share": ".0%",
                    "memory MiB": ".0f"}


@dataclass
class TrainingBenchConfig(BenchConfig):
    """What :func:`training_benchmark` measures: ``settings`` (names of :data:`SETTINGS`) for each of ``tasks``."""

    kind: ClassVar[str] = "training"
    tasks: tuple[str, ...] = TASKS
    settings: tuple[str, ...] = DEFAULT_SETTINGS
    steps: int = 5  # timed rounds (one step of every setting each)

    def __post_init__(self):
        super().__post_init__()
        self.tasks, self.settings = tuple(self.tasks), tuple(self.settings)
        if not self.tasks or any(task not in TASKS for task in self.tasks):
            fail("tasks", "one or more of " + ", ".join(TASKS), self.tasks)
        if not self.settings or any(name not in SETTINGS for name in self.settings) \
                or len(set(self.settings)) != len(self.settings):
            fail("settings", "distinct names among " + ", ".join(SETTINGS), self.settings)
        check_positive_int("steps", self.steps)


def measure_settings(recipe, settings: tuple[str, ...], steps: int, device: torch.device | str = "cpu"
                     ) -> tuple[dict[str, StepTiming], dict[str, int]]:
    """({setting: StepTiming}, {setting: memory estimate in bytes}) of ``recipe``'s trainer, interleaved.

    One :class:`~course_lib.training.Trainer` per setting; its first step is timed on its own, then
    ``steps`` rounds of one step of every setting (:func:`course_lib.training.speed.time_steps`).
    """
    device = torch.device(device)
    trainers, memory = {}, {}
    for name in settings:
        config = recipe.train_config(10**9, progress=False, **{"compile": False, "precision": "fp32", **SETTINGS[name]})
        trainers[name] = Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch, config, device)
        memory[name] = estimate_trainer_memory(trainers[name]).total
    timings = time_steps({name: lambda k, trainer=trainer: trainer.train_step() for name, trainer in trainers.items()},
                         device, steps, warmup=1)
    return timings, memory


def training_benchmark(config: TrainingBenchConfig, device: torch.device | None = None) -> Table:
    """Measure every setting of every task; write ``<out>/<name>.md`` and ``.json``; return the table."""
    device = torch.device("cpu") if device is None else device
    title = f"Training throughput, preset {config.preset.name}" + (" (quick: tiny sizes)" if config.quick else "")
    table = Table(title, TRAINING_COLUMNS, formats=TRAINING_FORMATS)
    record = Record(config, table, device, threads=torch.get_num_threads(), timings=[])
    for task in config.tasks:
        recipe = get_recipe(task, config.preset, seed=config.seed)
        timings, memory = measure_settings(recipe, config.settings, config.steps, device)
        base = 1 / timings["fp32"].median_s if "fp32" in timings else None
        for name, timing in timings.items():
            steps_per_s = 1 / timing.median_s
            row = (f"{task} {recipe.model_name} (batch {recipe.batch_size})", name, steps_per_s, 1000 / steps_per_s,
                   steps_per_s / base if base else None, timing.first_s, timing.cpu_share, memory[name] / 2**20)
            table.rows.append(row)
            record.data["timings"].append({"task": task, "setting": name, "wall_s": timing.wall_s,
                                           "cpu_s": timing.cpu_s})
        record.save()
    table.notes += [record.machine_note(),
                    f"median of {config.steps} interleaved steps per setting after one untimed first step",
                    "steps/s counts whole training steps (batch, forward, backward, clip, AdamW, EMA); "
                    "memory: the estimate of course_lib.training.memory (compile estimated as eager)"]
    return record.finish()


# --- the subcommand -------------------------------------------------------------------------------

def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu", help="model and batch sizes (default cpu)")
    parser.add_argument("--tasks", choices=TASKS, nargs="+", default=list(TASKS), help="models to measure (by task)")
    parser.add_argument("--settings", choices=tuple(SETTINGS), nargs="+", default=None,
                        help=f"settings to compare (default: {' '.join(DEFAULT_SETTINGS)}; "
                             f"--quick: {' '.join(QUICK_SETTINGS)})")
    parser.add_argument("--steps", type=positive_int, default=None, help="timed steps per setting (default 5)")
    parser.add_argument("--quick", action="store_true", help="tiny models and 2 timed steps, no compile: seconds")


def run_training(args: argparse.Namespace) -> Table:
    preset = get_preset(args.preset)
    settings = tuple(args.settings or (QUICK_SETTINGS if args.quick else DEFAULT_SETTINGS))
    steps = args.steps or (QUICK["steps"] if args.quick else 5)
    if args.quick:
        preset = preset.replace(**QUICK["preset"])
    if args.threads is None and args.device_obj.type == "cpu":
        torch.set_num_threads(1)  # the table's numbers are per thread (the bench's main restores the count)
    config = TrainingBenchConfig(preset=preset, tasks=tuple(args.tasks), settings=settings, steps=steps,
                                 seed=args.seed, out=args.out, quick=args.quick)
    return training_benchmark(config, device=args.device_obj)
