"""``python -m course_lib notebooks build [--only NN] [--no-execute]`` and ``... check``
(also ``python -m course_lib.workshop.build ...``)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from course_lib.workshop.build.build import BuildError, build, check_root
from course_lib.workshop.build.drift import check, setup_cell_drift
from course_lib.workshop.build.stubs import SolutionMarkerError
from course_lib.workshop.build.timing import load_records, time_lessons, time_machines, time_table, write_time_tables


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m course_lib notebooks",
                                     description="Build the course notebooks from their jupytext sources, or check they are in sync.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=Path.cwd(), help="the course folder (default: the current folder)")
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", parents=[common],
                                    help="write notebooks/, solutions/ and exercises/ .ipynb (and exercises/*.py)")
    build_cmd.add_argument("--only", metavar="NN", help="only notebook NN, e.g. 01")
    build_cmd.add_argument("--no-execute", action="store_true",
                           help="do not run the solutions; keep stored check outputs whose cell did not change")
    commands.add_parser("check", parents=[common], help="exit 1, naming each file, when anything is out of sync (runs nothing)")
    time_cmd = commands.add_parser("time", parents=[common],
                                   help="run lessons top to bottom in a preset, record their times, rewrite README's table")
    time_cmd.add_argument("lessons", nargs="*", metavar="NN", help="lesson numbers, e.g. 04 07 (default: all)")
    time_cmd.add_argument("--preset", default="cpu", help="smoke, cpu or gpu (default cpu)")
    time_cmd.add_argument("--threads", type=int, default=None, help="threads per kernel (default: torch's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    if args.command == "build":
        try:
            changed = build(args.root, only=args.only, execute=not args.no_execute)
        except (BuildError, SolutionMarkerError, ValueError) as error:
            print(f"build failed: {error}", file=sys.stderr)
            return 1
        print(f"build done in {time.perf_counter() - start:.1f} s: {len(changed)} file(s) changed")
        return 0
    if args.command == "time":
        return _time(args)
    root = check_root(args.root)
    problems = check(root)
    if (root / "pyproject.toml").exists():  # a course checkout (what the set-up cell installs), not a bare tree
        problems += setup_cell_drift(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s): notebooks out of sync", file=sys.stderr)
        return 1
    print("notebooks in sync")
    return 0


def _time(args: argparse.Namespace) -> int:
    try:
        record = time_lessons(args.root, args.preset, args.lessons, args.threads)
    except ValueError as error:
        print(f"notebooks time: error: {error}", file=sys.stderr)
        return 2
    records = load_records(args.root)
    table = time_table(records)
    print(table + "\n\n" + time_machines(records))
    try:
        for page in write_time_tables(Path(args.root), table):
            print(f"rewrote the time table in {page}")
    except ValueError as error:  # the record is written; a page lost its markers
        print(f"notebooks time: error: {error}", file=sys.stderr)
        return 1
    failed = [entry["lesson"] for entry in record["lessons"] if entry["error"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
