"""Shared by the tests of the exercise checks (``course_lib.workshop.checks.nbNN``) and of the benchmarks."""
from __future__ import annotations

import re


def stub(*args, **kwargs):
    """What an exercise holds before the learner writes it."""
    raise NotImplementedError("Exercise")


def assert_failure_block(out: str, exercise: str = "") -> list[str]:
    """A failing check's output: a first line "✗ Exercise N.M: ...", at most three short indented lines
    after it, and never a traceback. Returns the lines."""
    lines = out.splitlines()
    assert lines and lines[0].startswith(f"✗ Exercise {exercise}"), out
    assert len(lines) <= 4 and all(line.startswith("  ") for line in lines[1:]), out
    assert "Traceback" not in out and "File \"" not in out, out
    return lines


def diagnosis_of(out: str) -> str:
    """The diagnosis on a failure's first line: the text after " — " of a compared case ("case 2 of 4 differs —
    wrong sign ..."), or the whole sentence of a behaviour check ("with T = 5 your timesteps were ..."), which says
    what the code does wrong; "" when the line names no mistake ("case 2 of 4 differs")."""
    first = out.splitlines()[0]
    if " — " in first:
        return first.split(" — ", 1)[1]
    message = first.split(": ", 1)[1] if ": " in first else ""
    return "" if re.match(r"case \d+ of \d+", message) or message.startswith("not done yet") else message


def assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys, hint: bool = True) -> None:
    """``check(right)`` passes with one "✓" line; the stub gets "not done yet"; every wrong answer fails
    with a "✗" block (see ``assert_failure_block``) carrying a "Hint:" line when ``hint``.

    ``wrongs``: functions, or ``(function, words)`` pairs whose ``words`` must be in the diagnosis.
    """
    assert check(right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ Exercise") and out.count("\n") == 1, out
    assert check(stub) is False
    assert "not done yet" in capsys.readouterr().out
    for i, wrong in enumerate(wrongs):
        wrong, words = wrong if isinstance(wrong, tuple) else (wrong, None)
        assert check(wrong) is False, f"wrong answer {i} accepted"
        out = capsys.readouterr().out
        assert_failure_block(out)
        assert words is None or words in diagnosis_of(out), f"wrong answer {i}: {words!r} not diagnosed in\n{out}"
        assert not hint or "Hint:" in out, out


def parse_table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The Markdown table in ``text``: (columns, rows as {column: cell text})."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(columns, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return columns, rows


def number(cell: str) -> float | None:
    """A table cell as a number ("12.5", "93.0%"), or None for "–"."""
    if cell == "–":
        return None
    return float(cell[:-1]) / 100 if cell.endswith("%") else float(cell)
