"""check_idea: behaviour checks around compare(), one "✓" line or one "✗" block whatever the learner's code does."""
import torch

from course_lib.workshop.checks.behaviour import build_or_report, check_idea, one_thread
from _exercise_checks import assert_failure_block, stub


def double(x):
    return 2 * x


CASES = [((torch.tensor([1.0, -2.0]),), {}), ((torch.tensor([[0.5]]),), {})]


def keeps_the_sign(fn):
    return None if fn(torch.tensor([-3.0])).item() < 0 else "the sign flipped"


def one_line(capsys) -> str:
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    return out


def test_right_answer_gets_one_tick_naming_what_the_behaviours_showed(capsys):
    assert check_idea("9.9", double, double, CASES, "double", before=[keeps_the_sign], done="keeps the sign")
    assert one_line(capsys) == "✓ Exercise 9.9: double matches the reference on 2 fresh cases and keeps the sign.\n"


def block(capsys) -> list[str]:
    return assert_failure_block(capsys.readouterr().out, "9.9")


def test_a_before_behaviour_explains_a_difference_and_an_after_behaviour_speaks_last(capsys):
    assert not check_idea("9.9", lambda x: -2 * x, double, CASES, "double", before=[keeps_the_sign], hint="x + x")
    assert block(capsys) == ["✗ Exercise 9.9: the sign flipped.", "  Hint: x + x"]
    assert not check_idea("9.9", double, double, CASES, "double", after=[lambda fn: "it is too slow"])
    assert block(capsys) == ["✗ Exercise 9.9: it is too slow."]


def test_a_wrong_shape_or_nan_is_compares_block_whatever_the_behaviours_say(capsys):
    def complains(fn):
        return "a behaviour's complaint"

    assert not check_idea("9.9", lambda x: torch.stack([x, x]), double, CASES, "double", before=[complains])
    assert "shape" in block(capsys)[0]
    assert not check_idea("9.9", lambda x: x * float("nan"), double, CASES, "double", before=[complains])
    assert "NaN" in block(capsys)[0]
    assert not check_idea("9.9", None, double, CASES, "double", before=[complains])
    assert "expected your function, got NoneType" in block(capsys)[0]


def test_stubs_errors_and_none_get_compares_own_block(capsys):
    assert not check_idea("9.9", stub, double, CASES, "double", before=[keeps_the_sign])
    assert "not done yet" in block(capsys)[0]
    assert not check_idea("9.9", lambda x: x[5], double, CASES, "double", before=[keeps_the_sign])
    assert "IndexError" in block(capsys)[0]
    assert not check_idea("9.9", lambda x: None, double, CASES, "double", before=[keeps_the_sign])
    assert block(capsys)[0].startswith("✗ Exercise 9.9: case 1 of 2: your function returned None")


def test_a_reference_that_cannot_use_the_learners_module_is_one_block(capsys):
    def reference(x):
        raise RuntimeError("size mismatch\nsecond line")

    assert not check_idea("9.9", double, reference, CASES, "MyLayer")
    assert "the reference could not run with your MyLayer (RuntimeError: size mismatch)" in block(capsys)[0]


def test_building_a_stubbed_module_is_not_done_yet(capsys):
    assert build_or_report("9.9", "MyLayer", stub) == (None, False)
    assert "not done yet" in block(capsys)[0]
    assert build_or_report("9.9", "MyLayer", lambda: 1 / 0) == (None, False)
    assert "building your MyLayer raised ZeroDivisionError" in block(capsys)[0]


def test_one_thread_gives_the_thread_count_back():
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
