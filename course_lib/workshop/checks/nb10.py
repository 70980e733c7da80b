"""Checks for notebook 10 (evaluation). References come from course_lib.metrics."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import check_idea, seeded
from course_lib.metrics.frechet import frechet_distance, frechet_distance_from_features
from course_lib.metrics.image import psnr
from course_lib.metrics.inception_score import inception_score


HINTS = {
    "10.1": ("PSNR compares each image's mean squared error with the largest possible squared error, in decibels.",
             "one MSE per image (mean over C, H, W), then 10 · log10(data_range² / MSE): log10, the range squared, and "
             "the range you were given."),
    "10.2": ("FID fits a Gaussian to each feature set and measures how far apart the two Gaussians are: how far the "
             "means are, and how different the covariances are.",
             "μ and the unbiased covariance Σ (divide by N − 1) of each set; d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½) "
             "(Heusel et al. 2017); the result is d², not d.",
             "Tr((Σ1 Σ2)^½) = the sum of the square roots of the eigenvalues of the symmetric √Σ1 Σ2 √Σ1, where √Σ1 "
             "comes from eigh(Σ1) (clamp tiny negative eigenvalues to 0)."),
    "10.3": ("a good generator is confident on each sample and diverse over all of them: compare each sample's class "
             "distribution with the average one.",
             "p(y) is the mean of the rows; KL(p(y|x) ‖ p(y)) = Σ_y p(y|x) · ln(p(y|x) / p(y)) with the natural log; "
             "average the KL over samples, then exp."),
}


def reference_psnr(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """PSNR per image, x, y: (B, C, H, W) -> (B,), via course_lib.metrics.image.psnr."""
    return psnr(x, y, data_range=data_range, reduction="none")


def reference_fid_from_features(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """The Fréchet distance of Gaussians fitted to two feature sets (N, F), (M, F) (Heusel et al. 2017),
    via course_lib.metrics.frechet.frechet_distance_from_features."""
    return frechet_distance_from_features(features1, features2)


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


def _correlated(n: int, dims: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """n feature vectors with correlated coordinates (a random mixing matrix), float64."""
    g = seeded(seed)
    mix = torch.randn(dims, dims, generator=g, dtype=torch.float64) / dims**0.5
    return scale * torch.randn(n, dims, generator=g, dtype=torch.float64) @ mix + shift


def _as_number(value) -> float:
    return float(torch.as_tensor(value).double())


def _behaves_like_a_distance(learner_fn) -> str | None:
    """Zero between a set and itself, the same both ways, and a shift c of one set adds ‖c‖² exactly."""
    a, b = _correlated(40, 3, 1), _correlated(50, 3, 2, scale=1.5)
    same = _as_number(learner_fn(a, a.clone()))
    if abs(same) > 1e-6:
        return f"a feature set and itself are {same:.3g} apart: the distance must be 0"
    ab, ba = _as_number(learner_fn(a, b)), _as_number(learner_fn(b, a))
    if abs(ab - ba) > 1e-6 * max(1.0, abs(ab)):
        return f"d(a, b) = {ab:.4f} but d(b, a) = {ba:.4f}: the Fréchet distance is symmetric"
    shifted = _as_number(learner_fn(a, a + torch.tensor([1.0, -2.0, 2.0], dtype=a.dtype)))
    if abs(shifted - 9.0) > 1e-4:
        return (f"moving every feature of a set by c = (1, −2, 2) gave {shifted:.4f}; it only moves the mean, so "
                "d² = ‖c‖² = 9 (d², not d)")
    return None


def _fid_biased(features1, features2) -> float:
    """The Fréchet distance with covariances divided by N (the biased estimate)."""
    def fit(f):
        f = f.double()
        centred = f - f.mean(0)
        return f.mean(0), centred.T @ centred / f.shape[0]
    return frechet_distance(*fit(features1), *fit(features2))


def _fid_cross_term(features1, features2, how: str):
    """d² with the cross term 2·Tr √(Σ1Σ2) computed wrongly: √ of Σ1⊙Σ2 elementwise, √ of the diagonals only, or
    √ of the trace Tr(Σ1Σ2)."""
    f1, f2 = features1.double(), features2.double()
    s1, s2 = torch.cov(f1.T), torch.cov(f2.T)
    cross = {"elementwise": lambda: (s1 * s2).clamp(min=0).sqrt().trace(),
             "diagonal": lambda: (s1.diagonal() * s2.diagonal()).sqrt().sum(),
             "trace": lambda: (s1 @ s2).trace().sqrt()}[how]()
    return (f1.mean(0) - f2.mean(0)).pow(2).sum() + s1.trace() + s2.trace() - 2 * cross


FID_MISTAKES = {
    "covariances divided by N: the unbiased estimate divides by N − 1": _fid_biased,
    "the square root taken elementwise (√(Σ1⊙Σ2)): Tr √(Σ1Σ2) needs the matrix square root of the product":
        lambda a, b: _fid_cross_term(a, b, "elementwise"),
    "only the diagonals of Σ1 and Σ2 used: Tr √(Σ1Σ2) needs the matrix square root of the whole product":
        lambda a, b: _fid_cross_term(a, b, "diagonal"),
    "√Tr(Σ1Σ2), the square root of the trace: the cross term is the trace of the matrix square root, Tr √(Σ1Σ2)":
        lambda a, b: _fid_cross_term(a, b, "trace"),
}


def check_fid_from_features(learner_fn) -> bool:
    cases = [((_correlated(30, 2, 10), _correlated(40, 2, 11, scale=2.0, shift=0.5)), {}),
             ((_correlated(25, 4, 12), _correlated(25, 4, 13, scale=0.5)), {}),
             ((_correlated(60, 3, 14, shift=-1.0), _correlated(20, 3, 15, scale=1.2)), {}),
             ((_correlated(12, 5, 16), _correlated(15, 5, 17, scale=3.0, shift=2.0)), {})]
    return check_idea("10.2", learner_fn, reference_fid_from_features, cases, "fid_from_features",
                      before=[_behaves_like_a_distance], done="is 0 for equal sets, symmetric, and adds ‖c‖² for a shift c",
                      variants=FID_MISTAKES)


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
