"""How a check explains a wrong answer: what differs, where, and which common mistake it looks like.

``find_mismatch(yours, expected)`` compares two results (numbers, tensors, lists, tuples) and returns
``None`` when they agree, else a :class:`Mismatch`: what differs, the first differing element, and a
diagnosis found by comparing ``yours`` with transformations of ``expected`` (−expected, expected²,
√expected, 1/expected, a constant factor or offset, the same values in other places, ...).
``diagnose_with_inputs`` tries the mistakes that need the inputs: the check's own named variants,
an input returned unchanged, two inputs swapped, a timestep off by one, an input ignored or negated.

Floats agree within ``|yours − expected| ≤ 1e-4 + 1e-3·max|expected|``; integer answers (Python
ints, integer tensors, lists of ints) must agree exactly.
"""
from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

ATOL, RTOL = 1e-4, 1e-3  # a float answer passes within ATOL + RTOL·max|expected|
LOOSE = 2.0  # a transformation of the reference "matches" within LOOSE times that tolerance

# The diagnoses, named once: tests and the instructors' notes look for these words.
NONE = "did you forget `return`?"
NAN = "a division by zero, or the square root or log of a negative number?"
SHAPE = "a shape or broadcast error"
DTYPE = "wrong dtype"
WHOLE = "expected a whole number"
OFF_BY_ONE = "off by one"
OFF_BY_ONE_T = "off by one timestep (paper vs code index)"
SIGN = "wrong sign"
SQRT_MISSING = "a square root missing"
SQRT_EXTRA = "a square root too many"
UNCHANGED = "returned its input"
SWAPPED = "swapped"


@dataclass
class Mismatch:
    """What differs (``what`` follows "case i of n"), where (``where``), and why it may (``diagnosis``)."""

    what: str
    where: str = ""
    diagnosis: str = ""


# --- numbers and tensors ------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, complex)


def _is_number_list(value: Any) -> bool:
    """A (nested) list or tuple of plain numbers: compared as one tensor, e.g. a list of timesteps."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    return all(_is_number(v) or _is_number_list(v) for v in value)


def _ragged(yours: Any, expected: Sequence[Any]) -> bool:
    """``yours`` is a sequence as long as ``expected`` that is not one tensor: compare it value by value."""
    return isinstance(yours, (tuple, list)) and len(yours) == len(expected) and as_tensor(yours) is None


def as_tensor(value: Any) -> torch.Tensor | None:
    """``value`` as a detached CPU tensor (ints stay integer), or None when it is not numeric."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, range):
        value = list(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in value):
        return torch.stack([v.detach().cpu() for v in value])
    if isinstance(value, (str, bytes, dict, set)) or value is None or callable(value):
        return None
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return None if tensor.is_complex() else tensor


def _is_integer(tensor: torch.Tensor) -> bool:
    return not (tensor.is_floating_point() or tensor.is_complex())


def _scale(expected: torch.Tensor) -> float:
    return expected.abs().max().item() if expected.numel() else 0.0


def _close(yours: torch.Tensor, expected: torch.Tensor, loose: bool = False) -> bool:
    """Same shape, finite where ``expected`` is, and within the tolerance (float64 throughout)."""
    if yours.shape != expected.shape:
        return False
    y, e = yours.double(), expected.double()
    finite = torch.isfinite(e)
    if not torch.equal(torch.isfinite(y), finite) or not torch.equal(y[~finite], e[~finite]):
        return False
    if not finite.any():
        return True
    factor = LOOSE if loose else 1.0
    err = (y[finite] - e[finite]).abs().max().item()
    return err <= factor * (ATOL + RTOL * _scale(e[finite]))


def _fmt(value: float) -> str:
    """A number, short: whole numbers as ints, others with 4 significant digits and at least 2 decimals."""
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    digits = len(str(int(abs(value)))) if math.isfinite(value) else 0
    return f"{value:.{max(4, digits + 2)}g}"


def _index(flat: int, shape: torch.Size) -> str:
    """Flat position -> "[i, j, k]" (nothing for a 0-dim value)."""
    if not shape:
        return ""
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return "[" + ", ".join(map(str, reversed(index))) + "]"


# --- the first difference and the diagnoses from the values alone -----------------------------------

