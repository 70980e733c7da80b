"""Each notebook-09 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb09
from course_lib.diffusion.forward import q_sample
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def sdedit_start_point(x, strength, schedule, noise, to_int=round, scale=None):
    """The SDEdit start with optional mistakes: truncation, strength·T, variances instead of std devs."""
    t = to_int(strength * ((schedule.num_steps - 1) if scale is None else scale(schedule.num_steps)))
    t = min(t, schedule.num_steps - 1)
    return t, q_sample(x, t, schedule, noise=noise)


def renoise(x_next, t_next, t, schedule, noise, from_clean=False, variance=False):
    ab = schedule.alpha_bars
    ratio = ab[t] if from_clean else ab[t] / ab[t_next]
    if variance:
        return ratio * x_next + (1 - ratio) * noise
    return ratio.sqrt() * x_next + (1 - ratio).sqrt() * noise


def interpolate(video, damaged, nearest_only=False):
    """Linear interpolation between intact neighbours; or copying the previous intact frame."""
    out = video.clone()
    intact = [j for j in range(video.shape[1]) if j not in damaged]
    for j in damaged:
        before, after = [a for a in intact if a < j], [b for b in intact if b > j]
        if before and after and not nearest_only:
            a, b = before[-1], after[0]
            out[:, j] = ((b - j) * video[:, a] + (j - a) * video[:, b]) / (b - a)
        else:
            out[:, j] = video[:, before[-1]] if before else video[:, after[0]]
    return out


def midpoint(video, damaged):
    """Always the plain mean of the nearest intact neighbours (wrong for runs of damaged frames)."""
    out = video.clone()
    intact = [j for j in range(video.shape[1]) if j not in damaged]
    for j in damaged:
        before, after = [a for a in intact if a < j], [b for b in intact if b > j]
        if before and after:
            out[:, j] = (video[:, before[-1]] + video[:, after[0]]) / 2
        else:
            out[:, j] = video[:, before[-1]] if before else video[:, after[0]]
    return out


RIGHT_AND_WRONG = [
    (nb09.check_sdedit_start_point, sdedit_start_point, [
        (lambda *a: sdedit_start_point(*a, to_int=int), "truncated"),
        (lambda *a: sdedit_start_point(*a, scale=lambda T: T), "off by one: yours = expected + 1"),
        (lambda x, s, sch, n: (sdedit_start_point(x, s, sch, n)[0],
                               sch.alpha_bars[sdedit_start_point(x, s, sch, n)[0]] * x
                               + (1 - sch.alpha_bars[sdedit_start_point(x, s, sch, n)[0]]) * n), "ᾱ where √ᾱ belongs"),
        # a t_start of 349.65 where 350 is the answer: integers are compared exactly
        (lambda *a: (a[1] * (a[2].num_steps - 1), sdedit_start_point(*a)[1]), "expected a whole number"),
        (lambda *a: sdedit_start_point(*a)[1], "return all 2 values"),
    ]),
    (nb09.check_renoise, renoise, [
        (lambda *a: renoise(*a, from_clean=True), "ᾱ_t alone"),
        (lambda *a: renoise(*a, variance=True), "ᾱ where √ᾱ belongs"),
        (lambda x, t_next, t, s, n: renoise(x, t, t_next, s, n) if t_next > 0 else renoise(x, t_next + 1, t, s, n),
         "a division by zero, or the square root or log of a negative number"),  # t and t_next swapped: 1 − ᾱ_t_next/ᾱ_t < 0 under the square root
        (lambda x, t_next, t, s, n: x, "returned its input `x_next` unchanged"),
    ]),
    (nb09.check_interpolate_frames, interpolate, [
        (lambda v, d: interpolate(v, d, nearest_only=True), "copied the nearest intact frame"),
        (midpoint, "the plain mean"),
        (lambda v, d: v, "returned its input `video` unchanged"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)
