"""Pixel-level image similarity: PSNR and SSIM, written to be read.

Both compare two batches image by image: x, y: (B, C, H, W) in [-1, 1], so the data range (max -
min of the pixel scale) is 2. ``reduction="none"`` gives one value per image (B,), ``"mean"`` their
mean (a 0-dim tensor). Values are computed in float64 and returned as float32.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib._validation import check_choice, check_finite, check_rank, fail

REDUCTIONS = ("mean", "none")
WINDOWS = ("gaussian", "uniform")


def _check_pair(x: torch.Tensor, y: torch.Tensor, data_range: float, reduction: str) -> None:
    check_rank("x", x, 4, "(B, C, H, W)")
    check_rank("y", y, 4, "(B, C, H, W)")
    if x.shape != y.shape:
        fail("y", f"the shape of x {tuple(x.shape)}", f"shape {tuple(y.shape)}")
    if x.shape[0] == 0:
        fail("x", "at least one image", "an empty batch (B = 0)")
    check_finite("x", x)
    check_finite("y", y)
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not 0 < data_range < math.inf:
        fail("data_range", "a positive number (max - min of the pixel scale; 2 for [-1, 1])", data_range)
    check_choice("reduction", reduction, REDUCTIONS)


def _reduce(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    per_image = per_image.float()
    return per_image.mean() if reduction == "mean" else per_image


def psnr_from_mse(mse: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """PSNR = 10 · log10(R² / MSE) in dB, elementwise (any weighting of the squared error is the caller's)."""
    return 10 * torch.log10(data_range**2 / mse)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio in dB: PSNR = 10 · log10(R² / MSE), MSE over (C, H, W) of each image.

    x, y: (B, C, H, W); R = ``data_range``. Higher is better; identical images give +inf.
    Returns (B,) with ``reduction="none"``, else their mean.
    """
    _check_pair(x, y, data_range, reduction)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(dim=1)  # (B,)
    return _reduce(psnr_from_mse(mse, data_range), reduction)


def _window(kind: str, channels: int) -> torch.Tensor:
    """The local averaging window, one copy per channel: (C, 1, k, k), weights summing to 1.

    gaussian: 11x11, σ = 1.5 (Wang et al. 2004); uniform: 7x7 box (scikit-image's default).
    """
    if kind == "gaussian":
        radius, sigma = 5, 1.5
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        g = torch.exp(-(offsets**2) / (2 * sigma**2))
        kernel = torch.outer(g, g)
    else:
        kernel = torch.ones(7, 7, dtype=torch.float64)
    kernel = kernel / kernel.sum()
    return kernel.expand(channels, 1, *kernel.shape).contiguous()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 2.0,
    window: str = "gaussian",
    reduction: str = "mean",
) -> torch.Tensor:
    """Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004, eq. 13), in [-1, 1], 1 = identical.

    For every window position, with local means μ, variances σ² and covariance σ_xy::

        SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
        C1 = (0.01 R)², C2 = (0.03 R)²,  R = data_range,

    averaged over the positions where the window fits inside the image and over channels.
    window="gaussian": 11x11 Gaussian weights, σ = 1.5, population (co)variances, as in the paper
    (= skimage ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``);
    window="uniform": 7x7 box with sample (co)variances (= skimage's defaults).
    x, y: (B, C, H, W), H and W at least the window size -> (B,) or the mean.
    """
    _check_pair(x, y, data_range, reduction)
    check_choice("window", window, WINDOWS)
    C = x.shape[1]
    kernel = _window(window, C).to(x.device)
    k = kernel.shape[-1]
    if min(x.shape[-2:]) < k:
        fail("x", f"images at least {k}x{k} for the {window} window", f"shape {tuple(x.shape)}")
    x, y = x.double(), y.double()

    def local_mean(z: torch.Tensor) -> torch.Tensor:  # 'valid' positions only: (B, C, H-k+1, W-k+1)
        return F.conv2d(z, kernel, groups=C)

    mu_x, mu_y = local_mean(x), local_mean(y)
    cov_norm = k * k / (k * k - 1) if window == "uniform" else 1.0  # sample vs population (co)variance
    var_x = cov_norm * (local_mean(x * x) - mu_x**2)
    var_y = cov_norm * (local_mean(y * y) - mu_y**2)
    cov_xy = cov_norm * (local_mean(x * y) - mu_x * mu_y)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return _reduce(ssim_map.flatten(1).mean(dim=1), reduction)
