"""Exercise checks: one call, one line of plain feedback.

A check compares the learner's function with the reference in ``course_lib`` on fresh inputs::

    check_forward_step(forward_step)   # prints "✓ Exercise 1.1 ..." or "✗ Exercise 1.1 ..."

It returns ``True``/``False`` and never raises, so a learner sees a sentence, not a traceback. The
exercise notebooks store the "✓" line as the expected output of each check cell, so
``pytest --nbval exercises/NN_*.ipynb`` passes only when every answer is right.
Each notebook's checks live in ``course_lib.workshop.checks.nbNN``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

Case = tuple[tuple[Any, ...], dict[str, Any]]


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().float()
    return torch.as_tensor(value, dtype=torch.float32)


def _difference(mine: Any, ref: Any) -> str | None:
    """None when ``mine`` matches ``ref`` (recursing into tuples/lists), else a short reason."""
    if isinstance(ref, (tuple, list)):
        if not isinstance(mine, (tuple, list)) or len(mine) != len(ref):
            return f"expected {len(ref)} values, got {type(mine).__name__}"
        for i, (m, r) in enumerate(zip(mine, ref)):
            reason = _difference(m, r)
            if reason:
                return f"value {i}: {reason}"
        return None
    try:
        m, r = _as_tensor(mine), _as_tensor(ref)
    except (TypeError, ValueError, RuntimeError):
        return f"expected a number or tensor, got {type(mine).__name__}"
    if m.shape != r.shape:
        return f"shape {tuple(m.shape)} where {tuple(r.shape)} was expected"
    if not torch.isfinite(m).all():
        return "it contains NaN or inf"
    err = (m - r).abs().max().item() if m.numel() else 0.0
    scale = r.abs().max().item() if r.numel() else 0.0
    if err > 1e-4 + 1e-3 * scale:
        return f"max |yours - reference| = {err:.3g}"
    return None


def report(exercise: str, ok: bool, message: str) -> bool:
    """Print the one feedback line and return ``ok``."""
    print(f"{'✓' if ok else '✗'} Exercise {exercise}: {message}")
    return ok


def compare(
    exercise: str,
    learner_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    cases: Iterable[Case],
    what: str,
    hint: str = "",
) -> bool:
    """Run both functions on each ``(args, kwargs)`` case and report the first difference.

    ``what`` names the function in the success line; ``hint`` is added to a failure line.
    """
    cases = list(cases)
    for i, (args, kwargs) in enumerate(cases, start=1):
        expected = reference_fn(*args, **kwargs)
        try:
            got = learner_fn(*args, **kwargs)
        except NotImplementedError:
            return report(exercise, False, "not done yet: replace the `raise NotImplementedError` line with your code.")
        except Exception as error:  # the learner's code failed: say how, in one line
            return report(exercise, False, f"your function raised {type(error).__name__}: {error}")
        reason = _difference(got, expected)
        if reason:
            extra = f" Hint: {hint}" if hint else ""
            return report(exercise, False, f"case {i} of {len(cases)} differs: {reason}.{extra}")
    return report(exercise, True, f"{what} matches the reference on {len(cases)} fresh cases.")
