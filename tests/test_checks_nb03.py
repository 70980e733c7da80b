"""Each notebook-03 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import math

import pytest
import torch

from course_lib.workshop.checks import nb03
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def cosine_betas(T, offset=0.008, clip=True, points=1, power=2, stretch=True, beta_from_alpha_bar=False,
                 dtype=torch.float64):
    """The cosine schedule with optional mistakes: no clip, a T-point grid, cos not squared, the offset not
    divided by 1 + o, β = 1 − ᾱ."""
    s = torch.arange(T + points, dtype=dtype) / T
    f = torch.cos((s + offset) / ((1 + offset) if stretch else 1) * math.pi / 2) ** power
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] if beta_from_alpha_bar else 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=0.999) if clip else betas


RIGHT_AND_WRONG = [
    (nb03.check_snr, lambda ab: ab / (1 - ab), [
        (lambda ab: ab.sqrt() / (1 - ab).sqrt(), "a square root too many"),  # amplitudes instead of variances
        (lambda ab: (1 - ab) / ab, "upside down"),  # noise-to-signal
        (lambda ab: torch.log(ab / (1 - ab)), "the log of the SNR"),
        (lambda ab: ab, "returned its input `alpha_bars` unchanged"),
    ]),
    (nb03.check_cosine_betas, cosine_betas, [
        (lambda T, o: cosine_betas(T, o, clip=False), "clip β at 0.999"),  # the last step β = 1 erases everything
        (lambda T, o: cosine_betas(T, o, points=0), "one β short"),  # T grid points: one β short
        (lambda T, o: cosine_betas(T, o, power=1), "cos not squared"),  # cos, not cos²
        (lambda T, o: cosine_betas(T, o, stretch=False), "the offset not divided by 1 + o"),  # (s + o)·π/2: the curve passes 0 before s = 1
        (lambda T, o: cosine_betas(T, o, beta_from_alpha_bar=True), "β_t = 1 − ᾱ_t"),  # β_t = 1 − ᾱ_t
    ]),
    (nb03.check_x0_from_v, lambda x_t, v, ab: ab.sqrt() * x_t - (1 - ab).sqrt() * v, [
        (lambda x_t, v, ab: (1 - ab).sqrt() * x_t + ab.sqrt() * v, "that is ε, not x0"),
        (lambda x_t, v, ab: ab.sqrt() * x_t + (1 - ab).sqrt() * v, "wrong sign of the `v` term"),
        (lambda x_t, v, ab: (x_t - (1 - ab).sqrt() * v) / ab.sqrt(), "v treated as ε"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_cosine_betas_in_float32_pass_and_the_clip_is_diagnosed(capsys):
    assert nb03.check_cosine_betas(lambda T, o: cosine_betas(T, o, dtype=torch.float32)) is True
    capsys.readouterr()
    assert nb03.check_cosine_betas(lambda T, o: cosine_betas(T, o, clip=False)) is False
    assert "clip β at 0.999" in capsys.readouterr().out


def test_x0_from_v_reference_inverts_the_v_target():
    g = torch.Generator().manual_seed(0)
    x0, eps, ab = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g), torch.tensor(0.3)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    torch.testing.assert_close(nb03.reference_x0_from_v(x_t, v, ab), x0, rtol=1e-5, atol=1e-5)
