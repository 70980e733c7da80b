"""``python -m course_lib site build [--preset smoke|cpu|gpu] [--out _site] [--jobs N]``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from course_lib.workshop.build.execute import BuildError
from course_lib.workshop.site.build import CACHE, SiteError, build_site

PROG = "python -m course_lib site"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="The course as a website: the lessons executed, "
                                                            "rendered as a static HTML book.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="execute the lessons (or reuse the cache) and build the site")
    build.add_argument("--preset", default="smoke", help="smoke, cpu or gpu: the lessons run in it (default smoke)")
    build.add_argument("--out", type=Path, default=Path("_site"), help="the site's folder (default _site), "
                                                                       "replaced when the build succeeds")
    build.add_argument("--root", type=Path, default=Path.cwd(), help="the course folder (default: the current folder)")
    build.add_argument("--cache", type=Path, default=None, help=f"executed lessons (default ROOT/{CACHE})")
    build.add_argument("--jobs", type=int, default=None,
                       help="lessons run at a time (default 2 on a machine of 2 cores or more, each with half the cores)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        out = build_site(args.root, args.preset, args.out, args.cache, log=lambda line: print(line, flush=True),
                         jobs=args.jobs)
    except (ValueError, BuildError, SiteError) as error:
        print(f"{PROG} build: error: {' '.join(str(error).split())}; the previous site is unchanged", file=sys.stderr)
        return 1
    print(f"site built in {time.perf_counter() - start:.0f} s: open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
