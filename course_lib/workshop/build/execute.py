"""Run a solution notebook headless and collect the "✓" line of each check cell."""
from __future__ import annotations

import copy
import os
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode

from course_lib.workshop.build.ipynb import cell_label, check_line, describe_outputs, is_check_cell

BUILD_PRESET = "smoke"
CELL_TIMEOUT_S = 600


class BuildError(RuntimeError):
    """A solution that does not run clean, or a check cell that does not print one "✓" line."""


def kernel_env() -> dict[str, str]:
    """The environment nbval gets under ``python -m pytest`` (course_lib.workshop.pytest_plugin), smoke preset forced."""
    env = {**os.environ, "COURSE_PRESET": BUILD_PRESET}
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_check_cells(nb: NotebookNode, folder: Path, label: str) -> dict[int, str]:
    """Execute a copy of ``nb`` top to bottom (kernel python3, cwd ``folder``, smoke preset).

    Cells run as nbval runs them, with ``store_history=False``: then IPython does not hide the value
    of a last line ending in ";", so a check cell must not end with a bare call (``_ = check(f)``).
    Returns {cell index: "✓ ..." line} for every check cell. Raises ``BuildError`` naming ``label``
    and the cell when a cell raises or a check cell shows anything but one "✓" line.
    """
    run = copy.deepcopy(nb)
    client = NotebookClient(
        run, kernel_name="python3", timeout=CELL_TIMEOUT_S, record_timing=False,
        resources={"metadata": {"path": str(folder)}},
    )
    with client.setup_kernel(env=kernel_env()):
        for index, cell in enumerate(run.cells):
            try:
                client.execute_cell(cell, index, store_history=False)
            except CellExecutionError as error:
                raise BuildError(f"{label}: {cell_label(run, index)} raised {error.ename}: {error.evalue}") from None
    lines = {}
    for index, cell in enumerate(run.cells):
        if is_check_cell(cell):
            line = check_line(cell.outputs)
            if line is None:
                raise BuildError(f"{label}: check {cell_label(run, index)} must show one printed '✓' line "
                                 f"and nothing else, got {describe_outputs(cell.outputs)}"
                                 + (" (nbval shows a last-line value even after ';': assign it, `_ = ...`)"
                                    if any(o.get("output_type") == "execute_result" for o in cell.outputs) else ""))
            lines[index] = line
    return lines
