"""The website benchmark: how long ``site build`` takes when every lesson runs.

    python -m course_lib bench site --preset cpu --out benchmarks/results    # every lesson in cpu
    python -m course_lib bench site --preset smoke                           # the build CI runs

Runs the lessons of the course at ``--root`` (default: here) into a new, empty execution cache in a
temporary folder, ``--jobs`` at a time as ``site build`` runs them, then builds the pages from that
cache; both are deleted afterwards. The lessons find the models in ``checkpoints/`` and the judge
cache as a learner's build would, so the notes say what was there before: in a fresh clone (none),
this is a first build, in which every lesson without shipped weights trains its model. One row per
lesson (its kernel's seconds), then all lessons together, the pages (Sphinx) and the whole build.
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from course_lib._validation import check_positive_int
from course_lib.config import PRESETS, get_preset
from course_lib.metrics.judge import cache_dir
from course_lib.workshop.bench.common import BenchConfig, Record, Stopwatch, Table
from course_lib.workshop.build.build import check_root
from course_lib.workshop.build.execute import BuildError
from course_lib.workshop.build.timing import lesson_paths
from course_lib.workshop.site.build import SiteError, build_site
from course_lib.workshop.site.cache import cached_seconds, default_jobs, executed_lessons, kernel_threads

COLUMNS = ("part", "seconds", "minutes")
FORMATS = {"seconds": ".0f", "minutes": ".1f"}


@dataclass
class SiteBenchConfig(BenchConfig):
    """The course folder ``root`` and how many lessons run at a time (``jobs``)."""

    kind: ClassVar[str] = "site"
    root: str = "."
    jobs: int = 2

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("jobs", self.jobs)


def add_site_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="the preset the lessons run in (default: $COURSE_PRESET, else gpu with CUDA, cpu without)")
    parser.add_argument("--root", default=".", help="the course folder (default: here)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="lessons run at a time (default 2 on a machine of 2 cores or more, as site build)")


def run_site(args: argparse.Namespace) -> Table:
    jobs = default_jobs() if args.jobs is None else check_positive_int("--jobs", args.jobs)
    config = SiteBenchConfig(get_preset(args.preset), seed=args.seed, out=args.out, progress=not args.quiet,
                             root=str(args.root), jobs=jobs)
    return site_benchmark(config, args.device_obj)


def found_before(root: Path) -> tuple[list[str], list[str]]:
    """What a build finds before it starts: the models in ``checkpoints/`` and the judges cached (file names)."""
    models = sorted(path.name for path in (root / "checkpoints").glob("*.pt"))
    judges = sorted(path.name for path in cache_dir().glob("*.pt")) if cache_dir().is_dir() else []
    return models, judges


def site_benchmark(config: SiteBenchConfig, device: torch.device | None = None, log=print) -> Table:
    """Run every lesson of ``config.root`` from an empty cache, build the pages; one row per part.

    A lesson or a page build that fails ends the run with a ValueError naming it; the record keeps
    the lessons that finished.
    """
    root = check_root(config.root).absolute()
    preset = config.preset.name
    table = Table(f"The website: site build --preset {preset}, every lesson run ({config.jobs} at a time)",
                  COLUMNS, formats=FORMATS)
    models, judges = found_before(root)
    threads_each = None if config.jobs == 1 else kernel_threads(config.jobs)  # None: PyTorch's default
    record = Record(config, table, torch.device("cpu") if device is None else device, jobs=config.jobs,
                    models_before=len(models), judges_before=len(judges), kernel_threads=threads_each)
    table.notes.append(f"before the build, checkpoints/ held {len(models)} trained model(s)"
                       + (f" ({', '.join(models)})" if models else "") + f" and the judge cache {len(judges)} judge(s)")
    threads = "PyTorch's default threads" if threads_each is None else f"{threads_each} thread(s)"
    table.notes.append(f"each lesson's kernel with {threads}; a lesson's seconds include waiting for a model "
                       "another lesson is training")
    lessons, pages = Stopwatch(), Stopwatch()
    with tempfile.TemporaryDirectory(prefix="course-site-bench-") as folder:
        cache, out = Path(folder) / "cache", Path(folder) / "_site"
        try:
            with lessons:
                executed = executed_lessons(lesson_paths(root), preset, cache, log=log, jobs=config.jobs)
            with pages:  # every lesson is in the cache now: this is the pages alone
                build_site(root, preset, out, cache, log=log, jobs=config.jobs)
        except (BuildError, SiteError) as error:
            _lesson_rows(table, sorted((cache / preset).glob("*.ipynb")))
            table.notes.insert(0, record.machine_note())
            record.finish(failed=str(error))
            raise ValueError(f"the build failed, {' '.join(str(error).split())}; the lessons that ran are in "
                             f"{record.out / record.name}.json") from error
        _lesson_rows(table, executed)
    total = lessons.wall + pages.wall
    table.rows += [(f"all lessons, {config.jobs} at a time", lessons.wall, lessons.wall / 60),
                   ("pages (Sphinx)", pages.wall, pages.wall / 60), ("whole build", total, total / 60)]
    table.notes.insert(0, record.machine_note())
    return record.finish(lessons_seconds=lessons.wall, pages_seconds=pages.wall, total_seconds=total)


def _lesson_rows(table: Table, executed: list[Path]) -> None:
    """A row per executed lesson with the seconds its cached notebook records (a lesson without them is left out)."""
    for lesson in executed:
        seconds = cached_seconds(lesson)
        if seconds is not None:
            table.rows.append((lesson.stem, seconds, seconds / 60))
