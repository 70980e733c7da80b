"""Exercise checks: one call; a "✓" line, or a "✗" block that says what differs and why.

A check compares the learner's function with the reference in ``course_lib`` on fresh inputs::

    check_forward_step(forward_step)   # prints "✓ Exercise 1.1 ..." or a "✗ Exercise 1.1 ..." block

On failure it prints one line naming the case, what differs and, where it recognises one, the
mistake (a wrong sign, a square root missing, a timestep off by one, an input returned unchanged, a
shape or dtype error, ...), then at most three short lines: the case's inputs, the first element
that differs, and the first hint. It returns ``True``/``False`` and never raises, so a learner sees
sentences, not a traceback. ``hint("2.3")`` prints the idea of exercise 2.3, ``hint("2.3", 2)`` the
formula; each notebook's hints are the ``HINTS`` table of ``course_lib.workshop.checks.nbNN``, next
to its checks.

The exercise notebooks store the "✓" line as the expected output of each check cell, so
``pytest --nbval exercises/NN_*.ipynb`` passes only when every answer is right.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from course_lib.workshop.checks.diagnose import (
    describe_inputs, diagnose_with_inputs, explain_error, find_mismatch, first_line,
)

Case = tuple[tuple[Any, ...], dict[str, Any]]
LEVEL_NAMES = ("the idea", "the formula", "the steps")
NOT_DONE = "not done yet: replace the `raise NotImplementedError` line with your code."


# --- hints --------------------------------------------------------------------------------------

def _hint_levels(exercise: Any) -> tuple[tuple[str, ...], str]:
    """(the hint levels of ``exercise``, "") or ((), why there are none)."""
    if isinstance(exercise, (int, float)) and not isinstance(exercise, bool):
        exercise = str(exercise)
    match = re.fullmatch(r"(\d{1,2})\.(\d{1,2})", exercise) if isinstance(exercise, str) else None
    if match is None:
        return (), f'expected an exercise number as text, like hint("2.3"), got {exercise!r}.'
    name = f"{__name__}.nb{int(match[1]):02d}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        return (), f"no exercise {exercise}: notebook {int(match[1]):02d} has no exercises with hints."
    hints: Mapping[str, Sequence[str]] = getattr(module, "HINTS", {})
    if exercise not in hints:
        known = ", ".join(hints) or "none"
        return (), f"no exercise {exercise}; notebook {int(match[1]):02d} has hints for {known}."
    return tuple(hints[exercise]), ""


def hint(exercise: str, level: int = 1) -> None:
    """Print hint number ``level`` of ``exercise`` ("2.3"): 1 gives the idea, 2 the formula, 3 the steps.

    An unknown exercise or level prints one line saying what exists (never raises). Returns None.
    """
    levels, problem = _hint_levels(exercise)
    if problem:
        print(f"✗ hint: {problem}")
        return None
    exercise = str(exercise)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= len(levels):
        print(f"✗ hint: exercise {exercise} has hint levels 1 to {len(levels)}; got {level!r}.")
        return None
    name = LEVEL_NAMES[level - 1] if level <= len(LEVEL_NAMES) else f"level {level}"
    more = (f' More: hint("{exercise}", {level + 1}).' if level < len(levels)
            else " That is the last hint; the full answer is in solutions/.")
    print(f"Hint {exercise} ({level} of {len(levels)}, {name}): {levels[level - 1]}{more}")
    return None


def _hint_line(exercise: str, given: str = "") -> list[str]:
    """The first hint as a feedback line (``given`` first, else the HINTS table), with where the next one is."""
    levels, _ = _hint_levels(exercise)
    text = given or (levels[0] if levels else "")
    if not text:
        return []
    more = f' More: hint("{exercise}", 2).' if len(levels) > 1 else ""
    return [f"Hint: {text}{more}"]


# --- feedback -----------------------------------------------------------------------------------

def report(exercise: str, ok: bool, message: str, details: Iterable[str] = ()) -> bool:
    """Print the feedback line (and, on failure, the short indented ``details`` lines); return ``ok``."""
    print(f"{'✓' if ok else '✗'} Exercise {exercise}: {message}")
    for line in details:
        print(f"  {line}")
    return ok


def not_done(exercise: str) -> bool:
    """The stub's answer: the exercise is not written yet (and where the hints are)."""
    levels, _ = _hint_levels(exercise)
    return report(exercise, False, NOT_DONE, [f'Stuck? hint("{exercise}") gives the idea.'] if levels else [])


