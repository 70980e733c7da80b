"""The execution cache: each lesson run once per (its notebook, the preset, the course's code).

A lesson ``notebooks/NN_name.ipynb`` is executed top to bottom in a fresh kernel started in
``notebooks/`` (so ``../checkpoints`` and the shipped weights are found as a learner finds them),
with figures drawn inline, and stored with its outputs as ``<cache>/<preset>/NN_name.ipynb`` (its
metadata also says how long its kernel ran: :func:`cached_seconds`).
The kernel cannot import ipywidgets (:func:`site_kernel_env`), so every slider view draws the
static figure the course shows without widgets (panels at several slider values), the quizzes
print their answers, and progress bars stay off: a static page shows what it can show. Its
key, kept in the stored notebook's metadata, hashes the lesson's bytes, the preset and
:func:`code_version`; a rebuild re-executes only the lessons whose key changed, two at a time
on a machine of two cores or more (:func:`executed_lessons`). A lesson that fails raises
:class:`~course_lib.workshop.build.execute.CellError` naming the lesson and the cell, and nothing
is stored for it.
"""
from __future__ import annotations

import hashlib
import os
import platform
import time
from collections.abc import Callable
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

import nbformat
import torch
from nbformat import NotebookNode

import course_lib
from course_lib._files import atomic_write
from course_lib._validation import check_positive_int
from course_lib.workshop.build.execute import cell_timeout, kernel_env, run_notebook

KEY_FIELD = "course_site_key"  # in the cached notebook's metadata
SECONDS_FIELD = "course_site_seconds"  # how long its kernel ran, in the same metadata
INLINE = "module://matplotlib_inline.backend_inline"  # figures as PNG outputs (pytest's kernels use Agg)
# The course's tools that no lesson imports: editing them does not change what a lesson shows.
TOOLS = ("__main__.py", "workshop/build", "workshop/bench", "workshop/site", "workshop/cli.py",
         "workshop/doctor.py", "workshop/pytest_plugin.py")


def code_version() -> str:
    """A hash of the ``course_lib`` a lesson runs (sources and shipped weights, :data:`TOOLS` left out),
    of this module (how the kernels are set up), torch's and Python's versions."""
    package = Path(course_lib.__file__).resolve().parent
    digest = hashlib.sha256(f"{torch.__version__} {platform.python_version()}".encode())
    files = sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in (".py", ".pt", ".json")
                   and "__pycache__" not in p.parts
                   and not any(p.relative_to(package).as_posix().startswith(tool) for tool in TOOLS))
    for path in [*files, Path(__file__).resolve()]:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def lesson_key(lesson: Path, preset: str, code: str) -> str:
    """The cache key of one lesson: its notebook's bytes, the preset and the code version."""
    return hashlib.sha256(lesson.read_bytes() + f"\0{preset}\0{code}".encode()).hexdigest()


def cached_key(path: Path) -> str | None:
    """The key stored in a cached notebook, None when there is none (or the file is unreadable)."""
    return _cached_metadata(path).get(KEY_FIELD)


def cached_seconds(path: Path) -> float | None:
    """How long the kernel of a cached notebook ran, None when it does not say."""
    return _cached_metadata(path).get(SECONDS_FIELD)


def _cached_metadata(path: Path) -> dict:
    try:
        return nbformat.read(path, as_version=4).metadata
    except (OSError, ValueError):
        return {}


