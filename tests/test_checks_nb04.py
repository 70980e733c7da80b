"""Each notebook-04 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.workshop.checks import nb04
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def training_loss(model, x0, labels, t, noise, alpha_bars, target="eps", sqrt=True, shift=0, drop_labels=False,
                  reduce="mean"):
    """The ε loss with optional mistakes: wrong target, no square roots, ᾱ_{t−shift}, labels lost, sum."""
    ab = alpha_bars[(t - shift).clamp(min=0)].view(-1, *[1] * (x0.dim() - 1))
    a, s = (ab.sqrt(), (1 - ab).sqrt()) if sqrt else (ab, 1 - ab)
    x_t = a * x0 + s * noise
    prediction = model(x_t, t, torch.zeros_like(labels) if drop_labels else labels)
    return F.mse_loss(prediction, noise if target == "eps" else x0, reduction=reduce)


def ddim_update(x_t, eps, a, a_next, swap=False, sqrt_direction=True, clip=False):
    """The deterministic DDIM step with optional mistakes: swapped ᾱ's, no √ on the direction, clipped x̂0."""
    if swap:
        a, a_next = a_next, a
    x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    if clip:
        x0 = x0.clamp(-1, 1)
    direction = (1 - a_next).sqrt() if sqrt_direction else 1 - a_next
    return a_next.sqrt() * x0 + direction * eps


def rescale_only(x_t, eps, a, a_next):
    """Scales x_t by √(ᾱ_next/ᾱ_t), forgetting that the noise part must shrink differently."""
    return (a_next / a).sqrt() * x_t


RIGHT_AND_WRONG = [
    (nb04.check_training_loss, training_loss, [
        (lambda *a: training_loss(*a, target="x0"), "compared with x0"),
        (lambda *a: training_loss(*a, sqrt=False), "square roots missing"),
        (lambda *a: training_loss(*a, shift=1), "off by one timestep"),
        (lambda *a: training_loss(*a, drop_labels=True), "the labels never reach the model"),
        (lambda *a: training_loss(*a, reduce="sum"), "a sum where the mean belongs"),
        (lambda *a: training_loss(*a, reduce="none"), "shape"),
    ]),
    (nb04.check_ddim_update, ddim_update, [
        (lambda *a: ddim_update(*a, swap=True), "`alpha_bar_t` and `alpha_bar_next` swapped"),
        (lambda *a: ddim_update(*a, sqrt_direction=False), "a square root missing on the noise direction"),
        (lambda *a: ddim_update(*a, clip=True), "clipped"),
        (rescale_only, "`eps_hat` has no effect"),
    ]),
    (nb04.check_guided_eps, lambda c, u, w: u + w * (c - u), [
        (lambda c, u, w: c + w * (c - u), "the other convention"),  # Ho & Salimans' own w without saying so
        (lambda c, u, w: w * c, "the conditional prediction scaled"),
        (lambda c, u, w: u + w * (u - c), "the direction reversed"),
        (lambda c, u, w: (c + u) / 2, "w ignored"),
        (lambda c, u, w: u, "returned its input `eps_uncond` unchanged"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_guidance_reference_is_the_courses_guided_denoiser_at_both_ends():
    """w = 0 gives the unconditional prediction, w = 1 the conditional one."""
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(3, 1, 2, 2, generator=g), torch.randn(3, 1, 2, 2, generator=g)
    assert torch.allclose(nb04.reference_guided_eps(cond, uncond, 0.0), uncond)
    assert torch.allclose(nb04.reference_guided_eps(cond, uncond, 1.0), cond)


def test_ddim_reference_final_jump_returns_the_x0_estimate():
    """With ᾱ_next = 1 the DDIM step lands on x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t."""
    x_t, eps, a = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3), torch.tensor(0.7)
    expected = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    assert torch.allclose(nb04.reference_ddim_update(x_t, eps, a, torch.tensor(1.0)), expected, atol=1e-5)
