"""Each notebook-10 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import math

import pytest
import torch

from course_lib.workshop.checks import nb10
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def psnr(x, y, data_range, log=torch.log10, factor=10, square=True, per_image=True):
    """PSNR with optional mistakes: another log, 20·log10, the range not squared, one MSE for the batch."""
    mse = (x - y).pow(2).flatten(1).mean(1) if per_image else (x - y).pow(2).mean()
    return factor * log((data_range**2 if square else data_range) / mse)


def frechet_1d(mu1, var1, mu2, var2, root=True, distance=False, means=True):
    """d² with optional mistakes: no square root of the product, d instead of d², no mean term."""
    cross = (var1 * var2).sqrt() if root else var1 * var2
    d2 = ((mu1 - mu2) ** 2 if means else 0) + var1 + var2 - 2 * cross
    return d2.clamp_min(0).sqrt() if distance else d2


def inception_score(probs, log=torch.log, use_exp=True, marginal=True, reverse=False):
    """IS with optional mistakes: log base 2, no exp, a uniform p(y), KL(p(y) ‖ p(y|x))."""
    p_y = probs.mean(0, keepdim=True) if marginal else torch.full_like(probs[:1], 1 / probs.shape[1])
    a, b = (p_y.expand_as(probs), probs) if reverse else (probs, p_y)
    kl = (a * (log(a) - log(b))).sum(1).mean()
    return kl.exp() if use_exp else kl


RIGHT_AND_WRONG = [
    (nb10.check_psnr, psnr, [
        (lambda x, y, r: psnr(x, y, r, log=torch.log), "the natural log"),
        (lambda x, y, r: psnr(x, y, r, factor=20), "20 · log10"),
        (lambda x, y, r: psnr(x, y, r, square=False), "the range not squared"),
        (lambda x, y, r: psnr(x, y, 1.0), "data_range ignored"),  # the range of [0, 1] images, whatever was given
        (lambda x, y, r: psnr(x, y, 2.0), "data_range ignored"),  # the range of [-1, 1] images, whatever was given
        (lambda x, y, r: psnr(x, y, r, per_image=False), "one number where 3 are expected"),
    ]),
    (nb10.check_frechet_1d, frechet_1d, [
        (lambda *a: frechet_1d(*a, root=False), "a square root missing on the product"),
        (lambda *a: frechet_1d(*a, distance=True), "a square root too many"),
        (lambda *a: frechet_1d(*a, means=False), "the mean term"),
        (lambda m1, v1, m2, v2: (m1 - m2) ** 2 + (v1 - v2) ** 2, "variances taken for standard deviations"),
    ]),
    (nb10.check_inception_score, inception_score, [
        (lambda p: inception_score(p, log=torch.log2), "log base 2"),
        (lambda p: inception_score(p, use_exp=False), "an exp missing"),
        (lambda p: inception_score(p, marginal=False), "a uniform p(y)"),
        (lambda p: inception_score(p, reverse=True), "KL(p(y) ‖ p(y|x))"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_references_on_known_values():
    x = torch.zeros(2, 1, 4, 4)
    y = x + torch.tensor([0.2, 0.1]).view(2, 1, 1, 1)
    torch.testing.assert_close(nb10.reference_psnr(x, y, 2.0), torch.tensor([20.0, 10 * math.log10(400)]))
    one = torch.tensor([1.0], dtype=torch.float64)
    # N(0, 1) vs N(3, 4): 9 + 1 + 4 - 2·2 = 10
    assert nb10.reference_frechet_1d(0 * one, one, 3 * one, 4 * one).item() == pytest.approx(10.0)
    assert nb10.reference_inception_score(torch.eye(5, dtype=torch.float64)).item() == pytest.approx(5.0)
    assert nb10.reference_inception_score(torch.full((6, 3), 1 / 3, dtype=torch.float64)).item() == pytest.approx(1.0)
