"""Notebook files: from percent text to ``.ipynb``, check cells, stored outputs, byte-stable writes."""
from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
from nbformat import NotebookNode

CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
PAIRED_FORMATS = "ipynb,py:percent"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def is_check_cell(cell: NotebookNode) -> bool:
    """A code cell whose first line is ``# NBVAL_CHECK_OUTPUT``."""
    return cell.cell_type == "code" and cell.source.split("\n", 1)[0].strip() == CHECK_MARKER


def notebook_from_text(text: str) -> NotebookNode:
    """A jupytext percent source as a notebook: no outputs, kernel python3, paired with its ``.py``.

    Cell ids come from the cell index, so the same text always gives the same notebook.
    """
    nb = jupytext.reads(text, fmt="py:percent")
    pairing = {k: v for k, v in nb.metadata.get("jupytext", {}).items() if k != "text_representation"}
    nb.metadata["jupytext"] = {**pairing, "formats": PAIRED_FORMATS}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def read_notebook(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def write_notebook(nb: NotebookNode, path: Path) -> bool:
    """Write ``nb`` (sorted keys, ``\\n`` newlines); return False when the file already had these bytes."""
    data = (nbformat.writes(nb) + "\n").encode("utf-8")
    return write_bytes_if_changed(path, data)


def write_bytes_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.write_bytes(data)
    return True


def check_line(outputs: list) -> str | None:
    """The text of a passing check's outputs (one stdout line starting with "✓ "), else None."""
    if not outputs or any(o.get("output_type") != "stream" or o.get("name") != "stdout" for o in outputs):
        return None
    text = "".join(o["text"] for o in outputs)
    return text if text.startswith("✓ ") and text.count("\n") == 1 and text.endswith("\n") else None


def describe_outputs(outputs: list) -> str:
    """A short quote of what a cell printed, for error messages."""
    if not outputs:
        return "no output"
    parts = []
    for o in outputs:
        kind = o.get("name") or o.get("output_type")
        text = o.get("text") or o.get("evalue") or o.get("data", {}).get("text/plain") or ", ".join(o.get("data", {}))
        parts.append(f"{kind}: {text.strip()[:120]!r}")
    return "; ".join(parts)


def checked_output(text: str) -> list[NotebookNode]:
    """The outputs stored for a check cell: one stdout stream holding the "✓" line."""
    return [nbformat.v4.new_output("stream", name="stdout", text=text)]


def execution_counts(nb: NotebookNode) -> dict[int, int]:
    """Cell index -> the execution count of a top-to-bottom run (1 for the first code cell, ...)."""
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    return {index: count for count, index in enumerate(code, start=1)}


def cell_label(nb: NotebookNode, index: int) -> str:
    """``cell 5 (check_forward_step(forward_step);)``: the index and the first line after the marker."""
    lines = [line for line in nb.cells[index].source.splitlines() if line.strip() and line.strip() != CHECK_MARKER]
    return f"cell {index}" + (f" ({lines[0].strip()[:60]})" if lines else "")
