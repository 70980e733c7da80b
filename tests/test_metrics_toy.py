import math

import pytest
import torch

from course_lib.metrics.toy import histogram_kl, mmd_rbf, nearest_neighbour_distance, nearest_neighbour_distances

pytestmark = pytest.mark.usefixtures("one_thread")


def normal_pdf(x, mean=0.0, std=1.0):
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def test_nearest_neighbour_distance_on_known_points():
    data = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.tensor([[0.0, 3.0], [10.0, -1.0], [6.0, 0.0]])
    assert nearest_neighbour_distance(samples, data, chunk=2) == pytest.approx((3 + 1 + 4) / 3)
    assert nearest_neighbour_distance(data, data) == 0.0
    assert nearest_neighbour_distances(samples, data, chunk=1).tolist() == [3.0, 1.0, 4.0]


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)
    same = mmd_rbf(a, b)
    shifted = [mmd_rbf(a, b + shift) for shift in (0.3, 1.0, 3.0)]
    assert abs(same) < 0.01
    assert same < shifted[0] < shifted[1] < shifted[2]
    assert mmd_rbf(a, a) < 0  # unbiased: the cross term includes the self-pairs


def test_mmd_sees_a_missing_mode_that_the_nearest_neighbour_distance_misses():
    g = torch.Generator().manual_seed(1)
    two_modes = torch.cat([torch.randn(300, 1, generator=g) * 0.1 - 1, torch.randn(300, 1, generator=g) * 0.1 + 1])
    one_mode = torch.randn(600, 1, generator=g) * 0.1 - 1
    fresh = torch.cat([torch.randn(300, 1, generator=g) * 0.1 - 1, torch.randn(300, 1, generator=g) * 0.1 + 1])
    assert nearest_neighbour_distance(one_mode, two_modes) < 2 * nearest_neighbour_distance(fresh, two_modes)
    assert abs(mmd_rbf(fresh, two_modes)) < 0.05 < 1.0 < mmd_rbf(one_mode, two_modes)


def test_histogram_kl_is_small_for_samples_of_the_density_and_large_for_a_wrong_one():
    g = torch.Generator().manual_seed(2)
    right = torch.randn(20_000, 1, generator=g)
    wrong = torch.randn(20_000, 1, generator=g) * 0.5 + 1.0
    kl_right, kl_wrong = histogram_kl(right, normal_pdf), histogram_kl(wrong, normal_pdf)
    assert 0 <= kl_right < 0.01
    # the exact KL(N(0,1) ‖ N(1, 0.25)) is log(0.5) + (1 + 1)/(2·0.25) − 0.5 = 2.81; binning and smoothing cap it
    assert kl_wrong > 1.0


@pytest.mark.parametrize("call, name", [
    (lambda: nearest_neighbour_distance(torch.zeros(3), torch.zeros(3, 2)), "samples"),
    (lambda: nearest_neighbour_distance(torch.zeros(3, 3), torch.zeros(3, 2)), "samples"),
    (lambda: nearest_neighbour_distances(torch.zeros(3, 2), torch.zeros(3, 2), chunk=0), "chunk"),
    (lambda: mmd_rbf(torch.zeros(3, 2), torch.zeros(0, 2)), "y"),
    (lambda: mmd_rbf(torch.zeros(1, 2), torch.zeros(3, 2)), "x"),
    (lambda: mmd_rbf(torch.zeros(3, 2), torch.zeros(3, 2), bandwidths=(0.0,)), "bandwidths"),
    (lambda: histogram_kl(torch.zeros(3, 2), normal_pdf), "samples"),
    (lambda: histogram_kl(torch.zeros(3, 1), normal_pdf, value_range=(1.0, -1.0)), "value_range"),
    (lambda: histogram_kl(torch.zeros(3, 1), normal_pdf, bins=0), "bins"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        call()
