"""Check yourself: a few conceptual questions at the end of a lesson, answered before the explanation shows.

Two kinds of question::

    Question("Which process is fixed, not learned?", ["q", "p_θ"], "q", "q only adds noise: ...")
    NumericQuestion("ᾱ after two steps with α = 0.9 and 0.8?", 0.72, "ᾱ is the product: ...", tolerance=0.005)

:func:`check_yourself` shows them. In a notebook kernel with ipywidgets (JupyterLab, Colab) each
question is a widget: radio buttons, or a box for a number and a "Check" button; answering shows
whether it was right and why, and a learner may answer again. Without a kernel or ipywidgets (a
script, a terminal) it prints every question with its answer and explanation. The choice is the
same as for the sliders of :mod:`course_lib.views.figures`. A frontend that cannot draw widgets
(a notebook viewer, an editor without the widget extension) shows the printed form instead:
it is the plain-text part of the widget's output.
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from course_lib._validation import fail
from course_lib.views.figures import _widgets

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        fail(name, "a non-empty string", value)
    return value.strip()


@dataclass(frozen=True)
class Question:
    """A multiple-choice question: ``answer`` is one of ``choices`` (at least two, all different)."""

    prompt: str
    choices: Sequence[str]
    answer: str
    explanation: str

    def __post_init__(self):
        object.__setattr__(self, "prompt", _check_text("prompt", self.prompt))
        object.__setattr__(self, "explanation", _check_text("explanation", self.explanation))
        choices = self.choices
        if isinstance(choices, str) or not isinstance(choices, Sequence) or len(choices) < 2:
            fail("choices", "a list of at least two answers to choose from", choices)
        if not all(isinstance(c, str) and c.strip() for c in choices) or len(set(choices)) != len(choices):
            fail("choices", "different, non-empty strings", choices)
        object.__setattr__(self, "choices", tuple(choices))
        if self.answer not in self.choices:
            fail("answer", f"one of the choices {list(self.choices)}", self.answer)

    def is_correct(self, response: str) -> bool:
        return response == self.answer

    def answer_text(self) -> str:
        """The right answer with its letter, e.g. ``b) q``."""
        return f"{LETTERS[self.choices.index(self.answer)]}) {self.answer}"

    def feedback(self, response: str) -> str:
        """What a learner sees after choosing ``response``: right or not, the answer and why."""
        if self.is_correct(response):
            return f"✓ Right: {self.answer}. {self.explanation}"
        return f"✗ Not {response!r}. The answer is {self.answer_text()}. {self.explanation}"

    def as_text(self, number: int) -> str:
        lines = [f"{number}. {self.prompt}"]
        lines += [f"   {LETTERS[i]}) {choice}" for i, choice in enumerate(self.choices)]
        lines += [f"   Answer: {self.answer_text()}", f"   Why: {self.explanation}"]
        return "\n".join(lines)


@dataclass(frozen=True)
class NumericQuestion:
    """A question whose answer is a number; a response within ``tolerance`` of ``answer`` is right.

    ``tolerance`` is absolute and 0 by default: integer answers (a step count, a frame index) are
    compared exactly.
    """

    prompt: str
    answer: float
    explanation: str
    tolerance: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "prompt", _check_text("prompt", self.prompt))
        object.__setattr__(self, "explanation", _check_text("explanation", self.explanation))
        for name in ("answer", "tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                fail(name, "a finite number", value)
        if self.tolerance < 0:
            fail("tolerance", "a number >= 0", self.tolerance)

    def is_correct(self, response: float) -> bool:
        return abs(float(response) - self.answer) <= self.tolerance + 1e-12 * max(1.0, abs(self.answer))

    def answer_text(self) -> str:
        return f"{self.answer:g}" + (f" (± {self.tolerance:g})" if self.tolerance else "")

    def feedback(self, response: str | float) -> str:
        """What a learner sees after entering ``response`` (a number, or the text typed in the box)."""
        try:
            value = float(response)
        except (TypeError, ValueError):
            return f"Type a number, then press Check (got {str(response)!r})."
        if not math.isfinite(value):
            return f"Type a finite number (got {response!r})."
        if self.is_correct(value):
            return f"✓ Right: {self.answer_text()}. {self.explanation}"
        return f"✗ Not {value:g}. The answer is {self.answer_text()}. {self.explanation}"

    def as_text(self, number: int) -> str:
        return "\n".join([f"{number}. {self.prompt} (a number)", f"   Answer: {self.answer_text()}",
                          f"   Why: {self.explanation}"])


def _check_questions(questions) -> list:
    if isinstance(questions, (Question, NumericQuestion)):
        questions = [questions]
    if isinstance(questions, str) or not isinstance(questions, Sequence) or not questions:
        fail("questions", "a non-empty list of Question or NumericQuestion", questions)
    for i, q in enumerate(questions):
        if not isinstance(q, (Question, NumericQuestion)):
            fail(f"questions[{i}]", "a Question or a NumericQuestion", q)
    return list(questions)


def quiz_text(questions) -> str:
    """Every question, then its answer and explanation: what is printed without widgets."""
    questions = _check_questions(questions)
    return "\n\n".join(["Check yourself (each answer follows its question)"]
                       + [q.as_text(i + 1) for i, q in enumerate(questions)])


def _feedback_html(text: str) -> str:
    colour = "#1a7f37" if text.startswith("✓") else "#b35900" if text.startswith("✗") else "#555"
    return f'<div style="color:{colour}; max-width:60em">{html.escape(text)}</div>'


@dataclass
class QuizView:
    """The widgets of a quiz: ``box`` to show, and per question its input and its feedback line.

    ``inputs[i]`` is the question's RadioButtons (set ``.value`` to a choice) or the Text box of a
    number (set ``.value``, then ``buttons[i].click()``; ``buttons[i]`` is None for a choice).
    """

    box: object
    inputs: list = field(default_factory=list)
    buttons: list = field(default_factory=list)
    feedback: list = field(default_factory=list)
    text: str = ""

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.box._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.text  # what a frontend without widgets shows
        return bundle


def quiz_widget(questions) -> QuizView:
    """The quiz as ipywidgets (built even without a kernel; :func:`check_yourself` decides when to show it)."""
    questions = _check_questions(questions)
    try:
        import ipywidgets as widgets
    except ImportError:
        fail("ipywidgets", "installed (pip install ipywidgets) to build the quiz widgets", "not installed")
    view = QuizView(box=None, text=quiz_text(questions))
    rows = [widgets.HTML("<h3>Check yourself</h3>")]
    for number, q in enumerate(questions, 1):
        feedback = widgets.HTML(value="")
        prompt = widgets.HTML(f"<b>{number}.</b> {html.escape(q.prompt)}")
        if isinstance(q, Question):
            control = widgets.RadioButtons(options=list(q.choices), value=None,
                                           layout=widgets.Layout(width="max-content"))
            control.observe(_reveal_on(q, feedback), names="value")
            button = None
            rows.append(widgets.VBox([prompt, control, feedback]))
        else:
            control = widgets.Text(value="", placeholder="a number", continuous_update=False,
                                   layout=widgets.Layout(width="12em"))
            button = widgets.Button(description="Check")
            check = _check_on(q, control, feedback)
            button.on_click(check)
            control.observe(check, names="value")  # Enter in the box checks too
            rows.append(widgets.VBox([prompt, widgets.HBox([control, button]), feedback]))
        view.inputs.append(control)
        view.buttons.append(button)
        view.feedback.append(feedback)
    view.box = widgets.VBox(rows)
    return view


def _reveal_on(question: Question, feedback):
    def reveal(change):
        if change["new"] is not None:
            feedback.value = _feedback_html(question.feedback(change["new"]))
    return reveal


def _check_on(question: NumericQuestion, box, feedback):
    def check(_button):
        feedback.value = _feedback_html(question.feedback(box.value))
    return check


def check_yourself(questions, interactive: bool | None = None) -> None:
    """Show ``questions`` (Question / NumericQuestion) as widgets, or print them with their answers.

    ``interactive=None`` uses widgets where a notebook kernel with ipywidgets can show them, and
    prints elsewhere; ``True`` insists on widgets (ValueError without them); ``False`` always prints.
    """
    questions = _check_questions(questions)
    if interactive not in (None, True, False):
        fail("interactive", "None, True or False", interactive)
    widgets = _widgets() if interactive in (None, True) else None
    if interactive and widgets is None:
        fail("interactive", "ipywidgets installed and a running notebook kernel", "no widgets available")
    if widgets is None:
        print(quiz_text(questions))
        return
    from IPython.display import display

    display(quiz_widget(questions))
