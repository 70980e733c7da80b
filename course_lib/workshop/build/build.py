"""``build``: write every ``.ipynb`` from its ``.py`` and generate the exercises from the solutions.

1. ``notebooks/NN_name.py`` -> ``notebooks/NN_name.ipynb`` without outputs;
2. ``solutions/NN_name.py`` -> ``solutions/NN_name.ipynb``, executed in the smoke preset, storing
   outputs only for check cells (so strict ``pytest --nbval`` compares only the "✓" lines);
3. ``exercises/NN_name.py`` (answers stubbed) and ``exercises/NN_name.ipynb`` with the solution's
   "✓" lines as the expected check outputs.

Building twice gives byte-identical files.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nbformat import NotebookNode
from nbformat.reader import NotJSONError

from course_lib._validation import check_int_range, fail
from course_lib.workshop.build.execute import BuildError, run_check_cells
from course_lib.workshop.build.ipynb import (
    cell_label, check_line, checked_output, execution_counts, is_check_cell, notebook_from_text,
    read_notebook, write_bytes_if_changed, write_notebook,
)
from course_lib.workshop.build.stubs import SolutionMarkerError, notebook_number, strip_solutions

LESSONS, SOLUTIONS, EXERCISES = "notebooks", "solutions", "exercises"

__all__ = ["BuildError", "build", "check_root", "exercise_text", "normalise_only", "sources"]


def check_root(root: Path | str) -> Path:
    root = Path(root)
    if not (root / LESSONS).is_dir() and not (root / SOLUTIONS).is_dir():
        fail("root", f"a folder holding {LESSONS}/ and {SOLUTIONS}/", str(root))
    return root


def normalise_only(only: int | str | None) -> str | None:
    """``only`` as a two-digit prefix: 1, "1" and "01" all give "01"."""
    if only is None:
        return None
    if isinstance(only, str) and only.isdigit():
        only = int(only)
    return f"{check_int_range('only', only, 0, 99):02d}"


def sources(folder: Path, suffix: str = ".py", only: str | None = None) -> list[Path]:
    """The ``NN_name<suffix>`` files in ``folder``, sorted; with ``only``, those starting "NN_"."""
    if not folder.is_dir():
        return []
    found = sorted(p for p in folder.glob(f"[0-9][0-9]_*{suffix}") if p.is_file())
    return [p for p in found if only is None or p.name.startswith(f"{only}_")]


def exercise_text(solution: Path, root: Path) -> str:
    """The exercise source generated from ``solution``; a solution with no answer region is refused."""
    text = solution.read_text(encoding="utf-8")
    label = solution.relative_to(root).as_posix()
    stubbed = strip_solutions(text, notebook_number(solution), path=label)
    if stubbed == text:
        raise SolutionMarkerError(f"{label}: no '### BEGIN SOLUTION' region, so its exercise would be its answer")
    return stubbed


def store_check_outputs(nb: NotebookNode, lines: dict[int, str]) -> NotebookNode:
    """Put each "✓" line on its check cell with the count of a top-to-bottom run; other cells stay empty."""
    counts = execution_counts(nb)
    for index, line in lines.items():
        nb.cells[index].outputs = checked_output(line)
        nb.cells[index].execution_count = counts[index]
    return nb


def stored_check_lines(nb: NotebookNode) -> dict[int, str]:
    """{cell index: "✓" line} for the check cells of a stored notebook that hold one."""
    lines = {}
    for index, cell in enumerate(nb.cells):
        line = check_line(cell.outputs) if is_check_cell(cell) and cell.execution_count is not None else None
        if line is not None:
            lines[index] = line
    return lines


def reused_check_lines(nb: NotebookNode, stored: Path) -> dict[int, str]:
    """For ``--no-execute``: the k-th check cell keeps its stored "✓" line if its source is unchanged."""
    try:
        old = read_notebook(stored)
    except (OSError, NotJSONError, ValueError):
        return {}
    old_checks = [(cell.source, stored_check_lines(old).get(i)) for i, cell in enumerate(old.cells) if is_check_cell(cell)]
    new_checks = [i for i, cell in enumerate(nb.cells) if is_check_cell(cell)]
    return {index: line for index, (source, line) in zip(new_checks, old_checks)
            if line is not None and source == nb.cells[index].source}


def build_solution(solution: Path, root: Path, execute: bool, log: Callable[[str], None]) -> list[Path]:
    """Steps 2 and 3 for one solution; returns the files whose bytes changed."""
    label = solution.relative_to(root).as_posix()
    stubbed = exercise_text(solution, root)  # fail on bad markers before spending a kernel
    nb = notebook_from_text(solution.read_text(encoding="utf-8"))
    checks = [i for i, cell in enumerate(nb.cells) if is_check_cell(cell)]
    if execute:
        log(f"running {label} (smoke preset) ...")
        lines = run_check_cells(nb, solution.parent, label)
    else:
        lines = reused_check_lines(nb, solution.with_suffix(".ipynb"))
        for index in sorted(set(checks) - set(lines)):
            log(f"warning: {label}: check {cell_label(nb, index)} has no stored '✓' output; build without --no-execute")
    changed = []
    if write_notebook(store_check_outputs(nb, lines), solution.with_suffix(".ipynb")):
        changed.append(solution.with_suffix(".ipynb"))

    exercise = root / EXERCISES / solution.name
    exercise.parent.mkdir(exist_ok=True)
    if write_bytes_if_changed(exercise, stubbed.encode("utf-8")):
        changed.append(exercise)
    exercise_nb = notebook_from_text(stubbed)
    if [i for i, cell in enumerate(exercise_nb.cells) if is_check_cell(cell)] != checks:
        raise BuildError(f"{label}: its exercise has different check cells (a marker line changes the cell structure)")
    if write_notebook(store_check_outputs(exercise_nb, lines), exercise.with_suffix(".ipynb")):
        changed.append(exercise.with_suffix(".ipynb"))
    return changed


def build(root: Path | str, only: int | str | None = None, execute: bool = True,
          log: Callable[[str], None] = print) -> list[Path]:
    """Build lessons, solutions and exercises under ``root`` (only notebook ``only`` if given).

    ``execute=False`` skips running the solutions and keeps the stored "✓" line of every check
    cell whose source did not change. Returns the files written (those whose bytes changed).
    """
    root = check_root(root)
    only = normalise_only(only)
    changed = []
    for lesson in sources(root / LESSONS, only=only):
        if write_notebook(notebook_from_text(lesson.read_text(encoding="utf-8")), lesson.with_suffix(".ipynb")):
            changed.append(lesson.with_suffix(".ipynb"))
    for solution in sources(root / SOLUTIONS, only=only):
        changed += build_solution(solution, root, execute, log)
    for path in changed:
        log(f"wrote {path.relative_to(root).as_posix()}")
    return changed
