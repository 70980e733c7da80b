import pytest
import torch

from course_lib.data.toy import gaussian_mixture_1d, gaussian_mixture_1d_density, make_generator, swiss_roll, two_moons

SAMPLERS = [gaussian_mixture_1d, two_moons, swiss_roll]


@pytest.mark.parametrize("sampler, dim", [(gaussian_mixture_1d, 1), (two_moons, 2), (swiss_roll, 2)])
def test_shape_dtype_and_unit_scale(sampler, dim):
    x = sampler(20_000, seed=3)
    assert x.shape == (20_000, dim) and x.dtype == torch.float32
    assert x.mean(0).abs().max() < 0.05
    assert 0.9 < x.std() < 1.1  # overall std (moons keep their aspect ratio, so per-axis stds differ)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_points_and_generators_continue(sampler):
    assert torch.equal(sampler(100, seed=1), sampler(100, seed=1))
    assert not torch.equal(sampler(100, seed=1), sampler(100, seed=2))
    g = torch.Generator().manual_seed(1)
    first, second = sampler(100, generator=g), sampler(100, generator=g)
    assert torch.equal(first, sampler(100, seed=1)) and not torch.equal(first, second)


def test_mixture_density_is_normalised_and_matches_samples():
    grid = torch.linspace(-6, 6, 4001)
    density = gaussian_mixture_1d_density(grid)
    assert abs((density * (grid[1] - grid[0])).sum().item() - 1) < 1e-3
    x = gaussian_mixture_1d(200_000, seed=0)[:, 0]
    counts = torch.histc(x, bins=60, min=-3, max=3)
    empirical = counts / (len(x) * 0.1)
    centres = torch.linspace(-3 + 0.05, 3 - 0.05, 60)
    assert (empirical - gaussian_mixture_1d_density(centres)).abs().max() < 0.03
    assert density.argmax() != 2000  # two bumps of unequal weight: the mode is off centre


@pytest.mark.parametrize("sampler", [two_moons, swiss_roll])
def test_points_lie_on_a_curve_blurred_by_noise(sampler):
    curve = sampler(20_000, seed=0, noise=0.0)
    clean = sampler(500, seed=1, noise=0.0)
    noisy = sampler(500, seed=1, noise=0.1)
    assert torch.cdist(clean, curve).min(1).values.mean() < 0.01
    # distance to a curve is |normal component| of N(0, 0.1² I): mean 0.1·√(2/π) ≈ 0.08
    assert 0.05 < torch.cdist(noisy, curve).min(1).values.mean() < 0.11


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: gaussian_mixture_1d(0), ["n", "positive int", "0"]),
        (lambda: two_moons(10, noise=-1.0), ["noise", "-1.0"]),
        (lambda: swiss_roll(10, seed="a"), ["seed", "'a'"]),
        (lambda: two_moons(10, generator=3), ["generator", "torch.Generator"]),
        (lambda: make_generator(1.5), ["seed", "1.5"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)
