"""Each notebook-02 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest

from course_lib.workshop.checks import nb02
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def posterior(x0, x_t, a, ab_prev):
    ab = a * ab_prev
    mean = (1 - a) * ab_prev.sqrt() / (1 - ab) * x0 + (1 - ab_prev) * a.sqrt() / (1 - ab) * x_t
    return mean, (1 - a) * (1 - ab_prev) / (1 - ab)


def ddpm_step(x_t, eps, a, ab_prev, z):
    ab = a * ab_prev
    mean = (x_t - (1 - a) / (1 - ab).sqrt() * eps) / a.sqrt()
    return mean + ((1 - a) * (1 - ab_prev) / (1 - ab)).sqrt() * z


RIGHT_AND_WRONG = [
    (nb02.check_q_posterior, posterior, [
        (lambda x0, x_t, a, abp: (posterior(x0, x_t, a, abp)[0], 1 - a), "the variance β_t where β̃_t"),
        (lambda x0, x_t, a, abp: ((1 - a) * abp / (1 - a * abp) * x0 + (1 - abp) * a / (1 - a * abp) * x_t,
                                  posterior(x0, x_t, a, abp)[1]), "square roots missing"),
        (lambda x0, x_t, a, abp: (posterior(x_t, x0, a, abp)[0], posterior(x0, x_t, a, abp)[1]),
         "`x0` and `x_t` swapped"),
        (lambda x0, x_t, a, abp: posterior(x0, x_t, a, abp)[::-1], "the right values returned in the wrong order"),
    ]),
    (nb02.check_predict_x0, lambda x_t, e, ab: (x_t - (1 - ab).sqrt() * e) / ab.sqrt(), [
        (lambda x_t, e, ab: (x_t - (1 - ab) * e) / ab, "square roots missing"),
        (lambda x_t, e, ab: x_t - (1 - ab).sqrt() * e, "not divided by √ᾱ_t"),
        (lambda x_t, e, ab: ab.sqrt() * x_t - (1 - ab).sqrt() * e, "multiplied by √ᾱ_t"),
        (lambda x_t, e, ab: (x_t + (1 - ab).sqrt() * e) / ab.sqrt(), "wrong sign of the `eps_pred` term"),
        (lambda x_t, e, ab: x_t, "returned its input `x_t` unchanged"),
    ]),
    (nb02.check_ddpm_step, ddpm_step, [
        (lambda x_t, e, a, abp, z: ddpm_step(x_t, e, a, abp, z) - ((1 - a) * (1 - abp) / (1 - a * abp)).sqrt() * z
         + (1 - a).sqrt() * z, "σ_t² = β_t"),
        (lambda x_t, e, a, abp, z: (x_t - (1 - a) / (1 - a * abp).sqrt() * e) / a
         + ((1 - a) * (1 - abp) / (1 - a * abp)).sqrt() * z, "a square root missing"),
        (lambda x_t, e, a, abp, z: (x_t - (1 - a) / (1 - a * abp).sqrt() * e) / a.sqrt(), "`z` has no effect"),
        (lambda x_t, e, a, abp, z: (x_t - (1 - a) / (1 - abp).sqrt() * e) / a.sqrt()
         + ((1 - a) * (1 - abp) / (1 - a * abp)).sqrt() * z, "off by one timestep"),
        (lambda x_t, e, a, abp, z: ddpm_step(x_t, e, a, abp, z)[:1], "shape"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_the_references_agree_with_the_closed_forms_of_ho_et_al():
    """The course code (q_posterior + x0_from_eps) and the textbook μθ formula are the same step."""
    import torch
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(6, 2, generator=g) for _ in range(3))
    a, abp = torch.tensor(0.97), torch.tensor(0.4)
    torch.testing.assert_close(nb02.reference_ddpm_step(x_t, eps, a, abp, z), ddpm_step(x_t, eps, a, abp, z),
                               rtol=1e-4, atol=1e-5)
