"""PSNR and SSIM against scikit-image (a dev-only oracle), plus the Inception Score on known cases."""
import math

import numpy as np
import pytest
import torch

from course_lib.metrics.image import psnr, ssim
from course_lib.metrics.inception_score import inception_score

metrics = pytest.importorskip("skimage.metrics")


def image_pair(b=3, c=1, size=28, noise=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, size, size, generator=g) * 2 - 1
    y = (x + noise * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    return x, y


@pytest.mark.parametrize("c", [1, 3])
def test_psnr_matches_skimage_per_image(c):
    x, y = image_pair(c=c)
    ours = psnr(x, y, reduction="none")
    ref = [metrics.peak_signal_noise_ratio(a.numpy().astype(np.float64), b.numpy().astype(np.float64), data_range=2.0)
           for a, b in zip(x, y)]
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5)
    assert psnr(x, y).item() == pytest.approx(float(np.mean(ref)), rel=1e-5)


def test_psnr_known_values():
    x = torch.zeros(1, 1, 4, 4)
    assert psnr(x, x + 0.2).item() == pytest.approx(10 * math.log10(4 / 0.04), rel=1e-6)  # 20 dB
    assert psnr(x, x).item() == math.inf
    assert psnr(x, x + 0.1, data_range=1.0).item() == pytest.approx(20.0, rel=1e-6)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_ssim_matches_skimage_per_image(c, window):
    x, y = image_pair(c=c, size=32)
    options = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if window == "gaussian" else {}
    ref = [metrics.structural_similarity(a.numpy().astype(np.float64), b.numpy().astype(np.float64),
                                         data_range=2.0, channel_axis=0, **options) for a, b in zip(x, y)]
    ours = ssim(x, y, window=window, reduction="none")
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert ssim(x, y, window=window).item() == pytest.approx(float(np.mean(ref)), rel=1e-5)


def test_ssim_orders_by_damage():
    x, _ = image_pair()
    scores = [ssim(x, image_pair(noise=n)[1]).item() for n in (0.0, 0.1, 0.3, 1.0)]
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_image_metric_bad_inputs(metric):
    x, y = image_pair()
    with pytest.raises(ValueError, match=r"x: expected a tensor of rank 4 \(B, C, H, W\)"):
        metric(x[0], y[0])
    with pytest.raises(ValueError, match=r"y: expected the shape of x \(3, 1, 28, 28\)"):
        metric(x, y[:2])
    with pytest.raises(ValueError, match=r"x: expected at least one image, got 'an empty batch"):
        metric(x[:0], y[:0])
    with pytest.raises(ValueError, match="data_range: expected a positive number"):
        metric(x, y, data_range=0)
    with pytest.raises(ValueError, match="reduction: expected one of 'mean', 'none'"):
        metric(x, y, reduction="sum")


def test_ssim_bad_window_and_small_images():
    x, y = image_pair(size=8)
    with pytest.raises(ValueError, match="window: expected one of 'gaussian', 'uniform'"):
        ssim(x, y, window="box")
    with pytest.raises(ValueError, match="x: expected images at least 11x11 for the gaussian window"):
        ssim(x, y)
    assert ssim(x, y, window="uniform").shape == ()


# --- Inception Score --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 10])
def test_inception_score_of_confident_even_predictions_is_k(k):
    probs = torch.eye(k).repeat(5, 1)  # 5 certain samples per class
    assert inception_score(probs=probs) == pytest.approx(k, rel=1e-9)
    assert inception_score(logits=100 * torch.eye(k).repeat(5, 1)) == pytest.approx(k, rel=1e-6)
    assert inception_score(probs=probs, splits=5) == pytest.approx(k, rel=1e-9)  # each split covers all classes


def test_inception_score_of_identical_predictions_is_one():
    logits = torch.randn(1, 10).repeat(50, 1)
    assert inception_score(logits) == pytest.approx(1.0, abs=1e-9)
    assert inception_score(probs=torch.full((7, 4), 0.25)) == pytest.approx(1.0, abs=1e-9)


def test_inception_score_hand_computed_case():
    """Two samples: p(y|x) = (1, 0) and (0.5, 0.5); p(y) = (0.75, 0.25).
    KL1 = log(1/0.75); KL2 = 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25)."""
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    kl1 = math.log(1 / 0.75)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert inception_score(probs=probs) == pytest.approx(math.exp((kl1 + kl2) / 2), rel=1e-9)


def test_inception_score_bad_inputs():
    with pytest.raises(ValueError, match="logits: expected exactly one of logits or probs, got 'neither'"):
        inception_score()
    with pytest.raises(ValueError, match="logits: expected exactly one of logits or probs, got 'both'"):
        inception_score(torch.zeros(2, 3), probs=torch.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"logits: expected at least one sample, got 'shape \(0, 10\)'"):
        inception_score(torch.zeros(0, 10))
    with pytest.raises(ValueError, match=r"logits: expected a tensor of rank 2 \(N, K\)"):
        inception_score(torch.zeros(10))
    with pytest.raises(ValueError, match="probs: expected non-negative rows that sum to 1"):
        inception_score(probs=torch.ones(3, 2))
    with pytest.raises(ValueError, match="logits: expected only finite values"):
        inception_score(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"splits: expected at most the number of samples \(2\), got 3"):
        inception_score(torch.zeros(2, 3), splits=3)
