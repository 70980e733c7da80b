"""The training benchmark: steps per second of the real trainer under each switch of the GPU path.

    python -m course_lib.workshop.bench.image training               # cpu preset, 1 thread: digits U-Net and video 3D U-Net
    python -m course_lib.workshop.bench.image training --quick       # tiny models, 2 timed steps, no compile: seconds
    python -m course_lib.workshop.bench.image training --settings fp32 bf16 compile bf16+compile channels_last --device cuda

For each model (the recipe of ``digits`` -- the class-conditional U-Net -- and of ``video-shapes``
-- the factorised 3D U-Net -- at ``--preset``) and each setting, one :class:`~course_lib.training.Trainer`
is built with the recipe's model, data and loss and the setting's TrainConfig changes. Its first
step is timed on its own ("first step s": allocations, kernel choice, and with compile the whole
compilation). Then ``--steps`` rounds run one step of every setting in turn, so that a busy machine
slows them alike, and the table gives each setting's median seconds per step as steps/s, relative
to fp32, with the memory estimate of :mod:`course_lib.training.memory` (its activations under the
setting's precision and layout; compile is estimated as eager).

Timings include everything a training step does (drawing the batch, forward, backward, clipping,
AdamW, EMA). On CPU the benchmark uses 1 thread unless ``--threads`` says otherwise, and the notes
give the load average before and after, and each setting's CPU share (CPU seconds / wall seconds
per thread): below 100% means other programs took the core.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from course_lib._validation import check_positive_int, fail
from course_lib.workshop.bench.image import DEFAULT_OUT, Table, describe_machine, load_average
from course_lib.config import Preset, get_preset
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
class TrainingBenchConfig:
    """What :func:`training_benchmark` measures: ``settings`` (names of :data:`SETTINGS`) for each of ``tasks``."""

    preset: Preset
    tasks: tuple[str, ...] = TASKS
    settings: tuple[str, ...] = DEFAULT_SETTINGS
    steps: int = 5  # timed rounds (one step of every setting each)
    seed: int = 0
    out: str = DEFAULT_OUT
    quick: bool = False  # only names the output files (training-<preset>-quick.*)

    def __post_init__(self):
        if not isinstance(self.preset, Preset):
            fail("preset", "a course_lib.config.Preset", type(self.preset).__name__)
        self.tasks, self.settings = tuple(self.tasks), tuple(self.settings)
        if not self.tasks or any(task not in TASKS for task in self.tasks):
            fail("tasks", "one or more of " + ", ".join(TASKS), self.tasks)
        if not self.settings or any(name not in SETTINGS for name in self.settings) \
                or len(set(self.settings)) != len(self.settings):
            fail("settings", "distinct names among " + ", ".join(SETTINGS), self.settings)
        check_positive_int("steps", self.steps)

    @property
    def name(self) -> str:
        return f"training-{self.preset.name}" + ("-quick" if self.quick else "")


@dataclass
class SettingTiming:
    """One setting of one model: the first step's seconds, then wall and CPU seconds of each timed step."""

    first_s: float
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def steps_per_s(self) -> float:
        return 1.0 / statistics.median(self.wall_s)

    @property
    def cpu_share(self) -> float:
        return sum(self.cpu_s) / (sum(self.wall_s) * torch.get_num_threads())


def _timed_step(trainer, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one training step."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.train_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_settings(recipe, settings: tuple[str, ...], steps: int, device: torch.device | str = "cpu"
                     ) -> tuple[dict[str, SettingTiming], dict[str, int]]:
    """({setting: SettingTiming}, {setting: memory estimate in bytes}) of ``recipe``'s trainer, interleaved."""
    from course_lib.training import Trainer
    from course_lib.training.memory import estimate_trainer_memory

    device = torch.device(device)
    trainers, timings, memory = {}, {}, {}
    for name in settings:
        config = recipe.train_config(10**9, progress=False, **{"compile": False, "precision": "fp32", **SETTINGS[name]})
        trainer = Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch, config, device)
        memory[name] = estimate_trainer_memory(trainer).total
        timings[name] = SettingTiming(first_s=_timed_step(trainer, device)[0])
        trainers[name] = trainer
    for _ in range(steps):
        for name, trainer in trainers.items():
            wall, cpu = _timed_step(trainer, device)
            timings[name].wall_s.append(wall)
            timings[name].cpu_s.append(cpu)
    return timings, memory


def training_benchmark(config: TrainingBenchConfig, device: torch.device | None = None) -> Table:
    """Measure every setting of every task; write ``<out>/<name>.md`` and ``.json``; return the table."""
    device = torch.device("cpu") if device is None else device
    load_before = load_average()
    title = f"Training throughput, preset {config.preset.name}" + (" (quick: tiny sizes)" if config.quick else "")
    table = Table(title, TRAINING_COLUMNS, formats=TRAINING_FORMATS)
    results: dict[str, Any] = {"preset": config.preset.name, "device": str(device), "threads": torch.get_num_threads(),
                               "load_before": load_before, "rows": []}
    for task in config.tasks:
        recipe = get_recipe(task, config.preset, seed=config.seed)
        timings, memory = measure_settings(recipe, config.settings, config.steps, device)
        base = timings["fp32"].steps_per_s if "fp32" in timings else None
        for name, timing in timings.items():
            share = timing.cpu_share if device.type == "cpu" else None
            row = (f"{task} {recipe.model_name} (batch {recipe.batch_size})", name, timing.steps_per_s,
                   1000 / timing.steps_per_s, timing.steps_per_s / base if base else None, timing.first_s, share,
                   memory[name] / 2**20)
            table.rows.append(row)
            results["rows"].append({**dict(zip(TRAINING_COLUMNS, row)), "wall_s": timing.wall_s, "cpu_s": timing.cpu_s})
    load_after = load_average()
    results["load_after"] = load_after
    load = "unknown" if load_before is None else f"{load_before:.1f} before, {load_after:.1f} after"
    table.notes += [describe_machine(device),
                    f"median of {config.steps} interleaved steps per setting after one untimed first step; "
                    f"load average {load}",
                    "steps/s counts whole training steps (batch, forward, backward, clip, AdamW, EMA); "
                    "memory: the estimate of course_lib.training.memory (compile estimated as eager)"]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{config.name}.json").write_text(json.dumps(results, indent=2, default=str))
    (out / f"{config.name}.md").write_text(table.to_markdown() + "\n")
    return table


# --- the subcommand -------------------------------------------------------------------------------

def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    from course_lib.workshop.cli import positive_int
    from course_lib.config import PRESETS

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
        torch.set_num_threads(1)  # the table's numbers are per thread (bench.main restores the count)
    config = TrainingBenchConfig(preset=preset, tasks=tuple(args.tasks), settings=settings, steps=steps,
                                 seed=args.seed, out=args.out, quick=args.quick)
    return training_benchmark(config, device=args.device_obj)
