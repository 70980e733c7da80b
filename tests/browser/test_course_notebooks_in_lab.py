"""The course notebooks with widgets or animations, run in JupyterLab as a learner sees them.

For each one: all cells run without an error and the kernel ends idle; every widget renders and
each control (slider, dropdown, button, ...) changes what its cell shows; every animation is in
the page with its frames. Each notebook is copied into the server's temporary folder (its built
``notebooks/NN_name.ipynb``, or else converted from ``notebooks/NN_name.py``), so the repository's
files are never touched.
"""
from __future__ import annotations

import time
import warnings

import pytest

from _course_notebooks import interactive_notebooks, notebook_to_open

pytestmark = pytest.mark.browser

TARGET_S = 30  # each notebook's browser test should take less (issue 9); measured, reported, not asserted
RUN_ALL_LIMIT_S = 300  # a notebook still running after this is hung: that fails


NOTEBOOKS = interactive_notebooks()


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_and_its_widgets_and_animations_respond(source, open_notebook, prepare_notebook,
                                                              record_property):
    clock = Clock()
    notebook = open_notebook(notebook_to_open(source))
    clock.lap("open")
    later = NOTEBOOKS[NOTEBOOKS.index(source) + 1:]
    if later:  # its kernel boots on the other core while this notebook runs
        prepare_notebook(notebook_to_open(later[0]))
    notebook.run_all(timeout_s=RUN_ALL_LIMIT_S)
    notebook.assert_cells_ran_without_errors()
    clock.lap("run all")
    widgets = notebook.assert_widgets_rendered()
    moved = notebook.exercise_controls()
    clock.lap("controls")
    animations = notebook.assert_animations()
    clock.lap("animations")

    assert widgets + len(animations) > 0, f"{notebook.label}: no widget or animation was shown"
    if widgets:
        assert moved, f"{notebook.label}: {widgets} widgets but no control to move"
    record_property("seconds", round(clock.total, 1))
    print(f"{notebook.label}: {clock}", *moved, *animations, sep="\n  ")
    if clock.total > TARGET_S:  # timings on a shared machine vary 2-3x: a warning in the summary, not a failure
        warnings.warn(f"{notebook.label}: browser test took {clock}, over the {TARGET_S} s target", stacklevel=1)


class Clock:
    """Seconds spent in each named phase, e.g. ``14.2 s (open 4.1, run all 6.0, ...)``."""

    def __init__(self):
        self.start = self.last = time.monotonic()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append((name, now - self.last))
        self.last = now

    @property
    def total(self) -> float:
        return self.last - self.start

    def __str__(self) -> str:
        return f"{self.total:.1f} s (" + ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.laps) + ")"
