"""Samplers checked against an analytic denoiser: for data x0 ~ N(μ, s²) the exact ε-prediction is
E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ), so a correct sampler must return N(μ, s²)."""
import pytest
import torch

from course_lib.diffusion.forward import extract
from course_lib.diffusion.samplers import ddim_sample, ddim_steps, ddim_timesteps, ddpm_sample, ddpm_steps
from course_lib.diffusion.schedules import make_schedule

S = make_schedule("linear", 1000)
MU, STD = 0.3, 0.5


def gaussian_eps(x, t):
    ab = extract(S.alpha_bars, t, x.shape)
    return (1 - ab).sqrt() * (x - ab.sqrt() * MU) / (ab * STD**2 + 1 - ab)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_samples_the_data_distribution(variance):
    x = ddpm_sample(gaussian_eps, (20_000, 1), S, variance=variance, clip_x0=False,
                    generator=torch.Generator().manual_seed(0))
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(STD, rel=0.05)


def test_ddim_samples_the_data_distribution_and_converges_with_steps():
    """DDIM integrates an ODE: with few steps the spread is a little too small (measured: std 0.43 at
    20 steps, 0.47 at 50, 0.495 at 200, 0.501 at 1000), and the error shrinks as steps grow."""
    errors = []
    for steps in (20, 50, 200, 1000):
        x = ddim_sample(gaussian_eps, (20_000, 1), S, steps=steps, clip_x0=False,
                        generator=torch.Generator().manual_seed(0))
        assert x.mean().item() == pytest.approx(MU, abs=0.02)
        errors.append(abs(x.std().item() - STD))
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.01 and errors[1] < 0.05


def test_ddim_with_eta_one_and_every_step_is_ddpm():
    a = ddpm_sample(gaussian_eps, (8, 3), S, clip_x0=False, generator=torch.Generator().manual_seed(3))
    b = ddim_sample(gaussian_eps, (8, 3), S, steps=1000, eta=1.0, clip_x0=False,
                    generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_ddim_eta_zero_is_deterministic_given_the_start():
    x_start = torch.randn(4, 1, 6, 6)
    runs = [ddim_sample(gaussian_eps, x_start.shape, S, steps=10, x_start=x_start,
                        generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    assert torch.equal(runs[0], runs[1])


def test_same_seed_same_samples_other_seed_other_samples():
    run = lambda seed: ddpm_sample(gaussian_eps, (4, 2), S, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(5), run(5)) and not torch.equal(run(5), run(6))


def test_steps_yield_every_intermediate_state():
    steps = list(ddpm_steps(gaussian_eps, (2, 1), make_schedule("cosine", 50)))
    assert [s.t for s in steps] == list(range(49, -1, -1))
    assert all(s.x.shape == (2, 1) and s.x0_pred.shape == (2, 1) for s in steps)
    ddim = list(ddim_steps(gaussian_eps, (2, 1), S, steps=25))
    assert [s.t for s in ddim] == ddim_timesteps(1000, 25)


def test_start_from_a_given_noisy_sample():
    x_start = torch.randn(3, 2)
    steps = list(ddpm_steps(gaussian_eps, (3, 2), S, x_start=x_start, t_start=99))
    assert len(steps) == 100 and steps[0].t == 99
    ddim = list(ddim_steps(gaussian_eps, (3, 2), S, steps=10, x_start=x_start, t_start=99))
    assert len(ddim) == 10 and ddim[0].t == 99


def test_ddim_timestep_spacings():
    trailing = ddim_timesteps(1000, 50)
    assert trailing[0] == 999 and trailing[-1] == 19 and len(set(trailing)) == 50
    assert ddim_timesteps(1000, 50, "leading")[:2] == [980, 960] and ddim_timesteps(1000, 50, "leading")[-1] == 0
    linspace = ddim_timesteps(1000, 10, "linspace")
    assert linspace[0] == 999 and linspace[-1] == 0
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    for spacing in ("trailing", "leading", "linspace"):
        ts = ddim_timesteps(1000, 37, spacing)
        assert all(a > b for a, b in zip(ts, ts[1:])), spacing


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: ddim_timesteps(1000, 0), ["steps", "[1, 1000]", "0"]),
        (lambda: ddim_timesteps(1000, 2000), ["steps", "[1, 1000]", "2000"]),
        (lambda: ddim_timesteps(1000, 10, "uniform"), ["spacing", "'trailing'", "'uniform'"]),
        (lambda: ddim_sample(gaussian_eps, (2, 1), S, eta=1.5), ["eta", "[0.0, 1.0]", "1.5"]),
        (lambda: ddpm_sample(gaussian_eps, (2, 1), S, variance="large"), ["variance", "'beta_tilde'", "'large'"]),
        (lambda: ddpm_sample(gaussian_eps, (2, 1), S, t_start=1000), ["t_start", "[0, 999]", "1000"]),
        (lambda: ddpm_sample(gaussian_eps, (2, 1), S, x_start=torch.zeros(3, 1)), ["x_start", "(2, 1)", "(3, 1)"]),
        (lambda: ddpm_sample(lambda x, t: x[:1], (2, 1), S), ["model_fn output", "(2, 1)", "(1, 1)"]),
        (lambda: ddpm_sample(gaussian_eps, (2, 1), S, objective="score"), ["objective", "'score'"]),
    ],
)
def test_bad_sampler_arguments(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))
