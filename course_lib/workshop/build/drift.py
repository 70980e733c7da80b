"""``check``: find every way the stored notebooks drifted from their sources, without running anything.

A problem is one line naming the file: an ``.ipynb`` whose cells differ from its ``.py``; outputs
stored where none belong; a solution check cell without its "✓" line; an exercise that differs
from what ``build`` makes from the current solution; a solution without an exercise or vice versa.
"""
from __future__ import annotations

from pathlib import Path

from nbformat import NotebookNode
from nbformat.reader import NotJSONError

from course_lib.workshop.build.build import (
    EXERCISES, LESSONS, SOLUTIONS, check_root, exercise_text, sources, stored_check_lines,
)
from course_lib.workshop.build.ipynb import KERNELSPEC, cell_label, is_check_cell, notebook_from_text, read_notebook
from course_lib.workshop.build.setup_cell import SETUP_CELL, first_code_cell
from course_lib.workshop.build.stubs import SolutionMarkerError


def rebuild_hint(path: Path) -> str:
    return f"(run: python -m course_lib notebooks build --only {path.name[:2]})"


def unpaired(root: Path, folder: str) -> list[str]:
    """Each ``.py`` needs its ``.ipynb`` and each ``.ipynb`` its ``.py``."""
    problems = []
    for py in sources(root / folder, ".py"):
        if not py.with_suffix(".ipynb").exists():
            problems.append(f"{folder}/{py.name}: no {py.with_suffix('.ipynb').name} next to it {rebuild_hint(py)}")
    for nb in sources(root / folder, ".ipynb"):
        if not nb.with_suffix(".py").exists():
            problems.append(f"{folder}/{nb.name}: no {nb.with_suffix('.py').name} source next to it (delete it or restore the source)")
    return problems


def source_drift(stored: NotebookNode, expected: NotebookNode, label: str, source_label: str) -> list[str]:
    """The cell types and sources of ``stored`` must be those of ``expected``; kernel python3."""
    problems = []
    if stored.metadata.get("kernelspec", {}).get("name") != KERNELSPEC["name"]:
        problems.append(f"{label}: kernelspec is not python3")
    got = [(c.cell_type, c.source) for c in stored.cells]
    want = [(c.cell_type, c.source) for c in expected.cells]
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        problems.append(f"{label}: cells differ from {source_label} from cell {first} on "
                        f"({len(got)} cells stored, {len(want)} expected)")
    return problems


def output_drift(stored: NotebookNode, label: str, check_lines: dict[int, str] | None, lesson: bool) -> list[str]:
    """Outputs stored where none belong (a lesson: anywhere; else: outside check cells), and check
    cells without their "✓" line: any "✓" line when ``check_lines`` is None (a solution), else
    exactly ``check_lines[cell]`` (an exercise: the solution's lines)."""
    problems = []
    stored_lines = stored_check_lines(stored)
    for index, cell in enumerate(stored.cells):
        if cell.cell_type != "code":
            continue
        where = f"{label}: {cell_label(stored, index)}"
        if lesson or not is_check_cell(cell):
            if cell.outputs or cell.execution_count is not None:
                problems.append(f"{where} has stored outputs; " + ("a lesson stores none" if lesson else "only check cells may"))
            continue
        got = stored_lines.get(index)
        want = check_lines.get(index) if check_lines is not None else got
        if got is None:
            problems.append(f"{where}: check cell without a stored '✓' line and execution count")
        elif got != want:
            problems.append(f"{where}: check cell stores {got.strip()!r}, the solution {(want or 'nothing').strip()!r}")
    return problems


def notebook_drift(py: Path, root: Path, check_lines: dict[int, str] | None = None, lesson: bool = False) -> list[str]:
    """Problems of one ``.ipynb`` against its ``.py``; ``check_lines`` and ``lesson`` as in ``output_drift``."""
    label = py.with_suffix(".ipynb").relative_to(root).as_posix()
    try:
        stored = read_notebook(py.with_suffix(".ipynb"))
    except (OSError, NotJSONError, ValueError) as error:
        return [f"{label}: unreadable ({error}) {rebuild_hint(py)}"]
    expected = notebook_from_text(py.read_text(encoding="utf-8"))
    problems = source_drift(stored, expected, label, py.name)
    problems += output_drift(stored, label, check_lines, lesson)
    return [f"{p} {rebuild_hint(py)}" for p in problems]


def exercise_drift(solution: Path, root: Path) -> list[str]:
    """The exercise ``.py`` must be exactly what ``build`` generates from the solution."""
    exercise = root / EXERCISES / solution.name
    if not exercise.exists():
        return [f"{SOLUTIONS}/{solution.name}: no {EXERCISES}/{solution.name} generated from it {rebuild_hint(solution)}"]
    try:
        expected = exercise_text(solution, root)
    except SolutionMarkerError as error:
        return [str(error)]
    if exercise.read_text(encoding="utf-8") != expected:
        return [f"{EXERCISES}/{solution.name}: differs from what {SOLUTIONS}/{solution.name} generates "
                f"(edit the solution, not the exercise) {rebuild_hint(solution)}"]
    return []


def setup_cell_drift(root: Path) -> list[str]:
    """Every lesson and solution source starts its code with the set-up cell (Colab), word for word."""
    problems = []
    for folder in (LESSONS, SOLUTIONS):
        for source in sources(root / folder):
            if first_code_cell(source.read_text()) != SETUP_CELL:
                problems.append(f"{folder}/{source.name}: its first code cell is not the set-up cell of "
                                "course_lib/workshop/build/setup_cell.py (write it with with_setup_cell, then build)")
    return problems


def check(root: Path | str) -> list[str]:
    """Every drift between sources and stored notebooks under ``root``; [] when all is in sync."""
    root = check_root(root)
    problems = []
    for folder in (LESSONS, SOLUTIONS, EXERCISES):
        problems += unpaired(root, folder)
    for source in sources(root / LESSONS):
        if source.with_suffix(".ipynb").exists():
            problems += notebook_drift(source, root, lesson=True)
    solution_names = {p.name for p in sources(root / SOLUTIONS)}
    for exercise in sources(root / EXERCISES):
        if exercise.name not in solution_names:
            problems.append(f"{EXERCISES}/{exercise.name}: no {SOLUTIONS}/{exercise.name} it was generated from")
    for solution in sources(root / SOLUTIONS):
        problems += exercise_drift(solution, root)
        if not solution.with_suffix(".ipynb").exists():
            continue
        problems += notebook_drift(solution, root)
        exercise = root / EXERCISES / solution.name
        if exercise.exists() and exercise.with_suffix(".ipynb").exists():
            try:
                lines = stored_check_lines(read_notebook(solution.with_suffix(".ipynb")))
            except (OSError, NotJSONError, ValueError):
                continue  # reported above as unreadable
            problems += notebook_drift(exercise, root, check_lines=lines)
    return problems
