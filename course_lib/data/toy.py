"""Toy distributions in 1D and 2D: the data of notebooks 01-03, made from a seed, never downloaded.

Every sampler returns float32 points scaled to roughly zero mean and unit standard deviation, so a
diffusion model's N(0, 1) prior sits on the same scale as the data:

* ``gaussian_mixture_1d``  (N, 1): two Gaussian bumps of unequal weight (exactly mean 0, variance 1);
  ``gaussian_mixture_1d_density`` is its true density, to compare samples against;
* ``two_moons``            (N, 2): two interleaved half circles;
* ``swiss_roll``           (N, 2): a 2D spiral.

Randomness comes from a ``torch.Generator``: pass ``generator=`` to continue a stream, or ``seed=``
for a fresh one. The same seed gives the same points.
"""
from __future__ import annotations

import functools
import math

import torch

from course_lib._validation import check_float_range, check_positive_int, fail

# The 1D mixture: weights w_i, means μ_i, standard deviations s_i, chosen so that
# E[x] = Σ w_i μ_i = 0 and Var[x] = Σ w_i (μ_i² + s_i²) = 1.
MIXTURE_WEIGHTS = (1 / 3, 2 / 3)
MIXTURE_MEANS = (-1.2, 0.6)
MIXTURE_STDS = (math.sqrt(0.28), math.sqrt(0.28))


def make_generator(seed: int = 0, generator: torch.Generator | None = None) -> torch.Generator:
    """``generator`` when given, else a fresh CPU generator seeded with ``seed``."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            fail("generator", "a torch.Generator or None", type(generator).__name__)
        return generator
    if isinstance(seed, bool) or not isinstance(seed, int):
        fail("seed", "an int", seed)
    return torch.Generator().manual_seed(seed)


def gaussian_mixture_1d(n: int, seed: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples of the two-bump mixture Σ w_i N(μ_i, s_i²) -> (n, 1) float32."""
    check_positive_int("n", n)
    g = make_generator(seed, generator)
    weights = torch.tensor(MIXTURE_WEIGHTS)
    component = torch.multinomial(weights, n, replacement=True, generator=g)  # (n,)
    means = torch.tensor(MIXTURE_MEANS)[component]
    stds = torch.tensor(MIXTURE_STDS)[component]
    return (means + stds * torch.randn(n, generator=g))[:, None]


def gaussian_mixture_1d_density(x: torch.Tensor) -> torch.Tensor:
    """The true density p(x) = Σ w_i N(x; μ_i, s_i²) of :func:`gaussian_mixture_1d`, same shape as ``x``."""
    x = torch.as_tensor(x, dtype=torch.float32)
    density = torch.zeros_like(x)
    for w, mu, s in zip(MIXTURE_WEIGHTS, MIXTURE_MEANS, MIXTURE_STDS):
        density += w * torch.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    return density


def _standardise(points: torch.Tensor, mean: torch.Tensor, scale: float, noise: float, g: torch.Generator) -> torch.Tensor:
    """(points - mean) / scale, plus N(0, noise²) in the standardised units -> float32."""
    clean = (points - mean) / scale
    return (clean + noise * torch.randn(clean.shape, generator=g, dtype=clean.dtype)).float()


def two_moons(n: int, seed: int = 0, noise: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """Two interleaved half circles -> (n, 2) float32.

    Upper moon (cos θ, sin θ), lower moon (1 − cos θ, ½ − sin θ), θ ~ U[0, π]. For uniform θ the
    clean points have mean (½, ¼) and per-axis variances ¾ and 9/16 − 1/π; both axes are divided by
    one common scale (the root of their average), so the moons keep their shape. ``noise`` is the
    std of Gaussian noise added after scaling.
    """
    check_positive_int("n", n)
    check_float_range("noise", noise, 0.0, 10.0)
    g = make_generator(seed, generator)
    theta = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    lower = torch.rand(n, generator=g) < 0.5
    x = torch.where(lower, 1 - theta.cos(), theta.cos())
    y = torch.where(lower, 0.5 - theta.sin(), theta.sin())
    var_x = 0.75  # E[x²] − E[x]² = 1 − ¼
    var_y = 9 / 16 - 1 / math.pi  # E[y²] − E[y]² with E[y²] = ⅝ − 1/π, E[y] = ¼
    scale = math.sqrt((var_x + var_y) / 2)
    return _standardise(torch.stack([x, y], 1), torch.tensor([0.5, 0.25], dtype=torch.float64), scale, noise, g)


def _swiss_roll_curve(u: torch.Tensor) -> torch.Tensor:
    """Points (t cos t, t sin t) with t = 1.5π (1 + 2u), u in [0, 1] -> (len(u), 2) float64."""
    t = 1.5 * math.pi * (1 + 2 * u)
    return torch.stack([t * t.cos(), t * t.sin()], 1)


@functools.lru_cache(maxsize=1)
def _swiss_roll_stats() -> tuple[torch.Tensor, float]:
    """Mean (2,) and common scale of the clean curve, on a fine grid of t (independent of any sample)."""
    grid = _swiss_roll_curve((torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000)
    return grid.mean(0), grid.var(0, unbiased=False).mean().sqrt().item()


def swiss_roll(n: int, seed: int = 0, noise: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """A 2D spiral (t cos t, t sin t), t ~ U[1.5π, 4.5π] -> (n, 2) float32.

    Centred and scaled by the mean and the average per-axis std of the clean curve (computed on a
    fine grid of t, so they do not depend on the sample); ``noise`` is added after scaling.
    """
    check_positive_int("n", n)
    check_float_range("noise", noise, 0.0, 10.0)
    g = make_generator(seed, generator)
    mean, scale = _swiss_roll_stats()
    points = _swiss_roll_curve(torch.rand(n, generator=g, dtype=torch.float64))
    return _standardise(points, mean, scale, noise, g)
