"""The notebook pipeline: lessons, solutions and exercises generated from jupytext sources.

Sources are jupytext *percent* files (see CONTRIBUTING.md):

* ``notebooks/NN_name.py`` -- a lesson, stored as ``.ipynb`` without outputs;
* ``solutions/NN_name.py`` -- exercises with answers between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` lines, stored as ``.ipynb`` with the "✓" output of each check cell;
* ``exercises/NN_name.{py,ipynb}`` -- generated from the solution: each answer replaced by
  ``raise NotImplementedError("Exercise N.M: ...")``, the solution's "✓" lines kept as the
  expected outputs, so ``pytest --nbval exercises/NN_name.ipynb`` passes only when every answer
  is right.

A check cell is a code cell whose first line is ``# NBVAL_CHECK_OUTPUT``.

Command line::

    python -m course_lib notebooks build [--only NN] [--no-execute]
    python -m course_lib notebooks check
"""
from course_lib.workshop.build.build import BuildError, build
from course_lib.workshop.build.drift import check
from course_lib.workshop.build.ipynb import CHECK_MARKER, is_check_cell
from course_lib.workshop.build.stubs import SolutionMarkerError, notebook_number, strip_solutions

__all__ = [
    "BuildError",
    "CHECK_MARKER",
    "SolutionMarkerError",
    "build",
    "check",
    "is_check_cell",
    "notebook_number",
    "strip_solutions",
]