def not_a_function(exercise: str, value: Any) -> bool:
    """The answer given to a check is not a function (a result, None, a misspelt name's value)."""
    return report(exercise, False, f"expected your function, got {type(value).__name__} "
                                   f"(pass the function itself: check(my_function), without brackets after its name)")


def _difference(mine: Any, ref: Any) -> str | None:
    """None when ``mine`` matches ``ref`` (recursing into tuples/lists), else a short reason."""
    found = find_mismatch(mine, ref)
    if found is None:
        return None
    reason = found.what.removeprefix(",").removeprefix(":").strip()
    return reason + (f" — {found.diagnosis}" if found.diagnosis else "")


def _copy(value: Any) -> Any:
    """A copy of a case's input for the learner's function: changing it in place cannot spoil the reference."""
    if isinstance(value, torch.Tensor) and not value.requires_grad:
        return value.clone()
    if type(value) in (list, tuple):
        return type(value)(_copy(v) for v in value)
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


def compare(
    exercise: str,
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    cases: Iterable[Case],
    what: str,
    hint: str = "",
    *,
    variants: Mapping[str, Callable[..., Any]] | None = None,
    check_dtype: bool = False,
) -> bool:
    """Run both functions on each ``(args, kwargs)`` case and report the first difference.

    ``what`` names the function in the success line. On failure the first hint is printed: ``hint``
    if given, else level 1 of the exercise's ``HINTS`` entry. ``variants`` maps a diagnosis ("off by
    one timestep (paper vs code index)") to a function with the reference's signature that makes
    that mistake: an answer matching it gets that diagnosis. ``check_dtype``: a tensor answer must
    also have the reference's dtype. Integer answers (ints, integer tensors) are compared exactly.
    """
    cases = list(cases)
    if not callable(learner_fn):
        return not_a_function(exercise, learner_fn)
    for number, (args, kwargs) in enumerate(cases, start=1):
        label = f"case {number} of {len(cases)}"
        expected = reference_fn(*args, **kwargs)
        inputs = f"inputs: {describe_inputs(reference_fn, args, kwargs)}"
        try:
            got = learner_fn(*_copy(args), **_copy(kwargs))
        except NotImplementedError:
            return not_done(exercise)
        except Exception as error:  # noqa: BLE001 -- the learner's code failed: say how, in one block
            diagnosis = explain_error(error)
            message = f"{label}: your function raised {type(error).__name__}: {first_line(error)}"
            return report(exercise, False, message + (f" — {diagnosis}" if diagnosis else ""),
                          [inputs, *_hint_line(exercise, hint)])
        try:
            mismatch = find_mismatch(got, expected, check_dtype)
        except Exception as error:  # noqa: BLE001 -- an answer of a kind the comparison does not know
            return report(exercise, False, f"{label}: your result ({type(got).__name__}) cannot be compared with "
                                           f"the expected one ({type(error).__name__}: {first_line(error)})",
                          [inputs, *_hint_line(exercise, hint)])
        if mismatch is None:
            continue
        diagnosis = mismatch.diagnosis
        if got is not None:
            try:
                diagnosis = diagnose_with_inputs(got, expected, reference_fn, args, kwargs, variants) or diagnosis
            except Exception:  # noqa: BLE001 -- a diagnosis is a bonus: never let it hide the difference
                pass
        details = [inputs, *([mismatch.where] if mismatch.where else []), *_hint_line(exercise, hint)]
        return report(exercise, False, f"{label}{mismatch.what}" + (f" — {diagnosis}" if diagnosis else ""), details)
    return report(exercise, True, f"{what} matches the reference on {len(cases)} fresh cases.")
