"""Shared by the tests of the exercise checks (``course_lib.workshop.checks.nbNN``) and of the benchmarks."""
from __future__ import annotations


def stub(*args, **kwargs):
    """What an exercise holds before the learner writes it."""
    raise NotImplementedError("Exercise")


def assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys, hint: bool = False) -> None:
    """``check(right)`` passes with one "✓" line; the stub gets "not done yet"; every wrong answer
    fails with one "✗" line (with a "Hint:" when ``hint``)."""
    assert check(right) is True
    assert capsys.readouterr().out.startswith("✓ Exercise")
    assert check(stub) is False
    assert "not done yet" in capsys.readouterr().out
    for i, wrong in enumerate(wrongs):
        assert check(wrong) is False, f"wrong answer {i} accepted"
        out = capsys.readouterr().out
        assert out.startswith("✗ Exercise") and out.count("\n") == 1, out
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
