"""The Fréchet distance: closed form for commuting covariances, symmetry, zero for identical sets."""
import numpy as np
import pytest
import torch

from course_lib.metrics.frechet import frechet_distance, frechet_distance_from_features, gaussian_fit


def random_covariance(f, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(f, f, generator=g, dtype=torch.float64)
    return a @ a.T / f + 0.1 * torch.eye(f, dtype=torch.float64)


def test_diagonal_covariances_match_the_closed_form():
    """Σ1 = diag(a), Σ2 = diag(b) commute: d² = ‖μ1 − μ2‖² + Σ_i (√a_i − √b_i)²."""
    a, b = torch.tensor([1.0, 4.0, 9.0, 0.25]), torch.tensor([4.0, 1.0, 1.0, 0.25])
    mu1, mu2 = torch.zeros(4), torch.tensor([1.0, 2.0, 0.0, -1.0])
    expected = 6.0 + ((a.sqrt() - b.sqrt()) ** 2).sum().item()  # 6 + 1 + 1 + 4 + 0 = 12
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_rotated_commuting_covariances_match_the_closed_form():
    """Both covariances share eigenvectors Q: Σ1 = Q diag(a) Qᵀ, Σ2 = Q diag(b) Qᵀ."""
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    a = torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    b = torch.tensor([5.0, 0.1, 2.0, 1.0, 0.0, 3.0], dtype=torch.float64)
    mu = torch.zeros(6, dtype=torch.float64)
    expected = ((a.sqrt() - b.sqrt()) ** 2).sum().item()
    # b has a zero eigenvalue: √ of a rounding error ~1e-16 is ~1e-8, hence the looser tolerance
    assert frechet_distance(mu, q @ torch.diag(a) @ q.T, mu, q @ torch.diag(b) @ q.T) == pytest.approx(expected, rel=1e-7)


def test_general_case_matches_scipy_sqrtm_and_is_symmetric():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    s1, s2 = random_covariance(8, 1), random_covariance(8, 2)
    mu1, mu2 = torch.randn(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    root = scipy_linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    expected = ((mu1 - mu2) ** 2).sum().item() + np.trace(s1.numpy() + s2.numpy() - 2 * root)
    d12 = frechet_distance(mu1, s1, mu2, s2)
    assert d12 == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(d12, rel=1e-10)
    assert frechet_distance(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy()) == pytest.approx(d12, rel=1e-12)


def test_from_features_zero_for_identical_sets_and_grows_with_shift():
    f = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance_from_features(f, f) == pytest.approx(0.0, abs=1e-9)
    distances = [frechet_distance_from_features(f, f + shift) for shift in (0.5, 1.0, 2.0)]
    for shift, d in zip((0.5, 1.0, 2.0), distances):
        assert d == pytest.approx(16 * shift**2, rel=1e-9)  # a pure shift only moves the mean
    other = torch.randn(500, 16, generator=torch.Generator().manual_seed(1))
    d = frechet_distance_from_features(f, other)
    assert d > 0 and d == pytest.approx(frechet_distance_from_features(other, f), rel=1e-10)


def test_fid_estimate_is_biased_upwards_for_small_samples():
    """Two sets from the same distribution: the estimate shrinks as the sample count grows."""
    def fd(n):
        g = torch.Generator().manual_seed(n)
        return frechet_distance_from_features(torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g))
    assert fd(50) > fd(500) > fd(5000) > 0


def test_gaussian_fit_matches_numpy():
    f = torch.randn(100, 5, generator=torch.Generator().manual_seed(0))
    mu, sigma = gaussian_fit(f)
    np.testing.assert_allclose(mu.numpy(), f.double().numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(f.double().numpy(), rowvar=False), rtol=1e-10)


def test_bad_inputs_name_the_argument():
    mu, sigma = torch.zeros(3), torch.eye(3)
    with pytest.raises(ValueError, match=r"mu1: expected a tensor of rank 1 \(F,\), got 'shape \(3, 3\)'"):
        frechet_distance(sigma, sigma, mu, sigma)
    with pytest.raises(ValueError, match=r"sigma2: expected shape \(3, 3\) to match mu1"):
        frechet_distance(mu, sigma, mu, torch.eye(2))
    with pytest.raises(ValueError, match="sigma1: expected a torch.Tensor or numpy array, got 'list'"):
        frechet_distance(mu, [[1.0]], mu, sigma)
    with pytest.raises(ValueError, match="mu2: expected only finite values"):
        frechet_distance(mu, sigma, torch.tensor([0.0, float("nan"), 0.0]), sigma)
    with pytest.raises(ValueError, match=r"features1: expected at least 2 samples \(N, F\)"):
        frechet_distance_from_features(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"features2: expected at least 2 samples"):
        frechet_distance_from_features(torch.zeros(5, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="features2: expected 3 features per sample like features1"):
        frechet_distance_from_features(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"features1: expected a tensor of rank 2 \(N, F\)"):
        frechet_distance_from_features(torch.zeros(5), torch.zeros(5, 4))
