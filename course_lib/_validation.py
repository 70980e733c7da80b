"""Argument checks that fail with one clear message: the argument, what was expected, what was given.

Every public function of ``course_lib`` validates its inputs with these helpers so that a
learner's mistake reads like ``x: expected a tensor of rank 4 (B, C, H, W), got shape (28, 28)``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import torch


def fail(name: str, expected: str, got: object) -> None:
    """Raise ``ValueError("name: expected …, got …")``."""
    raise ValueError(f"{name}: expected {expected}, got {got!r}")


def check_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        fail(name, "a torch.Tensor", type(x).__name__)
    return x


def check_rank(name: str, x: torch.Tensor, rank: int | Sequence[int], layout: str = "") -> None:
    """Check ``x.dim()``; ``layout`` (e.g. ``"(B, T, C, H, W)"``) is quoted in the message."""
    check_tensor(name, x)
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if x.dim() not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"{name}: expected a tensor of rank {want}{' ' + layout if layout else ''}, "
            f"got shape {tuple(x.shape)}"
        )


def check_finite(name: str, x: torch.Tensor) -> None:
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name}: expected only finite values, got {bad} NaN/inf entries")


def check_int_range(name: str, value: object, low: int, high: int) -> int:
    """Check ``low <= value <= high`` for a Python int (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, f"an int in [{low}, {high}]", value)
    if not low <= value <= high:
        fail(name, f"an int in [{low}, {high}]", value)
    return value


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(name, "a positive int", value)
    return value


def check_float_range(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(name, f"a number in [{low}, {high}]", value)
    if not low <= value <= high:
        fail(name, f"a number in [{low}, {high}]", value)
    return float(value)


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        fail(name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value  # type: ignore[return-value]


def check_timesteps(name: str, t: torch.Tensor, num_steps: int) -> None:
    """Timesteps are 0-indexed integers in [0, num_steps - 1] (see README, 'Conventions')."""
    check_tensor(name, t)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        fail(name, "an integer tensor of timesteps", f"dtype {t.dtype}")
    if t.numel() and (t.min() < 0 or t.max() > num_steps - 1):
        raise ValueError(
            f"{name}: expected timesteps in [0, {num_steps - 1}], "
            f"got values in [{int(t.min())}, {int(t.max())}]"
        )


def replace_fields(instance, **changes):
    """A copy of the dataclass ``instance`` with ``changes``; an unknown field name is a clear error."""
    known = {f.name for f in dataclasses.fields(instance)}
    for key in changes:
        if key not in known:
            fail("changes", f"field names of {type(instance).__name__} (" + ", ".join(sorted(known)) + ")", key)
    return dataclasses.replace(instance, **changes)
