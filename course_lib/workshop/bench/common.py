"""What every benchmark shares: its config's base, the table it prints, the record it writes, the
machine it ran on, and where its trained models come from.

Each benchmark (``python -m course_lib bench NAME``, :mod:`course_lib.workshop.bench.__main__`)
takes a :class:`BenchConfig`, prints one :class:`Table` and keeps a :class:`Record`: ``<out>/<name>.json``
(every number, rewritten after each row) and ``<out>/<name>.md`` (the table). Timings depend on
the machine *and on everything else running on it*: every table names the machine, torch's
threads and the load average, and gives a **CPU share** -- CPU seconds of this process / (wall
seconds x threads). A share well below 100% means other programs took the cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from course_lib._validation import check_float_range, check_positive_int, fail
from course_lib.config import Preset
from course_lib.workshop import zoo

PROG = "python -m course_lib bench"
DEFAULT_OUT = "runs/bench"


def command_line() -> str:
    """The command that runs this benchmark, for the JSON record of the checkpoints it trains."""
    args = sys.argv[1:]
    if args[:1] == ["bench"]:  # run as python -m course_lib bench NAME ...: PROG says "bench" already
        args = args[1:]
    return " ".join([PROG, *args])


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


@dataclass
class Report:
    """Several tables printed one after another (what ``all`` returns): a title, notes, the tables."""

    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        head = "\n".join([f"## {self.title}", ""] + [f"{note}  " for note in self.notes])
        return "\n\n".join([head] + [table.to_markdown() for table in self.tables])


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


# --- configs -----------------------------------------------------------------------------------

@dataclass
class BenchConfig:
    """What every benchmark is given: the preset (sizes), the seed of models, data and noise, the
    folder of its results, progress bars, and whether it is a quick run (tiny sizes: only the output
    files are named apart, ``<kind>-<preset>-quick.*``)."""

    kind: ClassVar[str] = "bench"
    preset: Preset
    seed: int = 0
    out: str = DEFAULT_OUT
    progress: bool = True
    quick: bool = False

    def __post_init__(self):
        if not isinstance(self.preset, Preset):
            fail("preset", "a course_lib.config.Preset", type(self.preset).__name__)

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.preset.name}" + ("-quick" if self.quick else "")


@dataclass
class TrainedModelsConfig(BenchConfig):
    """A benchmark of trained models (:func:`trained_model`): ``checkpoints`` is the folder
    :func:`course_lib.workshop.zoo.train_or_load` keeps them in; ``train_minutes`` trains a missing or
    unfinished one for that long first (None: the row reads "not trained"); quick runs train
    ``train_steps`` steps into ``out`` instead."""

    checkpoints: str = "checkpoints"
    train_minutes: float | None = None
    train_steps: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.train_minutes is not None:
            check_float_range("train_minutes", self.train_minutes, 1e-6, 1e6)
        if self.train_steps is not None:
            check_positive_int("train_steps", self.train_steps)


def add_trained_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoints`` and ``--train-minutes`` of a :class:`TrainedModelsConfig`."""
    from course_lib.workshop.cli import positive_minutes

    parser.add_argument("--checkpoints", default="checkpoints",
                        help="folder of train_or_load's checkpoints (default checkpoints)")
    parser.add_argument("--train-minutes", type=positive_minutes, default=None,
                        help="train a missing or unfinished model for this many minutes first "
                             "(default: report 'not trained')")


# --- the record --------------------------------------------------------------------------------

class Record:
    """A benchmark's numbers as it measures them: ``<out>/<name>.json`` rewritten by :meth:`save`
    after each row (the rows, the config, the machine, the load average, and what the benchmark adds
    to :attr:`data`), and ``<out>/<name>.md`` with the table at :meth:`finish`."""

    def __init__(self, config: BenchConfig, table: Table, device: torch.device, **data):
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.name, self.table, self.device = config.name, table, device
        self.load_before = load_average()
        self.data: dict[str, Any] = {"config": {k: v for k, v in vars(config).items() if k != "preset"},
                                     "preset": config.preset.name, "machine": describe_machine(device),
                                     "load_before": self.load_before, **data}

    def save(self) -> None:
        self.data.update(title=self.table.title, columns=list(self.table.columns), formats=self.table.formats,
                         command=command_line(), date=time.strftime("%Y-%m-%d"))
        self.data["rows"] = self.table.as_dicts()
        (self.out / f"{self.name}.json").write_text(json.dumps(self.data, indent=2, default=str))

    def machine_note(self) -> str:
        """"machine: ...; load average 1.0 before, 2.0 after" (the load now is the "after")."""
        self.data["load_after"] = load_after = load_average()
        load = "" if self.load_before is None else f"; load average {self.load_before:.1f} before, {load_after:.1f} after"
        return f"machine: {describe_machine(self.device)}{load}"

    def finish(self, **data) -> Table:
        """Store the table's notes and verdicts (and ``data``), write the JSON and the Markdown; returns the table."""
        self.data.update(notes=self.table.notes, verdicts=self.table.verdicts, **data)
        self.save()
        (self.out / f"{self.name}.md").write_text(self.table.to_markdown() + "\n")
        return self.table


