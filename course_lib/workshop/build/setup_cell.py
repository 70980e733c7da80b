"""The first code cell of every course notebook: install the course where it is missing (Colab).

Every lesson and solution notebook (and so every exercise) starts with :data:`SETUP_CELL`, word for
word, so a notebook opened on Colab or in a fresh kernel works from its first cell. Where
``course_lib`` is importable the cell only prints the device and preset. Where it is not, it installs
the course from ``$COURSE_SOURCE`` (a clone of the repository, default ``/content/course`` as in the
README's Colab steps, or a built wheel), makes it importable without a kernel restart, and moves to
the clone's ``notebooks/`` folder so that relative paths (``../checkpoints``) mean what they mean
in JupyterLab. Then ``describe_environment()`` shows the GPU it found and the preset it chose.

The cell cannot import ``course_lib`` to get this text (it runs before the course is installed), so
the text is copied into each source; ``python -m course_lib notebooks check`` fails on any copy that
differs, and :func:`with_setup_cell` writes it into a source.
"""
from __future__ import annotations

import re

SETUP_CELL = '''\
# Set-up. Where the course is installed this only shows the device and preset. On Colab or a fresh
# machine it first installs the course from $COURSE_SOURCE: a clone (default /content/course, see
# the README, "Run on Colab") or a wheel file.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("course_lib") is None:
    COURSE_SOURCE = os.environ.get("COURSE_SOURCE", "/content/course")
    is_wheel, is_clone = COURSE_SOURCE.endswith(".whl"), os.path.isfile(os.path.join(COURSE_SOURCE, "pyproject.toml"))
    if not (is_wheel and os.path.isfile(COURSE_SOURCE)) and not is_clone:
        raise ModuleNotFoundError(
            f"course_lib is not installed, and COURSE_SOURCE={COURSE_SOURCE!r} is neither a clone of the course "
            f"nor a wheel: run `!git clone <the course repository> {COURSE_SOURCE}` (or set COURSE_SOURCE), then this cell")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *([] if is_wheel else ["-e"]), COURSE_SOURCE], check=True)
    if is_clone:
        sys.path.insert(0, COURSE_SOURCE)  # importable now, without restarting the kernel
        os.chdir(os.path.join(COURSE_SOURCE, "notebooks"))  # ../checkpoints as in JupyterLab
    importlib.invalidate_caches()
from course_lib.config import describe_environment

print(describe_environment())'''

_CELL = re.compile(r"^# %%.*$", re.MULTILINE)


def first_code_cell(text: str) -> str | None:
    """The source of the first code cell of a jupytext percent file (None when there is none)."""
    starts = [m for m in _CELL.finditer(text)]
    for i, match in enumerate(starts):
        if "[markdown]" in match.group(0):
            continue
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        return text[match.end():end].strip("\n")
    return None


def with_setup_cell(text: str) -> str:
    """``text`` (a jupytext percent file) with :data:`SETUP_CELL` as its first code cell.

    An existing first cell that starts like the set-up cell is replaced; otherwise the set-up cell
    is inserted before the first code cell.
    """
    starts = list(_CELL.finditer(text))
    for i, match in enumerate(starts):
        if "[markdown]" in match.group(0):
            continue
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        cell = f"# %%\n{SETUP_CELL}\n\n"
        if text[match.end():end].strip("\n").startswith(SETUP_CELL.splitlines()[0]):
            return text[:match.start()] + cell + text[end:]
        return text[:match.start()] + cell + text[match.start():]
    return text.rstrip("\n") + f"\n\n# %%\n{SETUP_CELL}\n"
