"""``python -m course_lib`` (and the ``course`` script): one command line for the course.

    python -m course_lib demo|train|sample|eval|export|doctor # the learner's commands: course_lib.workshop.cli
    python -m course_lib bench image|video|sampling|prediction|training|all|quality ...
                                                              # benchmarks: course_lib.workshop.bench
    python -m course_lib notebooks build|check ...            # the notebook build: course_lib.workshop.build
    python -m course_lib site build [--preset P] [--out DIR]  # the course as a website: course_lib.workshop.site

This is the entry point: the only module outside the benchmarks that imports them.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Route ``argv`` (default ``sys.argv[1:]``) to its command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from course_lib.workshop.bench.__main__ import main as bench

        return bench(argv[1:])
    if argv[:1] == ["notebooks"]:
        from course_lib.workshop.build.__main__ import main as notebooks

        return notebooks(argv[1:])
    if argv[:1] == ["site"]:
        from course_lib.workshop.site.__main__ import main as site

        return site(argv[1:])
    from course_lib.workshop.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
