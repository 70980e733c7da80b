import math

import pytest
import torch

from course_lib.diffusion.schedules import MAX_BETA, SCHEDULES, make_schedule, schedule_from_betas


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_coefficient_follows_from_beta(name):
    s = make_schedule(name, 1000)
    b = s.betas.double()
    assert s.betas.dtype == torch.float32 and s.num_steps == 1000
    assert (b > 0).all() and (b < 1).all()
    torch.testing.assert_close(s.alphas.double(), 1 - b, rtol=0, atol=1e-7)
    torch.testing.assert_close(s.alpha_bars.double(), torch.cumprod(1 - b, 0), rtol=1e-5, atol=1e-7)
    assert s.alpha_bars_prev[0] == 1 and torch.equal(s.alpha_bars_prev[1:], s.alpha_bars[:-1])
    assert (s.alpha_bars[1:] < s.alpha_bars[:-1]).all(), "signal must decay monotonically"
    assert s.alpha_bars[-1] < 1e-3, "the last step should be (almost) pure noise"
    # recomputed from float32-rounded ᾱ, so 1/(1 − ᾱ) near ᾱ ≈ 1 carries ~1e-3 relative rounding
    torch.testing.assert_close(s.snr.double(), s.alpha_bars.double() / (1 - s.alpha_bars.double()), rtol=2e-3, atol=0)


def test_coefficients_are_computed_in_float64():
    # β̃_1 = β_1 (1-ᾱ_0)/(1-ᾱ_1) suffers cancellation in float32: float64 then cast must match exactly.
    b64 = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1 - b64, 0)
    expected = (b64[1:] * (1 - ab[:-1]) / (1 - ab[1:])).float()
    s = make_schedule("linear", 1000)
    assert torch.equal(s.posterior_variance[1:], expected)


def test_cosine_matches_the_improved_ddpm_formula():
    s = make_schedule("cosine", 1000)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in (0, 10, 500, 900):
        assert s.alpha_bars[t].item() == pytest.approx(f((t + 1) / 1000) / f(0), rel=1e-4)


def test_linear_matches_ho_et_al():
    s = make_schedule("linear", 1000)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)


@pytest.mark.parametrize("num_steps", [2, 10, 20])
def test_a_short_linear_chain_clips_beta_below_one(num_steps):
    betas = make_schedule("linear", num_steps).betas  # unclipped, 1000/T x 0.02 reaches 1 at T = 20
    assert betas.max() == pytest.approx(MAX_BETA) and betas.min() > 0
    assert make_schedule("linear", 21).betas.max() < MAX_BETA  # longer chains are Ho et al.'s, unclipped


def test_sigmoid_keeps_more_signal_mid_chain_than_linear():
    lin, sig = make_schedule("linear"), make_schedule("sigmoid")
    assert sig.alpha_bars[300] > lin.alpha_bars[300]


def test_posterior_at_first_step_returns_x0():
    s = make_schedule("linear", 100)
    assert s.posterior_variance[0] == 0
    assert s.posterior_mean_coef_x0[0].item() == pytest.approx(1.0, abs=1e-6)
    assert s.posterior_mean_coef_xt[0] == 0
    assert torch.isfinite(s.posterior_log_variance).all()


def test_to_device_copies_every_tensor():
    s = make_schedule("cosine", 10).to("cpu")
    assert s.betas.device.type == "cpu" and s.name == "cosine"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(name="quadratic"), ["name", "'linear'", "'quadratic'"]),
        (dict(name="linear", num_steps=0), ["num_steps", "positive int", "0"]),
        (dict(name="linear", num_steps=1), ["num_steps", "at least 2", "1"]),
        (dict(name="linear", num_steps=2.5), ["num_steps", "2.5"]),
    ],
)
def test_bad_schedule_arguments(kwargs, words):
    with pytest.raises(ValueError) as err:
        make_schedule(**kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "betas, words",
    [
        (torch.tensor([0.1, float("nan")]), ["betas", "finite", "NaN"]),
        (torch.tensor([0.1, float("inf")]), ["betas", "finite"]),
        (torch.tensor([0.1, 1.5]), ["betas", "(0, 1)", "1.5"]),
        (torch.tensor([[0.1, 0.2]]), ["betas", "rank 1", "(1, 2)"]),
    ],
)
def test_non_finite_or_out_of_range_betas(betas, words):
    with pytest.raises(ValueError) as err:
        schedule_from_betas(betas)
    for word in words:
        assert word in str(err.value)
