"""The feedback of every exercise check: the failure block, its diagnoses, hints in levels, bad input.

The per-notebook tests (tests/test_checks_nbNN.py) plant plausible wrong answers; this file tests the
framework in ``course_lib.workshop.checks`` and runs every check on answers that are broken in the
ways a learner's code breaks: it raises, returns None, the wrong shape, the wrong dtype, NaN.
"""
from __future__ import annotations

import importlib
import inspect
import math
import re

import pytest
import torch

from course_lib.workshop.checks import compare, hint
from course_lib.workshop.checks import diagnose
from course_lib.workshop.checks.diagnose import find_mismatch
from _exercise_checks import assert_failure_block, diagnosis_of, stub

MODULES = [importlib.import_module(f"course_lib.workshop.checks.nb{n:02d}") for n in range(16)]


def every_check() -> list[tuple[object, object]]:
    """(check, reference) for every ``check_X`` with a ``reference_X`` beside it."""
    pairs = []
    for module in MODULES:
        for name, check in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("check_") and check.__module__ == module.__name__:
                reference = getattr(module, "reference_" + name.removeprefix("check_"), None)
                if reference is not None:
                    pairs.append((check, reference))
    return pairs


CHECKS = every_check()
IDS = [f"{check.__module__.rsplit('.', 1)[1]}.{check.__name__}" for check, _ in CHECKS]


def exercise_of(check, reference, capsys) -> str:
    """The exercise a check is for, read from its "✓" line with the reference as the answer."""
    assert check(reference) is True
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    return re.match(r"✓ Exercise (\d+\.\d+): ", out)[1]


# --- the failure block ----------------------------------------------------------------------

def halve(x):
    return x / 2


def test_a_failure_names_the_case_its_inputs_the_first_difference_and_the_hint(capsys):
    cases = [((torch.arange(4.0),), {}), ((torch.tensor([[1.0, -2.0], [3.0, 4.0]]),), {})]
    assert compare("99.1", lambda x: torch.where(x < 0, -x, x) / 2, halve, cases, "halve", hint="divide by two") is False
    lines = assert_failure_block(capsys.readouterr().out, "99.1")
    assert lines[0] == "✗ Exercise 99.1: case 2 of 2 differs"  # no common mistake to name: no " — "
    assert lines[1] == "  inputs: x (2, 2) [1, -2, 3, …]"
    assert lines[2] == "  first difference at [0, 1]: yours 1, expected -1 (largest |yours − expected| = 2)"
    assert lines[3] == "  Hint: divide by two"


def test_the_success_line_is_unchanged(capsys):
    assert compare("99.1", halve, halve, [((torch.ones(3),), {})] * 2, "halve") is True
    assert capsys.readouterr().out == "✓ Exercise 99.1: halve matches the reference on 2 fresh cases.\n"


def test_a_failure_shows_the_first_hint_and_where_the_next_one_is(capsys):
    from course_lib.workshop.checks import nb02
    assert nb02.check_predict_x0(lambda x_t, eps, ab: x_t) is False
    out = capsys.readouterr().out
    assert f"Hint: {nb02.HINTS['2.2'][0]} More: hint(\"2.2\", 2)." in out
    assert nb02.HINTS["2.2"][1] not in out


def test_the_stub_says_not_done_and_where_the_hints_are(capsys):
    from course_lib.workshop.checks import nb01
    assert nb01.check_forward_step(stub) is False
    lines = assert_failure_block(capsys.readouterr().out, "1.1")
    assert lines == ["✗ Exercise 1.1: not done yet: replace the `raise NotImplementedError` line with your code.",
                     '  Stuck? hint("1.1") gives the idea.']


def test_an_answer_that_changes_its_inputs_in_place_cannot_spoil_the_next_cases(capsys):
    x = torch.arange(6.0)

    def answer_then_zero(v):
        result = v / 2
        v.zero_()
        return result

    assert compare("99.1", answer_then_zero, halve, [((x,), {})] * 3, "halve") is True
    assert torch.equal(x, torch.arange(6.0))
    capsys.readouterr()


# --- integer answers are exact --------------------------------------------------------------

@pytest.mark.parametrize("answer, ok", [(350, True), (350.0, True), (torch.tensor(350), True),
                                        (349.65, False), (349, False), (torch.tensor(350.4), False)])