def find_mismatch(yours: Any, expected: Any, check_dtype: bool = False) -> Mismatch | None:
    """None when ``yours`` matches ``expected`` (recursing into tuples and lists), else what differs and why."""
    if isinstance(expected, (tuple, list)) and (not _is_number_list(expected) or _ragged(yours, expected)):
        if yours is None:
            return Mismatch(": your function returned None", diagnosis=NONE)
        if not isinstance(yours, (tuple, list)) or len(yours) != len(expected):
            got = f"{len(yours)} values" if isinstance(yours, (tuple, list)) else f"a {type(yours).__name__}"
            return Mismatch(f": expected {len(expected)} values (a tuple), got {got}",
                            diagnosis=f"return all {len(expected)} values, in order, as a tuple")
        for i, (y, e) in enumerate(zip(yours, expected)):
            found = find_mismatch(y, e, check_dtype)
            if found:
                found.what = f", value {i + 1} of {len(expected)}{found.what}"
                return found
        return None
    if yours is None:
        return Mismatch(": your function returned None", diagnosis=NONE)
    if isinstance(expected, (tuple, list)) and isinstance(yours, (tuple, list)) and len(yours) != len(expected):
        what = f": expected {len(expected)} values, got {len(yours)}"
        if isinstance(expected, tuple):
            return Mismatch(what, diagnosis=f"return all {len(expected)} values, in order, as a tuple")
        return Mismatch(what, diagnosis=f"{OFF_BY_ONE}: one value too {'many' if len(yours) > len(expected) else 'few'}"
                        if abs(len(yours) - len(expected)) == 1 else f"{SHAPE}: {len(expected)} values belong")
    e = as_tensor(expected)
    if e is None:  # a non-numeric answer (a string, a dict): compared as it is
        return None if yours == expected else Mismatch(f": got {_short(yours)} where {_short(expected)} was expected")
    y = as_tensor(yours)
    if y is None:
        kind = "a number" if e.dim() == 0 else "a tensor"
        return Mismatch(f": expected {kind}, got {type(yours).__name__}",
                        diagnosis="return the result itself" + (" (a tensor)" if e.dim() else ""))
    if y.shape != e.shape:
        return Mismatch(f": shape {tuple(y.shape)} where {tuple(e.shape)} was expected", diagnosis=_shape_diagnosis(y, e))
    if y.is_complex():
        return Mismatch(": your result is complex", diagnosis=DTYPE)
    finite = torch.isfinite(e.double()) if e.numel() else e.bool()
    bad = ~torch.isfinite(y.double()) & finite
    if bad.any():
        flat = int(bad.flatten().nonzero()[0])
        at = _index(flat, y.shape)
        kind = "NaN" if torch.isnan(y.double().flatten()[flat]) else "inf"
        return Mismatch(f": your result contains {kind}", diagnosis=NAN,
                        where=(f"first at {at}: " if at else "") + f"yours {_fmt(y.flatten()[flat].item())}")
    if _is_integer(e) and not isinstance(expected, bool):
        return _integer_mismatch(y, e)
    if not _close(y, e):
        return Mismatch(" differs", where=_where(y, e), diagnosis=_value_diagnosis(y, e))
    if check_dtype and isinstance(yours, torch.Tensor) and isinstance(expected, torch.Tensor) and yours.dtype != expected.dtype:
        return Mismatch(f": dtype {_dtype(yours.dtype)} where {_dtype(expected.dtype)} was expected",
                        diagnosis=f"{DTYPE}: convert with .to({_dtype(expected.dtype, prefix=True)})")
    return None


def _dtype(dtype: torch.dtype, prefix: bool = False) -> str:
    return str(dtype) if prefix else str(dtype).removeprefix("torch.")


def _where(y: torch.Tensor, e: torch.Tensor, exact: bool = False) -> str:
    """ "first difference at [i, j]: yours a, expected b (largest |yours − expected| = c)"."""
    yd, ed = y.double().flatten(), e.double().flatten()
    tolerance = 0.0 if exact else ATOL + RTOL * _scale(ed)
    wrong = ~((yd - ed).abs() <= tolerance)
    flat = int(wrong.nonzero()[0]) if wrong.any() else 0
    at = _index(flat, y.shape)
    text = (f"first difference at {at}: " if at else "") + f"yours {_fmt(yd[flat].item())}, expected {_fmt(ed[flat].item())}"
    if y.numel() > 1:
        text += f" (largest |yours − expected| = {(yd - ed).abs().max().item():.3g})"
    return text


