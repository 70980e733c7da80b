"""Checks for notebook 10 (evaluation). References come from course_lib.metrics."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.metrics.frechet import frechet_distance
from course_lib.metrics.image import psnr
from course_lib.metrics.inception_score import inception_score

HINTS = {
    "10.1": ("PSNR compares each image's mean squared error with the largest possible squared error, in decibels.",
             "one MSE per image (mean over C, H, W), then 10 · log10(data_range² / MSE): log10, the range squared, and "
             "the range you were given."),
    "10.2": ("the Fréchet distance of two Gaussians adds how far apart the means are and how different the spreads are.",
             "d² = (μ1 − μ2)² + σ1² + σ2² − 2·√(σ1² σ2²): the arguments are variances, the last term takes the square "
             "root of their product, and the result is d², not d."),
    "10.3": ("a good generator is confident on each sample and diverse over all of them: compare each sample's class "
             "distribution with the average one.",
             "p(y) is the mean of the rows; KL(p(y|x) ‖ p(y)) = Σ_y p(y|x) · ln(p(y|x) / p(y)) with the natural log; "
             "average the KL over samples, then exp."),
}


def reference_psnr(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """PSNR per image, x, y: (B, C, H, W) -> (B,), via course_lib.metrics.image.psnr."""
    return psnr(x, y, data_range=data_range, reduction="none")


def reference_frechet_1d(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """d² between N(mu1, var1) and N(mu2, var2), elementwise over (K,), via course_lib.metrics.frechet."""
    values = [frechet_distance(a.view(1), v.view(1, 1), b.view(1), w.view(1, 1))
              for a, v, b, w in zip(mu1, var1, mu2, var2)]
    return torch.tensor(values)


def reference_inception_score(probs: torch.Tensor) -> torch.Tensor:
    """IS of a table p(y|x): (N, K) -> 0-dim tensor, via course_lib.metrics.inception_score."""
    return torch.tensor(inception_score(probs=probs))


def check_psnr(learner_fn) -> bool:
    g = torch.Generator().manual_seed(10)
    cases = []
    for shape, noise, data_range in [((3, 1, 8, 8), 0.1, 2.0), ((2, 3, 5, 7), 0.3, 2.0), ((4, 1, 6, 6), 0.05, 1.0)]:
        x = torch.rand(shape, generator=g) * data_range - data_range / 2  # pixels spanning data_range
        noise_level = noise * (1 + torch.arange(shape[0], dtype=torch.float32)).view(-1, 1, 1, 1)  # one level per image
        y = x + noise_level * torch.randn(shape, generator=g)
        cases.append(((x, y, data_range), {}))
    def psnr_with(x, y, data_range, log=torch.log10, factor=10, power=2):
        return factor * log(data_range**power / (x - y).pow(2).flatten(1).mean(1))

    mistakes = {"the natural log where log10 belongs": lambda *a: psnr_with(*a, log=torch.log),
                "20 · log10 is for amplitudes: with the squared range it is 10 · log10": lambda *a: psnr_with(*a, factor=20),
                "the range not squared": lambda *a: psnr_with(*a, power=1),
                "data_range ignored: use the range you were given ([0, 1] images have range 1, [-1, 1] images 2)":
                    lambda x, y, r: psnr_with(x, y, {1.0: 2.0, 2.0: 1.0}.get(r, r))}
    return compare("10.1", learner_fn, reference_psnr, cases, "psnr", variants=mistakes)


def check_frechet_1d(learner_fn) -> bool:
    g = torch.Generator().manual_seed(11)
    cases = []
    for k in (4, 6):
        mu1, mu2 = torch.randn(k, generator=g), torch.randn(k, generator=g)
        var1, var2 = 0.2 + 2 * torch.rand(k, generator=g), 0.2 + 2 * torch.rand(k, generator=g)
        cases.append(((mu1.double(), var1.double(), mu2.double(), var2.double()), {}))
    same = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64)
    cases.append(((same[0], same[1], same[0] + 2, same[1] * 4), {}))
    mistakes = {"a square root missing on the product of the variances":
                lambda m1, v1, m2, v2: (m1 - m2) ** 2 + v1 + v2 - 2 * v1 * v2,
                "the mean term (μ1 − μ2)² missing": lambda m1, v1, m2, v2: v1 + v2 - 2 * (v1 * v2).sqrt(),
                "variances taken for standard deviations": lambda m1, v1, m2, v2: (m1 - m2) ** 2 + (v1 - v2) ** 2}
    return compare("10.2", learner_fn, reference_frechet_1d, cases, "frechet_1d", variants=mistakes)


def check_inception_score(learner_fn) -> bool:
    g = torch.Generator().manual_seed(12)
    confident = torch.eye(4).repeat(3, 1) * 0.96 + 0.01  # 12 samples, 4 classes evenly covered, rows sum to 1
    cases = [
        ((torch.softmax(3 * torch.randn(20, 10, generator=g), dim=1).double(),), {}),
        ((confident.double(),), {}),
        ((torch.softmax(torch.randn(7, 3, generator=g), dim=1).double(),), {}),
    ]
    def score_with(probs, log=torch.log, marginal=True, reverse=False):
        p_y = probs.mean(0, keepdim=True) if marginal else torch.full_like(probs[:1], 1 / probs.shape[1])
        a, b = (p_y.expand_as(probs), probs) if reverse else (probs, p_y)
        return (a * (log(a) - log(b))).sum(1).mean().exp()

    mistakes = {"log base 2 where the natural log belongs": lambda p: score_with(p, log=torch.log2),
                "a uniform p(y): p(y) is the mean of the rows": lambda p: score_with(p, marginal=False),
                "KL(p(y) ‖ p(y|x)): the KL runs from p(y|x) to p(y)": lambda p: score_with(p, reverse=True)}
    return compare("10.3", learner_fn, reference_inception_score, cases, "inception_score", variants=mistakes)
