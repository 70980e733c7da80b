"""Each notebook-03 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb03
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


RIGHT_AND_WRONG = [
    (nb03.check_snr, lambda ab: ab / (1 - ab), [
        (lambda ab: ab.sqrt() / (1 - ab).sqrt(), "a square root too many"),  # amplitudes instead of variances
        (lambda ab: (1 - ab) / ab, "upside down"),  # noise-to-signal
        (lambda ab: torch.log(ab / (1 - ab)), "the log of the SNR"),
        (lambda ab: ab, "returned its input `alpha_bars` unchanged"),
    ]),
    (nb03.check_v_target, lambda x0, e, ab: ab.sqrt() * e - (1 - ab).sqrt() * x0, [
        (lambda x0, e, ab: ab.sqrt() * x0 - (1 - ab).sqrt() * e, "`x0` and `eps` swapped"),
        (lambda x0, e, ab: ab.sqrt() * e + (1 - ab).sqrt() * x0, "wrong sign of the `x0` term"),
        (lambda x0, e, ab: ab * e - (1 - ab) * x0, "square roots missing"),
        (lambda x0, e, ab: (1 - ab).sqrt() * x0 - ab.sqrt() * e, "wrong sign"),
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


def test_x0_from_v_inverts_the_v_target():
    g = torch.Generator().manual_seed(0)
    x0, eps, ab = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g), torch.tensor(0.3)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = nb03.reference_v_target(x0, eps, ab)
    torch.testing.assert_close(nb03.reference_x0_from_v(x_t, v, ab), x0, rtol=1e-5, atol=1e-5)
