"""Each notebook-09 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb09
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.samplers import ddim_step, ddim_timesteps
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong, stub


def sdedit(model_fn, x, strength, schedule, steps, generator, to_int=round, scale=None, keep_at_zero=True,
           all_steps=False, from_top=False):
    """SDEdit with optional mistakes: truncation, strength·T, strength 0 still noised, `steps` steps whatever the
    strength, timesteps spaced over the whole chain."""
    T = schedule.num_steps
    t0 = min(to_int(strength * ((T - 1) if scale is None else scale(T))), T - 1)
    if strength == 0 and keep_at_zero:
        return x.clone()
    x_t = q_sample(x, t0, schedule, generator=generator)
    n = min(steps, t0 + 1) if all_steps else max(1, round(steps * (t0 + 1) / T))
    timesteps = ddim_timesteps(T, n) if from_top else ddim_timesteps(t0 + 1, n)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        x_t = ddim_step(model_fn, x_t, t, t_next, schedule, clip_x0=False).x
    return x_t


def repaint(model_fn, known, mask, schedule, steps, resample, generator, last_rounds=False, no_jump=False,
            known_at_t=False, jump_from_clean=False):
    """RePaint with optional mistakes: r rounds at the last step too, rounds without the jump back up, the known
    part noised to t instead of t_next, the jump taken from clean data (ᾱ_t) instead of from t_next."""
    alpha_bars = schedule.alpha_bars
    x = torch.randn(known.shape, generator=generator)
    timesteps = ddim_timesteps(schedule.num_steps, steps)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        rounds = resample if t_next >= 0 or last_rounds else 1
        for u in range(rounds):
            step = ddim_step(model_fn, x, t, t_next, schedule, eta=1.0, generator=generator, clip_x0=False).x
            level = t if known_at_t else t_next
            known_now = known if t_next < 0 else q_sample(known, level, schedule, generator=generator)
            x_next = mask * known_now + (1 - mask) * step
            if u + 1 < rounds and t_next >= 0 and not no_jump:
                ratio = alpha_bars[t] if jump_from_clean else alpha_bars[t] / alpha_bars[t_next]
                x = ratio.sqrt() * x_next + (1 - ratio).sqrt() * torch.randn(x.shape, generator=generator)
            else:
                x = x_next
    return x


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
    (nb09.check_sdedit, sdedit,
     [(lambda *a: sdedit(*a, to_int=int), "truncated"),
      (lambda *a: sdedit(*a, scale=lambda T: T), "strength·T where strength·(T − 1) belongs"),
      (lambda *a: sdedit(*a, keep_at_zero=False), "strength 0 must return the clip unchanged"),
      (lambda *a: sdedit(*a, all_steps=True), "`steps` steps whatever the strength"),
      (lambda *a: sdedit(*a, from_top=True), "the steps spaced over the whole chain")]),
    (nb09.check_repaint, repaint,
     [(lambda *a: repaint(*a, last_rounds=True), "except the last step to clean data"),
      (lambda *a: repaint(*a, no_jump=True), "no jump back up between the rounds"),
      (lambda *a: repaint(*a, known_at_t=True), "the known part noised to step t"),
      (lambda *a: repaint(*a, jump_from_clean=True), "taken from clean data")]),
    (nb09.check_interpolate_frames, interpolate, [
        (lambda v, d: interpolate(v, d, nearest_only=True), "copied the nearest intact frame"),
        (midpoint, "the plain mean"),
        (lambda v, d: v, "returned its input `video` unchanged"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_repaint_counts_its_rounds_and_the_course_sampler_agrees(capsys):
    """RePaint takes each step r times but the last once; the course's conditional sampler does the same."""
    assert nb09.check_repaint(lambda *a: repaint(*a, last_rounds=True)) is False
    assert "called the model 15 times" in capsys.readouterr().out
    from course_lib.diffusion.schedules import make_schedule
    schedule = make_schedule("linear", 100)
    model = nb09._CountingModel(nb09.gaussian_2d_denoiser(schedule))
    nb09.reference_repaint(model, torch.zeros(4, 2), torch.tensor([[1.0, 0.0]]), schedule, 5, 3,
                           torch.Generator().manual_seed(0))
    assert model.calls == 4 * 3 + 1


def test_sdedit_strength_zero_is_diagnosed(capsys):
    assert nb09.check_sdedit(lambda *a: sdedit(*a, keep_at_zero=False)) is False
    assert "strength 0 must return the clip unchanged" in capsys.readouterr().out
