"""BENCHMARKS.md, written from the benchmarks' own records: ``python -m course_lib bench report``.

Every number in the generated part of BENCHMARKS.md comes from a JSON record, never from typing:

* ``benchmarks/results/*.json`` -- what ``python -m course_lib bench NAME --out benchmarks/results``
  wrote (its table, the exact command, the machine, torch and the load while it ran);
* ``benchmarks/lesson-times-<preset>.json`` -- ``python -m course_lib notebooks time``;
* ``course_lib/workshop/pretrained/*.pt.json`` -- the training record of each shipped checkpoint.

The text between ``<!-- generated:begin -->`` and ``<!-- generated:end -->`` is replaced, and so is
the lessons' time table of README.md and INSTRUCTORS.md (:mod:`course_lib.workshop.build.timing`);
``--check`` only says whether they are up to date (the tests use it, so a table that drifts from its
record fails).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from course_lib._files import atomic_write
from course_lib.workshop.bench.common import Table
from course_lib.workshop.build.timing import load_records, replace_marked, time_machines, time_pages, time_table
from course_lib.workshop.shipped import SHIPPED_FOLDER

BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"


def record_table(data: dict) -> Table:
    """The :class:`Table` a benchmark record (``<name>.json``) holds."""
    columns = tuple(data["columns"])
    return Table(data["title"], columns, [tuple(row.get(c) for c in columns) for row in data["rows"]],
                 dict(data.get("formats", {})), list(data.get("notes", [])), list(data.get("verdicts", [])))


def benchmark_section(data: dict) -> str:
    """One benchmark: its table (title, notes, rows, verdicts), then the command, the day and the machine."""
    return "\n".join([record_table(data).to_markdown(), "",
                      f"*Command:* `{data['command']}` ({data.get('date', 'date not recorded')}; "
                      f"{data['machine']}; preset `{data['preset']}`)."])


def shipped_section(folder: Path) -> str:
    """The shipped checkpoints and how each was trained, from their ``.pt.json`` records."""
    lines = ["### Shipped checkpoints", "", "| file | steps | training time | final loss | command | machine |",
             "|---|---|---|---|---|---|"]
    for path in sorted(Path(folder).glob("*.pt.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        machine = record.get("machine", {})
        lines.append(f"| `{path.name.removesuffix('.json')}` | {record['steps']} | "
                     f"{record['wall_clock_seconds'] / 60:.1f} min | {record['final_loss']:.4f} | `{record['command']}` | "
                     f"{machine.get('cpu_count')} cores, {machine.get('torch_threads')} thread(s), torch {record['torch']} |")
    return "\n".join(lines)


def render(root: Path, shipped_folder: Path = SHIPPED_FOLDER) -> str:
    """The generated part of BENCHMARKS.md for the course checkout at ``root``."""
    sections = [shipped_section(shipped_folder)]
    times = load_records(root)
    if times:
        sections.append("### Lessons, run top to bottom\n\n" + time_table(times) + "\n\n" + time_machines(times))
    for path in sorted((Path(root) / "benchmarks" / "results").glob("*.json")):
        sections.append(benchmark_section(json.loads(path.read_text(encoding="utf-8"))))
    return "\n\n".join(sections)


def update(page: Path, generated: str) -> str:
    """``page``'s text with the part between BEGIN and END replaced by ``generated``."""
    updated = replace_marked(page.read_text(encoding="utf-8"), generated, BEGIN, END)
    if updated is None:
        raise ValueError(f"{page}: expected the lines {BEGIN} and {END} around the generated tables")
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib bench report", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course folder (default: here)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if BENCHMARKS.md or a lesson-time table is not what the records give")
    args = parser.parse_args(argv)
    page = args.root / "BENCHMARKS.md"
    try:
        times = load_records(args.root)
        pages = {page: update(page, render(args.root)), **(time_pages(args.root, time_table(times)) if times else {})}
    except (ValueError, OSError, KeyError) as error:
        print(f"bench report: error: {error}", file=sys.stderr)
        return 2
    stale = [path for path, text in pages.items() if text != path.read_text(encoding="utf-8")]
    if args.check:
        for path in stale:
            print(f"{path} is out of date with its records: run python -m course_lib bench report", file=sys.stderr)
        if not stale:
            print(f"{', '.join(path.name for path in pages)} up to date")
        return 1 if stale else 0
    for path in stale:
        atomic_write(path, lambda file, text=pages[path]: file.write(text), binary=False)
        print(f"wrote {path}")
    if not stale:
        print(f"{', '.join(path.name for path in pages)} already up to date")
    return 0
