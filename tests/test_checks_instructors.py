"""INSTRUCTORS.md's "Common mistakes per exercise" names exactly the mistakes the checks diagnose.

Each per-notebook test (tests/test_checks_nbNN.py) plants wrong answers as ``(answer, words)``, and
asserts that the check's diagnosis contains ``words``. Here, each exercise's rows in INSTRUCTORS.md
must quote every one of those words (so a teacher reads the words a learner sees), and every row
must name at least one of them (no mistake the checks cannot recognise).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest

from _exercise_checks import stub

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Common mistakes per exercise"


def _exercise_of(check) -> str:
    """The exercise number a check prints ("4.1"), read off its answer to the stub."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        check(stub)
    return re.match(r"✗ Exercise (\d+\.\d+):", printed.getvalue())[1]


def planted_words() -> dict[str, list[str]]:
    """{exercise: the diagnosis words the tests assert for its planted wrong answers}."""
    words: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").glob("test_checks_nb*.py")):
        module = importlib.import_module(path.stem)
        for check, _, wrongs in module.RIGHT_AND_WRONG:
            words.setdefault(_exercise_of(check), []).extend(w[1] for w in wrongs if isinstance(w, tuple))
    return words


def instructors_rows() -> dict[str, list[str]]:
    """{exercise: the "mistake" cells of its rows} in INSTRUCTORS.md's common-mistakes tables."""
    text = (ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.match(r"(\d+\.\d+)\b", cells[0]) if line.startswith("|") and len(cells) == 3 else None
        if match:
            rows.setdefault(match[1], []).append(cells[1])
    return rows


WORDS, ROWS = planted_words(), instructors_rows()


def test_every_exercise_with_a_check_has_rows_and_no_row_names_an_unknown_exercise():
    assert set(WORDS) == set(ROWS), (
        f"exercises without rows: {sorted(set(WORDS) - set(ROWS))}; rows without a check: {sorted(set(ROWS) - set(WORDS))}")


@pytest.mark.parametrize("exercise", sorted(WORDS))
def test_the_rows_quote_every_diagnosis_the_tests_assert(exercise):
    text = " ".join(ROWS.get(exercise, []))
    missing = [w for w in WORDS[exercise] if w not in text]
    assert not missing, f"INSTRUCTORS.md's rows for {exercise} do not quote: {missing}"


@pytest.mark.parametrize("exercise", sorted(ROWS))
def test_every_row_names_a_mistake_the_check_diagnoses(exercise):
    for cell in ROWS[exercise]:
        assert any(w in cell for w in WORDS.get(exercise, [])), f"{exercise}: {cell!r} names no diagnosed mistake"
