"""Numbers that say how close generated toy samples (1D, 2D) are to the data (notebooks 02-03).

* :func:`histogram_kl` -- 1D: KL(true ‖ sample histogram), using the true density;
* :func:`nearest_neighbour_distance` -- mean distance from each sample to its nearest data point
  (small when samples lie *on* the data; :func:`nearest_neighbour_distances` gives each one, for
  medians and outlier counts); blind to missing modes and wrong proportions, so pair it with...
* :func:`mmd_rbf` -- maximum mean discrepancy with Gaussian kernels: zero only when the two
  distributions agree (catches missing modes and wrong proportions).

Each notebook prints the metric of its samples next to two references: fresh data (the floor set
by the finite sample size) and pure noise N(0, I) (what an untrained model gives).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from course_lib._validation import check_finite, check_positive_int, check_rank, fail


def _points(name: str, x: torch.Tensor) -> torch.Tensor:
    check_rank(name, x, 2, "(N, D)")
    if x.shape[0] == 0:
        fail(name, "at least one point", f"shape {tuple(x.shape)}")
    check_finite(name, x)  # a diverged sampler's NaN would make every distance NaN
    return x.detach().double().cpu()


def nearest_neighbour_distances(samples: torch.Tensor, data: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """min_j ‖samples_i − data_j‖ for each sample: samples (N, D), data (M, D) -> (N,) float64."""
    samples, data = _points("samples", samples), _points("data", data)
    if samples.shape[1] != data.shape[1]:
        fail("samples", f"points of dimension {data.shape[1]} like data", f"shape {tuple(samples.shape)}")
    check_positive_int("chunk", chunk)
    return torch.cat([torch.cdist(part, data).min(dim=1).values for part in samples.split(chunk)])


def nearest_neighbour_distance(samples: torch.Tensor, data: torch.Tensor, chunk: int = 2048) -> float:
    """mean_i min_j ‖samples_i − data_j‖ for samples (N, D) and data (M, D); a few far outliers dominate it."""
    return nearest_neighbour_distances(samples, data, chunk).mean().item()


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] = (0.05, 0.1, 0.2, 0.5, 1.0)) -> float:
    """MMD² between samples x (N, D) and y (M, D) with k = Σ_h exp(−‖a − b‖² / (2h²)) (Gretton et al. 2012).

    The unbiased estimate (self-pairs left out, needs N, M ≥ 2): its mean is the true MMD², zero
    when x and y come from one distribution, so it can come out slightly negative.
    """
    x, y = _points("x", x), _points("y", y)
    if x.shape[1] != y.shape[1]:
        fail("y", f"points of dimension {x.shape[1]} like x", f"shape {tuple(y.shape)}")
    for name, points in (("x", x), ("y", y)):
        if points.shape[0] < 2:
            fail(name, "at least 2 points", f"shape {tuple(points.shape)}")
    if not bandwidths or any(h <= 0 for h in bandwidths):
        fail("bandwidths", "positive kernel widths", tuple(bandwidths))

    def kernel(a, b):
        d2 = torch.cdist(a, b).square()
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    def within(a):  # mean over pairs i != j
        n = a.shape[0]
        return (kernel(a, a).sum() - len(bandwidths) * n) / (n * (n - 1))

    return (within(x) + within(y) - 2 * kernel(x, y).mean()).item()


def histogram_kl(samples: torch.Tensor, density: Callable[[torch.Tensor], torch.Tensor],
                 bins: int = 40, value_range: tuple[float, float] = (-3.0, 3.0)) -> float:
    """KL(p ‖ q): p is the true 1D ``density`` binned on ``value_range``, q the histogram of ``samples`` (N, 1).

    q uses add-½ smoothing so that an empty bin costs a finite amount; samples outside the range
    count as lost mass. KL(p ‖ q) is large when the samples miss a region the data covers.
    """
    samples = _points("samples", samples)
    if samples.shape[1] != 1:
        fail("samples", "1D points, shape (N, 1)", f"shape {tuple(samples.shape)}")
    check_positive_int("bins", bins)
    low, high = value_range
    if not low < high:
        fail("value_range", "(low, high) with low < high", value_range)
    fine = torch.linspace(low, high, bins * 50 + 1, dtype=torch.float64)  # 50 intervals per bin
    pdf = density(fine.float()).double().reshape(-1)
    per_bin = torch.trapezoid(pdf.unfold(0, 51, 50), fine.unfold(0, 51, 50), dim=1)  # (bins,) ∫ density
    p = per_bin / per_bin.sum()
    counts = torch.histc(samples[:, 0], bins=bins, min=low, max=high)
    q = (counts + 0.5) / (samples.shape[0] + 0.5 * bins)
    keep = p > 0
    return (p[keep] * (p[keep] / q[keep]).log()).sum().item()
