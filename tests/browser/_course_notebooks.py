"""Which course notebooks the browser suite opens: the lessons that show a widget or an animation."""
from __future__ import annotations

import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

# A lesson whose code calls one of these shows a widget or an animation (course_lib.forward_view,
# course_lib.viz, matplotlib, ipywidgets).
INTERACTIVE = re.compile(
    r"\b(noising_explorer|frame_scrubber|step_scrubber|slider_view|animate|to_jshtml|FuncAnimation"
    r"|interact|widgets\.\w+)\s*\(|\bimport ipywidgets\b")


def interactive_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """Lesson sources (``NN_name.py``) whose code, not their prose, shows a widget or an animation."""
    found = []
    for source in sorted(folder.glob("[0-9][0-9]_*.py")):
        code = "\n".join(line for line in source.read_text().splitlines() if not line.lstrip().startswith("#"))
        if INTERACTIVE.search(code):
            found.append(source)
    return found


def notebook_to_open(source: Path) -> Path:
    """The ``.ipynb`` a learner opens when the build has made it (``course_lib.notebooks build``), else the ``.py``."""
    paired = source.with_suffix(".ipynb")
    return paired if paired.exists() else source
