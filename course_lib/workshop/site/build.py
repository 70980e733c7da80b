"""``build_site``: the lessons executed (or taken from the cache), laid out as pages, built by Sphinx."""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from course_lib._validation import check_choice, check_positive_int
from course_lib.config import PRESETS
from course_lib.workshop.build.build import check_root
from course_lib.workshop.build.timing import lesson_paths
from course_lib.workshop.site.cache import default_jobs, executed_lessons
from course_lib.workshop.site.links import markdown_rewriter, repository_url
from course_lib.workshop.site.output import check_out, staging_folder, swap_in
from course_lib.workshop.site.source_tree import page_paths, write_api, write_lesson, write_pages
from course_lib.workshop.site.sphinx_run import run_sphinx, write_conf

CACHE = ".site-cache"


class SiteError(RuntimeError):
    """Sphinx could not build the pages; the message is Sphinx's last line."""


def build_site(root: Path | str = ".", preset: str = "smoke", out: Path | str = "_site",
               cache: Path | str | None = None, log: Callable[[str], None] = print, jobs: int | None = None) -> Path:
    """Build the course's site from ``root`` into ``out`` (replaced only when the build succeeds).

    Lessons run in ``preset`` unless ``cache`` (default ``root/.site-cache``) holds them for the
    same lesson, preset and code; ``jobs`` of them at a time (default :func:`default_jobs`).
    Raises ValueError on bad arguments, CellError when a lesson fails (naming it and the cell),
    SiteError when Sphinx fails. Returns ``out``.
    """
    root = check_root(root).absolute()
    check_choice("preset", preset, PRESETS)
    jobs = default_jobs() if jobs is None else check_positive_int("--jobs", jobs)
    out = check_out(out)
    repository = repository_url(root)
    cache = Path(cache) if cache is not None else root / CACHE
    lessons = lesson_paths(root)
    staging = staging_folder(out)
    try:
        start = time.perf_counter()
        executed = executed_lessons(lessons, preset, cache, log=log, jobs=jobs)
        log(f"lessons ready in {time.perf_counter() - start:.0f} s; writing pages ...")
        source = cache / f"source-{preset}"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        rewrite = markdown_rewriter(page_paths(root, lessons), root, source, repository)
        for done, lesson in zip(executed, lessons):
            write_lesson(done, lesson, source, preset, repository, rewrite)
        write_pages(root, source, lessons, rewrite)
        write_api(source)
        write_conf(source, repository)
        warnings = cache / f"sphinx-warnings-{preset}.log"
        html = staging / "html"  # myst-nb writes its jupyter_execute/ beside the HTML folder: in staging
        failure = run_sphinx(source, html, cache / f"doctrees-{preset}", warnings)
        if failure is not None:
            raise SiteError(f"sphinx failed: {failure} (all warnings: {warnings})")
        swap_in(html, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
