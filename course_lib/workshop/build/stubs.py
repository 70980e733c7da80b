"""Exercise stubs from solutions: nbgrader-style ``### BEGIN/END SOLUTION`` regions.

Each region (the marker lines included) becomes one line,
``raise NotImplementedError("Exercise N.M: <hint>")``, at the indentation of its BEGIN line.
N is the notebook number, M the region's order in the notebook (1, 2, ...); the hint is the text
after ``### BEGIN SOLUTION`` (or "write your code here"). Nested, unclosed and unmatched markers
are refused, as nbgrader's ``clearsolutions`` does.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from course_lib._validation import check_int_range, fail

BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\b(?P<hint>.*?)\s*$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
CELL_BREAK = re.compile(r"^# %%")  # a jupytext percent cell marker
DEFAULT_HINT = "write your code here"
NOTEBOOK_NAME = re.compile(r"^(?P<number>\d{2})_\w+$")


class SolutionMarkerError(ValueError):
    """A ``### BEGIN/END SOLUTION`` marker out of place; the message names the file and line."""


def notebook_number(path: str | Path) -> int:
    """The notebook number of ``NN_name.py`` / ``NN_name.ipynb``: ``01_forward_chain.py`` -> 1."""
    match = NOTEBOOK_NAME.match(Path(path).stem)
    if match is None:
        fail("path", "a file named NN_name.py (two digits, an underscore, a name)", str(path))
    return int(match["number"])


def stub_line(indent: str, exercise: str, hint: str) -> str:
    """``raise NotImplementedError("Exercise N.M: hint")`` as a line of code (JSON quoting is valid Python)."""
    message = json.dumps(f"Exercise {exercise}: {hint or DEFAULT_HINT}", ensure_ascii=False)
    return f"{indent}raise NotImplementedError({message})\n"


def strip_solutions(source: str, notebook_number: int, path: str | Path = "<source>") -> str:
    """``source`` with every solution region replaced by its stub; ``path`` names the file in errors."""
    check_int_range("notebook_number", notebook_number, 0, 99)
    out: list[str] = []
    opened_at = 0  # line number of the open BEGIN marker, 0 when outside a region
    region = 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        where = f"{path}, line {number}"
        if begin:
            if opened_at:
                raise SolutionMarkerError(f"{where}: nested '### BEGIN SOLUTION' (the region opened at line {opened_at} is not closed)")
            opened_at, region = number, region + 1
            indent, hint = begin["indent"], begin["hint"].strip()
        elif end:
            if not opened_at:
                raise SolutionMarkerError(f"{where}: '### END SOLUTION' without a '### BEGIN SOLUTION' before it")
            out.append(stub_line(indent, f"{notebook_number}.{region}", hint))
            opened_at = 0
        elif opened_at and CELL_BREAK.match(line):
            raise SolutionMarkerError(f"{where}: a new cell starts inside the solution region opened at line {opened_at}")
        elif not opened_at:
            out.append(line)
    if opened_at:
        raise SolutionMarkerError(f"{path}, line {opened_at}: '### BEGIN SOLUTION' is never closed by '### END SOLUTION'")
    return "".join(out)