def _integer_mismatch(y: torch.Tensor, e: torch.Tensor) -> Mismatch | None:
    """Integer answers compare exactly; a float is accepted only where it is that whole number."""
    yd = y.double()
    if torch.equal(yd, e.double()):
        return None
    where = _where(y, e, exact=True)
    if y.is_floating_point() and not torch.equal(yd, yd.round()):
        close = (yd - e.double()).abs().max().item() < 1
        return Mismatch(" differs", where=where,
                        diagnosis=f"{WHOLE}: yours is not an integer"
                        + (" (round() it, or use // where / leaves a fraction)" if close else ""))
    diff = yd - e.double()
    if diff.abs().max().item() <= 1:
        sign = {1: "+ 1", -1: "− 1"}
        signs = set(diff[diff != 0].sign().long().tolist())
        detail = f"yours = expected {sign[signs.pop()]}" if len(signs) == 1 else "some entries one too big, some one too small"
        return Mismatch(" differs", where=where, diagnosis=f"{OFF_BY_ONE}: {detail}")
    return Mismatch(" differs", where=where, diagnosis=_value_diagnosis(y, e))


def _value_diagnosis(y: torch.Tensor, e: torch.Tensor) -> str:
    """The first transformation of ``e`` that ``y`` matches (and ``e`` itself does not), as a diagnosis."""
    if _is_integer(y) and e.is_floating_point():
        return (f"{DTYPE}: yours is {_dtype(y.dtype)} where a float was expected "
                f"(integer arithmetic drops the fractions: use .float())")
    yd, ed = y.double(), e.double()

    def matches(candidate: torch.Tensor) -> bool:
        return torch.isfinite(candidate).all().item() and not _close(candidate, ed) and _close(yd, candidate, loose=True)

    if matches(-ed):
        return f"{SIGN}: yours ≈ −expected"
    if (ed != 0).all() and matches(1 / ed):
        return "upside down: yours ≈ 1 / expected"
    if matches(ed**2):
        return f"{SQRT_MISSING}: yours ≈ expected²"
    if (ed >= 0).all() and matches(ed.sqrt()):
        return f"{SQRT_EXTRA}: yours² ≈ expected (a standard deviation where a variance belongs?)"
    if (ed > 0).all() and matches(ed.log()):
        return "an exp missing (or a log too many): yours ≈ log(expected)"
    if (ed.abs() < 50).all() and matches(ed.exp()):
        return "a log missing (or an exp too many): yours ≈ exp(expected)"
    if ed.numel() < 2:
        return ""
    flat_e = ed.flatten()
    if (flat_e * flat_e).sum() > 0:
        factor = ((yd.flatten() * flat_e).sum() / (flat_e * flat_e).sum()).item()
        if abs(factor - 1) > 1e-2 and matches(factor * ed):
            return f"a constant factor: yours ≈ {factor:.4g} × expected"
    offset = (yd - ed).mean().item()
    if matches(ed + offset):
        return f"a constant offset: yours ≈ expected {'+' if offset > 0 else '−'} {abs(offset):.4g}"
    if ed.dim() == 1 and matches(ed.flip(0)):
        return "the right values in reverse order"
    if matches(ed.flatten().sort().values[_rank(yd.flatten())].reshape(ed.shape)):
        return "the right values in the wrong places: axes or order mixed up (a reshape or view where permute belongs?)"
    if ed.numel() >= 3 and flat_e.std() > 0:
        a = torch.stack([flat_e, torch.ones_like(flat_e)], 1)
        scale, shift = torch.linalg.lstsq(a, yd.flatten()[:, None]).solution.flatten().tolist()
        if matches(scale * ed + shift):
            return f"a scale and a shift off: yours ≈ {scale:.4g} × expected {'+' if shift > 0 else '−'} {abs(shift):.4g}"
    return ""


def _rank(values: torch.Tensor) -> torch.Tensor:
    """The rank of each value: ``sorted[rank]`` puts sorted values where ``values`` has them."""
    ranks = torch.empty_like(values, dtype=torch.long)
    ranks[values.argsort()] = torch.arange(values.numel())
    return ranks


