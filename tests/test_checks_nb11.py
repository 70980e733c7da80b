"""Each notebook-11 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import math

import pytest
import torch

from course_lib.workshop.checks import nb11
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


# --- 11.1 DDIM timesteps ----------------------------------------------------------------------------

def trailing(T, S):
    return [round(T - i * T / S) - 1 for i in range(S)]


def leading(T, S):  # Song et al.'s own spacing: never starts at the noisiest step
    return [i * (T // S) for i in range(S)][::-1]


def linspace(T, S):
    return torch.linspace(0, T - 1, S).round().long().flip(0)


def integer_stride(T, S):  # T // S between steps: drifts from the even spacing when S does not divide T
    return [T - 1 - i * (T // S) for i in range(S)]


def truncated(T, S):
    return [int(T - i * T / S) - 1 for i in range(S)]


# --- 11.2 conv output bytes -------------------------------------------------------------------------

def conv_bytes(shape, cout, k, stride, padding, nbytes, pad=True, ceil=False, channels="out", bits=False):
    n, cin, h, w = shape
    size = (lambda d: math.ceil((d + 2 * padding * pad - k) / stride) + 1) if ceil else \
        (lambda d: (d + 2 * padding * pad - k) // stride + 1)
    c = cout if channels == "out" else cin
    return n * c * size(h) * size(w) * nbytes * (8 if bits else 1)


def no_stride(shape, cout, k, stride, padding, nbytes):
    n, _, h, w = shape
    return n * cout * (h + 2 * padding - k + 1) * (w + 2 * padding - k + 1) * nbytes


# --- 11.3 Amdahl over a profile -----------------------------------------------------------------------

def speedup(seconds, factors):
    return sum(seconds.values()) / sum(t / factors.get(k, 1.0) for k, t in seconds.items())


def weighted_mean_factor(seconds, factors):  # averages the factors by time: ignores that time, not speed, adds
    return sum(t * factors.get(k, 1.0) for k, t in seconds.items()) / sum(seconds.values())


def only_the_sped_up_parts(seconds, factors):
    sped = {k: t for k, t in seconds.items() if k in factors}
    return sum(sped.values()) / sum(t / factors[k] for k, t in sped.items()) if sped else 1.0


def time_ratio(seconds, factors):  # new time / old time: the reciprocal of the speed-up
    return 1 / speedup(seconds, factors)


def mean_factor(seconds, factors):
    return sum(factors.values()) / len(factors) if factors else 1.0


RIGHT_AND_WRONG = [
    (nb11.check_ddim_timesteps, trailing, [
        (leading, "the leading spacing"),
        (linspace, "evenly spaced from 0 to T − 1"),
        (integer_stride, "a whole-number stride"),
        (truncated, "truncated"),
        (lambda T, S: trailing(T, S)[::-1], "the right values in reverse order"),
        (lambda T, S: [t + 1 for t in trailing(T, S)], "off by one: yours = expected + 1"),
        (lambda T, S: [T - i * T / S - 1 for i in range(S)], "expected a whole number"),  # not rounded
        (lambda T, S: trailing(T, S)[:-1], "off by one: one value too few"),
    ]),
    (nb11.check_conv_output_bytes, conv_bytes, [
        (lambda *a: conv_bytes(*a, pad=False), "the padding left out"),
        (lambda *a: conv_bytes(*a, ceil=True), "rounded up"),
        (lambda *a: conv_bytes(*a, channels="in"), "the input channels"),
        (lambda *a: conv_bytes(*a, bits=True), "bits, not bytes"),
        (no_stride, "the stride ignored"),
        (lambda *a: conv_bytes(*a) / 3 * 3 + 0.25, "expected a whole number"),
    ]),
    (nb11.check_speedup_from_profile, speedup, [
        (weighted_mean_factor, "averaged by time"),
        (only_the_sped_up_parts, "only the sped-up parts"),
        (time_ratio, "upside down"),
        (mean_factor, "the mean of the factors"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_timesteps_may_come_as_a_tensor_or_a_tuple(capsys):
    assert nb11.check_ddim_timesteps(lambda T, S: torch.tensor(trailing(T, S))) is True
    assert nb11.check_ddim_timesteps(lambda T, S: tuple(trailing(T, S))) is True
    assert nb11.check_ddim_timesteps(lambda T, S: None) is False
    assert "✗ Exercise 11.1" in capsys.readouterr().out


def test_conv_reference_agrees_with_the_formula_and_a_real_layer():
    shape = (2, 3, 15, 9)
    assert nb11.reference_conv_output_bytes(shape, 5, 3, 2, 1, 4) == 2 * 5 * 8 * 5 * 4
    real = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1)(torch.zeros(shape))
    assert nb11.reference_conv_output_bytes(shape, 5, 3, 2, 1, 4) == real.numel() * real.element_size()


def test_speedup_reference_is_amdahls_law():
    """A fraction p sped up by s: 1 / ((1 − p) + p / s)."""
    p, s = 0.6, 4.0
    assert nb11.reference_speedup_from_profile({"fast": p, "rest": 1 - p}, {"fast": s}) == pytest.approx(1 / (1 - p + p / s))
    assert nb11.reference_speedup_from_profile({"fast": p, "rest": 1 - p}, {"fast": math.inf}) == pytest.approx(1 / (1 - p))
