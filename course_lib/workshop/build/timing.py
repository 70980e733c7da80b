"""How long each lesson takes to run, measured: ``python -m course_lib notebooks time --preset cpu [NN ...]``.

Each lesson (``notebooks/NN_*.ipynb``) is executed top to bottom in a fresh kernel, in the chosen
preset, from its own folder (so ``../checkpoints`` and the shipped weights are found as a learner
finds them), and its wall-clock time recorded. The record goes to ``benchmarks/lesson-times-<preset>.json``
(with the machine and torch version), and the time tables of README.md and INSTRUCTORS.md
(:data:`TIME_PAGES`) are rewritten from it between the lines ``<!-- lesson-times:begin -->`` and
``<!-- lesson-times:end -->``; how it was measured goes to BENCHMARKS.md (:func:`time_machines`).
``python -m course_lib bench report --check`` fails when a page's table drifts from the records.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
import torch

from course_lib._files import atomic_write, atomic_write_json
from course_lib._validation import check_choice, fail
from course_lib.config import PRESETS
from course_lib.workshop.build.build import LESSONS, check_root
from course_lib.workshop.build.execute import CellError, cell_timeout, run_notebook

BEGIN, END = "<!-- lesson-times:begin -->", "<!-- lesson-times:end -->"
TIME_PAGES = ("README.md", "INSTRUCTORS.md")  # the pages that show the lessons' run times


@dataclass
class LessonTime:
    """One lesson's run: ``seconds`` wall clock top to bottom; ``error`` the failing cell, else None."""

    lesson: str
    seconds: float
    error: str | None = None


def lesson_paths(root: Path, numbers: list[str] | None = None) -> list[Path]:
    """The lessons ``notebooks/NN_*.ipynb`` (only those numbered in ``numbers``); an unknown number is an error."""
    lessons = sorted((root / LESSONS).glob("[0-9][0-9]_*.ipynb"))
    if not numbers:
        return lessons
    known = {path.name[:2]: path for path in lessons}
    for number in numbers:
        if number not in known:
            fail("lesson", "lesson numbers among " + ", ".join(known), number)
    return [known[number] for number in numbers]


def time_lesson(path: Path, preset: str, threads: int | None = None) -> LessonTime:
    """Run ``path`` top to bottom in ``preset`` and time it (the kernel starts inside the timing)."""
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "COURSE_PRESET": preset, "MPLBACKEND": "Agg"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    error = None
    try:
        run_notebook(nb, path.parent, path.stem, env, timeout=cell_timeout(preset))
    except CellError as failure:  # a cell raised, ran past its time limit, or the kernel died
        error = f"{failure.cell} {failure.detail}"
    return LessonTime(path.stem, round(time.perf_counter() - start, 1), error)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def load_records(root: Path) -> list[dict]:
    """Every ``benchmarks/lesson-times-<preset>.json`` under ``root``, in the order smoke, cpu, gpu, then
    the first runs of :func:`first_run_records`."""
    found = {path.stem.removeprefix("lesson-times-"): json.loads(path.read_text(encoding="utf-8"))
             for path in (Path(root) / "benchmarks").glob("lesson-times-*.json")}
    return [found[name] for name in PRESETS if name in found] + first_run_records(root)


def first_run_records(root: Path) -> list[dict]:
    """The lessons' first runs, as records like :func:`time_lessons`' (``first_run`` set): from the website's
    build benchmark (``benchmarks/results/site-<preset>.json``, ``python -m course_lib bench site``) when it
    ran every lesson with nothing trained yet (no model in ``checkpoints/``, no judge cached), so each
    time includes the models and judges a lesson trains the first time. A build that failed, or found
    models or judges already there, is not a first run; the ``smoke`` build is left out (it trains
    everything in seconds)."""
    records = []
    for name in PRESETS:
        path = Path(root) / "benchmarks" / "results" / f"site-{name}.json"
        if name == "smoke" or not path.is_file():
            continue
        site = json.loads(path.read_text(encoding="utf-8"))
        if site.get("failed") or site.get("models_before") != 0 or site.get("judges_before") != 0:
            continue
        lessons = [{"lesson": row["part"], "seconds": row["seconds"], "error": None}
                   for row in site["rows"] if row["part"][:2].isdigit()]
        records.append({"preset": name, "first_run": True, "jobs": site.get("jobs", 1), "machine": site["machine"],
                        "threads": site.get("kernel_threads"), "command": site["command"], "lessons": lessons})
    return records


