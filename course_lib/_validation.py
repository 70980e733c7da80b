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


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Refuse NaN and ±inf: one bad value would silently turn every result downstream into NaN."""
    check_tensor(name, x)
    if (x.dtype.is_floating_point or x.dtype.is_complex) and not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name}: expected only finite values, got {bad} NaN/inf entries")
    return x


def check_values_in(name: str, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Check that every entry of ``x`` is finite and lies in ``[low, high]`` (e.g. a mask in [0, 1])."""
    check_finite(name, x)
    if x.numel() and (x.min() < low or x.max() > high):
        raise ValueError(f"{name}: expected values in [{low}, {high}], "
                         f"got values in [{x.min().item():g}, {x.max().item():g}]")
    return x


def check_output(name: str, value: object, shape: Sequence[int]) -> torch.Tensor:
    """Check what a user's function returned (e.g. a ``model_fn``): a finite tensor of ``shape``."""
    if not isinstance(value, torch.Tensor):
        fail(name, f"a torch.Tensor of shape {tuple(shape)}", type(value).__name__)
    if tuple(value.shape) != tuple(shape):
        fail(name, f"shape {tuple(shape)}", f"shape {tuple(value.shape)}")
    return check_finite(name, value)


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


def check_positive_float(name: str, value: object) -> float:
    """A finite number > 0 (a temperature, a width, a scale)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        fail(name, "a finite number > 0", value)
    return float(value)


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
