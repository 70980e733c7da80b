"""Checks by behaviour, beside the value comparison of :func:`~course_lib.workshop.checks.compare`.

An "implement the idea" exercise (a sampling loop, a training loop, a network block) is checked
twice: its values against the course's reference on fresh cases, and what it *does* — a loss that
falls, a frame that reaches other frames only through the temporal layer, a known part that comes
back exactly. A behaviour is a function ``behaviour(learner_fn) -> str | None``: a one-sentence
description of what went wrong, or None when all is well. :func:`check_idea` runs them around
``compare`` and still prints one "✓" line or one "✗" block::

    check_idea("2.4", ddpm_sample_loop, reference_ddpm_sample_loop, cases, "ddpm_sample_loop",
               before=[_visits_every_step_once], after=[_lands_on_the_point],
               done="lands every particle of a one-point data set on it")

``before`` behaviours explain a difference of values better than numbers can (a loop that skips the
last step): when the values differ, the first one that complains speaks. ``after`` behaviours run
once the values match (slow ones: training for a few hundred steps). A stub, an error, None, a wrong
shape, dtype or NaN get ``compare``'s own block, whatever the behaviours say.
"""
from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from course_lib.workshop.checks import Case, _hint_line, compare, not_a_function, not_done, report

Behaviour = Callable[[Callable[..., Any]], "str | None"]
RAISED = "your code raised"


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of an error's message, cut to ``limit`` characters."""
    line = (str(error).strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _run(behaviour: Behaviour, learner_fn: Callable[..., Any]) -> str | None:
    """The behaviour's complaint; an error raised by the learner's code becomes one."""
    try:
        return behaviour(learner_fn)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 -- the learner's code failed: say how, in one line
        return f"{RAISED} {type(error).__name__}: {first_line(error)}"


def _plain_difference(block: str, named: Iterable[str] = ()) -> bool:
    """A compare() failure that is only a difference of values ("case i of n differs"), not a raise, None, a
    shape, a dtype, NaN or one of the ``named`` mistakes: a behaviour's sentence may explain it better."""
    first = block.splitlines()[0] if block else ""
    return " differs" in first and "raised" not in first and not any(f" — {name}" in first for name in named)


def _complain(exercise: str, problem: str, hint: str) -> bool:
    """The behaviour's sentence as a "✗" block, with the first hint under it."""
    return report(exercise, False, _sentence(problem), _hint_line(exercise, hint))


def check_idea(
    exercise: str,
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    cases: Iterable[Case],
    what: str,
    before: Iterable[Behaviour] = (),
    after: Iterable[Behaviour] = (),
    done: str = "",
    hint: str = "",
    call: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    *,
    variants: Mapping[str, Callable[..., Any]] | None = None,
) -> bool:
    """``compare(exercise, learner_fn, reference_fn, cases, what, hint, variants=...)`` with behaviours around
    it; prints one "✓" line or one "✗" block (see :func:`~course_lib.workshop.checks.report`).

    A failure ``compare`` explains by its kind (a stub, an error, None, a shape, a dtype, NaN) or by one of the
    ``variants`` (a named mistake) is reported as ``compare`` reports it. When the values merely differ, the first ``before`` behaviour
    that complains speaks instead: its sentence says what the code does wrong. Once the values match,
    the remaining ``before`` and the ``after`` behaviours run. ``done`` says in a few words what the
    behaviours showed, for the "✓" line. ``call(fn)``, if given, is what ``compare`` runs for the
    learner's function and the reference (e.g. a wrapper that turns a seed in the case into a fresh
    generator); the behaviours get the learner's own. The first hint is ``hint`` if given, else level 1
    of the exercise's ``HINTS`` entry.
    """
    cases, before = list(cases), list(before)
    if not callable(learner_fn):
        return not_a_function(exercise, learner_fn)
    printed = io.StringIO()
    wrap = call or (lambda fn: fn)
    try:
        with contextlib.redirect_stdout(printed):
            ok = compare(exercise, wrap(learner_fn), wrap(reference_fn), cases, what, hint, variants=variants)
    except Exception as error:  # noqa: BLE001 -- a reference built from the learner's module (its weights) failed
        return report(exercise, False, f"the reference could not run with your {what} ({type(error).__name__}: "
                                       f"{first_line(error)}); did you change the layers of the given __init__?",
                      _hint_line(exercise, hint))
    if not ok:
        if _plain_difference(printed.getvalue(), variants or ()):
            for behaviour in before:
                try:
                    problem = _run(behaviour, learner_fn)
                except NotImplementedError:
                    break
                if problem and not problem.startswith(RAISED):
                    return _complain(exercise, problem, hint)
        sys.stdout.write(printed.getvalue())
        return False
    for behaviour in [*before, *after]:
        try:
            problem = _run(behaviour, learner_fn)
        except NotImplementedError:
            problem = "your code reached a `raise NotImplementedError` line"
        if problem:
            return _complain(exercise, problem, hint)
    also = f" and {done}" if done else ""
    return report(exercise, True, f"{what} matches the reference on {len(cases)} fresh cases{also}.")


def build_or_report(exercise: str, what: str, build: Callable[[], Any]) -> tuple[Any, bool]:
    """``(build(), True)``, or ``(None, False)`` after printing the "✗" line when building the learner's
    module fails (a stub in ``__init__``, an error): a class-based check can then stop with one line."""
    try:
        return build(), True
    except NotImplementedError:
        return None, not_done(exercise)
    except Exception as error:  # noqa: BLE001 -- the learner's code failed: say how, in one block
        return None, report(exercise, False, f"building your {what} raised {type(error).__name__}: {first_line(error)}",
                            _hint_line(exercise))


@contextlib.contextmanager
def one_thread():
    """Run a check's small models on one thread (threads waiting on each other make them slower, many times so
    when other programs share the cores); the caller's thread count comes back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def seeded(seed: int) -> torch.Generator:
    """A fresh CPU generator: every call of a learner's function and of its reference gets its own."""
    return torch.Generator().manual_seed(seed)


def with_seed(seed: int, build: Callable[[], Any]) -> Any:
    """``build()`` with the global RNG seeded with ``seed`` and restored afterwards (seeded module weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
