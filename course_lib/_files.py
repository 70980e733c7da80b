"""Writing files so that a crash never leaves half of one: the course's one atomic writer.

Every file the course writes -- checkpoints, exports, their JSON records, cached judges -- goes to a
temporary file in the same folder, is flushed to disk, and only then renamed onto its name
(``os.replace`` is atomic on POSIX and Windows). A reader sees the old file or the new one, never a
mix; an error or a kill mid-write leaves the old file as it was.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = True) -> Path:
    """``write(file)`` into a temporary file beside ``path``, fsync it, then rename it onto ``path``; returns ``path``.

    The folder is created if needed. On any error (or interrupt) the temporary file is removed and
    the file at ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb" if binary else "w") as tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
    _fsync_folder(path.parent)
    return path


def atomic_save(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda file: torch.save(obj, file))


def atomic_write_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """``data`` as indented, key-sorted JSON at ``path``, atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda file: json.dump(data, file, indent=2, sort_keys=True), binary=False)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
