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


def _sqrt_psd(matrix):
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def fid(features1, features2, cross="eigen", biased=False, distance=False):
    """d² from features with optional mistakes: √ of the elementwise product Σ1⊙Σ2, √ of diagonals only,
    √ of Tr(Σ1Σ2), covariances divided by N, d instead of d²."""
    f1, f2 = features1.double(), features2.double()
    correction = 0 if biased else 1
    s1, s2 = torch.cov(f1.T, correction=correction), torch.cov(f2.T, correction=correction)
    if cross == "eigen":
        root1 = _sqrt_psd(s1)
        trace_sqrt = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp(min=0).sqrt().sum()
    elif cross == "elementwise":
        trace_sqrt = (s1 * s2).clamp(min=0).sqrt().trace()
    elif cross == "diagonal":
        trace_sqrt = (s1.diagonal() * s2.diagonal()).sqrt().sum()
    else:
        trace_sqrt = (s1 @ s2).trace().sqrt()
    d2 = (f1.mean(0) - f2.mean(0)).pow(2).sum() + s1.trace() + s2.trace() - 2 * trace_sqrt
    return d2.clamp(min=0).sqrt() if distance else d2


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
    (nb10.check_fid_from_features, fid,
     [(lambda a, b: fid(a, b, cross="elementwise"), "the square root taken elementwise"),
      (lambda a, b: fid(a, b, cross="diagonal"), "only the diagonals"),
      (lambda a, b: fid(a, b, cross="trace"), "the square root of the trace"),
      (lambda a, b: fid(a, b, biased=True), "covariances divided by N"),
      (lambda a, b: fid(a, b, distance=True), "d², not d")]),
    (nb10.check_inception_score, inception_score, [
        (lambda p: inception_score(p, log=torch.log2), "log base 2"),
        (lambda p: inception_score(p, use_exp=False), "an exp missing"),
        (lambda p: inception_score(p, marginal=False), "a uniform p(y)"),
        (lambda p: inception_score(p, reverse=True), "the KL runs from"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_references_on_known_values():
    x = torch.zeros(2, 1, 4, 4)
    y = x + torch.tensor([0.2, 0.1]).view(2, 1, 1, 1)
    torch.testing.assert_close(nb10.reference_psnr(x, y, 2.0), torch.tensor([20.0, 10 * math.log10(400)]))
    a = torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)  # mean (1, 1), Σ = 2·[[1, 1], [1, 1]]
    # b = 2a + 2: mean (4, 4), Σ = 8·[[1, 1], [1, 1]]; ‖Δμ‖² = 18, Tr Σ = 4 + 16, Tr (Σ1Σ2)^½ = 8
    assert nb10.reference_fid_from_features(a, 2 * a + 2) == pytest.approx(18 + 4 + 16 - 2 * 8)
    assert nb10.reference_inception_score(torch.eye(5, dtype=torch.float64)).item() == pytest.approx(5.0)
    assert nb10.reference_inception_score(torch.full((6, 3), 1 / 3, dtype=torch.float64)).item() == pytest.approx(1.0)


def test_fid_diagnoses_d_for_d_squared(capsys):
    assert nb10.check_fid_from_features(lambda a, b: fid(a, b, distance=True)) is False
    assert "(d², not d)" in capsys.readouterr().out
