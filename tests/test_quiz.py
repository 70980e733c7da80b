"""Check yourself (course_lib.views.quiz): widgets that reveal the explanation after an answer, a printed
fallback without a kernel, and one clear ValueError for a badly written question."""
import ipywidgets
import pytest

from course_lib.views import quiz
from course_lib.views.quiz import NumericQuestion, Question, check_yourself, quiz_text, quiz_widget

CHOICE = Question("Which process is fixed, not learned?", ["the forward process q", "the reverse process p_θ"],
                  "the forward process q", "q only adds Gaussian noise on a schedule we chose.")
NUMBER = NumericQuestion("ᾱ after two steps with α = 0.9 and then 0.8?", 0.72,
                         "ᾱ is the product of the α's: 0.9 · 0.8.", tolerance=0.005)
STEPS = NumericQuestion("How many network calls does DDIM with 50 steps make?", 50, "One per step.")


# --- the widgets -------------------------------------------------------------------------------

def test_a_choice_reveals_the_explanation_only_after_an_answer():
    view = quiz_widget([CHOICE, NUMBER])
    assert isinstance(view.box, ipywidgets.VBox)
    radio, feedback = view.inputs[0], view.feedback[0]
    assert isinstance(radio, ipywidgets.RadioButtons) and radio.value is None
    assert list(radio.options) == list(CHOICE.choices) and view.buttons[0] is None
    assert feedback.value == ""  # nothing shown before answering

    radio.value = "the reverse process p_θ"
    assert "✗" in feedback.value and "the forward process q" in feedback.value
    assert "schedule we chose" in feedback.value
    radio.value = "the forward process q"  # a second try is allowed, and the message changes
    assert "✓ Right" in feedback.value and "schedule we chose" in feedback.value


def test_a_number_is_checked_with_its_tolerance_when_the_button_is_pressed():
    view = quiz_widget([CHOICE, NUMBER])
    box, button, feedback = view.inputs[1], view.buttons[1], view.feedback[1]
    assert isinstance(box, ipywidgets.Text) and isinstance(button, ipywidgets.Button)
    button.click()  # nothing typed yet: asks for a number, gives nothing away
    assert "Type a number" in feedback.value and "0.72" not in feedback.value
    box.value = "0.7"
    button.click()
    assert "✗ Not 0.7" in feedback.value and "0.72 (± 0.005)" in feedback.value
    box.value = "0.724"
    button.click()
    assert "✓ Right" in feedback.value and "product of the α" in feedback.value


def test_integer_answers_are_compared_exactly():
    assert STEPS.is_correct(50) and not STEPS.is_correct(49.9) and not STEPS.is_correct(50.5)
    assert NUMBER.is_correct(0.715) and NUMBER.is_correct(0.725) and not NUMBER.is_correct(0.73)


def test_in_a_kernel_check_yourself_displays_the_widgets_with_the_printout_as_plain_text(monkeypatch):
    shown = []
    monkeypatch.setattr(quiz, "_widgets", lambda: ipywidgets)
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    assert check_yourself([CHOICE, NUMBER]) is None
    (view,) = shown
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"] == quiz_text([CHOICE, NUMBER])  # a frontend without widgets shows the answers


# --- the printed fallback ----------------------------------------------------------------------

def test_without_a_kernel_it_prints_questions_answers_and_explanations(capsys):
    check_yourself([CHOICE, NUMBER, STEPS])  # pytest has no notebook kernel: the fallback
    out = capsys.readouterr().out
    assert out.startswith("Check yourself")
    assert "1. Which process is fixed, not learned?" in out
    assert "   a) the forward process q\n   b) the reverse process p_θ" in out
    assert "Answer: a) the forward process q" in out and "Why: q only adds Gaussian noise" in out
    assert "2. ᾱ after two steps with α = 0.9 and then 0.8? (a number)" in out
    assert "Answer: 0.72 (± 0.005)" in out and "Answer: 50\n" in out


def test_interactive_false_prints_even_in_a_kernel(monkeypatch, capsys):
    monkeypatch.setattr(quiz, "_widgets", lambda: ipywidgets)
    check_yourself(CHOICE, interactive=False)
    assert "Answer: a) the forward process q" in capsys.readouterr().out


def test_interactive_true_without_a_kernel_is_an_error():
    with pytest.raises(ValueError, match="interactive: expected ipywidgets installed and a running notebook kernel"):
        check_yourself([CHOICE], interactive=True)


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: Question("Which?", [], "a", "why"), "choices: expected a list of at least two answers"),
    (lambda: Question("Which?", ["a"], "a", "why"), "choices: expected a list of at least two answers"),
    (lambda: Question("Which?", "ab", "a", "why"), "choices: expected a list of at least two answers"),
    (lambda: Question("Which?", ["a", "a"], "a", "why"), "choices: expected different, non-empty strings"),
    (lambda: Question("Which?", ["a", "b"], "c", "why"), r"answer: expected one of the choices \['a', 'b'\], got 'c'"),
    (lambda: Question("", ["a", "b"], "a", "why"), "prompt: expected a non-empty string"),
    (lambda: Question("Which?", ["a", "b"], "a", None), "explanation: expected a non-empty string"),
    (lambda: NumericQuestion("How many?", "50", "why"), "answer: expected a finite number, got '50'"),
    (lambda: NumericQuestion("How many?", float("nan"), "why"), "answer: expected a finite number"),
    (lambda: NumericQuestion("How many?", 50, "why", tolerance=-1), "tolerance: expected a number >= 0, got -1"),
    (lambda: check_yourself([]), "questions: expected a non-empty list of Question or NumericQuestion"),
    (lambda: check_yourself(["Which?"]), r"questions\[0\]: expected a Question or a NumericQuestion"),
    (lambda: check_yourself([CHOICE], interactive="yes"), "interactive: expected None, True or False"),
])
def test_a_badly_written_question_is_one_clear_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()
