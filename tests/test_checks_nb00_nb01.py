"""Each check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb00, nb01
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def trainable(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def noisy_batch(x0, alpha_bars, generator, t_range=(0, 0), one_t=False, noise_first=False, sqrt=True,
                broadcast=True):
    """The training batch with optional mistakes: t off by one, one t for the batch, ε drawn first,
    ᾱ without square roots, ᾱ_t not reshaped to broadcast."""
    batch, T = x0.shape[0], len(alpha_bars)
    if noise_first:
        eps = torch.randn(x0.shape, generator=generator)
    t = torch.randint(t_range[0], T + t_range[1], (1 if one_t else batch,), generator=generator).clamp(max=T - 1)
    t = t.expand(batch)
    if not noise_first:
        eps = torch.randn(x0.shape, generator=generator)
    ab = alpha_bars[t].reshape(batch, *[1] * (x0.dim() - 1)) if broadcast else alpha_bars[t]
    a, s = (ab.sqrt(), (1 - ab).sqrt()) if sqrt else (ab, 1 - ab)
    return a * x0 + s * eps, t, eps


RIGHT_AND_WRONG = [
    (nb00.check_to_model_range, lambda im: im.float() / 127.5 - 1, [
        (lambda im: im.float() / 255, "scaled to [0, 1]"),
        (lambda im: im.float() / 128 - 1, "a scale and a shift off"),
        (lambda im: (im.float() - 128) / 127.5, "a constant offset"),
        (lambda im: im.double() / 127.5 - 1, "wrong dtype"),
        (lambda im: im, "returned its input `image` unchanged"),
        (lambda im: (im.float() / 127.5 - 1).flatten(), "shape"),
    ]),
    (nb00.check_count_parameters, trainable, [
        (lambda m: len(list(m.parameters())), "counted the tensors"),
        (lambda m: sum(p.numel() for p in m.parameters()), "frozen parameters counted too"),
        (lambda m: sum(p.numel() for n, p in m.named_parameters() if "weight" in n), "the biases left out"),
        (lambda m: trainable(m) + 0.5, "expected a whole number"),
    ]),
    (nb01.check_forward_step, lambda x, a, e: a.sqrt() * x + (1 - a).sqrt() * e, [
        (lambda x, a, e: a * x + (1 - a) * e, "square roots missing"),
        (lambda x, a, e: a.sqrt() * x + (1 - a) * e, "a square root missing on the noise scale"),
        (lambda x, a, e: (1 - a).sqrt() * x + a.sqrt() * e, "`x_prev` and `eps` swapped"),
        (lambda x, a, e: a.sqrt() * x - (1 - a).sqrt() * e, "wrong sign of the `eps` term"),
        (lambda x, a, e: a.sqrt() * x, "`eps` has no effect"),
    ]),
    (nb01.check_alpha_bar, lambda a: torch.cumprod(a, 0), [
        (lambda a: torch.cumsum(a, 0), "a running sum"),
        (lambda a: torch.prod(a).expand_as(a), "one product of all steps"),
        (lambda a: torch.cat([torch.ones(1), torch.cumprod(a, 0)[:-1]]), "off by one timestep"),
        (lambda a: a, "returned its input `alphas` unchanged"),
    ]),
    (nb01.check_noisy_batch, noisy_batch,
     [(lambda *a: noisy_batch(*a, t_range=(1, 1)), "code timesteps are 0 … T−1"),  # paper timesteps 1 … T
      (lambda *a: noisy_batch(*a, t_range=(0, -1)), "upper bound is exclusive"),  # randint's bound taken as inclusive
      (lambda *a: noisy_batch(*a, one_t=True), "draw one per example"),
      (lambda *a: noisy_batch(*a, noise_first=True), "ε drawn before t"),
      (lambda *a: noisy_batch(*a, sqrt=False), "square roots missing"),
      (lambda *a: noisy_batch(*a, broadcast=False), "a shape or broadcast error")]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys, hint=check is nb01.check_noisy_batch)


def test_noisy_batch_diagnoses_the_timestep_range(capsys):
    assert nb01.check_noisy_batch(lambda *a: noisy_batch(*a, t_range=(1, 1))) is False
    assert "timesteps were [1, 2, 3, 4]" in capsys.readouterr().out
    assert nb01.check_noisy_batch(lambda *a: noisy_batch(*a, one_t=True)) is False
    assert "the same timestep" in capsys.readouterr().out


def test_noisy_batch_reference_is_the_course_loss_draw():
    """The reference draws t then ε exactly as course_lib.diffusion.objectives.diffusion_loss does."""
    from course_lib.diffusion.objectives import diffusion_loss
    from course_lib.diffusion.schedules import make_schedule
    schedule, x0 = make_schedule("linear", 50), torch.randn(8, 2)
    seen = {}

    def model(x_t, t):
        seen["x_t"], seen["t"] = x_t, t
        return torch.zeros_like(x_t)

    diffusion_loss(model, x0, schedule, generator=torch.Generator().manual_seed(3))
    x_t, t, _ = nb01.reference_noisy_batch(x0, schedule.alpha_bars, torch.Generator().manual_seed(3))
    assert torch.equal(t, seen["t"]) and torch.allclose(x_t, seen["x_t"], atol=1e-6)