def site_kernel_env(preset: str, cache: Path, threads: int | None = None) -> dict[str, str]:
    """The kernels' environment: :func:`kernel_env` in ``preset``, figures inline, no widgets, no progress bars.

    ipywidgets is hidden by a package of that name, first on ``PYTHONPATH``, that refuses to import
    (course_lib.views then draws static figures; tqdm falls back to its text bar, disabled).
    threads: PyTorch's threads in the kernel, in place of any ``OMP_NUM_THREADS`` (None: that
    variable, else PyTorch's default).
    """
    hider = cache / "kernel-path" / "ipywidgets" / "__init__.py"
    refusal = 'raise ImportError("ipywidgets is hidden from the site\'s kernels: a static page shows static figures")\n'
    if not hider.is_file() or hider.read_text() != refusal:  # two lessons start side by side: written once
        atomic_write(hider, lambda file: file.write(refusal), binary=False)
    env = {**kernel_env(), "COURSE_PRESET": preset, "MPLBACKEND": INLINE, "TQDM_DISABLE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hider.parent.parent), env.get("PYTHONPATH")]))
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def execute_lesson(lesson: Path, preset: str, cache: Path, threads: int | None = None) -> NotebookNode:
    """Run ``lesson`` in ``preset`` with :func:`site_kernel_env`; raises CellError on a failing cell."""
    nb = nbformat.read(lesson, as_version=4)
    return run_notebook(nb, lesson.parent, f"notebooks/{lesson.name}", site_kernel_env(preset, cache, threads),
                        timeout=cell_timeout(preset))


def default_jobs() -> int:
    """Lessons run side by side: two on a machine of two cores or more (each kernel gets half the cores)."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def kernel_threads(jobs: int) -> int:
    """PyTorch's threads in each of ``jobs`` kernels running side by side: an equal share of the cores."""
    return max(1, (os.cpu_count() or 1) // jobs)


def executed_lessons(lessons: list[Path], preset: str, cache: Path,
                     execute: Callable[..., NotebookNode] = execute_lesson,
                     log: Callable[[str], None] = print, jobs: int = 1) -> list[Path]:
    """The executed copy of each lesson in ``cache/<preset>/``, running only those whose key changed.

    ``jobs`` lessons run at a time, in lesson order, each kernel with cores / jobs threads whatever
    ``OMP_NUM_THREADS`` says (two kernels with every core each would wait on each other); a lesson
    that needs a model another one is training waits for it (:func:`course_lib.workshop.zoo.train_or_load`).
    ``execute(lesson, preset, cache, threads)`` runs one (threads None when ``jobs`` is 1). When a
    lesson fails or the build is interrupted, no lesson starts after it; those running finish, and
    the first failing lesson's CellError (or the interrupt) is raised.
    """
    check_positive_int("jobs", jobs)
    folder = cache / preset
    folder.mkdir(parents=True, exist_ok=True)
    code = code_version()
    threads = None if jobs == 1 else kernel_threads(jobs)
    targets, stale = [], []
    for lesson in lessons:
        key, target = lesson_key(lesson, preset, code), folder / lesson.name
        if cached_key(target) == key:
            log(f"{lesson.stem}: cached")
        else:
            stale.append((lesson, key, target))
        targets.append(target)

    stop = threading.Event()  # set by a failure: the worker thread it frees starts nothing more

    def run(lesson: Path, key: str, target: Path) -> None:
        if stop.is_set():
            return
        start = time.perf_counter()
        try:
            nb = execute(lesson, preset, cache, threads)
        except BaseException:
            stop.set()
            raise
        seconds = time.perf_counter() - start
        log(f"{lesson.stem}: ran in {seconds:.0f} s ({preset} preset"
            + (f", {jobs} lessons at a time" if jobs > 1 else "") + ")")
        nb.metadata[KEY_FIELD] = key
        nb.metadata[SECONDS_FIELD] = round(seconds, 1)
        atomic_write(target, lambda file: nbformat.write(nb, file), binary=False)

    pool = ThreadPoolExecutor(max_workers=jobs)  # each lesson's kernel is its own process
    futures = []
    try:
        futures += [pool.submit(run, *item) for item in stale]
        wait(futures, return_when=FIRST_EXCEPTION)  # every lesson done, or one failed
    finally:  # after a failure or a Ctrl-C no lesson starts; the running ones finish
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    for future in futures:
        if not future.cancelled() and future.exception() is not None:
            raise future.exception()
    return targets
