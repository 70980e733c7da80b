import pytest
import torch

from course_lib.diffusion.forward import (
    eps_from_x0,
    extract,
    forward_step,
    q_posterior,
    q_sample,
    to_x0_eps,
    training_target,
    v_from_eps,
    x0_from_eps,
)
from course_lib.diffusion.objectives import diffusion_loss
from course_lib.diffusion.schedules import make_schedule

S = make_schedule("linear", 1000)


@pytest.mark.parametrize("shape", [(5, 1), (5, 2), (5, 1, 8, 8), (5, 4, 3, 8, 8)])
def test_extract_broadcasts_for_any_rank(shape):
    t = torch.tensor([0, 1, 2, 3, 999])
    out = extract(S.alpha_bars, t, shape)
    assert out.shape == (5,) + (1,) * (len(shape) - 1)
    assert out.flatten()[4] == S.alpha_bars[999]


def test_seed_worked_example_x0_to_x3():
    """Seed §4.3: three explicit steps equal the closed form with the combined noise."""
    x0 = torch.tensor([[1.0, -0.5]])
    eps = [torch.randn(1, 2, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    x = x0
    for t in range(3):  # code t = 0, 1, 2 are the seed's steps 1, 2, 3
        x = forward_step(x, t, S, noise=eps[t])
    a1, a2, a3 = S.alphas[:3].double()
    mean = (a1 * a2 * a3).sqrt() * x0.double()
    combined = (a3 * a2 * (1 - a1)).sqrt() * eps[0] + (a3 * (1 - a2)).sqrt() * eps[1] + (1 - a3).sqrt() * eps[2]
    torch.testing.assert_close(x.double(), mean + combined, rtol=0, atol=1e-6)
    assert (a1 * a2 * a3).item() == pytest.approx(S.alpha_bars[2].item(), rel=1e-6)


@pytest.mark.parametrize("t", [0, 9, 99])
def test_chain_marginals_match_closed_form(t):
    g = torch.Generator().manual_seed(t)
    x0 = torch.full((100_000, 1), 0.8)
    x = x0
    for step in range(t + 1):
        x = forward_step(x, step, S, generator=g)
    closed = q_sample(x0, t, S, generator=g)
    for sample in (x, closed):
        assert sample.mean().item() == pytest.approx(0.8 * S.sqrt_alpha_bars[t].item(), abs=0.01)
        assert sample.var().item() == pytest.approx(1 - S.alpha_bars[t].item(), rel=0.03, abs=2e-4)


def test_posterior_matches_gaussian_conditioning():
    """q(x_{t-1}|x_t,x0) from Bayes' rule on the scalar Gaussians, computed independently."""
    t = torch.tensor([1, 50, 500, 999])
    generator = torch.Generator().manual_seed(0)  # fixed draws: the test must not depend on the order tests run in
    x0, xt = torch.randn(4, 1, generator=generator), torch.randn(4, 1, generator=generator)
    ab_prev, a = S.alpha_bars_prev[t].double()[:, None], S.alphas[t].double()[:, None]
    prior_mean, prior_var = ab_prev.sqrt() * x0.double(), 1 - ab_prev  # q(x_{t-1}|x0)
    lik_var = 1 - a  # q(x_t|x_{t-1}) = N(√α x_{t-1}, 1-α)
    post_var = 1 / (1 / prior_var + a / lik_var)
    post_mean = post_var * (prior_mean / prior_var + a.sqrt() * xt.double() / lik_var)
    mean, var, log_var = q_posterior(x0, xt, t, S)
    # the reference starts from float32-rounded α, ᾱ: at t = 1, 1 − ᾱ ≈ 1e-4 keeps only ~3 digits of
    # them, so agreement to a few 1e-4 relative is the best possible (mean and variance alike)
    torch.testing.assert_close(mean.double(), post_mean, rtol=5e-4, atol=1e-5)
    torch.testing.assert_close(var.double(), post_var, rtol=5e-4, atol=0)
    torch.testing.assert_close(log_var.exp().double(), post_var, rtol=5e-4, atol=0)


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
def test_parameterisations_round_trip(objective):
    x0, eps = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    t = torch.tensor([0, 3, 100, 500, 900, 999])
    xt = q_sample(x0, t, S, noise=eps)
    target = training_target(x0, eps, t, S, objective)
    x0_hat, eps_hat = to_x0_eps(target, xt, t, S, objective)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-3, atol=2e-3 if objective == "eps" else 1e-4)
    torch.testing.assert_close(eps_hat, eps, rtol=1e-3, atol=1e-3)


def test_loss_weighting_of_the_objectives():
    """‖x0 − x̂0‖² = SNR·‖ε − ε̂‖² and ‖v − v̂‖² = (1 + SNR)·‖ε − ε̂‖² for the same x_t."""
    t = torch.tensor([10, 200, 700])
    x0, eps = torch.randn(3, 8), torch.randn(3, 8)
    xt = q_sample(x0, t, S, noise=eps)
    eps_hat = eps + 0.1 * torch.randn(3, 8)
    x0_hat = x0_from_eps(xt, t, eps_hat, S)
    v, v_hat = v_from_eps(x0, t, eps, S), v_from_eps(x0_hat, t, eps_hat, S)
    e_eps = ((eps - eps_hat) ** 2).sum(1)
    snr = S.snr[t]
    torch.testing.assert_close(((x0 - x0_hat) ** 2).sum(1) / e_eps, 1 / snr, rtol=1e-3, atol=0)
    torch.testing.assert_close(((v - v_hat) ** 2).sum(1) / e_eps, (1 + snr) / snr, rtol=1e-3, atol=0)


def test_x0_and_eps_conversions_are_inverse():
    t = torch.tensor([5, 600])
    x0, eps = torch.randn(2, 4), torch.randn(2, 4)
    xt = q_sample(x0, t, S, noise=eps)
    torch.testing.assert_close(eps_from_x0(xt, t, x0, S), eps, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
def test_loss_is_zero_for_a_perfect_model_and_seeded(objective):
    x0 = torch.randn(16, 2)

    def oracle(xt, t):  # knows x0: outputs the exact target
        eps = eps_from_x0(xt, t, x0, S)
        return training_target(x0, eps, t, S, objective)

    assert diffusion_loss(oracle, x0, S, objective, torch.Generator().manual_seed(0)).item() < 1e-6
    zero = lambda xt, t: torch.zeros_like(xt)
    a = diffusion_loss(zero, x0, S, objective, torch.Generator().manual_seed(1))
    b = diffusion_loss(zero, x0, S, objective, torch.Generator().manual_seed(1))
    assert a.item() > 0.1 and torch.equal(a, b)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: q_sample(torch.zeros(2, 3), 1000, S), ["t", "[0, 999]", "1000"]),
        (lambda: q_sample(torch.zeros(2, 3), -1, S), ["t", "[0, 999]", "-1"]),
        (lambda: q_sample(torch.zeros(2, 3), torch.tensor([1, 2, 3]), S), ["t", "(2,)", "(3,)"]),
        (lambda: q_sample(torch.zeros(2, 3), torch.tensor([0.5, 1.0]), S), ["t", "integer", "float"]),
        (lambda: q_sample(torch.zeros(3), 0, S), ["x0", "(B, ...)", "(3,)"]),
        (lambda: q_sample(torch.zeros(2, 3), 0, S, noise=torch.zeros(2, 4)), ["noise", "(2, 3)", "(2, 4)"]),
        (lambda: forward_step([1.0, 2.0], 0, S), ["x_prev", "torch.Tensor", "list"]),
        (lambda: training_target(torch.zeros(1, 1), torch.zeros(1, 1), 0, S, "score"), ["objective", "'eps'", "'score'"]),
        (lambda: to_x0_eps(torch.zeros(2, 2), torch.zeros(2, 3), 0, S), ["prediction", "(2, 3)", "(2, 2)"]),
        (lambda: diffusion_loss(lambda x, t: x[:, :1], torch.zeros(4, 2), S), ["model output", "(4, 2)", "(4, 1)"]),
    ],
)
def test_bad_input_is_named(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))
