"""Run a notebook headless, top to bottom, the way nbval does; collect the "✓" line of each check cell.

:func:`run_notebook` is the one runner: the solutions' build, ``notebooks time`` and the site's
execution cache (course_lib.workshop.site) all execute notebooks through it.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from course_lib.workshop.build.ipynb import cell_label, check_line, describe_outputs, is_check_cell

BUILD_PRESET = "smoke"
CELL_TIMEOUT_S = 600
TRAINING_CELL_TIMEOUT_S = 3 * 3600  # outside smoke a cell may train a model (lessons 15 and 16 on a first run)
RAISES_TAG = "raises-exception"  # JupyterLab's and nbclient's cell tag; nbval reads "# NBVAL_RAISES_EXCEPTION"


class BuildError(RuntimeError):
    """A solution that does not run clean, or a check cell that does not print one "✓" line."""


class CellError(BuildError):
    """A cell that failed: ``str()`` is "<label>: cell N (first line) <what happened>"."""

    def __init__(self, label: str, cell: str, detail: str):
        super().__init__(f"{label}: {cell} {detail}")
        self.label, self.cell, self.detail = label, cell, detail


def kernel_env() -> dict[str, str]:
    """The environment nbval gets under ``python -m pytest`` (course_lib.workshop.pytest_plugin), smoke preset forced."""
    env = {**os.environ, "COURSE_PRESET": BUILD_PRESET}
    env.setdefault("MPLBACKEND", "Agg")
    return env


def cell_timeout(preset: str) -> int:
    """How long one cell may run in ``preset``: minutes in smoke, hours where a cell may train a model."""
    return CELL_TIMEOUT_S if preset == BUILD_PRESET else TRAINING_CELL_TIMEOUT_S


def run_notebook(nb: NotebookNode, folder: Path, label: str, env: dict[str, str] | None = None,
                 store_history: bool = True, timeout: int = CELL_TIMEOUT_S,
                 store_widget_state: bool = False) -> NotebookNode:
    """Execute ``nb`` in place, top to bottom, in a fresh python3 kernel started in ``folder``.

    ``env`` defaults to :func:`kernel_env` (the smoke preset). A cell tagged ``raises-exception``
    must raise, as nbval requires of ``# NBVAL_RAISES_EXCEPTION``; any other cell must not. The
    first cell that breaks this, runs past ``timeout`` seconds or kills the kernel raises
    :class:`CellError` naming ``label`` and the cell. ``store_widget_state`` keeps the widgets'
    state in ``nb.metadata.widgets`` (what a static page needs to show them).
    """
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, record_timing=False,
                            store_widget_state=store_widget_state, resources={"metadata": {"path": str(folder)}})
    with client.setup_kernel(env=kernel_env() if env is None else env):
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index, store_history=store_history)
            except CellExecutionError as error:
                raise CellError(label, cell_label(nb, index), f"raised {error.ename}: {error.evalue}") from None
            except (CellTimeoutError, DeadKernelError) as error:
                detail = f"stopped: {type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
                raise CellError(label, cell_label(nb, index), detail) from None
            if RAISES_TAG in cell.metadata.get("tags", ()) and not any(
                    output.get("output_type") == "error" for output in cell.outputs):
                raise CellError(label, cell_label(nb, index), f"is tagged {RAISES_TAG} but raised nothing")
        if store_widget_state:
            client.set_widgets_metadata()
    return nb


def run_check_cells(nb: NotebookNode, folder: Path, label: str) -> dict[int, str]:
    """Execute a copy of ``nb`` top to bottom (kernel python3, cwd ``folder``, smoke preset).

    Cells run as nbval runs them, with ``store_history=False``: then IPython does not hide the value
    of a last line ending in ";", so a check cell must not end with a bare call (``_ = check(f)``).
    Returns {cell index: "✓ ..." line} for every check cell. Raises ``BuildError`` naming ``label``
    and the cell when a cell raises or a check cell shows anything but one "✓" line.
    """
    run = run_notebook(copy.deepcopy(nb), folder, label, store_history=False)
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
