"""Each notebook-08 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb08
from course_lib.diffusion.forward import q_sample
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def replace_known(x_next, known, mask, t_next, schedule, noise, level=0, clean_at_end=True):
    """The replacement step with optional mistakes: noise to t_next + level, or never paste clean frames."""
    if t_next < 0 and clean_at_end:
        known_now = known
    else:
        known_now = q_sample(known, min(max(t_next + level, 0), schedule.num_steps - 1), schedule, noise=noise)
    return mask * known_now + (1 - mask) * x_next


def guided_x0(model_fn, x_t, t, known, mask, schedule, weight, through_model=True, factor=None, sign=-1):
    """Reconstruction guidance with optional mistakes: gradient w.r.t. x0_hat, a wrong factor, a wrong sign."""
    x = x_t.detach().requires_grad_(True)
    tt = torch.full((x.shape[0],), t, dtype=torch.long)
    ab = schedule.alpha_bars[t]
    x0 = (x - (1 - ab).sqrt() * model_fn(x, tt)) / ab.sqrt()
    if through_model:
        (grad,) = torch.autograd.grad(((known - x0) * mask).pow(2).sum(), x)
    else:
        grad = -2 * (known - x0) * mask
    factor = weight * ab.sqrt() / 2 if factor is None else factor(weight, ab)
    return (x0 + sign * factor * grad).detach()


def rollout(predict, first, total_frames, keep, schedule, context_noise, generator, append_all=False,
            from_start=False, cut=True, noise_step=0, always_noise=False, noise_once=False):
    """Autoregressive rollout with conditioning augmentation, with optional mistakes: the whole chunk appended
    (its noised context with it), the first frames as context, no cut, noise at step context_noise + noise_step,
    noise drawn also for context_noise = 0, one noise draw for every chunk."""
    frames, video = first.shape[1], first
    fixed = torch.randn(first[:, -keep:].shape, generator=generator) if noise_once else None
    while video.shape[1] < total_frames:
        past = video[:, :keep] if from_start else video[:, -keep:]
        if context_noise > 0 or always_noise:
            step = min(max(context_noise + noise_step, 0), schedule.num_steps - 1)
            past = q_sample(past, step, schedule, noise=fixed, generator=None if noise_once else generator)
        chunk = predict(past, frames)
        video = torch.cat([video, chunk if append_all else chunk[:, keep:]], 1)
    return video[:, :total_frames] if cut else video


RIGHT_AND_WRONG = [
    (nb08.check_replace_known, replace_known, [
        (lambda *a: replace_known(*a[:3], a[3] + 1 if a[3] >= 0 else a[3], *a[4:]),
         "yours is the answer for t_next + 1"),  # noised to t, not t_next
        (lambda *a: replace_known(*a, clean_at_end=False) if a[3] < 0 else replace_known(*a), "go in clean"),
        (lambda x_next, known, mask, t_next, s, noise: mask * known + (1 - mask) * x_next, "pasted clean at every step"),
        (lambda x_next, known, mask, t_next, s, noise: (1 - mask) * replace_known(x_next, known, mask, t_next, s, noise)
         + mask * x_next, "returned its input `x_next` unchanged"),  # the known frames never pasted
        (lambda x_next, known, mask, t_next, s, noise: replace_known(x_next, known, 1 - mask, t_next, s, noise),
         "the mask inverted"),
    ]),
    (nb08.check_guided_x0, guided_x0, [
        (lambda *a: guided_x0(*a, through_model=False), "with respect to x̂0"),
        (lambda *a: guided_x0(*a, factor=lambda w, ab: w / 2), "√ᾱ_t missing"),
        (lambda *a: guided_x0(*a, sign=+1), "wrong sign"),
        (lambda m, x, t, k, mask, s, w: guided_x0(m, x, t, k, torch.ones_like(mask), s, w), "the mask ignored"),
    ]),
    (nb08.check_rollout, rollout,
     [(lambda *a: rollout(*a, append_all=True), "the whole chunk appended"),
      (lambda *a: rollout(*a, from_start=True), "the context taken from the start"),
      (lambda *a: rollout(*a, cut=False), "not cut to total_frames"),
      (lambda *a: rollout(*a, noise_step=-1), "off by one timestep"),
      (lambda *a: rollout(*a, always_noise=True), "with context_noise = 0 the predictor must see the last frames"),
      (lambda *a: rollout(*a, noise_once=True), "one noise draw for every chunk")]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_rollout_check_says_the_video_must_stay_clean(capsys):
    assert nb08.check_rollout(lambda *a: rollout(*a, append_all=True)) is False
    assert "the whole chunk appended" in capsys.readouterr().out  # the named mistake speaks first
    assert "your video holds noised frames" in nb08._keeps_clean_frames_and_noises_the_context(
        lambda *a: rollout(*a, append_all=True))
    assert nb08.check_rollout(lambda *a: rollout(*a, always_noise=True)) is False
    assert "context_noise = 0" in capsys.readouterr().out


def test_rollout_reference_is_predict_future_with_context_noise():
    """The reference's noised context is what course_lib's frame-conditional predictor shows its model."""
    from course_lib.diffusion.schedules import make_schedule
    schedule, seen = make_schedule("linear", 100), []

    def predict(past, frames):
        seen.append(past)
        return torch.cat([past, past[:, -1:].expand(-1, frames - past.shape[1], -1, -1, -1)], 1)

    first = torch.zeros(1, 4, 1, 2, 2)
    nb08.reference_rollout(predict, first, 6, 2, schedule, 40, torch.Generator().manual_seed(0))
    expected = q_sample(first[:, -2:], 40, schedule, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen[0], expected)
