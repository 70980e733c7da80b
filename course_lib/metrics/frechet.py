"""The Fréchet distance between two Gaussians, the heart of FID (and of FVD for videos).

FID (Heusel et al. 2017) fits a Gaussian N(μ, Σ) to the features of real and of generated samples
and reports the squared Fréchet (2-Wasserstein) distance between the two Gaussians (Dowson &
Landau 1982):

    d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})

Tr((Σ1 Σ2)^{1/2}) equals Tr((√Σ1 Σ2 √Σ1)^{1/2}); the matrix inside is symmetric positive
semi-definite, so the trace is the sum of the square roots of its eigenvalues, computed here in
float64 with ``torch.linalg.eigh`` (no complex parts to discard, unlike ``scipy.linalg.sqrtm``).
"""
from __future__ import annotations

import numpy as np
import torch

from course_lib._validation import fail


def _as_float64(name: str, value, layout: str) -> torch.Tensor:
    """``value`` (torch or numpy) as a CPU float64 tensor with as many dims as ``layout``, e.g. "(N, F)"."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        fail(name, "a torch.Tensor or numpy array", type(value).__name__)
    rank = len([axis for axis in layout.strip("()").split(",") if axis.strip()])
    if value.dim() != rank:
        fail(name, f"a tensor of rank {rank} {layout}", f"shape {tuple(value.shape)}")
    value = value.detach().to("cpu", torch.float64)
    if not torch.isfinite(value).all():
        fail(name, "only finite values", "NaN or inf entries")
    return value


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix: V diag(√λ) Vᵀ."""
    eigenvalues, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2}) between N(μ1, Σ1) and N(μ2, Σ2).

    mu: (F,), sigma: (F, F) symmetric PSD (torch or numpy). Returns a float ≥ 0 (float64 math).
    """
    mu1, mu2 = _as_float64("mu1", mu1, "(F,)"), _as_float64("mu2", mu2, "(F,)")
    sigma1, sigma2 = _as_float64("sigma1", sigma1, "(F, F)"), _as_float64("sigma2", sigma2, "(F, F)")
    F = mu1.shape[0]
    for name, value, shape in (("mu2", mu2, (F,)), ("sigma1", sigma1, (F, F)), ("sigma2", sigma2, (F, F))):
        if tuple(value.shape) != shape:
            fail(name, f"shape {shape} to match mu1 {tuple(mu1.shape)}", f"shape {tuple(value.shape)}")
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1  # √Σ1 Σ2 √Σ1: symmetric PSD, same trace-sqrt as Σ1 Σ2
    trace_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)  # rounding can dip a hair below 0 for identical inputs


def gaussian_fit(features, name: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), N ≥ 2, in float64."""
    features = _as_float64(name, features, "(N, F)")
    if features.shape[0] < 2:
        fail(name, "at least 2 samples (N, F) to estimate a covariance", f"shape {tuple(features.shape)}")
    return features.mean(dim=0), torch.cov(features.T)


def frechet_distance_from_features(features1, features2) -> float:
    """The Fréchet distance between Gaussians fitted to features1 (N, F) and features2 (M, F).

    The estimate is biased upwards and the bias shrinks as N, M grow: compare values only at the
    same sample counts.
    """
    mu1, sigma1 = gaussian_fit(features1, "features1")
    mu2, sigma2 = gaussian_fit(features2, "features2")
    if mu1.shape != mu2.shape:
        fail("features2", f"{mu1.shape[0]} features per sample like features1", f"{mu2.shape[0]} features")
    return frechet_distance(mu1, sigma1, mu2, sigma2)