def test_integer_answers_are_compared_exactly(answer, ok, capsys):
    assert compare("99.1", lambda s: answer, lambda s: round(s * 999), [((0.35,), {})], "t_start") is ok
    out = capsys.readouterr().out
    if isinstance(answer, float) or isinstance(answer, torch.Tensor) and answer.is_floating_point():
        assert ok or "expected a whole number" in diagnosis_of(out), out
    if answer == 349:
        assert "off by one: yours = expected − 1" in diagnosis_of(out), out


def test_a_timestep_list_of_whole_floats_passes_and_of_fractions_fails(capsys):
    expected = [999, 979, 959]
    assert compare("99.1", lambda: [999.0, 979.0, 959.0], lambda: expected, [((), {})], "ts") is True
    assert compare("99.1", lambda: [999.0, 979.4, 959.0], lambda: expected, [((), {})], "ts") is False
    assert "expected a whole number" in capsys.readouterr().out


# --- the diagnoses from the values alone -----------------------------------------------------

E = torch.tensor([[0.5, 1.5, 2.0], [3.0, 0.25, 4.0]])


@pytest.mark.parametrize("yours, words", [
    (-E, "wrong sign"),
    (E**2, "a square root missing"),
    (E.sqrt(), "a square root too many"),
    (1 / E, "upside down"),
    (E.log(), "an exp missing"),
    (3 * E, "a constant factor: yours ≈ 3 × expected"),
    (E + 0.5, "a constant offset: yours ≈ expected + 0.5"),
    (2 * E - 1, "a scale and a shift off: yours ≈ 2 × expected − 1"),
    (E.flatten().flip(0).reshape(2, 3), "the right values in the wrong places"),
    (E.T, "the right values with the axes in another order (permute(1, 0))"),
    (E.reshape(3, 2), "the same number of values in another shape"),
    (E[None].expand(4, 2, 3), "a broadcast made yours bigger"),
    (E.mean(), "one number where 6 are expected"),
    (E[:, :2], "fewer values than expected"),
    (E.round().long(), "wrong dtype: yours is int64 where a float was expected"),
    (E.masked_fill(E > 3, math.nan), "a division by zero"),
    (None, "did you forget `return`?"),
    ("text", "return the result itself"),
])
def test_find_mismatch_diagnoses_common_mistakes(yours, words):
    found = find_mismatch(yours, E)
    assert found is not None and words in found.diagnosis, found


def test_a_reversed_list_and_values_off_by_one():
    assert "reverse order" in find_mismatch([1.0, 2.0, 3.0, 5.0], [5.0, 3.0, 2.0, 1.0]).diagnosis
    assert find_mismatch([4, 3, 2], [5, 4, 3]).diagnosis == "off by one: yours = expected − 1"


def test_a_transformation_that_equals_the_reference_is_no_diagnosis():
    """|expected| = 1 everywhere: expected² = expected, so a wrong answer is not "a square root missing"."""
    found = find_mismatch(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0]))
    assert found is not None and "square root" not in found.diagnosis


def test_check_dtype_asks_for_the_references_dtype(capsys):
    cases = [((torch.arange(3),), {})]
    assert compare("99.1", lambda x: x.double() / 2, lambda x: x.float() / 2, cases, "half") is True
    capsys.readouterr()
    assert compare("99.1", lambda x: x.double() / 2, lambda x: x.float() / 2, cases, "half", check_dtype=True) is False
    lines = assert_failure_block(capsys.readouterr().out, "99.1")
    assert lines[0] == ("✗ Exercise 99.1: case 1 of 1: dtype float64 where float32 was expected — "
                        "wrong dtype: convert with .to(torch.float32)")


def test_diagnosis_names_are_stable():
    """The instructors' notes and the per-notebook tests look for these words."""
    assert diagnose.SIGN == "wrong sign" and diagnose.OFF_BY_ONE_T == "off by one timestep (paper vs code index)"
    assert diagnose.WHOLE == "expected a whole number"


# --- bad input: every check, every way an answer breaks ---------------------------------------

def _map(value, tensor_fn, number_fn):
    if isinstance(value, torch.Tensor):
        return tensor_fn(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return number_fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map(v, tensor_fn, number_fn) for v in value)
    return value


def raises(reference):
    def answer(*args, **kwargs):
        raise ValueError("something inside your function went wrong")
    return answer


def returns_none(reference):
    return lambda *args, **kwargs: None


