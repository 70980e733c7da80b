"""Each notebook-14 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb14
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def noise_frames(x0, t, schedule, eps, one_level=False, no_sqrt=False, per_step=False):
    if one_level:
        t = t[:, :1].expand_as(t)
    a = (schedule.alphas if per_step else schedule.alpha_bars)[t].view(*t.shape, 1, 1, 1)
    return a * x0 + (1 - a) * eps if no_sqrt else a.sqrt() * x0 + (1 - a).sqrt() * eps


def pyramid(frames, levels, known, delay, no_start=False, from_zero=False, noisy_known=False, no_clamp=False):
    rows = levels + delay * (frames - known - 1) + 1
    out = []
    for i in range(1 if no_start else 0, rows):
        row = []
        for j in range(frames):
            level = levels - i + delay * (j - (0 if from_zero else known))
            if not no_clamp:
                level = min(max(level, 0), levels)
            row.append(0 if j < known and not noisy_known else level)
        out.append(row)
    return torch.tensor(out)


def rolling_step(model_fn, x, t, t_next, schedule, wrap_clean=False, raw_t=False, all_frames=False):
    B, F = x.shape[:2]
    eps = model_fn(x, (t if raw_t else t.clamp(min=0)).expand(B, F))
    out = x.clone()
    for j in range(F):
        if t_next[j] == t[j] and not all_frames:
            continue
        a = schedule.alpha_bars[max(int(t[j]), 0)]
        x0 = (x[:, j] - (1 - a).sqrt() * eps[:, j]) / a.sqrt()
        a_next = schedule.alpha_bars[int(t_next[j])] if (t_next[j] >= 0 or wrap_clean) else torch.tensor(1.0)
        out[:, j] = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps[:, j]
    return out


RIGHT_AND_WRONG = [
    (nb14.check_noise_frames, noise_frames,
     [(lambda *a: noise_frames(*a, one_level=True), "one level for the whole clip"),
      (lambda *a: noise_frames(*a, no_sqrt=True), "square roots missing"),
      (lambda *a: noise_frames(*a, per_step=True), "the one-step α_t"),
      (lambda x0, t, schedule, eps: x0, "returned its input")]),
    (nb14.check_pyramid, pyramid,
     [(lambda *a: pyramid(*a, no_start=True), "the start row missing"),
      (lambda *a: pyramid(*a, from_zero=True), "the delay counted from frame 0"),
      (lambda *a: pyramid(*a, noisy_known=True), "the known frames left noisy"),
      (lambda *a: pyramid(*a, no_clamp=True), "no clamp")]),
    (nb14.check_rolling_step, rolling_step,
     [(lambda *a: rolling_step(*a, wrap_clean=True), "alpha_bars[-1] for a clean frame"),
      (lambda *a: rolling_step(*a, raw_t=True), "the model told t = −1"),
      (lambda *a: rolling_step(*a, all_frames=True), "every frame moved")]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_every_exercise_has_three_levels_of_hints():
    assert set(nb14.HINTS) == {"14.1", "14.2", "14.3"} and all(len(h) == 3 for h in nb14.HINTS.values())