def _shape_diagnosis(y: torch.Tensor, e: torch.Tensor) -> str:
    if y.numel() == e.numel() and y.numel() > 0:
        if y.dim() == e.dim() and y.dim() <= 6:
            for order in itertools.permutations(range(y.dim())):
                if tuple(y.shape[i] for i in order) == tuple(e.shape) and _close(y.permute(order), e):
                    return f"{SHAPE}: the right values with the axes in another order (permute{order})"
        return f"{SHAPE}: the same number of values in another shape (reshape where permute belongs, or an axis lost?)"
    if y.dim() == 0:
        return f"{SHAPE}: one number where {e.numel()} are expected (a mean or sum over too many axes?)"
    if e.dim() == 0:
        return f"{SHAPE}: one number is expected, yours has {y.numel()} (reduce over every axis)"
    try:
        grown = torch.broadcast_shapes(y.shape, e.shape) == y.shape
    except RuntimeError:
        grown = False
    if grown:
        return (f"{SHAPE}: a broadcast made yours bigger: check each term's shape (a per-sample number needs "
                f"shape (B, 1, 1, 1) to scale a (B, C, H, W) tensor)")
    if y.numel() < e.numel():
        return f"{SHAPE}: fewer values than expected (an axis summed or averaged away, or a slice too short?)"
    return f"{SHAPE}: more values than expected (an axis not reduced, or a slice too long?)"


# --- the diagnoses that need the inputs ---------------------------------------------------------

_FAILED = object()


def parameter_names(fn: Callable[..., Any], count: int) -> list[str]:
    """Names of ``fn``'s first ``count`` positional parameters, quoted ("argument k" where they have none)."""
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [f"`{params[i]}`" if i < len(params) else f"argument {i + 1}" for i in range(count)]


def _is_timestep(name: str, value: Any) -> bool:
    if not (name == "t" or name.startswith("t_")):
        return False
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or isinstance(value, torch.Tensor) and _is_integer(value) and value.dim() <= 1


def diagnose_with_inputs(yours: Any, expected: Any, reference_fn: Callable[..., Any], args: Sequence[Any],
                         kwargs: Mapping[str, Any], variants: Mapping[str, Callable[..., Any]] | None = None) -> str:
    """The first mistake that explains ``yours``: a named variant, an input returned, two inputs swapped, a
    timestep off by one, the returned values in another order, an input ignored or negated; "" if none."""
    names = parameter_names(reference_fn, len(args))

    def matches(candidate: Any) -> bool:
        return candidate is not _FAILED and find_mismatch(yours, candidate) is None

    def reference(*new_args: Any, **new_kwargs: Any) -> Any:
        try:
            with torch.random.fork_rng(devices=[]):
                return reference_fn(*new_args, **{**kwargs, **new_kwargs})
        except Exception:  # noqa: BLE001 -- a transformation the reference does not accept: not this mistake
            return _FAILED

    named = []
    for name, variant in (variants or {}).items():
        try:
            with torch.random.fork_rng(devices=[]):
                candidate = variant(*args, **kwargs)
        except Exception:  # noqa: BLE001 -- a variant that does not apply to this case
            continue
        if matches(candidate):
            named.append(name)
    if named:  # two mistakes can give the same numbers on one case: name both
        return "; or ".join(named[:2])
    for name, value in [*zip(names, args), *((f"`{k}`", v) for k, v in kwargs.items())]:
        if isinstance(value, torch.Tensor) and value.numel() > 1 and matches(value):
            return f"{UNCHANGED} {name} unchanged"
    tensors = [(i, a) for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()]
    for (i, a), (j, b) in itertools.combinations(tensors, 2):
        if a.shape == b.shape and not torch.equal(a, b):
            swapped = list(args)
            swapped[i], swapped[j] = b, a
            if matches(reference(*swapped)):
                return f"{names[i]} and {names[j]} {SWAPPED}"
    for i, (name, value) in enumerate(zip(names, args)):
        if _is_timestep(name.strip("`"), value):
            for step in (-1, 1):
                moved = list(args)
                moved[i] = (value + step).clamp(min=0) if isinstance(value, torch.Tensor) else value + step
                if matches(reference(*moved)):
                    return f"{OFF_BY_ONE_T}: yours is the answer for {name.strip('`')} {'+' if step > 0 else '−'} 1"
    if isinstance(expected, tuple) and 2 <= len(expected) <= 4:
        for order in itertools.permutations(range(len(expected))):
            if list(order) != sorted(order) and matches(tuple(expected[k] for k in order)):
                return "the right values returned in the wrong order"
    for i, a in tensors:
        if a.dim() >= 1 and a.abs().sum() > 0:
            if matches(reference(*args[:i], torch.zeros_like(a), *args[i + 1:])):
                return f"{names[i]} has no effect in yours (as if it were zero)"
            if matches(reference(*args[:i], -a, *args[i + 1:])):
                return f"{SIGN} of the {names[i]} term"
    return ""