def time_table(records: list[dict]) -> str:
    """One Markdown table of the lessons' run times: a column per lesson (by number), a row per preset measured.

    ``records``: those of :func:`time_lessons`. Lessons run across, so the table stays a few lines long.
    """
    lessons = sorted({entry["lesson"] for record in records for entry in record["lessons"]})
    lines = ["| preset | " + " | ".join(lesson[:2] for lesson in lessons) + " |", "|---" * (len(lessons) + 1) + "|"]
    for record in records:
        entries = {entry["lesson"]: entry for entry in record["lessons"]}
        cells = ["—" if (entry := entries.get(lesson)) is None
                 else _minutes(entry["seconds"]) + (" (failed)" if entry["error"] else "") for lesson in lessons]
        label = f"`{record['preset']}`" + (", first run" if record.get("first_run") else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def time_machines(records: list[dict]) -> str:
    """How the times of :func:`time_table` were measured: the command, and per preset the machine and threads."""
    timed = [r for r in records if not r.get("first_run")]
    machines = "; ".join(f"`{r['preset']}`: {r['machine']['cpu_count']} CPU cores, {r['threads']} thread(s), "
                         f"torch {r['torch']}" for r in timed)
    text = f"Measured with `python -m course_lib notebooks time --preset PRESET` ({machines})." if timed else ""
    for r in records:
        if r.get("first_run"):
            threads = f", {r['threads']} thread(s) each" if r["threads"] else ""
            text += (f" First run: `{r['command']}` from an empty `checkpoints/` and judge cache, {r['jobs']} "
                     f"lessons at a time{threads} ({r['machine'].split(' on ')[0]}).")
    return text.strip()


def replace_marked(text: str, body: str, begin: str = BEGIN, end: str = END) -> str | None:
    """``text`` with the part between the lines ``begin`` and ``end`` replaced by ``body``; None when a
    marker is missing (the generated parts of README, INSTRUCTORS and BENCHMARKS.md)."""
    if begin not in text or end not in text:
        return None
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}"


def time_pages(root: Path, table: str) -> dict[Path, str]:
    """{page: its text with ``table``} for each of :data:`TIME_PAGES` under ``root``; a page that lost
    its markers is a ValueError naming it."""
    pages = {}
    for page in (Path(root) / name for name in TIME_PAGES if (Path(root) / name).is_file()):
        updated = replace_marked(page.read_text(encoding="utf-8"), table)
        if updated is None:
            raise ValueError(f"{page}: expected the lines {BEGIN} and {END} around the lessons' time table")
        pages[page] = updated
    return pages


def write_time_tables(root: Path, table: str) -> list[Path]:
    """Rewrite the time table of each page of :func:`time_pages` that changes; returns those pages."""
    written = []
    for page, text in time_pages(root, table).items():
        if text != page.read_text(encoding="utf-8"):
            atomic_write(page, lambda file, text=text: file.write(text), binary=False)
            written.append(page)
    return written


def time_lessons(root: Path | str, preset: str, numbers: list[str] | None = None, threads: int | None = None,
                 log=print) -> dict:
    """Time each lesson (all, or ``numbers``) in ``preset``; write ``benchmarks/lesson-times-<preset>.json``."""
    root = check_root(root)
    check_choice("preset", preset, PRESETS)
    paths = lesson_paths(root, numbers)
    record = {"preset": preset, "threads": threads or torch.get_num_threads(), "torch": torch.__version__,
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()}, "lessons": []}
    for path in paths:
        result = time_lesson(path, preset, threads)
        log(f"{result.lesson}: {_minutes(result.seconds)}" + ("" if result.error is None else f" (failed: {result.error})"))
        record["lessons"].append(asdict(result))
    out = root / "benchmarks" / f"lesson-times-{preset}.json"
    if numbers and out.is_file():  # a partial run updates its lessons in the full record
        previous = json.loads(out.read_text(encoding="utf-8"))
        if previous.get("preset") == preset:
            timed = {entry["lesson"] for entry in record["lessons"]}
            record["lessons"] = sorted([e for e in previous["lessons"] if e["lesson"] not in timed] + record["lessons"],
                                       key=lambda entry: entry["lesson"])
    atomic_write_json(record, out)
    return record