def wrong_shape(reference):
    def answer(*args, **kwargs):
        out = reference(*args, **kwargs)
        return _map(out, lambda t: t[None].expand(2, *t.shape), lambda x: [x, x]) if not isinstance(out, tuple) \
            else (_map(out[0], lambda t: t[None].expand(2, *t.shape), lambda x: [x, x]), *out[1:])
    return answer


def wrong_dtype(reference):
    def answer(*args, **kwargs):
        out = reference(*args, **kwargs)
        return _map(out, lambda t: (t * 10 + 0.5).long() if t.is_floating_point() else t.double() + 0.5,
                    lambda x: (x * 10 + 0.5) if isinstance(x, float) else x + 0.5)
    return answer


def nan(reference):
    def answer(*args, **kwargs):
        out = reference(*args, **kwargs)
        return _map(out, lambda t: torch.full(t.shape, math.nan), lambda x: math.nan)
    return answer


BAD = {raises: "your function raised ValueError: something inside your function went wrong",
       returns_none: "returned None", wrong_shape: "shape", wrong_dtype: "", nan: "NaN"}


@pytest.mark.parametrize("check, reference", CHECKS, ids=IDS)
def test_every_check_answers_bad_input_with_one_block_naming_the_exercise(check, reference, capsys):
    exercise = exercise_of(check, reference, capsys)
    for make, words in BAD.items():
        assert check(make(reference)) is False, make.__name__
        out = capsys.readouterr().out
        assert_failure_block(out, exercise)
        assert words in out, (make.__name__, out)
        assert f'hint("{exercise}", 2)' in out, out
    assert check(None) is False  # not a function at all
    lines = assert_failure_block(capsys.readouterr().out, exercise)
    assert "expected your function, got NoneType" in lines[0]
    assert check(lambda *args, **kwargs: "a string") is False
    assert_failure_block(capsys.readouterr().out, exercise)


# --- hints in levels --------------------------------------------------------------------------

@pytest.mark.parametrize("check, reference", CHECKS, ids=IDS)
def test_every_exercise_has_hints_in_levels_and_a_failure_shows_only_the_first(check, reference, capsys):
    exercise = exercise_of(check, reference, capsys)
    module = importlib.import_module(check.__module__)
    levels = module.HINTS[exercise]
    assert 2 <= len(levels) <= 3 and len(set(levels)) == len(levels), levels
    assert check(nan(reference)) is False
    out = capsys.readouterr().out
    assert levels[0] in out and not any(level in out for level in levels[1:]), out


def test_hint_prints_the_idea_then_the_formula(capsys):
    from course_lib.workshop.checks import nb02
    assert hint("2.3") is None
    assert capsys.readouterr().out == f'Hint 2.3 (1 of 3, the idea): {nb02.HINTS["2.3"][0]} More: hint("2.3", 2).\n'
    hint("2.3", 2)
    assert capsys.readouterr().out == f'Hint 2.3 (2 of 3, the formula): {nb02.HINTS["2.3"][1]} More: hint("2.3", 3).\n'
    hint("2.3", 3)
    assert capsys.readouterr().out.endswith("That is the last hint; the full answer is in solutions/.\n")
    hint(2.2)  # a number works too
    assert capsys.readouterr().out.startswith("Hint 2.2 (1 of 2, the idea): ")


@pytest.mark.parametrize("args, words", [
    (("2.9",), "no exercise 2.9; notebook 02 has hints for 2.1, 2.2, 2.3, 2.4, 2.5."),
    (("42.1",), "no exercise 42.1: notebook 42 has no exercises with hints."),
    (("two",), "expected an exercise number as text, like hint(\"2.3\"), got 'two'."),
    ((None,), "expected an exercise number as text, like hint(\"2.3\"), got None."),
    (("2.3", 4), "exercise 2.3 has hint levels 1 to 3; got 4."),
    (("2.3", 0), "exercise 2.3 has hint levels 1 to 3; got 0."),
    (("2.3", "2"), "exercise 2.3 has hint levels 1 to 3; got '2'."),
    (("2.3", True), "exercise 2.3 has hint levels 1 to 3; got True."),
])
def test_hint_with_an_unknown_exercise_or_level_prints_one_clear_line(args, words, capsys):
    assert hint(*args) is None
    assert capsys.readouterr().out == f"✗ hint: {words}\n"


def test_hint_is_importable_where_the_exercises_import_their_checks():
    from course_lib.workshop import checks
    assert checks.hint is hint
