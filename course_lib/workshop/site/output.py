"""The output folder: checked before anything runs, built beside it, swapped in only when complete.

A build writes into a new hidden folder next to ``out``; only a finished site replaces the old
one (two renames), so a failed build leaves the previous site as it was. ``out`` must be a new or
empty folder, or a site built before (it holds :data:`MARKER`): a folder of other files is never
replaced.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from course_lib._validation import fail

MARKER = ".course-site"


def check_out(out: Path | str) -> Path:
    """``out`` as an absolute path, refused when it is a file or a folder of other files."""
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        fail("--out", "a folder for the site", f"the file {out}")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        fail("--out", "a new or empty folder, or a site built before (it is replaced)",
             f"{out}, which holds other files")
    return out


def staging_folder(out: Path) -> Path:
    """A new, empty folder beside ``out`` to build into; refused when ``out``'s folder is not writable."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    except OSError as error:
        fail("--out", "a folder this user can write", f"{out} ({error.strerror or error})")


def swap_in(staging: Path, out: Path) -> None:
    """Put the finished site ``staging`` at ``out``, then delete the previous site."""
    (staging / MARKER).write_text("built by python -m course_lib site build; replaced by the next build\n")
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
    os.rename(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