# --- trained models ----------------------------------------------------------------------------

@dataclass
class Trained:
    """A model for a benchmark: the recipe to sample it with, its trainer (None: not trained), and
    what the table's "trained" cell says."""

    recipe: Any
    trainer: Any
    status: str

    @property
    def model(self) -> torch.nn.Module | None:
        """The EMA weights in eval mode, or None."""
        return None if self.trainer is None else self.trainer.ema_model.eval()


def check_checkpoint_file(argument: str, path: str | os.PathLike | None) -> Path | None:
    """``path`` as a Path if it is a file (None stays None); else an error naming ``argument``."""
    if path is None:
        return None
    if not Path(path).is_file():
        fail(argument, "an existing checkpoint file", os.fspath(path))
    return Path(path)


def trained_status(trainer, target_steps: int) -> str:
    """"1500 of 2000 steps, 25 min": how far ``trainer`` was trained."""
    done = "" if trainer.step >= target_steps else f" of {target_steps}"
    minutes = f", {trainer.seconds / 60:.0f} min" if trainer.seconds else ""
    return f"{trainer.step}{done} steps{minutes}"


def load_trained(recipe, path: str | os.PathLike, argument: str, device=None, origin: str = "",
                 parts: zoo.Parts | None = None) -> Trained:
    """The checkpoint at ``path`` (``argument`` names its option in errors).

    Without ``parts`` it is any file of ``python -m course_lib train`` or train_or_load holding
    ``recipe.task`` at ``recipe``'s example shape, sampled with its own stored recipe; with
    ``parts`` it must hold that network trained on ``recipe``.
    """
    try:
        if parts is None:
            stored, trainer = zoo.load_checkpoint(path, device=device, progress=False)
        else:
            stored, trainer = recipe, zoo.load(recipe, path, device, progress=False, parts=parts)
    except ValueError as error:  # unreadable, or another model: say which option named it
        message = str(error)
        raise ValueError(message if message.startswith(f"{argument}:") else f"{argument}: {message}") from error
    if parts is None and (stored.task != recipe.task or stored.example_shape != recipe.example_shape):
        fail(argument, f"a checkpoint of task {recipe.task!r} with examples of shape {recipe.example_shape} "
                       f"(preset {recipe.preset.name})",
             f"{os.fspath(path)} ({stored.task}, shape {stored.example_shape}, preset {stored.preset.name})")
    return Trained(stored, trainer, trained_status(trainer, zoo.default_steps(stored, parts)) + origin)


def trained_model(recipe, checkpoints: str | os.PathLike = "checkpoints", device=None, *,
                  checkpoint: str | os.PathLike | None = None, argument: str = "checkpoint",
                  train_minutes: float | None = None, quick_steps: int | None = None,
                  quick_path: str | os.PathLike | None = None, fallback: str | os.PathLike | None = None,
                  progress: bool = False, parts: zoo.Parts | None = None) -> Trained:
    """The trained model of ``recipe`` (or ``parts`` trained on it) for a benchmark, from the first of these:

    1. ``checkpoint``: a file named on the command line (``argument`` names its option in errors);
    2. ``quick_steps``: a quick run trains this many steps from scratch into ``quick_path``;
    3. :func:`course_lib.workshop.zoo.train_or_load`'s file in ``checkpoints``, trained first for
       ``train_minutes`` when it is missing or unfinished;
    4. ``fallback``: another file holding the recipe, if it exists (e.g. the image benchmark's model);
    else "not trained" (a benchmark never trains for an hour unless asked).
    """
    from course_lib.training import read_checkpoint

    if checkpoint is not None:
        return load_trained(recipe, check_checkpoint_file(argument, checkpoint), argument, device, parts=parts)
    if quick_steps is not None:
        trainer = zoo.train(recipe, quick_path, steps=quick_steps, resume=False, progress=False, device=device,
                            command=command_line(), parts=parts)
        return Trained(recipe, trainer, f"{trainer.step} steps (quick)")
    steps = zoo.default_steps(recipe, parts)
    path = zoo.checkpoint_path(recipe, steps, checkpoints, parts)
    finished = path.exists() and int(read_checkpoint(path)["step"]) >= steps
    if train_minutes is not None and not finished:
        zoo.train(recipe, path, steps, minutes=train_minutes, progress=progress, device=device, command=command_line(),
                  parts=parts)
    if path.exists():
        return load_trained(recipe, path, "checkpoints", device, parts=parts)
    if fallback is not None and Path(fallback).is_file():
        return load_trained(recipe, fallback, "fallback", device, origin=f" ({Path(fallback).name})")
    return Trained(recipe, None, "not trained")