def explain_error(error: BaseException) -> str:
    """A diagnosis for an exception the learner's code raised ("" when none applies)."""
    text = str(error)
    if isinstance(error, (RuntimeError, ValueError, IndexError)) and any(
            words in text for words in ("size of tensor", "shape", "must match", "dimension", "broadcast", "out of range",
                                        "out of bounds", "Expected", "mat1 and mat2", "size mismatch")):
        return f"{SHAPE}: print the shapes of the tensors you combine"
    if "scalar type" in text or "dtype" in text:
        return f"{DTYPE}: the tensors you combine have different dtypes (use .float())"
    if isinstance(error, (TypeError, AttributeError)) and "NoneType" in text:
        return "a None where a value belongs (a helper without `return`?)"
    if isinstance(error, AttributeError) and ("'int' object" in text or "'float' object" in text):
        return "a Python number where a tensor belongs (a timestep for a batch is a (B,) tensor: torch.full((B,), t))"
    if isinstance(error, ZeroDivisionError):
        return "a division by zero"
    return ""


def first_line(error: BaseException, limit: int = 160) -> str:
    """The error's message up to its first detail ("modified by an inplace operation: [torch...]" -> before ": [")."""
    line = (str(error).strip().splitlines() or [""])[0].split(": [")[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- the case's inputs, small -------------------------------------------------------------------

def _short(value: Any, limit: int = 48) -> str:
    """One short description of an input: a tensor's shape and first values, a number, a type."""
    if isinstance(value, torch.Tensor):
        values = value.detach().cpu().flatten()[:3]
        if value.dim() == 0:
            text = _fmt(value.item()) if not value.is_complex() else str(value.item())
        else:
            shown = ", ".join(_fmt(v) for v in values.tolist()) + (", …" if value.numel() > 3 else "")
            kind = "" if value.dtype == torch.float32 else f" {_dtype(value.dtype)}"
            text = f"{tuple(value.shape)}{kind} [{shown}]"
    elif isinstance(value, bool) or value is None:
        text = str(value)
    elif _is_number(value):
        text = _fmt(value) if not (isinstance(value, float) and math.isinf(value)) else str(value)
    elif isinstance(value, (list, tuple)) and _is_number_list(value):
        shown = ", ".join(_fmt(v) if _is_number(v) else "…" for v in value[:4]) + (", …" if len(value) > 4 else "")
        text = f"({shown})" if isinstance(value, tuple) else f"[{shown}]"
    elif isinstance(value, Mapping):
        items = [f"{k}: {_short(v, 12)}" for k, v in list(value.items())[:3]]
        text = "{" + ", ".join(items) + (", …" if len(value) > 3 else "") + "}"
    elif hasattr(value, "num_steps") and not callable(value):
        text = f"{type(value).__name__}(T={value.num_steps})"
    elif isinstance(value, (list, tuple)):
        text = f"{type(value).__name__} of {len(value)}"
    elif isinstance(value, torch.nn.Module):
        first = repr(value).splitlines()[0]
        text = first if first.endswith(")") else type(value).__name__
    else:
        text = getattr(value, "__name__", None) or type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_inputs(reference_fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any],
                    limit: int = 150) -> str:
    """ "x_t (5, 1) [0.34, -1.2, 0.05, …], alpha_bar_t 0.73" for the inputs of a case, cut to ``limit`` chars."""
    names = parameter_names(reference_fn, len(args))
    parts = [f"{name.strip('`')} {_short(value)}" for name, value in zip(names, args)]
    parts += [f"{name}={_short(value)}" for name, value in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
